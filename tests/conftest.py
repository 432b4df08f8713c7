"""Shared fixtures: a real Rapport server on loopback with a real SQLite file."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.accounts import hash_password
from server.app import create_app
from server.config import Settings
from server.keys import CALL_CENTER, STORE
from server.store import Store
from tests.support.clients import MediaClient, SignalingClient, login, start_call
from tests.support.faces import make_clip, person, write_clip_y4m

PASSWORD = "correct horse battery"


def loopback_webrtc_available() -> bool:
    # aioice skips 127.0.0.1; WebRTC tests need 127.0.0.2 (made by the Makefile's netns).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if loopback_webrtc_available():
        return
    skip = pytest.mark.skip(reason="needs 127.0.0.2 on lo: run through `make test` (private netns)")
    for item in items:
        if "webrtc" in item.keywords or "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        create_demo_accounts=False,
        # Tests that want cues inject a service; others should not pay for a TensorFlow worker.
        emotion_cues=False,
        recording_policy="never",
        # Composing the QA file is a separate process; tests that want it turn it on.
        compose_recordings=False,
        # Media in the test's own process; tests of the worker processes turn them on.
        media_workers=0,
        heartbeat_s=5.0,
        reconnect_grace_s=30.0,
    )


@dataclass
class Rapport:
    """A running server plus helpers to drive it."""

    app: web.Application
    server: TestServer
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def store(self) -> Store:
        return self.app[STORE]

    @property
    def center(self) -> Any:
        return self.app[CALL_CENTER]

    async def add_user(self, username: str, role: str = "rep", password: str = PASSWORD) -> None:
        await self.store.create_user(username, username.title(), role, hash_password(password))

    async def staff_session(self, username: str, password: str = PASSWORD) -> tuple[aiohttp.ClientSession, str]:
        """A separate cookie jar logged in as ``username``; returns (session, csrf)."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        csrf = await login(http, self.url, username, password)
        self._extra.append(http)
        return http, csrf

    async def rep(self, username: str, *, available: bool = True) -> SignalingClient:
        http, _csrf = await self.staff_session(username)
        client = SignalingClient(http, self.url)
        await client.connect()
        await client.send({"type": "hello"})
        await client.wait_for("welcome")
        if available:
            await client.request({"type": "rep.status", "status": "available"})
        self._clients.append(client)
        return client

    async def customer(self, **fields: Any) -> tuple[SignalingClient, dict[str, Any]]:
        call = await start_call(self.http, self.url, **fields)
        client = SignalingClient(self.http, self.url)
        await client.connect()
        await client.send({"type": "hello", "token": call["token"]})
        await client.wait_for("welcome")
        self._clients.append(client)
        return client, call

    def __post_init__(self) -> None:
        self._extra: list[aiohttp.ClientSession] = []
        self._clients: list[SignalingClient] = []
        self.media: list[MediaClient] = []

    async def aclose(self) -> None:
        for m in self.media:
            await m.close()
        for c in self._clients:
            await c.close()
        for h in self._extra:
            await h.close()


async def start_rapport(
    settings: Settings, host: str = "127.0.0.1", port: int | None = None, emotion_service: Any = None
) -> Rapport:
    app = create_app(settings, emotion_service=emotion_service)
    server = TestServer(app, host=host, port=port)
    await server.start_server()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    return Rapport(app=app, server=server, http=http)


@pytest.fixture
async def rapport(settings: Settings) -> AsyncIterator[Rapport]:
    r = await start_rapport(settings)
    for name in ("rep1", "rep2"):
        await r.add_user(name)
    await r.add_user("qa1", "qa")
    try:
        yield r
    finally:
        await r.aclose()
        await r.http.close()
        await r.server.close()
        # Let aiortc's transports finish their own teardown before the loop closes.
        await asyncio.sleep(0)


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Rapport]:
    """A running server with one rep, for the browser tests."""
    rapport = await start_rapport(settings)
    await rapport.add_user("rep1")
    try:
        yield rapport
    finally:
        await rapport.aclose()
        await rapport.http.close()
        await rapport.server.close()


@pytest.fixture
async def faces_y4m(tmp_path: Path) -> Path:
    """A real face for Chromium's fake camera."""
    path = tmp_path / "happy.y4m"
    write_clip_y4m(path, make_clip([(person("happy"), 2.0)], width=640, height=480, fps=30))
    return path
