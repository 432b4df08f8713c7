"""Limits on what a call's participants and anonymous visitors can make the server do.

Only reps answer calls; waiting calls are capped per address and in all; a wait has an end (with a
callback); chat is rate limited and bounded per call; the queue broadcast is coalesced; an offer may
list only so many ICE candidates and a participant may send only so many offers a minute.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from server.storage.api_keys import ApiKeyStore
from server.storage.records import NewCall
from tests.support.clients import MediaClient, SignalingClient, SignalingError
from tests.support.queue_view import queue_messages, wait_queue
from tests.support.server import Rapport, Serve


def from_address(rapport: Rapport, address: str) -> aiohttp.ClientSession:
    """An HTTP client whose requests come from ``address`` (any 127.x.y.z is local on lo)."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
    rapport._extra.append(http)
    return http


async def post_call(http: aiohttp.ClientSession, rapport: Rapport, **body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{rapport.url}/api/v1/calls", json=body) as r:
        return r.status, await r.json()


async def error_reply(client: SignalingClient, message: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(SignalingError) as caught:
        await client.request(message)
    return dict(caught.value.message)


# only reps take calls


async def test_a_qa_login_is_refused_on_the_socket(rapport: Rapport) -> None:
    await rapport.add_user("qa9", "qa")
    http, _ = await rapport.staff_session("qa9")
    staff = SignalingClient(http, rapport.url)
    await staff.connect()
    await staff.send({"type": "hello", "id": "h"})
    refused = await staff.wait_for(lambda m: m.get("reply_to") == "h")
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    assert "only reps take calls" in refused["message"] and "qa" in refused["message"]
    # Closed with a code the page does not reconnect after: the answer would be the same.
    with pytest.raises(ConnectionError):
        await staff.wait_for("welcome")
    assert staff.closed_code == 4004


@pytest.mark.parametrize("role", ["qa", "supervisor", "admin"])
async def test_only_the_rep_role_answers_calls_over_the_socket(rapport: Rapport, role: str) -> None:
    await rapport.add_user(f"{role}9", role)
    http, _ = await rapport.staff_session(f"{role}9")
    staff = SignalingClient(http, rapport.url)
    await staff.connect()
    await staff.send({"type": "hello", "id": "h"})
    if role != "qa":
        # Supervisors and admins watch the floor over the socket (supervisor assist), but take no calls.
        welcome = await staff.wait_for("welcome")
        assert welcome["role"] == "supervisor"
        rep = await rapport.rep("rep1", available=False)
        _customer, call = await rapport.customer(name="Ada")
        for message in (
            {"type": "rep.status", "status": "available"},
            {"type": "call.accept", "session_id": call["session_id"]},
        ):
            with pytest.raises(SignalingError) as forbidden:
                await staff.request(message)
            assert forbidden.value.message["code"] == "forbidden", message
    else:
        rep = await rapport.rep("rep1", available=False)
        await rapport.customer(name="Ada")
    # A waiting call is not offered to them, and they are not on the reps' transfer list.
    snapshot = await wait_queue(rep, lambda q: q["items"])
    assert [r["display_name"] for r in snapshot["reps"]] == ["Rep1"]
    assert [r["display_name"] for r in rapport.center.live_floor()["reps"]] == ["Rep1"]


async def test_a_customer_page_beside_a_staff_login_is_the_customer(rapport: Rapport) -> None:
    """The call token decides: a rep who opens the customer page in the same browser is that customer there."""
    rep_http, _ = await rapport.staff_session("rep1")
    _customer, call = await rapport.customer(name="Ada")
    page = SignalingClient(rep_http, rapport.url)
    await page.connect()
    await page.send({"type": "hello", "token": call["token"]})
    welcome = await page.wait_for("welcome")
    assert welcome["role"] == "customer" and welcome["session"]["session_id"] == call["session_id"]
    assert "user" not in welcome
    await page.close()


# waiting calls: per address and in all


async def test_waiting_calls_are_capped_per_address_and_in_all(serve: Serve) -> None:
    rapport = await serve(max_waiting_per_address=2, max_waiting_calls=5)
    first, _ = await rapport.customer(name="One")
    await rapport.customer(name="Two")
    status, body = await post_call(rapport.http, rapport, name="Three")
    assert status == 429 and body["error"]["code"] == "too_many_waiting"
    assert "already waiting" in body["error"]["message"]

    # A burst from one address cannot slip past the cap while the first calls are still being written.
    burst = from_address(rapport, "127.0.0.3")
    answers = await asyncio.gather(*(post_call(burst, rapport, name=f"Burst {i}") for i in range(8)))
    assert sorted(status for status, _ in answers) == [201, 201] + [429] * 6

    # Five wait in all: then a new address gets the queue's own answer.
    status, _ = await post_call(from_address(rapport, "127.0.0.4"), rapport, name="Five")
    assert status == 201
    status, body = await post_call(from_address(rapport, "127.0.0.6"), rapport, name="Six")
    assert status == 503 and body["error"]["code"] == "queue_full"
    assert "Too many people are waiting" in body["error"]["message"]
    # An invite is a way into the same queue.
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("invites:write",))
    async with rapport.http.post(
        f"{rapport.url}/api/v1/invites", json={}, headers={"Authorization": f"Bearer {secret}"}
    ) as r:
        code = (await r.json())["code"]
    async with from_address(rapport, "127.0.0.5").post(f"{rapport.url}/api/v1/invites/{code}/redeem", json={}) as r:
        assert r.status == 503 and (await r.json())["error"]["code"] == "queue_full"

    # Leaving the queue frees the place, for the address and in all.
    await first.send({"type": "call.end"})
    await first.wait_for("call.ended")
    status, _ = await post_call(rapport.http, rapport, name="Three again")
    assert status == 201


# the longest wait, and the callback


async def test_a_wait_that_runs_out_ends_the_call_and_offers_a_callback(serve: Serve) -> None:
    rapport = await serve(max_wait_s=2.0)
    rep = await rapport.rep("rep1", available=False)
    # A call answered at once is the rep's: the limit is on waiting, not on talking.
    answered, talking = await rapport.customer(name="Cy")
    await rep.request({"type": "call.accept", "session_id": talking["session_id"]})
    customer, call = await rapport.customer(name="Ada")
    ended = await customer.wait_for("call.ended", timeout=15)
    assert ended == {
        "type": "call.ended",
        "session_id": call["session_id"],
        "state": "abandoned",
        "ended_by": "system",
        "reason": "max_wait",
        "callback": True,
    }
    with pytest.raises(ConnectionError):
        await customer.wait_for("never")
    assert customer.closed_code == 4003
    record = await rapport.store.get_session(call["session_id"])
    assert record is not None and (record.state, record.ended_by, record.end_reason) == (
        "abandoned",
        "system",
        "max_wait",
    )

    assert [m for m in answered.inbox if m["type"] == "call.ended"] == []
    still = await rapport.store.get_session(talking["session_id"])
    assert still is not None and still.state == "active"

    url = f"{rapport.url}/api/v1/calls/callback"
    for bad in (
        {"token": call["token"]},
        {"token": call["token"], "contact": {}},
        {"token": call["token"], "contact": {"phone": "call me maybe"}},
        {"token": call["token"], "contact": {"fax": "123"}},
        {"token": "short", "contact": {"phone": "+31 6 1234 5678"}},
    ):
        async with rapport.http.post(url, json=bad) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request", bad
    async with rapport.http.post(url, json={"token": "x" * 43, "contact": {"phone": "+31 6 1234 5678"}}) as r:
        assert r.status == 404
    contact = {"phone": "+31 6 1234 5678", "email": "ada@example.com"}

    async def ask() -> tuple[int, dict[str, Any]]:
        async with rapport.http.post(url, json={"token": call["token"], "contact": contact}) as r:
            return r.status, await r.json()

    # Racing requests (a double tap, two tabs) store one callback; the others are told it is asked for already.
    answers = await asyncio.gather(*(ask() for _ in range(6)))
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409, 409, 409]
    assert {"ok": True} in [body for _, body in answers]
    assert all("already" in body["error"]["message"] for status, body in answers if status == 409)

    # Staff see who to call back.
    sup, _ = await rapport.staff_session("sup1")
    async with sup.get(f"{rapport.url}/api/v1/sessions/{call['session_id']}") as r:
        events = (await r.json())["events"]
    [requested] = [e["detail"] for e in events if e["kind"] == "callback_requested"]
    callback = await rapport.store.callback_for_origin(call["session_id"])
    assert callback is not None and requested == {"callback_id": callback.id} and callback.contact == contact

    # A customer who left the queue themselves, or whose call was answered, has no callback to ask for.
    left, left_token = await rapport.store.create_session(NewCall(customer_name="Bo"), token_ttl_s=3600)
    await rapport.store.finish_session(left.id, state="abandoned", ended_by="customer", reason="customer_left")
    async with rapport.http.post(url, json={"token": left_token, "contact": contact}) as r:
        assert r.status == 409


# chat


async def test_chat_is_rate_limited_per_participant(serve: Serve) -> None:
    rapport = await serve(chat_per_minute=1, chat_burst=3)
    rep = await rapport.rep("rep1", available=False)
    customer, call = await rapport.customer(name="Ada")
    for i in range(3):
        await customer.request({"type": "chat.send", "text": f"line {i}"})
    limited_reply = await error_reply(customer, {"type": "chat.send", "text": "one too many"})
    assert limited_reply["code"] == "rate_limited" and "a minute" in limited_reply["message"]
    # The rep's lines are theirs to count; the call goes on.
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    for i in range(3):
        await rep.request({"type": "chat.send", "text": f"answer {i}"})
    stored = await rapport.store.list_chat(call["session_id"])
    assert [c.text for c in stored] == [f"line {i}" for i in range(3)] + [f"answer {i}" for i in range(3)]
    assert await customer.request({"type": "ping"}) and await rep.request({"type": "ping"})


async def test_a_calls_chat_holds_a_bounded_number_of_lines(serve: Serve) -> None:
    rapport = await serve(max_chat_per_session=4, chat_burst=100, chat_per_minute=6000)
    rep = await rapport.rep("rep1", available=False)
    customer, call = await rapport.customer(name="Ada")
    too_long = await error_reply(customer, {"type": "chat.send", "text": "x" * 2001})
    assert too_long["code"] == "bad_message" and "2000" in too_long["message"]
    await customer.request({"type": "chat.send", "text": "one"})
    await customer.request({"type": "chat.send", "text": "two"})
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await rep.request({"type": "chat.send", "text": "three"})
    await rep.request({"type": "chat.send", "text": "four"})
    for side in (customer, rep):
        full = await error_reply(side, {"type": "chat.send", "text": "five"})
        assert full["code"] == "chat_full" and "at most 4 lines" in full["message"]
    # A reload does not reset the count; the welcome replays what was kept.
    await customer.close()
    again = SignalingClient(rapport.http, rapport.url)
    await again.connect()
    await again.send({"type": "hello", "token": call["token"]})
    welcome = await again.wait_for("welcome")
    assert [(c["seq"], c["text"]) for c in welcome["chat"]] == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]
    assert (await error_reply(again, {"type": "chat.send", "text": "five"}))["code"] == "chat_full"
    assert [c.text for c in await rapport.store.list_chat(call["session_id"])] == ["one", "two", "three", "four"]
    await again.close()


# the queue broadcast


async def test_a_burst_of_joins_is_coalesced_into_few_queue_sends(serve: Serve) -> None:
    rapport = await serve(queue_updates_per_s=1.0, max_waiting_per_address=0)
    rep = await rapport.rep("rep1", available=False)
    head, _ = await rapport.customer(name="Head")
    await head.wait_for("queue.position")
    n_rep, n_head = len(rep.inbox), len(head.inbox)
    # 50 joins at once, 10 from each of five addresses (the per-address call rate stays out of the way).
    clients = [from_address(rapport, f"127.0.0.{10 + i}") for i in range(5)]
    began = time.monotonic()
    answers = await asyncio.gather(*(post_call(clients[i % 5], rapport, name=f"C{i}") for i in range(50)))
    assert [status for status, _ in answers] == [201] * 50
    joined = {body["session_id"] for _, body in answers}
    last = await wait_queue(rep, lambda q: len(q["items"]) == 51, after=n_rep)
    elapsed = time.monotonic() - began
    assert joined <= {item["session_id"] for item in last["items"]}

    snapshots = queue_messages(rep.inbox[n_rep:])
    # Incremental: no send carries the whole queue again, only what changed.
    assert all(m["type"] == "queue.delta" for m in snapshots)
    assert sum(len(m["upserts"]) for m in snapshots) < 51 + 2 * len(snapshots), snapshots
    positions = [m for m in head.inbox[n_head:] if m["type"] == "queue.position"]
    # The first change goes out at once, then at most one send a second: not one per join.
    assert len(snapshots) <= 2 + elapsed * 1.0 and len(snapshots) <= 10, (len(snapshots), elapsed)
    assert len(positions) <= 2 + elapsed * 1.0 and len(positions) <= 10, (len(positions), elapsed)
    # Each join still rings the console's alert.
    assert sum(1 for m in rep.inbox[n_rep:] if m["type"] == "queue.new") == 50


async def test_the_first_queue_change_goes_out_at_once_and_the_next_waits_its_turn(serve: Serve) -> None:
    rapport = await serve(queue_updates_per_s=0.05)
    rep = await rapport.rep("rep1", available=False)
    n = len(rep.inbox)
    _, first = await rapport.customer(name="First")
    # A send every 20 s at most, yet the first change arrives well within this wait.
    snapshot = await wait_queue(rep, lambda q: q["items"], after=n, timeout=10)
    assert [i["session_id"] for i in snapshot["items"]] == [first["session_id"]]
    n = len(rep.inbox)
    _, second = await rapport.customer(name="Second")
    await rep.wait_for(lambda m: m["type"] == "queue.new" and m["item"]["session_id"] == second["session_id"])
    # The socket is in order: whatever was sent before the pong has arrived with it.
    await rep.request({"type": "ping"})
    assert queue_messages(rep.inbox[n:]) == []


# SDP


def with_candidates(sdp: str, extra: int, newline: str = "\r\n") -> str:
    """The offer with ``extra`` more host candidates in its first media section."""
    lines = sdp.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("m=")) + 1
    fake = [f"a=candidate:{i} 1 udp 2130706431 10.{i // 250}.{i % 250}.7 {9000 + i} typ host" for i in range(extra)]
    return newline.join(lines[:at] + fake + lines[at:]) + newline


async def live_call(rapport: Rapport) -> tuple[SignalingClient, SignalingClient, MediaClient, MediaClient]:
    rep, customer, _call, customer_media, rep_media = await rapport.media_call(
        available=False, identified=False, name="Ada"
    )
    await customer.wait_for("call.accepted")
    await rep_media.wait_frames("video", 15)
    return customer, rep, customer_media, rep_media


@pytest.mark.webrtc
async def test_an_offer_listing_too_many_candidates_is_refused_and_the_call_goes_on(serve: Serve) -> None:
    rapport = await serve(max_offer_candidates=32)
    customer, _rep, customer_media, rep_media = await live_call(rapport)
    assert customer_media.pc.localDescription is not None
    offer = customer_media.pc.localDescription.sdp
    own = sum(1 for line in offer.splitlines() if line.startswith("a=candidate"))
    for newline in ("\r\n", "\n", "\r"):
        refused = await error_reply(customer, {"type": "offer", "sdp": with_candidates(offer, 40, newline)})
        assert refused["code"] == "bad_sdp"
        assert f"{own + 40} ICE candidates" in refused["message"] and "at most 32" in refused["message"]
    # Spaces before the attribute do not hide a candidate either.
    padded = with_candidates(offer, 40).replace("a=candidate", "  a=candidate")
    assert (await error_reply(customer, {"type": "offer", "sdp": padded}))["code"] == "bad_sdp"
    # The call carries on, both ways.
    before_rep, before_customer = rep_media.frames("video"), customer_media.frames("video")
    await rep_media.wait_frames("video", before_rep + 30)
    await customer_media.wait_frames("video", before_customer + 30)


@pytest.mark.webrtc
async def test_a_participant_may_send_only_so_many_offers_a_minute(serve: Serve) -> None:
    rapport = await serve(offers_per_minute=3)
    customer, rep, customer_media, rep_media = await live_call(rapport)
    junk = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    for _ in range(2):  # with the real one, three offers this minute
        assert (await error_reply(customer, {"type": "offer", "sdp": junk}))["code"] == "bad_sdp"
    limited_reply = await error_reply(customer, {"type": "offer", "sdp": junk})
    assert limited_reply["code"] == "rate_limited" and "at most 3 offers a minute" in limited_reply["message"]
    # The rep's offers are counted apart, and the customer's media still flows to the rep's new peer.
    fresh = MediaClient()
    rapport.media.append(fresh)
    await fresh.negotiate(rep)
    await fresh.wait_frames("video", 30)
    before = customer_media.frames("video")
    await customer_media.wait_frames("video", before + 30)
    assert rep_media is not fresh
