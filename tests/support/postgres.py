"""A real PostgreSQL for the test run: one throwaway cluster per session, one fresh database per test.

The cluster is Debian's ``postgresql`` (.ci/system-deps installs it), made with ``initdb`` in a temporary folder,
listening only on a Unix socket in that folder (``listen_addresses=''``, so no port and nothing on the network
namespace's loopback) with ``fsync=off``: a crash loses nothing worth keeping. Missing binaries skip the tests
that want PostgreSQL, which under ``RAPPORT_STRICT_TESTS=1`` is a failure (tests/conftest.py).

Running it as root, which PostgreSQL refuses (``initdb: cannot be run as root``):

* ``make test`` runs pytest inside ``unshare -rn``: a user namespace whose only mapping is our uid as 0. There
  ``runuser -u postgres`` and ``su postgres`` both fail with "cannot set groups: Operation not permitted":
  ``/proc/self/setgroups`` is ``deny`` in a namespace an unprivileged user made, and uid ``postgres`` (101) is
  not mapped into it anyway, so no setuid to it can succeed; ``chown 101`` of the folder fails with EINVAL
  ("Invalid argument") for the same reason.
* What works, both there and for a real root outside any namespace: a nested user namespace,
  ``unshare --user --map-user=<postgres uid> --map-group=<its gid>``. Inside it the one mapped id (our 0)
  shows as ``postgres``, so ``geteuid()`` is not 0 and PostgreSQL starts; files we (0) own, such as the
  temporary folder, show as owned by ``postgres``, which passes its data-directory ownership check. Nothing
  is chowned, no privilege is gained, and the cluster stays inside ``unshare -rn``'s network namespace.
  Clients (``createdb``, asyncpg) run as ourselves and connect over the socket with ``trust`` auth.
* As a non-root user no wrapper is needed: the binaries run as that user.

``postgres`` runs in the foreground as our child (not via ``pg_ctl start``, which detaches it) with a parent-
death signal, so a killed pytest does not leave a server behind; the fixture's teardown stops it with SIGINT
(PostgreSQL's "fast" shutdown) and deletes the folder. An outage test takes ``own_postgres`` instead: a cluster
of its own that it can stop and start again on the same socket folder (tests/cluster/test_postgres_restart.py).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from .processes import die_with_parent

DATABASE = "rapport"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30.0


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL's bin folder (``/usr/lib/postgresql/<major>/bin``), else ``initdb`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_server_user() -> list[str]:
    """The command prefix that runs a PostgreSQL server binary as a non-root user (see the module docstring)."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam(SUPERUSER)
    except KeyError:
        user = pwd.getpwnam("nobody")
    # Both ids need a passwd/group entry: initdb looks the effective user's name up.
    return ["unshare", "--user", f"--map-user={user.pw_uid}", f"--map-group={user.pw_gid}"]


@dataclass
class PostgresCluster:
    """A running throwaway cluster: its socket folder and the binaries to talk to it."""

    bindir: Path
    socket_dir: Path
    # Database names unique across the run (class-wide: one cluster per session).
    _names: ClassVar[Iterator[int]] = itertools.count(1)

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL of one of its databases, over the Unix socket."""
        return f"postgresql+asyncpg://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a new name each call unless given); its URL."""
        name = name or f"test_{next(self._names)}"
        subprocess.run(
            [self.bindir / "createdb", "-h", str(self.socket_dir), "-U", SUPERUSER, name],
            check=True,
            capture_output=True,
        )
        return self.url(name)


def _run(command: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{log.read_text()}")


class PostgresServer(PostgresCluster):
    """A cluster in ``root`` (``root/data``, its socket in ``root``) that can be stopped and started again on the
    same socket folder, so every URL it gave out works again after ``start()``."""

    def __init__(self, bindir: Path, root: Path) -> None:
        super().__init__(bindir, root)
        self.data, self.log = root / "data", root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        _run([*as_server_user(), str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
              "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"], self.log)  # fmt: skip

    def start(self) -> None:
        options = ["-c", "listen_addresses=", "-c", f"unix_socket_directories={self.socket_dir}", "-c", "fsync=off",
                   "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*as_server_user(), str(self.bindir / "postgres"), "-D", str(self.data), *options],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        _wait_until_ready(self, self.process, self.log)

    def stop(self, *, immediate: bool = False) -> None:
        """Shut down: "fast" (SIGINT: open transactions roll back, clients are disconnected), or "immediate"
        (SIGQUIT: as a crash, recovery from the WAL at the next start)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _wait_until_ready(cluster: PostgresCluster, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        ready = subprocess.run(
            [cluster.bindir / "pg_isready", "-q", "-h", str(cluster.socket_dir), "-U", SUPERUSER],
            check=False,
        )
        if ready.returncode == 0:
            return
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()}")
        time.sleep(0.1)


def _bindir_or_skip() -> Path:
    bindir = postgres_bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("unshare") is None):
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql)")
    return bindir


@contextmanager
def postgres_server(prefix: str = "rapport-pg-") -> Iterator[PostgresServer]:
    """A new cluster, running, with an empty ``rapport`` database; stopped and deleted on the way out."""
    bindir = _bindir_or_skip()
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        server = PostgresServer(bindir, Path(folder))
        server.init()
        try:
            server.start()
            server.create_database(DATABASE)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole run with an empty ``rapport`` database; stopped and deleted after."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this test's own, which it may ``stop()`` and ``start()`` again (its URLs stay valid): for
    outage tests, which must not take the session's cluster down under other tests. About a second to make."""
    with postgres_server(prefix="rapport-own-pg-") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresCluster) -> str:
    """The SQLAlchemy URL of the session's ``rapport`` database (shared by every test that uses it)."""
    return postgres.url(DATABASE)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database's URL, once on SQLite (a file in ``tmp_path``) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'rapport.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()
