"""Supervisor assist with real aiortc peers: who hears and sees whom when a supervisor listens, whispers or
joins, and what each side is told.

Customer, rep and supervisor each send their own colour and tone (``CUSTOMER``, ``REP``, ``SUPERVISOR``), and
every page offers the second, receive-only pair of sections the third party arrives on (slot 1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from server.storage.api_keys import ApiKeyStore
from tests.support.clients import CUSTOMER, REP, SUPERVISOR, MediaClient, SignalingClient, SignalingError, welcomed
from tests.support.server import Rapport, Serve

pytestmark = pytest.mark.webrtc

# How long a side is watched for what must not reach it.
QUIET_S = 2.0


@dataclass
class ThreeWay:
    rapport: Rapport
    session_id: str
    customer: SignalingClient
    rep: SignalingClient
    supervisor: SignalingClient
    customer_media: MediaClient
    rep_media: MediaClient
    supervisor_media: MediaClient


async def supervisor_socket(rapport: Rapport, username: str = "sup1") -> SignalingClient:
    http, _csrf = await rapport.staff_session(username)
    client = await welcomed(http, rapport.url)
    rapport._clients.append(client)
    return client


async def call_with_supervisor(rapport: Rapport, mode: str) -> ThreeWay:
    """rep1 answers a customer, both with media flowing; sup1 opens the call in ``mode`` and offers."""
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="order", name="Ada")
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    customer_media = MediaClient(identity=CUSTOMER, third_party=True)
    rep_media = MediaClient(identity=REP, third_party=True)
    supervisor_media = MediaClient(identity=SUPERVISOR, third_party=True)
    rapport.media += [customer_media, rep_media, supervisor_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)
    await rep_media.wait_to_see_and_hear(CUSTOMER)
    await customer_media.wait_to_see_and_hear(REP)
    supervisor = await supervisor_socket(rapport)
    await supervisor.request({"type": "assist.start", "session_id": call["session_id"], "mode": mode})
    await supervisor_media.negotiate(supervisor)
    return ThreeWay(rapport, call["session_id"], customer, rep, supervisor, customer_media, rep_media, supervisor_media)


async def assert_nothing_of_the_supervisor_reaches(media: MediaClient, who: str) -> None:
    """Over QUIET_S, ``media``'s slot 1 decodes nothing, and what its slot 0 decodes is not the supervisor's."""
    before = {kind: media.frames(kind, slot=1) for kind in ("audio", "video")}
    for _ in range(int(QUIET_S / 0.1)):
        await asyncio.sleep(0.1)
        hz = media.heard_hz()
        assert abs(hz - SUPERVISOR.tone_hz) > 15, f"the {who} heard the supervisor's tone on the main slot"
    after = {kind: media.frames(kind, slot=1) for kind in ("audio", "video")}
    assert after == before, f"the {who} received the supervisor's media: {before} -> {after}"


async def settled(media: MediaClient, *, slot: int, quiet_s: float = 1.0, timeout: float = 8.0) -> None:
    """Until ``media``'s ``slot`` has decoded no new audio for ``quiet_s``; AssertionError if it never stops."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = media.frames("audio", slot=slot), loop.time()
    while loop.time() - since < quiet_s:
        assert loop.time() < deadline, f"slot {slot} kept receiving audio: {media.frames('audio', slot=slot)} frames"
        await asyncio.sleep(0.1)
        now = media.frames("audio", slot=slot)
        if now != last:
            last, since = now, loop.time()


def of_type(client: SignalingClient, message_type: str) -> list[dict[str, Any]]:
    return [m for m in client.inbox if m.get("type") == message_type]


async def test_a_listener_sees_and_hears_both_sides_and_nobody_receives_the_listener(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "listen")
    # Slot 0 carries the customer, slot 1 the rep: both pictures and both tones, each where it belongs.
    await three.supervisor_media.wait_to_see_and_hear(CUSTOMER, slot=0)
    await three.supervisor_media.wait_to_see_and_hear(REP, slot=1)
    # Neither party's media changes; neither receives the listener.
    await three.rep_media.wait_to_see_and_hear(CUSTOMER)
    await three.customer_media.wait_to_see_and_hear(REP)
    await assert_nothing_of_the_supervisor_reaches(three.customer_media, "customer")
    await assert_nothing_of_the_supervisor_reaches(three.rep_media, "rep")
    state = await three.rep.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] == "listen")
    assert state["supervisor"]["display_name"] == "Sup1"
    # The customer is not told of a listener by default (disclose_listening = false).
    assert not of_type(three.customer, "call.monitored") and not of_type(three.customer, "call.party")


async def test_a_whisper_reaches_the_rep_and_never_the_customer(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "listen")
    await three.supervisor.request({"type": "assist.mode", "mode": "whisper"})
    await three.rep_media.wait_to_hear(SUPERVISOR, slot=1)
    await three.rep_media.wait_to_hear(CUSTOMER, slot=0)  # the customer still, on the main slot
    await assert_nothing_of_the_supervisor_reaches(three.customer_media, "customer")
    await three.customer_media.wait_to_see_and_hear(REP)
    assert three.rep_media.frames("video", slot=1) == 0, "a whisper is a voice only: the rep got a picture"
    await three.rep.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] == "whisper")

    await three.supervisor.request({"type": "whisper.send", "text": "Offer the replacement"})
    line = await three.rep.wait_for("whisper.message")
    assert line["text"] == "Offer the replacement" and line["name"] == "Sup1"
    await asyncio.sleep(0.3)
    assert not any("Offer the replacement" in str(m) for m in three.customer.inbox)
    # Not in the chat either, which a customer who reconnects gets again.
    audited = [(e.action, e.target) for e in await rapport.store.list_audit()]
    assert ("assist.whisper_text", three.session_id) in audited
    chat = await rapport.store.list_chat(three.session_id)
    assert all("replacement" not in line.text for line in chat)

    # Back to listening: the rep stops hearing the supervisor (once what was under way has played out: the
    # three clients share this process, so their decoding lags).
    await three.supervisor.request({"type": "assist.mode", "mode": "listen"})
    await settled(three.rep_media, slot=1)
    await assert_nothing_of_the_supervisor_reaches(three.rep_media, "rep")


async def test_a_barge_in_is_a_three_way_call_and_the_customer_is_told_who_joined(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "listen")
    await three.supervisor.request({"type": "assist.mode", "mode": "barge"})
    joined = await three.customer.wait_for("call.party")
    assert joined == {
        "type": "call.party",
        "session_id": three.session_id,
        "present": True,
        "name": "Sup1",
        "role": "supervisor",
    }
    await three.customer_media.wait_to_see_and_hear(SUPERVISOR, slot=1)
    await three.rep_media.wait_to_see_and_hear(SUPERVISOR, slot=1)
    await three.supervisor_media.wait_to_see_and_hear(CUSTOMER, slot=0)
    await three.supervisor_media.wait_to_see_and_hear(REP, slot=1)
    await three.customer_media.wait_to_see_and_hear(REP)
    await three.rep_media.wait_to_see_and_hear(CUSTOMER)

    await three.supervisor.request({"type": "assist.leave"})
    left = await three.customer.wait_for(lambda m: m["type"] == "call.party" and not m["present"])
    assert left["name"] == "Sup1"
    await three.rep.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] is None)
    # The call goes on without them.
    seen = three.rep_media.frames("video")
    await three.rep_media.wait_frames("video", seen + 30)
    await three.customer_media.wait_to_see_and_hear(REP)
    record = await rapport.store.get_session(three.session_id)
    assert record is not None and record.state == "active"
    actions = [entry.action for entry in await rapport.store.list_audit()]
    assert {"assist.listen", "assist.barge", "assist.left"} <= set(actions)
    events = [event.kind for event in await rapport.store.list_events(three.session_id)]
    assert events.index("assist.listen") < events.index("assist.barge") < events.index("assist.left")


async def test_a_take_over_drops_the_rep_and_the_supervisor_ends_the_call(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "barge")
    await three.customer_media.wait_to_see_and_hear(SUPERVISOR, slot=1)
    await three.supervisor.request({"type": "assist.take_over"})
    handler = await three.customer.wait_for("call.handler")
    assert handler == {"type": "call.handler", "session_id": three.session_id, "rep": {"display_name": "Sup1"}}
    taken = await three.rep.wait_for("call.taken_over")
    assert taken["by"]["display_name"] == "Sup1"
    await three.rep.wait_for(lambda m: m["type"] == "rep.status" and m["status"] == "available")
    record = await rapport.store.get_session(three.session_id)
    sup = next(u for u in await rapport.store.list_users() if u.username == "sup1")
    assert record is not None and record.rep_id == sup.id, "the session records who handled it"
    # The supervisor carries on with the customer; leaving is refused, ending is theirs.
    with pytest.raises(SignalingError, match="bad_message"):
        await three.supervisor.request({"type": "assist.leave"})
    frames = three.customer_media.frames("audio", slot=1)
    await three.customer_media.wait_frames("audio", frames + 50, slot=1)
    await three.customer_media.wait_to_hear(SUPERVISOR, slot=1)
    # The handler's socket drops (a reload): the call waits for them, and their next welcome brings it back.
    await three.supervisor.close()
    await asyncio.sleep(0.3)
    back = await supervisor_socket(rapport)
    resumed = await back.wait_for(lambda m: m["type"] == "assist.state" and m.get("handler"))
    assert resumed["session_id"] == three.session_id and resumed["mode"] == "barge"
    media = MediaClient(identity=SUPERVISOR, third_party=True)
    rapport.media.append(media)
    await media.negotiate(back)
    await media.wait_to_see_and_hear(CUSTOMER, slot=0)
    await three.customer_media.wait_to_see_and_hear(SUPERVISOR, slot=1)
    three.supervisor = back
    await three.supervisor.request({"type": "call.end", "reason": "resolved"})
    ended = await three.customer.wait_for("call.ended")
    assert ended["state"] == "ended"
    await three.supervisor.wait_for(lambda m: m["type"] == "assist.state" and m.get("reason") == "ended")


async def test_the_supervisor_leaving_or_reloading_does_not_disturb_the_call(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "whisper")
    await three.rep_media.wait_to_hear(SUPERVISOR, slot=1)
    await three.supervisor.close()  # a reload: the socket goes
    await three.rep.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] is None)
    for side, other in ((three.rep_media, CUSTOMER), (three.customer_media, REP)):
        seen = side.frames("video")
        await side.wait_frames("video", seen + 30)
        await side.wait_to_see_and_hear(other)
    # Back after the reload, the supervisor opens the call again.
    again = await supervisor_socket(rapport)
    await again.request({"type": "assist.start", "session_id": three.session_id, "mode": "listen"})
    media = MediaClient(identity=SUPERVISOR, third_party=True)
    rapport.media.append(media)
    await media.negotiate(again)
    await media.wait_to_see_and_hear(CUSTOMER, slot=0)


async def test_the_call_ending_with_a_supervisor_in_it_ends_cleanly_for_all_three(serve: Serve) -> None:
    rapport = await serve()
    three = await call_with_supervisor(rapport, "barge")
    await three.supervisor_media.wait_to_see_and_hear(REP, slot=1)
    await three.customer.send({"type": "call.end"})
    await three.rep.wait_for("call.ended")
    out = await three.supervisor.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] is None)
    assert out["reason"] == "ended"
    assert three.session_id not in rapport.center.sessions
    # Every peer of the call is closed: the supervisor's too.
    for _ in range(50):
        if three.supervisor_media.pc.connectionState in ("closed", "failed", "disconnected"):
            break
        await asyncio.sleep(0.1)
    ended_at = next(i for i, m in enumerate(three.supervisor.inbox) if m.get("reason") == "ended")
    await three.supervisor.wait_for(
        lambda m: m["type"] == "floor.update" and not m["floor"]["calls"], after=ended_at, timeout=10
    )


async def test_only_supervisors_and_admins_may_assist(serve: Serve) -> None:
    rapport = await serve()
    await rapport.add_user("qa1", "qa")
    await rapport.add_user("admin1", "admin")
    rep = await rapport.rep("rep1")
    _customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    for message in (
        {"type": "assist.start", "session_id": call["session_id"], "mode": "listen"},
        {"type": "assist.mode", "mode": "barge"},
        {"type": "whisper.send", "text": "hi"},
        {"type": "assist.take_over"},
    ):
        with pytest.raises(SignalingError) as refused:
            await rep.request(message)
        assert refused.value.message["code"] == "forbidden", message
    # A QA login's socket is refused outright.
    http, _csrf = await rapport.staff_session("qa1")
    qa = SignalingClient(http, rapport.url)
    await qa.connect()
    await qa.send({"type": "hello"})
    error = await qa.wait_for("error")
    assert error["code"] == "forbidden"
    await asyncio.sleep(0.2)
    assert qa.closed_code == 4004
    # Nor can a program with an API key: the socket knows no API keys, only logins and call tokens.
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("invites:write", "sessions:read"))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as keyed:
        program = SignalingClient(keyed, rapport.url)
        await program.connect()
        await program.send({"type": "hello"})
        assert (await program.wait_for("error"))["code"] == "not_authenticated"
        with pytest.raises(SignalingError) as refused:
            await program.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
        assert refused.value.message["code"] == "not_authenticated"
        await program.close()
    # A customer cannot either.
    customer2, _call2 = await rapport.customer()
    with pytest.raises(SignalingError) as refused:
        await customer2.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
    assert refused.value.message["code"] == "forbidden"
    # An admin may.
    http, _csrf = await rapport.staff_session("admin1")
    admin = await welcomed(http, rapport.url)
    await admin.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
    for blank in ("   ", "x" * 2001):
        with pytest.raises(SignalingError) as refused:
            await admin.request({"type": "whisper.send", "text": blank})
        assert refused.value.message["code"] == "bad_message"
    # A second supervisor is told who is already in the call.
    sup = await supervisor_socket(rapport)
    with pytest.raises(SignalingError) as refused:
        await sup.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
    assert refused.value.message["code"] == "already_assisted" and "Admin1" in refused.value.message["message"]
    # Hostile input: a mode that does not exist, a call that does not exist.
    with pytest.raises(SignalingError) as refused:
        await sup.request({"type": "assist.start", "session_id": call["session_id"], "mode": "spy"})
    assert (
        refused.value.message["code"] == "bad_message" and "listen, whisper, barge" in refused.value.message["message"]
    )
    with pytest.raises(SignalingError) as refused:
        await sup.request({"type": "assist.start", "session_id": "nope", "mode": "listen"})
    assert refused.value.message["code"] == "session_not_found"
    with pytest.raises(SignalingError) as refused:
        await sup.request({"type": "assist.mode", "mode": "barge"})
    assert refused.value.message["code"] == "not_assisting"


async def test_asking_for_help_puts_the_call_on_the_floor_and_a_listen_answers_it(serve: Serve) -> None:
    rapport = await serve()
    sup = await supervisor_socket(rapport)
    welcome = next(m for m in sup.inbox if m["type"] == "welcome")
    assert welcome["role"] == "supervisor" and welcome["floor"]["attention"] == []
    rep = await rapport.rep("rep1")
    _customer, call = await rapport.customer(reason="order")
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await rep.request({"type": "help.ask", "on": True})
    assert (await rep.wait_for("help.state"))["on"] is True
    update = await sup.wait_for(lambda m: m["type"] == "floor.update" and m["floor"]["attention"])
    entry = update["floor"]["attention"][0]
    assert entry["session_id"] == call["session_id"] and entry["why"] == ["help"]
    assert entry["rep"]["display_name"] == "Rep1" and entry["urgency"] == 4
    assert set(entry) == {"session_id", "rep", "reason", "talk_s", "why", "urgency", "since"}, "no rep score"
    await sup.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
    assert (await rep.wait_for(lambda m: m["type"] == "help.state" and not m["on"]))["on"] is False
    await sup.wait_for(lambda m: m["type"] == "floor.update" and not m["floor"]["attention"])


async def test_a_supervisor_in_a_call_takes_the_room_of_a_call(serve: Serve) -> None:
    rapport = await serve(max_calls=2)
    await rapport.add_user("rep2", "rep")
    rep = await rapport.rep("rep1")
    _customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    supervisor = await supervisor_socket(rapport)
    # A supervisor joins even when the server is busy; their room counts against the next answer.
    await supervisor.request({"type": "assist.start", "session_id": call["session_id"], "mode": "listen"})
    rep2 = await rapport.rep("rep2", available=False)
    _second, waiting = await rapport.customer()
    with pytest.raises(SignalingError) as refused:
        await rep2.request({"type": "call.accept", "session_id": waiting["session_id"]})
    assert refused.value.message["code"] == "at_capacity"
    await supervisor.request({"type": "assist.leave"})
    await rep2.request({"type": "call.accept", "session_id": waiting["session_id"]})
