"""PostgreSQL restarted under a running server (issue 12): while it is down, requests fail cleanly (a 5xx with the
API's JSON error, no traceback, the process carries on, /healthz says 503 naming the database, a WebSocket hello
gets an error reply); once it is back the same requests work without restarting Rapport; and no session is
half-written, even for calls that were being created as it went down.

The server runs on a PostgreSQL cluster of the test's own (``own_postgres``), so stopping it takes no other
test's database away.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from server.config import Settings
from server.storage import schema
from tests.support.clients import SignalingClient
from tests.support.postgres import PostgresServer
from tests.support.server import PASSWORD, Rapport, running, with_settings

RECOVER_S = 15.0
# Each call from its own address: the per-address limits are not what this test is about.
_addresses = (f"10.{n // 250}.{n % 250}.1" for n in itertools.count(1))


@pytest.fixture
def settings(settings: Settings, own_postgres: PostgresServer) -> Settings:
    # As behind the load balancer: X-Forwarded-For from loopback is believed.
    return with_settings(settings, database_url=own_postgres.create_database(), trusted_proxies=("127.0.0.1",))


async def post_call(http: aiohttp.ClientSession, base: str) -> tuple[int, Any, str]:
    """POST /api/v1/calls (the customer intake) as a new customer; (status, JSON or None, raw text)."""
    async with http.post(
        f"{base}/api/v1/calls", json={"name": "Ada", "reason": "other"}, headers={"X-Forwarded-For": next(_addresses)}
    ) as r:
        text = await r.text()
        body = await r.json() if r.content_type == "application/json" else None
        return r.status, body, text


async def post_login(base: str) -> tuple[int, Any, str]:
    """A staff login, in a cookie jar of its own (the customers' requests carry no staff cookie)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/v1/auth/login", json={"username": "rep1", "password": PASSWORD}) as r,
    ):
        text = await r.text()
        return r.status, await r.json() if r.content_type == "application/json" else None, text


def assert_clean_failure(answer: tuple[int, Any, str], what: str) -> None:
    status, body, text = answer
    assert status == 503, f"{what}: {status} {text[:300]}"
    assert isinstance(body, dict) and set(body) == {"error"}, f"{what}: not the JSON error: {text[:300]}"
    assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == "unavailable", text
    assert "Traceback" not in text and 'File "' not in text, f"{what}: a traceback reached the client"


async def health(http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{base}/healthz") as r:
        return r.status, await r.json()


async def ready_again(http: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + RECOVER_S
    while (await health(http, base))[0] != 200:
        assert time.monotonic() < deadline, "not ready again after PostgreSQL came back"
        await asyncio.sleep(0.1)


@asynccontextmanager
async def calls_streaming(rapport: Rapport, answers: list[tuple[int, Any, str]]) -> AsyncIterator[None]:
    """Customers starting calls, four at a time, for as long as the block runs; every answer kept."""
    done = asyncio.Event()

    async def customer_after_customer() -> None:
        while not done.is_set():
            try:
                answers.append(await post_call(rapport.http, rapport.url))
            except aiohttp.ClientError as exc:  # the server must answer; a dropped connection is a finding
                answers.append((0, None, repr(exc)))

    streams = [asyncio.create_task(customer_after_customer()) for _ in range(4)]
    try:
        yield
    finally:
        done.set()
        await asyncio.gather(*streams)


async def test_postgresql_restarted_requests_fail_cleanly_then_recover_with_nothing_half_written(
    own_postgres: PostgresServer, settings: Settings
) -> None:
    async with running(settings) as rapport:
        base = rapport.url
        status, first, _text = await post_call(rapport.http, base)
        assert status == 201, first
        assert (await post_login(base))[0] == 200
        staff = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with staff.post(f"{base}/api/v1/auth/login", json={"username": "rep1", "password": PASSWORD}) as r:
            assert r.status == 200

        answers: list[tuple[int, Any, str]] = []
        async with calls_streaming(rapport, answers):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own_postgres.stop)  # "fast": open transactions roll back
            await asyncio.sleep(0.3)
        outage_starts = [a for a in answers if a[0] != 201]
        assert outage_starts, "no call was started while PostgreSQL was down: the test saw no outage"
        assert sum(1 for a in answers if a[0] == 201) > 0, "no call was started before it went down"
        for answer in outage_starts:
            assert_clean_failure(answer, "a call started as PostgreSQL went down")

        # While it is down.
        assert_clean_failure(await post_call(rapport.http, base), "POST /api/v1/calls")
        assert_clean_failure(await post_login(base), "a staff login")
        status, body = await health(rapport.http, base)
        assert (status, body["checks"]["database"]) == (503, "unavailable")
        customer = SignalingClient(rapport.http, base)
        await customer.connect()
        try:
            await customer.send({"type": "hello", "token": first["token"], "id": "h1"})
            reply = await customer.wait_for(lambda m: m.get("reply_to") == "h1")
            assert reply["type"] == "error", reply
            assert customer.closed_code is None, "the socket stays open for the client to retry"
        finally:
            await customer.close()
        # A rep's console reconnecting meanwhile: its login cannot be checked, so the handshake says 503.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await staff.ws_connect(base.replace("http", "ws", 1) + "/ws/v1")
        assert refused.value.status == 503
        await staff.close()
        async with rapport.http.get(f"{base}/livez") as r:
            assert r.status == 200, "the process carries on"

        # Back, without restarting Rapport.
        await asyncio.to_thread(own_postgres.start)
        await ready_again(rapport.http, base)
        status, again, _text = await post_call(rapport.http, base)
        assert status == 201, again
        assert (await post_login(base))[0] == 200
        customer = SignalingClient(rapport.http, base)
        await customer.connect()
        try:
            await customer.send({"type": "hello", "token": again["token"]})
            await customer.wait_for("welcome")
        finally:
            await customer.close()

        created = {first["session_id"], again["session_id"]}
        created |= {body["session_id"] for status, body, _text in answers if status == 201}
        await assert_no_half_written_session(settings, created, live=set(rapport.center.sessions))


async def assert_no_half_written_session(settings: Settings, created: set[str], *, live: set[str]) -> None:
    """What create_session writes in one transaction (server/storage/sessions.py), all of it or none: the session
    row with the customer's token (its hash and expiry) and the session's "created" event. Only the calls that
    were answered 201 exist, and every one still waiting is in the call centre's queue."""
    assert settings.database_url is not None
    engine = create_async_engine(settings.database_url)
    s, e = schema.support_sessions, schema.session_events
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(s.c.id, s.c.state, s.c.token_hash, s.c.token_expires_at))).all()
            events = dict(
                (
                    await conn.execute(
                        select(e.c.session_id, func.count()).where(e.c.kind == "created").group_by(e.c.session_id)
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    stored = {row.id for row in rows}
    assert stored == created, f"told the customer 201 but not stored: {created - stored}; stored but refused: " \
        f"{stored - created}"  # fmt: skip
    for row in rows:
        assert row.token_hash and row.token_expires_at, f"{row.id} has no token"
        assert events.get(row.id) == 1, f"{row.id} has {events.get(row.id, 0)} created events"
    waiting = {row.id for row in rows if row.state == "waiting"}
    assert waiting <= live, f"waiting in the database but not in the queue: {waiting - live}"
