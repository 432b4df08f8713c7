"""Front doors are interchangeable: a customer on one and a rep on another talk as if on one box."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.clients import (
    CUSTOMER,
    REP,
    SUPERVISOR,
    MediaClient,
    SignalingClient,
    SignalingError,
    SwitchingVideoTrack,
    ToneAudioTrack,
    solid_frame,
    start_call,
    welcomed,
    wrap_up,
)
from tests.support.cluster import Cluster, staff_session
from tests.support.fakes import GREY, RED
from tests.support.haproxy import StartHAProxy

pytestmark = [pytest.mark.webrtc]


async def test_a_customer_on_one_front_door_and_a_rep_on_another_complete_a_call(cluster: Cluster) -> None:
    # The whole topology: two front doors, and the call's media, recording and cues on a media node.
    cluster.media_node("node-1", "127.0.0.5", detector="tests.support.fakes:ColourDetector")
    on_nodes = {"RAPPORT_MEDIA_NODES": "true", "RAPPORT_RECORDING_POLICY": "always"}
    door_a = await cluster.door("door-a", "127.0.0.3", **on_nodes).start()
    door_b = await cluster.door("door-b", "127.0.0.4", **on_nodes).start()
    cluster.add_user("rep1", "rep")
    cluster.add_user("sup1", "supervisor")
    await cluster.leader()
    rep_http = await staff_session(door_b.url, "rep1")
    async with aiohttp.ClientSession() as customer_http, rep_http:
        rep = await welcomed(rep_http, door_b.url)
        await rep.request({"type": "rep.status", "status": "available"})
        call = await start_call(customer_http, door_a.url, name="Ada", reason="complaint", emotion_consent=True)
        customer = await welcomed(customer_http, door_a.url, call["token"])
        # The call rings at the rep on the other front door, who answers it there.
        ring = await rep.wait_for("call.offer")
        assert ring["session_id"] == call["session_id"]
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await customer.wait_for("call.accepted")

        # The customer's camera shows grey (a calm face to the fake detector), then red (an angry one).
        camera = SwitchingVideoTrack(lambda _t: solid_frame(GREY), lambda _t: solid_frame(RED))
        customer_media = MediaClient(video=camera, audio=ToneAudioTrack(CUSTOMER.tone_hz))
        rep_media = MediaClient(identity=REP)
        try:
            await customer_media.negotiate(customer)
            await rep_media.negotiate(rep)
            # Who sees what: each side decodes the other's picture and hears the other's tone.
            await customer_media.wait_to_see_and_hear(REP, timeout=20)
            await rep_media.wait_to_hear(CUSTOMER, timeout=20)
            first = await rep.wait_for("emotion.update", timeout=20)
            assert first["session_id"] == call["session_id"] and first["dominant"] == "neutral"
            seen = len(rep.inbox)
            camera.switch()
            await until_colour(rep_media, RED)
            # Cues from the node reach the rep on door B; the customer on door A never gets one.
            flag = await rep.wait_for(lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", after=seen)
            assert flag["dominant"] == "angry"
            assert not any(m["type"].startswith("emotion.") for m in customer.inbox)
            await a_supervisor_on_door_a_sees_the_flag_and_listens(door_a.url, call["session_id"])

            await customer.request({"type": "chat.send", "text": "Hello from door A"})
            line = await rep.wait_for(
                lambda m: m.get("type") == "chat.message" and m.get("text") == "Hello from door A"
            )
            assert line["from"] == "customer"
            await rep.request({"type": "chat.send", "text": "Hello from door B"})
            await customer.wait_for(lambda m: m.get("type") == "chat.message" and m.get("text") == "Hello from door B")
            # A supervisor on door A sees the call that two other sockets carry, one on each door.
            async with await staff_session(door_a.url, "sup1") as supervisor:
                async with supervisor.get(f"{door_a.url}/api/v1/floor") as r:
                    floor = await r.json()
            assert [c["session_id"] for c in floor["calls"]] == [call["session_id"]], floor

            await rep.request({"type": "call.end"})
            await customer.wait_for("call.ended")
        finally:
            await customer_media.close()
            await rep_media.close()
        # The wrap-up goes in at door A: any front door reaches the same call desk.
        async with await staff_session(door_a.url, "rep1") as rep_on_a:
            await wrap_up(rep_on_a, door_a.url, call["session_id"])
            async with rep_on_a.get(f"{door_a.url}/api/v1/sessions/{call['session_id']}") as r:
                session = await r.json()
        assert session["state"] == "ended" and session["disposition"] == "resolved"
        assert [m["text"] for m in session["chat"]] == ["Hello from door A", "Hello from door B"]
        # The media node stored the emotion timeline, and recorded both sides into the shared folder.
        assert session["emotion_timeline"], "no emotion timeline from the media node"
        async with await staff_session(door_b.url, "sup1") as supervisor:
            async with supervisor.get(f"{door_b.url}/api/v1/sessions/{call['session_id']}/recordings") as r:
                recordings = (await r.json())["items"]
        tracks = {(rec["participant"], rec["kind"]) for rec in recordings if rec["size"]}
        assert {("customer", "video"), ("rep", "video"), ("customer", "audio"), ("rep", "audio")} <= tracks, recordings
        assert (cluster.recordings / call["session_id"]).is_dir()
        await customer.close()
        await rep.close()


async def a_supervisor_on_door_a_sees_the_flag_and_listens(door_url: str, session_id: str) -> None:
    """The flagged call is on the floor a supervisor on door A watches; they listen through the media node and
    see the customer's angry red and the rep's picture."""

    def flagged(message: dict[str, object]) -> bool:
        floor = message.get("floor")
        attention = floor.get("attention", []) if isinstance(floor, dict) else []
        return any(a["session_id"] == session_id and "frustration" in a["why"] for a in attention)

    async with await staff_session(door_url, "sup1") as http:
        supervisor = await welcomed(http, door_url)
        listener = MediaClient(identity=SUPERVISOR, third_party=True)
        try:
            await supervisor.wait_for(flagged, timeout=15)
            await supervisor.request({"type": "assist.start", "session_id": session_id, "mode": "listen"})
            await listener.negotiate(supervisor)
            await until_colour(listener, RED)
            await listener.wait_to_see_and_hear(REP, timeout=20, slot=1)
            await supervisor.request({"type": "assist.leave"})
        finally:
            await listener.close()
            await supervisor.close()


async def until_colour(media: MediaClient, bgr: tuple[int, int, int], timeout: float = 15.0) -> None:
    from tests.support.clients import colour_matches

    deadline = asyncio.get_running_loop().time() + timeout
    while not ((seen := media.seen_bgr()) is not None and colour_matches(seen, bgr)):
        assert asyncio.get_running_loop().time() < deadline, f"never saw {bgr}, last {seen}"
        await asyncio.sleep(0.05)


async def test_two_reps_on_different_front_doors_race_to_accept_and_exactly_one_wins(cluster: Cluster) -> None:
    door_a = await cluster.door("door-a", "127.0.0.3").start()
    door_b = await cluster.door("door-b", "127.0.0.4").start()
    cluster.add_user("rep1", "rep")
    cluster.add_user("rep2", "rep")
    await cluster.leader()
    async with (
        await staff_session(door_a.url, "rep1") as http_1,
        await staff_session(door_b.url, "rep2") as http_2,
        aiohttp.ClientSession() as customer_http,
    ):
        rep_1 = await welcomed(http_1, door_a.url)
        rep_2 = await welcomed(http_2, door_b.url)
        call = await start_call(customer_http, door_a.url, name="Bo")
        customer = await welcomed(customer_http, door_b.url, call["token"])

        async def accept(rep: object) -> str:
            try:
                await rep.request({"type": "call.accept", "session_id": call["session_id"]})  # type: ignore[attr-defined]
                return "won"
            except SignalingError as exc:
                return str(exc.code)

        outcomes = await asyncio.gather(accept(rep_1), accept(rep_2))
        assert sorted(outcomes) == ["already_taken", "won"], outcomes
        accepted = await customer.wait_for("call.accepted")
        winner = "rep1" if outcomes[0] == "won" else "rep2"
        assert accepted["rep"]["display_name"].lower().startswith("rep") and winner in {"rep1", "rep2"}
        for client in (rep_1, rep_2, customer):
            await client.close()


async def test_the_leading_front_door_killed_mid_call_its_clients_resume_through_haproxy(
    cluster: Cluster, haproxy: StartHAProxy
) -> None:
    doors = {
        "door-a": await cluster.door("door-a", "127.0.0.3").start(),
        "door-b": await cluster.door("door-b", "127.0.0.4").start(),
    }
    cluster.add_user("rep1", "rep")
    balancer = haproxy([(d.host, d.port) for d in doors.values()])
    balancer.wait_for_states({"door1": "UP", "door2": "UP"})
    url = balancer.url
    leader = await cluster.leader()
    rep_http = await staff_session(url, "rep1")
    async with aiohttp.ClientSession() as customer_http, rep_http:
        rep = await welcomed(rep_http, url)
        await rep.request({"type": "rep.status", "status": "available"})
        call = await start_call(customer_http, url, name="Ada")
        customer = await welcomed(customer_http, url, call["token"])
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await customer.request({"type": "chat.send", "text": "Before the crash"})
        waiting = await start_call(customer_http, url, name="Bo")
        waiter = await welcomed(customer_http, url, waiting["token"])
        assert (await waiter.wait_for("queue.position"))["position"] == 1
        customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)
        await rep_media.wait_to_see(CUSTOMER, timeout=20)
        await customer_media.close()
        await rep_media.close()

        # The front door that carries the call centre dies: sockets on it drop, and those on the other one
        # are closed when the other one takes over (1012). Everyone comes back through haproxy.
        doors[leader].kill()
        survivor = next(name for name in doors if name != leader)
        assert await cluster.leader(other_than=leader) == survivor
        customer = await _hello_until_welcomed(customer_http, url, call["token"])
        rep = await _hello_until_welcomed(rep_http, url, None)
        welcome = next(m for m in rep.inbox if m["type"] == "welcome")
        assert welcome["call"]["session_id"] == call["session_id"]
        assert [line["text"] for line in welcome["call"]["chat"]] == ["Before the crash"]
        waiter = await _hello_until_welcomed(customer_http, url, waiting["token"])
        assert (await waiter.wait_for("queue.position"))["position"] == 1

        # Both re-offer, as the pages do on every welcome into a live call: media flows again both ways.
        customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
        try:
            await customer_media.negotiate(customer)
            await rep_media.negotiate(rep)
            await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await customer_media.wait_to_see_and_hear(REP, timeout=20)
        finally:
            await customer_media.close()
            await rep_media.close()
        async with rep_http.get(f"{url}/api/v1/sessions/{call['session_id']}") as r:
            assert (await r.json())["state"] == "active"
        for client in (customer, rep, waiter):
            await client.close()


async def _hello_until_welcomed(http: aiohttp.ClientSession, url: str, token: str | None) -> SignalingClient:
    """As the pages do: reconnect with backoff until the new leader answers."""
    for _attempt in range(40):
        client = SignalingClient(http, url)
        await client.connect()
        await client.send({"type": "hello"} if token is None else {"type": "hello", "token": token})
        try:
            await client.wait_for("welcome", timeout=3)
            return client
        except (ConnectionError, TimeoutError):
            await client.close()
            await asyncio.sleep(0.5)
    raise AssertionError("never welcomed again")


async def test_redis_restarted_mid_call_the_call_goes_on_and_new_calls_work_once_it_is_back(cluster: Cluster) -> None:
    door_a = await cluster.door("door-a", "127.0.0.3").start()
    door_b = await cluster.door("door-b", "127.0.0.4").start()
    cluster.add_user("rep1", "rep")
    cluster.add_user("rep2", "rep")
    leader = await cluster.leader()
    async with (
        await staff_session(door_b.url, "rep1") as rep_http,
        await staff_session(door_a.url, "rep2") as rep2_http,
        aiohttp.ClientSession() as customer_http,
    ):
        rep = await welcomed(rep_http, door_b.url)
        await rep.request({"type": "rep.status", "status": "available"})
        call = await start_call(customer_http, door_a.url, name="Ada")
        customer = await welcomed(customer_http, door_a.url, call["token"])
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
        try:
            await customer_media.negotiate(customer)
            await rep_media.negotiate(rep)
            await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await customer_media.wait_to_see_and_hear(REP, timeout=20)

            cluster.redis.kill()
            before = rep_media.frames("video"), customer_media.frames("video")
            await asyncio.sleep(3.0)  # longer than the lease: nobody may take the call centre away meanwhile
            # Media does not go through Redis: both sides kept receiving the other's picture.
            assert rep_media.frames("video") > before[0] + 30
            assert customer_media.frames("video") > before[1] + 30
            cluster.redis.start()  # empty, as after a crash

            assert await cluster.leader() == leader  # the leader took its lease back
            await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=5)
            # The doors closed their sockets when Redis came back; the clients say hello again.
            customer = await _hello_until_welcomed(customer_http, door_a.url, call["token"])
            rep = await _hello_until_welcomed(rep_http, door_b.url, None)
            await customer.request({"type": "chat.send", "text": "Still here"})
            await rep.wait_for(lambda m: m.get("type") == "chat.message" and m.get("text") == "Still here")

            # A new call works: queued at one door, answered by another rep at the other.
            rep_2 = await welcomed(rep2_http, door_a.url)
            await rep_2.request({"type": "rep.status", "status": "available"})
            second = await start_call(customer_http, door_b.url, name="Bo")
            second_customer = await welcomed(customer_http, door_b.url, second["token"])
            await rep_2.wait_for("call.offer", timeout=10)
            await rep_2.request({"type": "call.accept", "session_id": second["session_id"]})
            await second_customer.wait_for("call.accepted")
        finally:
            await customer_media.close()
            await rep_media.close()
        async with rep_http.get(f"{door_b.url}/api/v1/sessions/{call['session_id']}") as r:
            assert (await r.json())["state"] == "active"


async def test_the_live_view_in_redis_follows_the_queue_reps_offers_and_grace(cluster: Cluster) -> None:
    import json

    import redis.asyncio as aioredis

    door_a = await cluster.door("door-a", "127.0.0.3").start()
    cluster.add_user("rep1", "rep")
    await cluster.leader()
    live = aioredis.from_url(cluster.redis.url, decode_responses=True)
    async with await staff_session(door_a.url, "rep1") as rep_http, aiohttp.ClientSession() as customer_http:
        rep = await welcomed(rep_http, door_a.url)
        first = await start_call(customer_http, door_a.url, name="Ada")
        second = await start_call(customer_http, door_a.url, name="Bo")
        waiter = await welcomed(customer_http, door_a.url, first["token"])

        async def eventually(check: object, timeout: float = 5.0) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while not await check():  # type: ignore[operator]
                assert asyncio.get_running_loop().time() < deadline, "the live view never caught up"
                await asyncio.sleep(0.1)

        async def queued_in_order() -> bool:
            return await live.lrange("rapport:live:queue", 0, -1) == [first["session_id"], second["session_id"]]

        await eventually(queued_in_order)
        await rep.request({"type": "rep.status", "status": "available"})
        await rep.wait_for("call.offer")

        async def ringing_at_the_rep() -> bool:
            reps = await live.hgetall("rapport:live:reps")
            offers = await live.hgetall("rapport:live:offers")
            rep_state = next((json.loads(v) for v in reps.values()), {})
            return rep_state.get("status") == "available" and offers.get(first["session_id"]) == next(iter(reps), None)

        await eventually(ringing_at_the_rep)
        # The second customer never opened a socket; the first leaves: both have a grace deadline now.
        await waiter.close()

        async def graced() -> bool:
            grace = await live.hgetall("rapport:live:grace")
            return {f"{first['session_id']}:customer", f"{second['session_id']}:customer"} <= set(grace)

        await eventually(graced)
        await rep.close()
    await live.aclose()
