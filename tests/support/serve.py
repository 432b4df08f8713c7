"""`rapport serve` as a real process, the way an operator starts it, with its log kept for the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from .processes import die_with_parent, stop_process

ROOT = Path(__file__).resolve().parent.parent.parent
# Light by default: no TensorFlow worker. A test that wants more passes its own settings.
QUIET_ENV = {"RAPPORT_EMOTION_CUES": "false", "RAPPORT_MEDIA_WORKERS": "0", "RAPPORT_COMPOSE_RECORDINGS": "false"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def add_user(data_dir: Path, username: str, role: str, password: str) -> None:
    """``rapport users add``, as an operator runs it before the first start (the password on stdin)."""
    subprocess.run(
        [sys.executable, "-m", "server.cli", "users", "add", username, "--role", role, "--data-dir", str(data_dir)],
        input=password.encode() + b"\n",
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _loose_umask() -> None:
    # What a shell usually has: files 0644 unless the server restricts them itself.
    os.umask(0o022)
    # A test that fails before it stops the server (or a killed pytest) leaves nothing running.
    die_with_parent()


class ServeProcess:
    """One run of ``python -m server.cli serve``; ``log`` is what it wrote to stderr."""

    def __init__(
        self,
        data_dir: Path,
        *flags: str,
        env: dict[str, str] | None = None,
        https: bool = False,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        # ``prefix`` runs the server inside something, e.g. a test network's host (``Host.cmd([])``: nsenter).
        # There every port is free, and ``host`` is not one of ours: any free port here will do.
        self.prefix = list(prefix)
        self.port = free_port("127.0.0.1" if prefix else host)
        self.https = https
        self.url = f"{'https' if https else 'http'}://{host}:{self.port}"
        self.flags = list(flags) + (["--https"] if https else []) + ([] if host == "127.0.0.1" else ["--host", host])
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
        self.env.update(QUIET_ENV if env is None else env)
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> ServeProcess:
        return await self.start()

    async def start(self) -> ServeProcess:
        """Start the server (again, after ``kill`` or ``stop``) and wait until it answers /healthz."""
        # A restart adds to the log of the run before it; a first start never reads an older process's.
        with self.log_path.open("wb" if self.proc is None else "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "server.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ]
                + self.flags,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self.env,
                preexec_fn=_loose_umask,
            )
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(1200):  # 60 s: a loaded machine starts media workers slowly
                if self.proc.poll() is not None:
                    raise RuntimeError(f"rapport serve exited ({self.proc.returncode}):\n{self.log}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return self
                await asyncio.sleep(0.05)
        raise RuntimeError(f"rapport serve did not start:\n{self.log}")

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, grace_s=20)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
