"""A Rapport cluster for a test: front doors as real ``rapport serve`` processes, each on its own loopback
address, sharing one PostgreSQL database and one Redis (docs/scaling.md).

Everything runs inside the test's own network namespace (``make test``): 127.0.0.0/8 is all local on ``lo``,
so each front door binds its own 127.0.0.x and nothing leaves the namespace.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from .media_nodes import MediaNodeProcess
from .postgres import PostgresCluster
from .redis import RedisServer
from .serve import ROOT, ServeProcess

PASSWORD = "cluster-test-password"
SECRET = "cluster-test-secret-0123456789"


@dataclass
class Cluster:
    folder: Path
    database_url: str
    redis: RedisServer
    doors: dict[str, ServeProcess] = field(default_factory=dict)
    nodes: dict[str, MediaNodeProcess] = field(default_factory=dict)
    # Shared by every node, like an NFS mount in production.
    recordings: Path = field(init=False)

    def __post_init__(self) -> None:
        self.recordings = self.folder / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)

    def env(self, name: str, **extra: str) -> dict[str, str]:
        base = {
            "RAPPORT_DATABASE_URL": self.database_url,
            "RAPPORT_REDIS_URL": self.redis.url,
            "RAPPORT_NODE_ID": name,
            "RAPPORT_CLUSTER_SECRET": SECRET,
            "RAPPORT_RECORDINGS_DIR": str(self.recordings),
            "RAPPORT_EMOTION_CUES": "false",
            "RAPPORT_MEDIA_WORKERS": "0",
            "RAPPORT_COMPOSE_RECORDINGS": "false",
            "RAPPORT_NODE_TIMEOUT_S": "1.5",
        }
        return {**base, **extra}

    def door(self, name: str, host: str, **extra: str) -> ServeProcess:
        data = self.folder / name
        data.mkdir(exist_ok=True)
        door = ServeProcess(data, env=self.env(name, **extra), host=host)
        self.doors[name] = door
        return door

    def media_node(self, name: str, host: str, *, capacity: int = 4, detector: str | None = None) -> MediaNodeProcess:
        """A ``rapport media-node`` on ``host``, registered in Redis when this returns."""
        node = MediaNodeProcess(
            name, host, redis_url=self.redis.url, database_url=self.database_url, secret=SECRET,
            folder=self.folder, capacity=capacity, detector=detector, recordings_dir=self.recordings,
        )  # fmt: skip
        self.nodes[name] = node
        node.start()
        node.wait_registered()
        return node

    def add_user(self, username: str, role: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_")}
        env["RAPPORT_DATABASE_URL"] = self.database_url
        subprocess.run(
            [sys.executable, "-m", "server.cli", "users", "add", username, "--role", role,
             "--data-dir", str(self.folder / "cli")],
            input=PASSWORD.encode() + b"\n", cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip

    async def leader(self, timeout: float = 15.0, *, other_than: str | None = None) -> str:
        """The name of the front door that leads now (or, after a kill, once one other than ``other_than`` does)."""
        client = aioredis.from_url(self.redis.url)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                holder = await client.get("rapport:leader")
                if holder and holder.decode() != other_than:
                    return str(holder.decode())
                await asyncio.sleep(0.1)
        finally:
            await client.aclose()
        raise TimeoutError("no front door leads")

    def stop(self) -> None:
        for door in self.doors.values():
            door.stop()
        for node in self.nodes.values():
            node.stop()


@pytest.fixture
async def cluster(tmp_path: Path, postgres: PostgresCluster, redis_server: RedisServer) -> AsyncIterator[Cluster]:
    built = Cluster(tmp_path, postgres.create_database(), redis_server)
    try:
        yield built
    finally:
        built.stop()


async def staff_session(url: str, username: str) -> aiohttp.ClientSession:
    from .clients import login

    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    await login(http, url, username, PASSWORD)
    return http
