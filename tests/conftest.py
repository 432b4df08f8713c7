"""Shared fixtures: a real Rapport server on loopback with a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from emotion import fer_available
from server.app import create_app
from server.config import Settings
from server.http.auth import hash_password
from server.http.security import AccessLogger
from server.keys import CALL_CENTER, STORE
from server.storage.store import Store
from tests.support.clients import MediaClient, SignalingClient, login, start_call
from tests.support.faces import make_clip, person, write_clip_y4m

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
# CI sets this (.ci/run): then a test skipped for a missing part (Chromium, fer, the netns) fails the run.
STRICT_ENV = "RAPPORT_STRICT_TESTS"


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def loopback_webrtc_available() -> bool:
    # aioice skips 127.0.0.1; WebRTC tests need 127.0.0.2 (made by the Makefile's netns).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


def missing_parts() -> dict[str, str]:
    """Marker -> why its tests cannot run here (empty when everything is installed)."""
    missing = {}
    if not loopback_webrtc_available():
        why = "needs 127.0.0.2 on lo: run through `make test` (private netns)"
        missing["webrtc"] = missing["browser"] = why
    if not os.path.exists(CHROMIUM):
        missing.setdefault("browser", f"{CHROMIUM} is not installed (make test installs Debian's chromium)")
    fer_ok, fer_why = fer_available()
    if not fer_ok:
        missing["fer"] = fer_why
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_parts()
    for item in items:
        for marker, why in missing.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))
                break


def _strict_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip into a failure that says why it was skipped."""
    longrepr = report.longrepr
    why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under {STRICT_ENV}=1, which makes every skip a failure: {why}\n"
        "Install the missing part (.ci/system-deps, uv sync --all-extras) or deselect the test (-m/-k)."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    # xfail is reported as a skip too; it is a different promise, so it stays as it is.
    if strict_mode() and report.skipped and not hasattr(report, "wasxfail"):
        _strict_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    # A module-level pytest.skip / importorskip skips a whole file at collection.
    if strict_mode() and report.skipped:
        _strict_failure(report)
    return report


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
    await server.start_server(access_log_class=AccessLogger)  # as `rapport serve` runs it
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
