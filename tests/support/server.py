"""A real Rapport server on loopback with a real SQLite file (or PostgreSQL: ``database``), for every test
that talks to one.

``running`` starts one and always tears it down; the ``rapport`` and ``served`` fixtures (registered by
tests/conftest.py) and every test's own variant (other settings, other users, a fake emotion service) use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from emotion import EmotionService
from server.app import create_app
from server.calls.center import CALL_CENTER
from server.cli import migrated_engine
from server.cluster.service import LEADERSHIP
from server.config import Settings
from server.http.auth import hash_password
from server.http.security import AccessLogger
from server.storage.schema import Engine
from server.storage.store import STORE, Store
from tests.support.clients import CUSTOMER, REP, MediaClient, SignalingClient, login, start_call, welcomed

PASSWORD = "correct horse battery"

# (username, role) pairs a test server starts with.
Users = Iterable[tuple[str, str]]
ONE_REP: tuple[tuple[str, str], ...] = (("rep1", "rep"),)
TWO_REPS_AND_QA: tuple[tuple[str, str], ...] = (("rep1", "rep"), ("rep2", "rep"), ("qa1", "qa"))
REP_AND_SUPERVISOR: tuple[tuple[str, str], ...] = (("rep1", "rep"), ("sup1", "supervisor"))

# ``serve(**changes)``: a server with those settings changed.
Serve = Callable[..., Awaitable["Rapport"]]


class MediaCall(NamedTuple):
    """A call a rep accepted, with real aiortc media negotiated on both sides."""

    rep: SignalingClient
    customer: SignalingClient
    call: dict[str, Any]
    customer_media: MediaClient
    rep_media: MediaClient


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
        """The call centre; in a cluster (``redis_url`` set), the one this front door runs while it leads."""
        if LEADERSHIP in self.app:
            return self.app[LEADERSHIP].center
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
        client = await welcomed(http, self.url)
        if available:
            await client.request({"type": "rep.status", "status": "available"})
        self._clients.append(client)
        return client

    async def customer(self, **fields: Any) -> tuple[SignalingClient, dict[str, Any]]:
        call = await start_call(self.http, self.url, **fields)
        client = await welcomed(self.http, self.url, call["token"])
        self._clients.append(client)
        return client, call

    async def media_call(
        self,
        rep_name: str = "rep1",
        *,
        available: bool = True,
        identified: bool = True,
        rep_heals: bool = False,
        **fields: Any,
    ) -> MediaCall:
        """``rep_name`` accepts a new customer's call and both sides negotiate media (no frames waited for yet).

        ``identified``: each side sends its own colour and tone (``CUSTOMER``, ``REP``), so a test can tell whose
        media arrived; otherwise both send the moving test picture, which costs the encoder more.
        ``rep_heals``: the rep's end skips a lost packet and asks for a keyframe, as a browser does.
        """
        rep = await self.rep(rep_name, available=available)
        customer, call = await self.customer(**fields)
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        customer_media = MediaClient(identity=CUSTOMER if identified else None)
        rep_media = MediaClient(identity=REP if identified else None, heal_lost_video=rep_heals)
        self.media += [customer_media, rep_media]
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)
        return MediaCall(rep, customer, call, customer_media, rep_media)

    def __post_init__(self) -> None:
        self._extra: list[aiohttp.ClientSession] = []
        self._clients: list[SignalingClient] = []
        self.media: list[MediaClient] = []

    async def aclose(self) -> None:
        """Close the clients this test opened through the helpers (the server keeps running)."""
        for m in self.media:
            await m.close()
        for c in self._clients:
            await c.close()
        for h in self._extra:
            await h.close()

    async def stop(self) -> None:
        """Close every client, then the server."""
        await self.aclose()
        await self.http.close()
        await self.server.close()
        # Let aiortc's transports finish their own teardown before the loop closes.
        await asyncio.sleep(0)


async def start_rapport(
    settings: Settings, host: str = "127.0.0.1", port: int | None = None, emotion_service: Any = None
) -> Rapport:
    app = create_app(settings, emotion_service=emotion_service)
    server = TestServer(app, host=host, port=port)
    await server.start_server(access_log_class=AccessLogger)  # as `rapport serve` runs it
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    return Rapport(app=app, server=server, http=http)


@asynccontextmanager
async def running(
    settings: Settings,
    users: Users = ONE_REP,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    emotion_service: Any = None,
) -> AsyncIterator[Rapport]:
    """A server with ``users`` (all with PASSWORD), stopped on the way out whatever happened inside."""
    rapport = await start_rapport(settings, host=host, port=port, emotion_service=emotion_service)
    try:
        for username, role in users:
            await rapport.add_user(username, role)
        yield rapport
    finally:
        await rapport.stop()


@asynccontextmanager
async def running_with_cues(settings: Settings, detector: str, users: Users = ONE_REP) -> AsyncIterator[Rapport]:
    """``running`` with emotion cues from ``detector`` ("module:factory", e.g. a fake in tests.support.fakes)."""
    service = EmotionService(detector, mode="thread")
    try:
        async with running(settings, users, emotion_service=service) as rapport:
            yield rapport
    finally:
        await service.aclose()


@asynccontextmanager
async def running_full(settings: Settings) -> AsyncIterator[Rapport]:
    """``running`` with room for one call, all taken: rep1 is in a call and another customer waits."""
    async with running(replace(settings, max_calls=1)) as rapport:
        rep = await rapport.rep("rep1")
        _customer, call = await rapport.customer()
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await rapport.customer()
        yield rapport


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)


# ``pytestmark = pytest.mark.parametrize("database", BOTH_DATABASES)`` runs a module's servers on each.
BOTH_DATABASES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module's ``ON_DATABASES``: each of its tests that runs a server runs once per database."""
    databases = getattr(metafunc.module, "ON_DATABASES", None)
    if databases and "database" in metafunc.fixturenames:
        metafunc.parametrize("database", databases)


@pytest.fixture
def database() -> str:
    """Which database the test's server stores into: SQLite in its data folder, unless a module parametrises
    this over ``BOTH_DATABASES`` (or sets "postgresql"), which gives each test a fresh PostgreSQL database."""
    return "sqlite"


@pytest.fixture
def settings(tmp_path: Path, database: str, request: pytest.FixtureRequest) -> Settings:
    # None: the default URL, the SQLite file in data_dir.
    database_url = request.getfixturevalue("postgres").create_database() if database == "postgresql" else None
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
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


@pytest.fixture
async def rapport(settings: Settings) -> AsyncIterator[Rapport]:
    """A running server with two reps and a QA reviewer."""
    async with running(settings, TWO_REPS_AND_QA) as r:
        yield r


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Rapport]:
    """A running server with one rep, for the browser tests."""
    async with running(settings) as r:
        yield r


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Start servers with some settings changed (a rep, rep1, and a supervisor, sup1); all stopped after the test."""
    async with AsyncExitStack() as started:

        async def start(**changes: Any) -> Rapport:
            return await started.enter_async_context(running(replace(settings, **changes), REP_AND_SUPERVISOR))

        yield start


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    """The database in ``settings``' data folder, migrated, and no server: for the parts that take an engine."""
    async with migrated_engine(settings) as migrated:
        yield migrated
