"""Routing: queue order, offering to the longest-idle matching rep, ring timeouts, decline and transfer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.calls.center import CallCenter
from server.calls.state import LiveSession, RepState
from server.config import Settings
from server.storage.records import SessionRecord, User
from tests.support.clients import SignalingClient, SignalingError, welcomed
from tests.support.server import BOTH_DATABASES, Rapport, start_rapport

# Every test here that runs a server runs it on SQLite and on PostgreSQL (tests/support/server.py).
ON_DATABASES = BOTH_DATABASES

REASONS = ["order", "complaint", "not_working", "wrong_info", "other"]
LANGS = ["en", "nl", "cs", "fa", "nb"]


def record(**fields: Any) -> SessionRecord:
    base: dict[str, Any] = {
        "id": "s_x",
        "state": "waiting",
        "reason": None,
        "customer_name": None,
        "device": None,
        "token_expires_at": 0.0,
        "priority": 0,
        "rep_id": None,
        "created_at": 0.0,
        "queued_at": 0.0,
        "answered_at": None,
        "ended_at": None,
        "ended_by": None,
        "end_reason": None,
    }
    return SessionRecord(**{**base, **fields})


@given(
    skills=st.frozensets(st.sampled_from(REASONS)),
    languages=st.frozensets(st.sampled_from(LANGS)),
    reason=st.none() | st.sampled_from(REASONS),
    language=st.none() | st.sampled_from(LANGS),
)
def test_a_rep_matches_exactly_the_calls_their_skills_and_languages_cover(
    skills: frozenset[str], languages: frozenset[str], reason: str | None, language: str | None
) -> None:
    rep = RepState(User(1, "r", "R", "rep", True), skills=skills, languages=languages)
    matched = CallCenter.matches(rep, record(reason=reason, language=language))
    reason_ok = not skills or reason is None or reason in skills
    language_ok = not languages or language is None or language in languages
    assert matched == (reason_ok and language_ok)


@given(st.lists(st.tuples(st.integers(0, 100), st.floats(0, 1e6)), min_size=1, max_size=30))
def test_the_queue_is_priority_first_then_waiting_time(calls: list[tuple[int, float]]) -> None:
    center = CallCenter.__new__(CallCenter)
    center.sessions = {
        f"s{i}": LiveSession(record(id=f"s{i}", priority=p, queued_at=q)) for i, (p, q) in enumerate(calls)
    }
    order = [(live.record.priority, live.record.queued_at) for live in center._waiting()]
    assert order == sorted(order, key=lambda pq: (-pq[0], pq[1]))


async def routed_rep(rapport: Rapport, name: str, skills: list[str], languages: list[str]) -> SignalingClient:
    user = await rapport.store.user_with_hash(name)
    assert user is not None
    await rapport.store.set_routing(user[0].id, skills, languages)
    return await rapport.rep(name)


async def test_a_call_rings_only_at_the_rep_whose_skills_and_language_match(rapport: Rapport) -> None:
    english_orders = await routed_rep(rapport, "rep1", ["order"], ["en"])
    dutch_complaints = await routed_rep(rapport, "rep2", ["complaint"], ["nl"])
    _customer, call = await rapport.customer(reason="complaint", language="nl")
    offer = await dutch_complaints.wait_for("call.offer")
    assert offer["session_id"] == call["session_id"] and offer["ring_timeout_s"] > 0
    assert offer["item"]["language"] == "nl" and offer["item"]["reason"] == "complaint"
    await asyncio.sleep(0.3)
    assert not [m for m in english_orders.inbox if m["type"] == "call.offer"]
    # Offered, but anyone may still pick it from the queue by hand.
    accepted = await english_orders.request({"type": "call.accept", "session_id": call["session_id"]})
    assert accepted["type"] == "ack"
    cancelled = await dutch_complaints.wait_for("call.offer.cancelled")
    assert cancelled["reason"] == "taken"


async def test_the_longest_idle_rep_is_offered_first_and_a_decline_moves_on(rapport: Rapport) -> None:
    first = await rapport.rep("rep1")
    await asyncio.sleep(0.2)
    second = await rapport.rep("rep2")
    _customer, call = await rapport.customer(reason="order")
    offer = await first.wait_for("call.offer")
    assert offer["session_id"] == call["session_id"]
    await first.request({"type": "call.decline", "session_id": call["session_id"]})
    moved = await second.wait_for("call.offer")
    assert moved["session_id"] == call["session_id"]
    with pytest.raises(SignalingError) as refused:
        await first.request({"type": "call.decline", "session_id": call["session_id"]})
    assert refused.value.code == "session_not_found"


async def test_a_call_that_rings_out_goes_to_the_next_rep_and_the_first_is_set_away(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, ring_timeout_s=0.8))
    try:
        for name in ("rep1", "rep2"):
            await rapport.add_user(name)
        first = await rapport.rep("rep1")
        await asyncio.sleep(0.2)
        second = await rapport.rep("rep2")
        _customer, call = await rapport.customer()
        await first.wait_for("call.offer")
        cancelled = await first.wait_for("call.offer.cancelled", timeout=5)
        assert cancelled["reason"] == "timeout"
        await first.wait_for(lambda m: m["type"] == "rep.status" and m["status"] == "away")
        offer = await second.wait_for("call.offer", timeout=5)
        assert offer["session_id"] == call["session_id"]
    finally:
        await rapport.stop()


async def test_high_priority_calls_are_offered_before_earlier_normal_ones(rapport: Rapport) -> None:
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    _normal, normal = await rapport.customer(reason="order")
    async with admin.post(
        f"{rapport.url}/api/v1/invites",
        json={"customer": {"id": "dev-9", "name": "Thermostat 9"}, "priority": "high", "reason": "not_working"},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        invite = await r.json()
    async with rapport.http.post(f"{rapport.url}/api/v1/invites/{invite['code']}/redeem", json={}) as r:
        urgent = await r.json()
    device = await welcomed(rapport.http, rapport.url, urgent["token"])
    rep = await rapport.rep("rep1")
    offer = await rep.wait_for("call.offer")
    assert offer["session_id"] == urgent["session_id"] != normal["session_id"]
    assert offer["item"]["priority"] == 10
    await device.close()


async def test_transfer_to_another_rep_keeps_the_context_and_the_customer(rapport: Rapport) -> None:
    rep1 = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="order", name="Ada", language="nl")
    await rep1.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.request({"type": "chat.send", "text": "It arrived broken"})
    rep2 = await rapport.rep("rep2")
    user2 = await rapport.store.user_with_hash("rep2")
    assert user2 is not None

    with pytest.raises(SignalingError) as refused:
        await rep1.request({"type": "call.transfer", "rep_id": 99999})
    assert refused.value.code == "rep_unavailable"
    await rep1.request(
        {"type": "call.transfer", "rep_id": user2[0].id, "reason": "complaint", "note": "wants a refund"}
    )
    moved = await customer.wait_for("call.transferred")
    assert moved["to"] == "rep"
    offer = await rep2.wait_for(lambda m: m["type"] == "call.offer" and m["transfer"])
    assert offer["note"] == "wants a refund" and offer["item"]["customer_name"] == "Ada"
    n = len(customer.inbox)
    await rep2.request({"type": "call.accept", "session_id": call["session_id"]})
    accepted = await rep2.wait_for("call.accepted")
    assert accepted["customer"]["reason"] == "complaint" and accepted["customer"]["language"] == "nl"
    assert [c["text"] for c in accepted["chat"]] == ["It arrived broken"]
    again = await customer.wait_for("call.accepted", after=n)
    assert again["rep"]["display_name"] == "Rep2"
    # The first rep is free again, without a wrap-up for a call they handed on.
    await rep1.wait_for(lambda m: m["type"] == "rep.status" and m["status"] == "available")
    events = [e.kind for e in await rapport.store.list_events(call["session_id"])]
    assert events.count("answered") == 2 and "transferred" in events
    record_now = await rapport.store.get_session(call["session_id"])
    assert record_now is not None and record_now.rep_id == user2[0].id


async def test_transfer_back_to_a_queue_rings_a_rep_with_that_skill(rapport: Rapport) -> None:
    rep1 = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="order")
    await rep1.request({"type": "call.accept", "session_id": call["session_id"]})
    specialist = await routed_rep(rapport, "rep2", ["complaint"], [])
    await rep1.request({"type": "call.transfer", "reason": "complaint"})
    assert (await customer.wait_for("call.transferred"))["to"] == "queue"
    offer = await specialist.wait_for("call.offer")
    assert offer["session_id"] == call["session_id"] and offer["item"]["reason"] == "complaint"
    for bad in ({"type": "call.transfer", "reason": "../etc"}, {"type": "call.transfer", "rep_id": "two"}):
        with pytest.raises(SignalingError):
            await specialist.request(bad)


async def test_waits_are_estimated_per_queue(rapport: Rapport) -> None:
    center = rapport.center
    now = time.time()
    center.waits.observe(200.0, "complaint")
    center.waits.observe(20.0, "order")
    assert center.estimated_wait(1, "complaint") > center.estimated_wait(1, "order") > 0
    assert center.estimated_waits().keys() == set(REASONS)
    assert time.time() - now < 5
