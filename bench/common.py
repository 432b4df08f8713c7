"""What the benchmarks that run a server share: the network namespace check, the machine and the code they ran
on, child processes that die with the bench, and ``rapport serve`` as one of them with a rep account per call.

bench/calls/ and bench/cue_latency.py use it; tests/fuzz/ takes the namespace check from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from server.config import Settings
from tests.support.clients import loopback_webrtc_available

ROOT = Path(__file__).resolve().parents[1]
# WebRTC needs 127.0.0.2 (aioice ignores 127.0.0.1) and no way out: the Makefile's NETNS.
NETNS_COMMAND = 'unshare -rn sh -c \'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"\''
SERVER_START_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1

CpuSet = frozenset[int] | None


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def in_private_netns() -> bool:
    """Only loopback in this network namespace, and 127.0.0.2 on it (aioice ignores 127.0.0.1)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines} == {"lo"} and loopback_webrtc_available()


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    cpus = os.cpu_count() or 1
    return {"cpus": cpus, "cpu_model": model, "kernel": platform.release(), "python": platform.python_version()}


def source_revision() -> str:
    """The commit the server runs from, and whether its code differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "server", "emotion")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes in server/ or emotion/" if dirty else head


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- Child processes -------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(cpus: CpuSet) -> Callable[[], None]:
    """Runs in the child before exec: die with the bench, and keep to ``cpus`` (its threads inherit that)."""

    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def spawn(
    command: Sequence[str], *, env: dict[str, str], cpus: CpuSet, stdout: IO[Any] | int, stderr: IO[Any]
) -> subprocess.Popen[bytes]:
    # Own process group: a Ctrl-C reaches only the bench, which then stops its children in order.
    # preexec_fn is safe here: the bench runs no threads.
    return subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_child_setup(cpus),
    )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without RAPPORT_* settings (a user's config must not leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
    env.update(extra)
    return env


# --- The server ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerPath:
    """One way the server can carry media between the two sides of a call; each gets its own server process."""

    name: str
    summary: str
    env: tuple[tuple[str, str], ...] = ()  # RAPPORT_* settings that select this path
    serve_args: tuple[str, ...] = ()
    customers_consent: bool = False  # the bench's customers agree to emotion cues: their video is analysed


# Admission control would refuse calls past the capacity model: the benchmark is what measures it.
_UNCAPPED = ("RAPPORT_MAX_CALLS", "1000")

PATHS: dict[str, ServerPath] = {
    "transcode": ServerPath(
        "transcode",
        "the server terminates media: it decodes each incoming stream and re-encodes it (VP8, Opus) for the other side",
        env=(("RAPPORT_MEDIA_PATH", "transcode"), _UNCAPPED),
    ),
    "forward": ServerPath(
        "forward",
        "zero-transcode: each side's encoded VP8 and Opus frames go to the other side as they came",
        env=(("RAPPORT_MEDIA_PATH", "forward"), _UNCAPPED),
    ),
    "forward-cues": ServerPath(
        "forward-cues",
        "forwarding, and every customer agrees to emotion cues: the server also decodes and analyses their video",
        env=(("RAPPORT_MEDIA_PATH", "forward"), _UNCAPPED),
        customers_consent=True,
    ),
}


def rep_name(index: int) -> str:
    return f"bench-rep-{index + 1:03d}"


async def _create_staff(data_dir: Path, accounts: list[tuple[str, str, str]], password: str) -> None:
    from server.http.auth import hash_password
    from server.storage.migrations import migrate
    from server.storage.schema import create_engine
    from server.storage.store import Store

    engine = create_engine(Settings(data_dir=data_dir).db_url)
    try:
        await migrate(engine)
        store = Store(engine)
        hashed = hash_password(password)  # one hash for all: argon2 is slow on purpose
        for username, display_name, role in accounts:
            await store.create_user(username, display_name, role, hashed)
    finally:
        await engine.dispose()


def create_staff(data_dir: Path, accounts: list[tuple[str, str, str]], password: str) -> None:
    """Staff accounts (username, display name, role), straight into the server's database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_create_staff(data_dir, accounts, password))


def create_reps(data_dir: Path, count: int, password: str) -> None:
    """One rep per concurrent call (a rep takes one call at a time)."""
    create_staff(data_dir, [(rep_name(i), f"Bench Rep {i + 1}", "rep") for i in range(count)], password)


@dataclass
class ServerProcess:
    """``rapport serve`` on a free loopback port with the given data dir, as a child process."""

    path: ServerPath
    data_dir: Path
    log_path: Path
    cpus: CpuSet
    settings: Sequence[tuple[str, str]]  # (name, value) of server.config.Settings, passed as RAPPORT_NAME
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Self:
        command = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.path.serve_args]
        settings = {f"RAPPORT_{name.upper()}": value for name, value in self.settings}
        env = clean_env(RAPPORT_CREATE_DEMO_ACCOUNTS="false", **settings, **dict(self.path.env))
        with self.log_path.open("ab") as log:
            self.proc = spawn(command, env=env, cpus=self.cpus, stdout=log, stderr=log)
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            with contextlib.suppress(OSError), opener.open(f"{self.url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {SERVER_START_TIMEOUT_S:g} s:\n{tail(self.log_path)}")

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
