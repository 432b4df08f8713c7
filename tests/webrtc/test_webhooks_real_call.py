"""Webhooks from a real call: real aiortc peers through the real server, signed deliveries to a receiver here.

Nothing is wired by hand: the server's own dispatcher delivers what its call center, emotion cues and
QA composer emit. The receiver checks each signature itself, from the scheme in docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.config import Settings
from tests.support.clients import REP, MediaClient, SwitchingVideoTrack, solid_frame
from tests.support.fakes import GREY, RED
from tests.support.server import Rapport, running_with_cues

pytestmark = pytest.mark.webrtc

EVENTS = ["session.created", "session.answered", "session.ended", "recording.ready", "emotion.flag"]


def signature_valid(secret: str, header: str | None, body: bytes, now: float) -> bool:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``, at most five minutes old."""
    if not header:
        return False
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit() or abs(now - int(parts["t"])) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Delivery:
    event: str | None
    payload: dict[str, Any]
    signed: bool


@dataclass
class Receiver:
    """A CRM's endpoint: records every POST and whether its signature holds."""

    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = signature_valid(self.secret, request.headers.get("Rapport-Signature"), body, time.time())
        self.deliveries.append(Delivery(request.headers.get("Rapport-Event"), json.loads(body), signed))
        self.arrived.set()
        return web.Response(status=204 if signed else 401)

    def of(self, event: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.payload.get("type") == event]

    async def wait_for(self, events: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while missing := [e for e in events if not self.of(e)]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [d.payload.get("type") for d in self.deliveries]
                raise AssertionError(f"never delivered: {missing}; delivered: {got}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/rapport", hooks.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield hooks, str(server.make_url("/rapport"))
    finally:
        await server.close()


@pytest.fixture
async def hooked_call_server(settings: Settings) -> AsyncIterator[Rapport]:
    # Recording on (for recording.ready), cues from a detector that reads red as an angry face (for
    # emotion.flag), and the receiver on loopback explicitly allowed (webhooks refuse internal hosts).
    changed = replace(
        settings,
        recording_policy="always",
        compose_recordings=True,
        emotion_cues=True,
        webhook_allowed_hosts=("127.0.0.1",),
    )
    users = (("admin1", "admin"), ("rep1", "rep"))
    async with running_with_cues(changed, "tests.support.fakes:ColourDetector", users) as rapport:
        yield rapport


async def test_a_real_call_delivers_every_event_signed_to_the_receiver(
    hooked_call_server: Rapport, receiver: tuple[Receiver, str]
) -> None:
    rapport = hooked_call_server
    hooks, url = receiver
    admin, csrf = await rapport.staff_session("admin1")
    async with admin.post(
        f"{rapport.url}/api/v1/webhooks", json={"url": url, "events": EVENTS}, headers={"X-CSRF-Token": csrf}
    ) as r:
        created = await r.json()
        assert r.status == 201, created
    hooks.secret = created["secret"]

    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="complaint", emotion_consent=True)
    session_id = call["session_id"]
    await rep.request({"type": "call.accept", "session_id": session_id})
    neutral, angry = solid_frame(GREY), solid_frame(RED)
    camera = SwitchingVideoTrack(lambda _t: neutral, lambda _t: angry)
    customer_media, rep_media = MediaClient(video=camera), MediaClient(identity=REP)
    rapport.media += [customer_media, rep_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    await rep.wait_for("emotion.update", timeout=15)
    camera.switch()  # the customer gets angry: the rep sees a flag, the CRM hears of it
    await rep.wait_for(lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", timeout=30)
    await asyncio.sleep(1.0)  # a second of the angry face on the recording
    await rep.send({"type": "call.end", "reason": "resolved"})
    await customer.wait_for("call.ended")

    # The QA file is composed in a separate process after the call: recording.ready comes last.
    await hooks.wait_for(EVENTS, timeout=90)

    unsigned = [d.payload.get("type") for d in hooks.deliveries if not d.signed]
    assert unsigned == [], f"deliveries without a valid signature: {unsigned}"
    for delivery in hooks.deliveries:
        assert delivery.event == delivery.payload["type"], "the Rapport-Event header names the event"
        assert str(delivery.payload["id"]).startswith("evt_")
    [created_event] = hooks.of("session.created")
    [answered] = hooks.of("session.answered")
    [ended] = hooks.of("session.ended")
    assert created_event.payload["data"]["session"]["session_id"] == session_id
    assert answered.payload["data"]["session"]["session_id"] == session_id
    assert answered.payload["data"]["rep"]["display_name"] == "Rep1"
    assert ended.payload["data"]["session"]["session_id"] == session_id
    assert ended.payload["data"]["session"]["state"] == "ended"
    flags = [d.payload["data"] for d in hooks.of("emotion.flag")]
    assert flags and flags[0]["session_id"] == session_id and flags[0]["flag"] == "raised"
    ready = hooks.of("recording.ready")[0].payload["data"]
    assert ready["session_id"] == session_id and ready["state"] == "complete"
    assert len(ready["sha256"]) == 64 and ready["size"] > 0
    # In the order they happened.
    order = [d.payload["type"] for d in hooks.deliveries]
    assert order.index("session.created") < order.index("session.answered") < order.index("emotion.flag")
    assert order.index("emotion.flag") < order.index("session.ended") < order.index("recording.ready")
