"""A real Redis for the scale-out tests: Debian's ``redis-server``, one throwaway server per test that asks.

It listens on a loopback address and port inside the test's own network namespace, keeps nothing on disk
(``save ""``, no append-only file), and dies with pytest (parent-death signal). ``restart()`` stops it and
starts an empty one on the same address, as a crashed Redis comes back: the tests use it to show that the
cluster rebuilds its live view. A missing ``redis-server`` skips the test, which under ``RAPPORT_STRICT_TESTS=1``
is a failure (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import die_with_parent, stop_process

START_TIMEOUT_S = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``url`` stays the same across ``restart()``."""

    def __init__(self, binary: str, folder: Path, host: str = "127.0.0.1") -> None:
        self.binary, self.folder, self.host = binary, folder, host
        self.port = free_port(host)
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        options = ["--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--dir", str(self.folder), "--protected-mode", "no", "--loglevel", "warning"]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, *options], stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def kill(self) -> None:
        """Gone at once, as a crash: no shutdown, nothing saved."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty Redis for this test; stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs Debian's redis-server)")
    with tempfile.TemporaryDirectory(prefix="rapport-redis-") as folder:
        server = RedisServer(binary, Path(folder))
        server.start()
        try:
            yield server
        finally:
            server.stop()
