"""Webhooks: the management API, signed deliveries to a real receiver on loopback, retries, failure, restarts.

Loopback is an internal address, refused unless allowed: these tests allow 127.0.0.1 (webhook_allowed_hosts),
as an operator would for a receiver on the same machine. tests/api/test_ssrf.py tests the refusals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from server.config import Settings
from server.storage.api_keys import ApiKeyStore
from server.webhooks.dispatcher import WEBHOOKS, WebhookDispatcher, validate_url
from server.webhooks.signing import sign, verify
from tests.support.server import Rapport, running, with_settings

FAST = (0.2, 0.4, 0.8)
LOCAL = ("127.0.0.1",)  # the receivers' host, allowed as an operator would allow an internal one
T = TypeVar("T")


# a receiver on loopback


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """An HTTP endpoint that records what it gets; ``plan`` says how to answer the next requests."""

    plan: list[str] = field(default_factory=list)
    otherwise: str = "ok"
    secret: str | None = None
    requests: list[Received] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/elsewhere", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signature = request.headers.get("Rapport-Signature")
        verified = self.secret is not None and verify(self.secret, signature, body)
        self.requests.append(Received(dict(request.headers), body, verified))
        action = self.plan.pop(0) if self.plan else self.otherwise
        if action == "500":
            return web.Response(status=500, reason="Receiver Says Boom", text="boom")
        if action == "close":
            assert request.transport is not None
            request.transport.close()  # the sender sees the connection drop with no answer
            return web.Response(status=204)
        if action == "slow":
            await asyncio.sleep(5)
        if action == "redirect":
            raise web.HTTPFound("/elsewhere")
        if not verified:
            return web.Response(status=401, text="bad signature")
        return web.Response(status=204)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    made: list[Receiver] = []

    async def make(**fields: Any) -> Receiver:
        receiver = await Receiver(**fields).start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        await receiver.close()


# the server under test: its own dispatcher, retrying quickly


@pytest.fixture
async def hooked(settings: Settings) -> AsyncIterator[Rapport]:
    async with running(
        with_settings(settings, webhook_allowed_hosts=LOCAL), (("admin1", "admin"), ("rep1", "rep"))
    ) as r:
        r.app[WEBHOOKS].backoff_s = FAST
        yield r


def dispatcher_of(rapport: Rapport) -> WebhookDispatcher:
    return rapport.app[WEBHOOKS]


@dataclass
class Admin:
    http: aiohttp.ClientSession
    csrf: str
    base: str

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf}
        data = None
        if body is not None:
            data = body if isinstance(body, str) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        async with self.http.request(method, self.base + path, data=data, headers=headers) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else None

    async def create(self, url: str, events: list[str], **more: Any) -> dict[str, Any]:
        status, body = await self.call("POST", "/api/v1/webhooks", {"url": url, "events": events, **more})
        assert status == 201, body
        return dict(body)

    async def deliveries(self, webhook_id: int) -> list[dict[str, Any]]:
        status, body = await self.call("GET", f"/api/v1/webhooks/{webhook_id}/deliveries")
        assert status == 200, body
        return list(body["items"])


@pytest.fixture
async def admin1(hooked: Rapport) -> Admin:
    """The admin, logged in to ``hooked``, for the webhook API."""
    http, csrf = await hooked.staff_session("admin1")
    return Admin(http, csrf, hooked.url)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s; last: {result!r}")
        await asyncio.sleep(0.05)


async def delivery_in_state(admin: Admin, webhook_id: int, *states: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        items = await admin.deliveries(webhook_id)
        return items[0] if items and items[0]["state"] in states else None

    return await eventually(check)


# managing endpoints


async def test_an_admin_creates_lists_and_deletes_webhooks_and_the_secret_is_shown_once(
    hooked: Rapport, admin1: Admin
) -> None:
    created = await admin1.create("https://crm.example.com/hooks/rapport", ["session.ended"], description="CRM")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["url"] == "https://crm.example.com/hooks/rapport"
    assert created["events"] == ["session.ended"] and created["description"] == "CRM"

    status, listed = await admin1.call("GET", "/api/v1/webhooks")
    assert status == 200
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert "secret" not in json.dumps(listed) and created["secret"] not in json.dumps(listed)

    status, _ = await admin1.call("DELETE", f"/api/v1/webhooks/{created['id']}")
    assert status == 204
    assert (await admin1.call("GET", "/api/v1/webhooks"))[1]["items"] == []
    assert (await admin1.call("DELETE", f"/api/v1/webhooks/{created['id']}"))[0] == 404
    assert (await admin1.call("GET", f"/api/v1/webhooks/{created['id']}/deliveries"))[0] == 404

    actions = [(a.action, a.target) for a in await hooked.store.list_audit()]
    assert ("webhook.create", str(created["id"])) in actions
    assert ("webhook.delete", str(created["id"])) in actions


async def test_api_keys_need_the_webhooks_scope_and_reps_are_refused(hooked: Rapport) -> None:
    keys = ApiKeyStore(hooked.store.engine)
    _key, manage = await keys.create("crm", ("webhooks:manage",))
    _key, reader = await keys.create("reports", ("sessions:read",))
    revoked_key, revoked = await keys.create("old", ("webhooks:manage",))
    assert await keys.revoke(revoked_key.id)
    url = f"{hooked.url}/api/v1/webhooks"
    body = {"url": "https://crm.example.com/hook", "events": ["session.created"]}

    async def post(secret: str) -> tuple[int, Any]:
        async with hooked.http.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}) as r:
            return r.status, await r.json()

    status, created = await post(manage)
    assert status == 201 and created["secret"].startswith("whsec_")
    async with hooked.http.get(url, headers={"Authorization": f"Bearer {manage}"}) as r:
        assert r.status == 200 and [e["id"] for e in (await r.json())["items"]] == [created["id"]]
    status, refused = await post(reader)
    assert status == 403 and refused["error"]["code"] == "forbidden"
    status, refused = await post(revoked)
    assert status == 401 and refused["error"]["code"] == "not_authenticated"
    assert (await post("rk_not_a_key"))[0] == 401

    audit = [a for a in await hooked.store.list_audit() if a.action == "webhook.create"]
    assert audit and "key:crm" in json.dumps(audit[0].to_json())

    rep, rep_csrf = await hooked.staff_session("rep1")
    async with rep.post(url, json=body, headers={"X-CSRF-Token": rep_csrf}) as r:
        assert r.status == 403
    async with rep.get(url) as r:
        assert r.status == 403
    async with hooked.http.get(url) as r:
        assert r.status == 401  # nobody


async def test_hostile_input_gets_clear_answers(hooked: Rapport, admin1: Admin) -> None:
    good: dict[str, Any] = {"url": "https://crm.example.com/hook", "events": ["session.ended"]}
    cases: list[tuple[Any, str]] = [
        ("{not json", "JSON"),
        ("[1, 2]", "JSON object"),
        ({**good, "events": ["session.exploded"]}, "unknown event"),
        ({**good, "events": []}, "events"),
        ({**good, "events": "session.ended"}, "events"),
        ({**good, "events": [42]}, "unknown event"),
        ({**good, "url": "ftp://crm.example.com/hook"}, "http"),
        ({**good, "url": "http://user:pass@crm.example.com/hook"}, "credentials"),
        ({**good, "url": "http://@crm.example.com/hook"}, "credentials"),
        ({**good, "url": "https://crm.example.com/" + "a" * 600}, "500 characters"),
        ({**good, "url": "https:///no-host"}, "host"),
        ({**good, "url": "https://crm.example.com:99999/hook"}, "valid URL"),
        ({**good, "url": "https://crm.example.com/a b"}, "spaces"),
        ({**good, "url": "javascript:alert(1)"}, "http"),
        ({**good, "url": 7}, "url"),
        ({"events": ["session.ended"]}, "url"),
        ({**good, "description": "x" * 201}, "description"),
        ({**good, "description": {"a": 1}}, "description"),
    ]
    for body, words in cases:
        status, answer = await admin1.call("POST", "/api/v1/webhooks", body)
        assert status == 400, (body, answer)
        assert answer["error"]["code"] == "bad_request"
        assert words in answer["error"]["message"], (body, answer)
    assert (await admin1.call("GET", "/api/v1/webhooks"))[1]["items"] == []

    created = await admin1.create(good["url"], good["events"])
    for path in (
        "/api/v1/webhooks/abc/deliveries",
        "/api/v1/webhooks/999/deliveries",
        "/api/v1/webhooks/-1/deliveries",
        "/api/v1/webhooks/1e3/deliveries",
        "/api/v1/webhooks/99999999999999999999999999/deliveries",
    ):
        status, answer = await admin1.call("GET", path)
        assert status == 404 and answer["error"]["code"] == "not_found", path
    for path in ("/api/v1/webhooks/999", "/api/v1/webhooks/abc", "/api/v1/webhooks/%C2%B2"):
        status, answer = await admin1.call("DELETE", path)
        assert status == 404 and answer["error"]["code"] == "not_found", path
    for limit in ("0", "501", "-1", "ten", "1.5"):
        status, answer = await admin1.call("GET", f"/api/v1/webhooks/{created['id']}/deliveries?limit={limit}")
        assert status == 400 and "limit" in answer["error"]["message"], limit
    assert (await admin1.call("GET", f"/api/v1/webhooks/{created['id']}/deliveries?limit=500"))[0] == 200


# deliveries


async def test_deliveries_are_signed_and_the_signature_verifies(
    hooked: Rapport, admin1: Admin, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    created = await admin1.create(receiver.url, ["session.ended"])
    receiver.secret = created["secret"]
    data = {"session": {"session_id": "s_1", "state": "ended", "customer_name": "Zoë"}}
    assert await dispatcher_of(hooked).emit("session.ended", data) == 1

    delivery = await delivery_in_state(admin1, created["id"], "delivered")
    assert delivery["attempts"] == 1 and delivery["last_status"] == 204 and delivery["last_error"] is None
    assert delivery["event"] == "session.ended" and delivery["delivered_at"] and delivery["next_attempt_at"] is None
    [got] = receiver.requests
    assert got.verified
    payload = json.loads(got.body)
    assert payload["type"] == "session.ended" and payload["data"] == data
    assert payload["id"] == delivery["event_id"] and payload["id"].startswith("evt_")
    assert payload["created_at"].endswith("Z")
    assert b" " not in got.body.replace(b"customer_name", b"")  # compact JSON
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Rapport-Event"] == "session.ended"
    assert got.headers["Rapport-Delivery"] == str(delivery["id"])
    assert got.headers["User-Agent"] == "Rapport-Webhooks/1"

    signature = got.headers["Rapport-Signature"]
    t = int(signature.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 60
    assert verify(created["secret"], signature, got.body)
    assert not verify(created["secret"], signature, got.body.replace(b"ended", b"ENDED"))
    assert not verify(created["secret"], signature, got.body + b" ")
    assert not verify("whsec_another", signature, got.body)
    assert not verify(created["secret"], signature, got.body, now=t + 301)
    old = int(time.time()) - 600
    assert not verify(created["secret"], sign(created["secret"], old, got.body), got.body)
    assert verify(created["secret"], sign(created["secret"], old, got.body), got.body, now=old + 10)


async def test_a_failing_receiver_gets_retries_until_it_answers(
    hooked: Rapport, admin1: Admin, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers(plan=["500", "close"])
    created = await admin1.create(receiver.url, ["session.answered"])
    receiver.secret = created["secret"]
    assert await dispatcher_of(hooked).emit("session.answered", {"session": {"session_id": "s_2"}}) == 1

    delivery = await delivery_in_state(admin1, created["id"], "delivered")
    assert delivery["attempts"] == 3
    assert delivery["last_status"] == 204
    assert delivery["last_error"] == "connection closed"  # the second attempt: no answer, the line dropped
    assert len(receiver.requests) == 3 and all(r.verified for r in receiver.requests)
    assert len({r.body for r in receiver.requests}) == 1  # the same event each time
    assert {r.headers["Rapport-Delivery"] for r in receiver.requests} == {str(delivery["id"])}


async def test_a_receiver_that_always_fails_ends_failed_after_the_last_backoff_step(
    hooked: Rapport, admin1: Admin, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers(otherwise="500")
    created = await admin1.create(receiver.url, ["recording.ready"])
    await dispatcher_of(hooked).emit("recording.ready", {"session_id": "s_3", "recording": {"id": 1}})

    seen: list[dict[str, Any]] = []

    async def pending_after_a_failure() -> dict[str, Any] | None:
        items = await admin1.deliveries(created["id"])
        if items and items[0]["state"] == "pending" and items[0]["attempts"] >= 1:
            seen.append(items[0])
            return items[0]
        return None

    retrying = await eventually(pending_after_a_failure)
    # A class of error, not the receiver's words (its reason phrase was "Receiver Says Boom").
    assert retrying["last_status"] == 500 and retrying["last_error"] == "http 500"
    assert retrying["next_attempt_at"] is not None

    delivery = await delivery_in_state(admin1, created["id"], "failed")
    assert delivery["attempts"] == len(FAST) + 1
    assert delivery["last_status"] == 500 and delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is None
    await asyncio.sleep(1.0)
    assert len(receiver.requests) == len(FAST) + 1  # nothing more after giving up


async def test_only_subscribed_events_are_sent_and_a_deleted_endpoint_gets_nothing_more(
    hooked: Rapport, admin1: Admin, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    ended_rx, created_rx = await receivers(), await receivers()
    ended = await admin1.create(ended_rx.url, ["session.ended"])
    created = await admin1.create(created_rx.url, ["session.created", "session.created", "emotion.flag"])
    assert created["events"] == ["session.created", "emotion.flag"]
    ended_rx.secret, created_rx.secret = ended["secret"], created["secret"]
    dispatcher = dispatcher_of(hooked)

    assert await dispatcher.emit("session.created", {"session": {"session_id": "s_4"}}) == 1
    assert await dispatcher.emit("emotion.flag", {"session_id": "s_4", "flag": "raised"}) == 1
    assert await dispatcher.emit("recording.ready", {"session_id": "s_4"}) == 0

    async def two_delivered() -> bool:
        items = await admin1.deliveries(created["id"])
        return len(items) == 2 and all(i["state"] == "delivered" for i in items)

    await eventually(two_delivered)
    assert [json.loads(r.body)["type"] for r in created_rx.requests] == ["session.created", "emotion.flag"]
    assert ended_rx.requests == [] and await admin1.deliveries(ended["id"]) == []

    assert (await admin1.call("DELETE", f"/api/v1/webhooks/{created['id']}"))[0] == 204
    assert await dispatcher.emit("session.created", {"session": {"session_id": "s_5"}}) == 0
    assert await dispatcher.emit("session.ended", {"session": {"session_id": "s_4"}}) == 1
    await delivery_in_state(admin1, ended["id"], "delivered")
    await asyncio.sleep(0.5)
    assert len(created_rx.requests) == 2 and len(ended_rx.requests) == 1


async def test_deleting_an_endpoint_stops_its_pending_retries(
    hooked: Rapport, admin1: Admin, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await receivers(otherwise="500")
    created = await admin1.create(receiver.url, ["session.ended"])
    dispatcher = dispatcher_of(hooked)
    dispatcher.backoff_s = (30.0,)
    await dispatcher.emit("session.ended", {"session": {"session_id": "s_6"}})

    async def retry_scheduled() -> bool:
        rows = await dispatcher.list_deliveries(created["id"])
        return bool(rows) and rows[0]["state"] == "pending" and rows[0]["attempts"] >= 1

    await eventually(retry_scheduled)
    assert (await admin1.call("DELETE", f"/api/v1/webhooks/{created['id']}"))[0] == 204
    [row] = await dispatcher.list_deliveries(created["id"])
    assert row["state"] == "failed" and row["last_error"] == "endpoint deleted" and row["next_attempt_at"] is None


# the dispatcher on its own


async def test_deliveries_survive_a_restart(engine: AsyncEngine, receivers: Callable[..., Awaitable[Receiver]]) -> None:
    receiver = await receivers()
    first = WebhookDispatcher(engine, backoff_s=FAST, allowed_hosts=LOCAL)  # never started: dies right after emit
    endpoint, secret = await first.create_endpoint(receiver.url, ("session.created",))
    receiver.secret = secret
    assert await first.emit("session.created", {"session": {"session_id": "s_7"}}) == 1
    await first.aclose()
    assert receiver.requests == []
    [row] = await first.list_deliveries(endpoint.id)
    assert row["state"] == "pending" and row["attempts"] == 0

    second = WebhookDispatcher(engine, backoff_s=FAST, allowed_hosts=LOCAL)
    await second.start()
    try:

        async def delivered() -> bool:
            return (await second.list_deliveries(endpoint.id))[0]["state"] == "delivered"

        await eventually(delivered)
    finally:
        await second.aclose()
    assert len(receiver.requests) == 1 and receiver.requests[0].verified


async def test_no_answer_in_time_and_redirects_count_as_failures(
    engine: AsyncEngine, receivers: Callable[..., Awaitable[Receiver]]
) -> None:
    slow = await receivers(otherwise="slow")
    moved = await receivers(otherwise="redirect")
    dispatcher = WebhookDispatcher(engine, timeout_s=0.3, backoff_s=(0.1,), allowed_hosts=LOCAL)
    slow_endpoint, _ = await dispatcher.create_endpoint(slow.url, ("session.ended",))
    moved_endpoint, moved.secret = await dispatcher.create_endpoint(moved.url, ("session.ended",))
    await dispatcher.start()
    try:
        assert await dispatcher.emit("session.ended", {"session": {"session_id": "s_8"}}) == 2

        async def both_failed() -> list[dict[str, Any]] | None:
            rows = [(await dispatcher.list_deliveries(e.id))[0] for e in (slow_endpoint, moved_endpoint)]
            return rows if all(r["state"] == "failed" for r in rows) else None

        slow_row, moved_row = await eventually(both_failed)
    finally:
        await dispatcher.aclose()
    assert slow_row["attempts"] == 2 and slow_row["last_status"] is None
    assert slow_row["last_error"] == "timeout"
    assert moved_row["attempts"] == 2 and moved_row["last_status"] == 302
    assert moved_row["last_error"] == "http 302 (redirects are not followed)"
    assert len(moved.requests) == 2  # /elsewhere was never asked


async def test_allowed_hosts_let_named_internal_hosts_through_and_only_those(engine: AsyncEngine) -> None:
    dispatcher = WebhookDispatcher(engine, allowed_hosts=("127.0.0.1", "CRM.internal"))
    assert dispatcher.check_url("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"
    assert dispatcher.check_url("https://crm.INTERNAL/hook") == "https://crm.INTERNAL/hook"
    with pytest.raises(ValueError, match="loopback"):
        dispatcher.check_url("http://127.0.0.2:9/hook")
    with pytest.raises(ValueError, match="unknown webhook event"):
        await dispatcher.emit("session.exploded", {})


def test_url_validation() -> None:
    assert validate_url(" https://crm.example.com/hook ") == "https://crm.example.com/hook"
    assert validate_url("https://[2001:db8::1]/hook", ("2001:db8::1",)) == "https://[2001:db8::1]/hook"
    for bad in ("", "ftp://h/x", "http://u:p@h/x", "https://", "https://h:0x1/", "http://h/\x00", "h/x", None):
        with pytest.raises(ValueError):
            validate_url(bad)
    # Loopback, even in its other spellings, is refused unless allowed.
    for internal in ("http://127.0.0.1:8080/hook", "https://[::1]/hook", "http://localhost/hook", "http://127.1/h"):
        with pytest.raises(ValueError, match="loopback"):
            validate_url(internal)


def test_signature_header_garbage_is_rejected() -> None:
    body = b'{"a":1}'
    good = sign("whsec_s", 1_700_000_000, body)
    assert verify("whsec_s", good, body, now=1_700_000_000)
    t_part, v_part = good.split(",")
    for header in (
        None,
        "",
        "garbage",
        t_part,
        v_part,
        f"t=-5,{v_part}",
        f"t=1e9,{v_part}",
        f"{t_part},{t_part},{v_part}",
        f"{t_part},v1=",
        f"{t_part},v1=ÿÿ",
        "x" * 2000,
    ):
        assert not verify("whsec_s", header, body, now=1_700_000_000), header
    assert verify("whsec_s", f"{t_part},v1=00ff,{v_part}", body, now=1_700_000_000)  # any v1 may match
