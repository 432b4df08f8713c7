"""Real media nodes for the cluster tests: ``python -m server.cli media-node`` subprocesses, each on its own
127.0.0.x (the whole of 127/8 is local inside the test's network namespace).

They die with pytest (parent-death signal), so a SIGKILL test is real and a killed run leaves nothing behind.
``media_nodes`` starts them; ``front_door_uses_nodes`` lets the in-process front door pick the node pool when
``settings.media_nodes`` is set, until ``server.app`` does so itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from server.media.registry import heartbeat_key
from tests.support.processes import die_with_parent, stop_process
from tests.support.redis import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


class MediaNodeProcess:
    """One ``rapport media-node``; ``name`` is its node id in the registry."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        redis_url: str,
        database_url: str | None,
        secret: str | None,
        folder: Path,
        capacity: int = 2,
        detector: str | None = None,
        recordings_dir: Path | None = None,
    ) -> None:
        self.name, self.host, self.redis_url = name, host, redis_url
        self.port = free_port(host)
        self.database_url, self.secret, self.capacity, self.detector = database_url, secret, capacity, detector
        self.folder = folder
        # The cluster's shared recordings folder (an NFS mount in production); default: the node's data dir.
        self.recordings_dir = recordings_dir
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "server.cli", "media-node", "--listen", f"{self.host}:{self.port}"]
        command += ["--node-id", self.name, "--redis-url", self.redis_url, "--capacity", str(self.capacity)]
        command += ["--data-dir", str(self.folder / self.name)]
        if self.database_url:
            command += ["--database-url", self.database_url]
        if self.secret is not None:
            command += ["--cluster-secret", self.secret]
        if self.detector:
            command += ["--emotion-detector", self.detector, "--emotion-mode", "thread"]
        return command

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
        # Without a fake detector the node runs no cues: no TensorFlow on a shared test box.
        env["RAPPORT_EMOTION_CUES"] = "true" if self.detector else "false"
        if self.recordings_dir is not None:
            env["RAPPORT_RECORDINGS_DIR"] = str(self.recordings_dir)
        return env

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env(),
                preexec_fn=die_with_parent,
            )

    def registered(self) -> bool:
        with redis.Redis.from_url(self.redis_url, socket_timeout=2) as client:
            return bool(client.exists(heartbeat_key(self.name)))

    def wait_registered(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.registered():
            if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"media node {self.name} did not register:\n{self.log_text()}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """Gone at once, as a crash: SIGKILL, nothing cleaned up (its registry entry stays until the TTL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)


StartNode = Callable[..., MediaNodeProcess]


@pytest.fixture
def media_nodes(tmp_path: Path) -> Iterator[StartNode]:
    """``start(name, host, redis_url=..., database_url=..., secret=..., capacity=2, detector=None, wait=True)``."""
    started: list[MediaNodeProcess] = []

    def start(name: str, host: str, *, wait: bool = True, **options: Any) -> MediaNodeProcess:
        node = MediaNodeProcess(name, host, folder=tmp_path, **options)
        started.append(node)
        node.start()
        if wait:
            node.wait_registered()
        return node

    try:
        yield start
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def front_door_uses_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The front door's media pool is a ``MediaNodePool`` when ``settings.media_nodes`` (what server.app will do)."""
    import server.app as app_module
    from server.config import SETTINGS
    from server.media.nodes import MediaNodePool
    from server.media.pool import MEDIA_POOL
    from server.metrics import METRICS

    if hasattr(app_module, "MediaNodePool"):
        return  # server.app picks it itself
    original = app_module._media_pool_ctx

    async def media_pool_ctx(app: Any) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.media_nodes:
            async for _ in original(app):
                yield
            return
        pool = MediaNodePool(settings, app[METRICS].transit)
        try:
            await pool.start()
            app[MEDIA_POOL] = pool
            yield
        finally:
            await pool.aclose()

    services = tuple(media_pool_ctx if ctx is original else ctx for ctx in app_module.SERVICES)
    monkeypatch.setattr(app_module, "SERVICES", services)
