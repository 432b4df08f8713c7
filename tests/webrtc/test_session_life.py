"""Queue and session life: positions, first accept wins, reconnects, vanishing peers."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

import aiohttp
import pytest

from server.config import Settings
from tests.support.clients import MediaClient, SignalingClient, welcomed, wrap_up
from tests.support.queue_view import wait_queue
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.webrtc


async def test_waiting_customers_see_live_positions_and_estimates(rapport: Rapport) -> None:
    first, _ = await rapport.customer(name="First")
    second, _ = await rapport.customer(name="Second")
    pos = await second.wait_for("queue.position")
    assert pos["position"] == 2 and pos["estimated_wait_s"] > 0
    await first.send({"type": "call.end"})
    moved = await second.wait_for(lambda m: m["type"] == "queue.position" and m["position"] == 1)
    assert moved["estimated_wait_s"] <= pos["estimated_wait_s"]
    record = await rapport.store.get_session(first.inbox[0]["session"]["session_id"])
    assert record is not None and record.state == "abandoned" and record.ended_by == "customer"


async def test_reps_see_the_queue_with_wait_times_and_an_alert_for_each_new_customer(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    n = len(rep.inbox)
    _, call = await rapport.customer(name="Ada", reason="complaint", device="Pixel 7 · Chrome")
    alert = await rep.wait_for("queue.new", after=n)
    assert alert["item"]["session_id"] == call["session_id"]
    snap = await wait_queue(rep, lambda q: q["items"])
    item = snap["items"][0]
    assert (item["customer_name"], item["reason"], item["device"]) == ("Ada", "complaint", "Pixel 7 · Chrome")
    assert item["waited_s"] >= 0 and item["queued_at"].endswith("Z")


async def test_two_reps_accepting_at_once_end_with_exactly_one_call(rapport: Rapport) -> None:
    rep1, rep2 = await rapport.rep("rep1"), await rapport.rep("rep2")
    customer, call = await rapport.customer()
    results = await asyncio.gather(
        rep1.send({"type": "call.accept", "session_id": call["session_id"], "id": "a"}),
        rep2.send({"type": "call.accept", "session_id": call["session_id"], "id": "a"}),
    )
    assert results == [None, None]
    r1 = await rep1.wait_for(lambda m: m.get("reply_to") == "a")
    r2 = await rep2.wait_for(lambda m: m.get("reply_to") == "a")
    outcomes = sorted([r1.get("code", r1["type"]), r2.get("code", r2["type"])])
    assert outcomes == ["ack", "already_taken"]
    loser = r1 if r1["type"] == "error" else r2
    assert "another rep" in loser["message"].lower()
    accepted = await customer.wait_for("call.accepted")
    record = await rapport.store.get_session(call["session_id"])
    assert record is not None and record.state == "active"
    winner = "rep1" if r1["type"] == "ack" else "rep2"
    assert accepted["rep"]["display_name"] == winner.title()


async def test_a_reloading_customer_keeps_their_place_in_the_queue(rapport: Rapport) -> None:
    first, call = await rapport.customer(name="First")
    second, _ = await rapport.customer(name="Second")
    await first.close()  # the page reloads
    await asyncio.sleep(0.3)
    again = SignalingClient(rapport.http, rapport.url)
    await again.connect()
    await again.send({"type": "hello", "token": call["token"]})
    welcome = await again.wait_for("welcome")
    assert welcome["session"]["session_id"] == call["session_id"]
    pos = await again.wait_for("queue.position")
    assert pos["position"] == 1
    await again.close()


async def test_chat_crosses_both_ways_and_is_replayed_after_a_reload(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(name="Ada")
    await customer.request({"type": "chat.send", "text": "Typed while waiting"})
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    accepted = await rep.wait_for("call.accepted")
    assert [m["text"] for m in accepted["chat"]] == ["Typed while waiting"]
    await customer.request({"type": "chat.send", "text": "My order never came"})
    got = await rep.wait_for("chat.message")
    assert (got["from"], got["name"], got["text"]) == ("customer", "Ada", "My order never came")
    await rep.request({"type": "chat.send", "text": "Let me look"})
    back = await customer.wait_for(lambda m: m["type"] == "chat.message" and m["from"] == "rep")
    assert back["text"] == "Let me look"

    await customer.close()
    again = SignalingClient(rapport.http, rapport.url)
    await again.connect()
    await again.send({"type": "hello", "token": call["token"]})
    welcome = await again.wait_for("welcome")
    assert [m["text"] for m in welcome["chat"]] == ["Typed while waiting", "My order never came", "Let me look"]
    assert welcome["call"]["session_id"] == call["session_id"]
    await again.close()


async def test_media_comes_back_after_a_customer_reload_mid_call(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media, rep_media = MediaClient(), MediaClient()
    rapport.media += [customer_media, rep_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    await rep_media.wait_frames("video", 30)

    # The page reloads: socket and peer connection both go away.
    await customer.close()
    await customer_media.close()
    n = len(rep.inbox)
    drop = await rep.wait_for(lambda m: m["type"] == "peer.state", after=n, timeout=10)
    assert drop["who"] == "customer" and drop["state"] == "reconnecting"

    again = await welcomed(rapport.http, rapport.url, call["token"])
    fresh = MediaClient()
    rapport.media.append(fresh)
    await fresh.negotiate(again)
    before = rep_media.frames("video")
    await rep_media.wait_frames("video", before + 30)
    await fresh.wait_frames("video", 30)
    back = await rep.wait_for(lambda m: m["type"] == "peer.state" and m["state"] == "connected", after=n)
    assert back["who"] == "customer"
    await again.close()


async def test_a_vanished_peer_suspends_the_call_within_10s_and_ends_it_after_the_grace(
    settings: Settings,
) -> None:
    rapport = await start_rapport(replace(settings, reconnect_grace_s=3.0, media_stall_s=3.0))
    try:
        await rapport.add_user("rep1")
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer()
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        customer_media, rep_media = MediaClient(), MediaClient()
        rapport.media += [rep_media]
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)
        await rep_media.wait_frames("video", 30)

        # The phone's media dies without a word (its socket stays open).
        n = len(rep.inbox)
        t0 = time.monotonic()
        await customer_media.close()
        told = await rep.wait_for(lambda m: m["type"] == "peer.state", after=n, timeout=10)
        assert told["state"] == "reconnecting" and time.monotonic() - t0 < 10
        ended = await rep.wait_for("call.ended", after=n, timeout=10)
        assert ended["ended_by"] == "system" and ended["reason"] == "customer_lost"
        record = await rapport.store.get_session(call["session_id"])
        assert record is not None and record.state == "ended"
        assert not rapport.center.sessions
    finally:
        await rapport.stop()


async def test_a_waiting_customer_who_never_returns_is_abandoned(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, reconnect_grace_s=0.5))
    try:
        customer, call = await rapport.customer()
        await customer.close()
        await asyncio.sleep(1.0)
        record = await rapport.store.get_session(call["session_id"])
        assert record is not None
        assert (record.state, record.ended_by, record.end_reason) == ("abandoned", "system", "customer_lost")
    finally:
        await rapport.stop()


async def test_every_peer_is_closed_and_no_descriptors_leak_over_many_calls(rapport: Rapport) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def udp_sockets() -> int:
        with open("/proc/net/udp") as fh:  # this network namespace only
            return len(fh.readlines()) - 1

    async def one_call() -> None:
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer()
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        cm, rm = MediaClient(), MediaClient()
        await cm.negotiate(customer)
        await rm.negotiate(rep)
        await rm.wait_frames("video", 5)
        await customer.send({"type": "call.end"})
        await rep.wait_for("call.ended")
        await wrap_up(rep.http, rapport.url, call["session_id"])
        await cm.close()
        await rm.close()
        await rep.close()
        await rep.http.close()  # each rep() logs in on its own HTTP session
        await customer.close()

    await one_call()
    await asyncio.sleep(0.5)
    baseline, baseline_udp = open_fds(), udp_sockets()
    for _ in range(5):
        await one_call()
    await asyncio.sleep(1.0)
    # Every ICE transport owns UDP sockets: these show a leaked peer at once.
    assert udp_sockets() == baseline_udp
    # Other descriptors may vary by a pooled keep-alive connection or two.
    assert open_fds() <= baseline + 6
    assert not rapport.center.sessions


async def test_logout_closes_that_users_sockets(rapport: Rapport) -> None:
    http, csrf = await rapport.staff_session("rep1")
    client = await welcomed(http, rapport.url)
    async with http.post(f"{rapport.url}/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 204
    with pytest.raises(ConnectionError):
        await client.wait_for("never", timeout=5)
    assert client.closed_code == 4001
    async with http.get(f"{rapport.url}/api/v1/me") as r:
        assert r.status == 401


async def test_staff_socket_without_login_cannot_act_as_rep(rapport: Rapport) -> None:
    async with aiohttp.ClientSession() as http:
        client = SignalingClient(http, rapport.url)
        await client.connect()
        await client.send({"type": "hello"})
        err = await client.wait_for("error")
        assert err["code"] == "not_authenticated"
        await client.close()
