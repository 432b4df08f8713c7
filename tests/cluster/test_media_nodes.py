"""Media nodes: calls' media on ``rapport media-node`` processes, each on its own 127.0.0.x, placed by load,
over an authenticated link; a node that dies has its calls re-placed on another, and cues run on the node."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.config import Settings
from server.media import handshake, wire
from server.media.nodes import MediaNodePool
from server.media.pool import MEDIA_POOL, RemoteCallMedia
from server.media.registry import NODES_KEY, SESSION_NODE_KEY, NodeInfo, heartbeat_key
from tests.support.clients import (
    CUSTOMER,
    REP,
    MediaClient,
    PatternVideoTrack,
    SignalingError,
    SwitchingVideoTrack,
    solid_frame,
)
from tests.support.fakes import GREY, RED
from tests.support.media_nodes import ROOT, StartNode, front_door_uses_nodes, media_nodes  # noqa: F401
from tests.support.postgres import PostgresCluster
from tests.support.redis import RedisServer, free_port
from tests.support.server import ONE_REP, Rapport, running

pytestmark = [pytest.mark.webrtc, pytest.mark.usefixtures("front_door_uses_nodes")]

SECRET = "the cluster's shared secret"
REPS = (("rep1", "rep"), ("rep2", "rep"))


@pytest.fixture
def node_settings(settings: Settings, postgres: PostgresCluster, redis_server: RedisServer) -> Settings:
    """A front door on PostgreSQL and Redis whose calls' media go to media nodes."""
    return replace(
        settings,
        database_url=postgres.create_database(),
        redis_url=redis_server.url,
        cluster_secret=SECRET,
        media_nodes=True,
        node_id="door-a",
        node_timeout_s=3.0,
    )


def start_node(media_nodes: StartNode, settings: Settings, name: str, host: str, **options: Any) -> Any:  # noqa: F811
    options.setdefault("secret", SECRET)
    return media_nodes(name, host, redis_url=settings.redis_url, database_url=settings.database_url, **options)


def pool_of(rapport: Rapport) -> MediaNodePool:
    pool = rapport.app[MEDIA_POOL]
    assert isinstance(pool, MediaNodePool)
    return pool


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def front_door(settings: Settings, linked: int, users: Any = ONE_REP) -> AsyncIterator[Rapport]:
    async with running(settings, users) as rapport:
        pool = pool_of(rapport)
        await until(lambda: len(pool.links) >= linked, what=f"{linked} media node link(s)")
        yield rapport


def center_of(rapport: Rapport) -> Any:
    """The call centre: the app's own on one box, the leader's in a cluster (this front door leads)."""
    from server.calls.center import CALL_CENTER

    center = rapport.app.get(CALL_CENTER)
    if center is None:
        from server.cluster.service import LEADERSHIP

        center = rapport.app[LEADERSHIP].center
    assert center is not None, "this front door runs no call centre"
    return center


def node_of(rapport: Rapport, session_id: str) -> str:
    link = pool_of(rapport).worker_of(session_id)
    assert link is not None, f"{session_id} is on no media node"
    return link.name


def answer_candidates(client: MediaClient) -> set[str]:
    """The addresses of the ICE candidates in the server's answer: where the peer for this client lives."""
    description = client.pc.remoteDescription
    assert description is not None
    return {line.split()[4] for line in description.sdp.splitlines() if line.startswith("a=candidate")}


async def test_a_call_on_a_media_node_carries_media_both_ways(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    start_node(media_nodes, node_settings, "node-1", "127.0.0.11")
    async with front_door(node_settings, linked=1) as rapport:
        rep, customer, call, customer_media, rep_media = await rapport.media_call("rep1")
        session_id = call["session_id"]
        # Each side decodes the other's colour and hears the other's tone.
        await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
        await customer_media.wait_to_see_and_hear(REP, timeout=20)
        # The peers live on the node, at the node's own address; the front door carries no media.
        assert answer_candidates(customer_media) == {"127.0.0.11"}
        assert answer_candidates(rep_media) == {"127.0.0.11"}
        assert isinstance(center_of(rapport).sessions[session_id].media, RemoteCallMedia)
        assert node_of(rapport, session_id) == "node-1"
        async with aioredis.from_url(node_settings.redis_url or "", decode_responses=True) as r:
            assert await r.hget(SESSION_NODE_KEY, session_id) == "node-1"
            entry = NodeInfo.from_json("node-1", await r.hget(NODES_KEY, "node-1") or "")
            assert (entry.address, entry.capacity) == ("127.0.0.11", 2)
            await until(lambda: pool_of(rapport).links["node-1"].info.load == 1, what="the node's load in Redis")
            await rep.request({"type": "call.end"})
            await customer.wait_for("call.ended")
            for _ in range(50):
                if await r.hget(SESSION_NODE_KEY, session_id) is None:
                    break
                await asyncio.sleep(0.1)
            assert await r.hget(SESSION_NODE_KEY, session_id) is None, "an ended call stays in the session map"


async def test_two_calls_over_two_nodes_spread_one_per_node(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    start_node(media_nodes, node_settings, "node-1", "127.0.0.11")
    start_node(media_nodes, node_settings, "node-2", "127.0.0.12")
    async with front_door(node_settings, linked=2, users=REPS) as rapport:
        first = await rapport.media_call("rep1")
        second = await rapport.media_call("rep2")
        nodes = {node_of(rapport, first.call["session_id"]), node_of(rapport, second.call["session_id"])}
        assert nodes == {"node-1", "node-2"}, "both calls went to one node"
        for placed in (first, second):
            await placed.rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await placed.customer_media.wait_to_see_and_hear(REP, timeout=20)
        assert answer_candidates(first.customer_media) != answer_candidates(second.customer_media)


async def test_a_node_refuses_a_front_door_with_the_wrong_secret_and_the_pool_does_not_use_it(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    good = start_node(media_nodes, node_settings, "node-good", "127.0.0.11")
    other = start_node(media_nodes, node_settings, "node-other", "127.0.0.12", secret="another cluster's secret")
    async with front_door(node_settings, linked=1, users=REPS) as rapport:
        pool = pool_of(rapport)
        await until(lambda: "refused a link" in other.log_text(), what="the node to log the refusal")
        assert "wrong HMAC" in other.log_text()
        await asyncio.sleep(node_settings.node_timeout_s)  # the pool retried meanwhile: still refused
        assert set(pool.links) == {"node-good"}
        assert pool.capacity() == good.capacity
        for rep_name in ("rep1", "rep2"):
            placed = await rapport.media_call(rep_name)
            assert node_of(rapport, placed.call["session_id"]) == "node-good"
            await placed.rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)


async def test_a_node_without_a_secret_refuses_to_start(node_settings: Settings) -> None:
    command = [sys.executable, "-m", "server.cli", "media-node", "--listen", f"127.0.0.11:{free_port('127.0.0.11')}"]
    command += ["--redis-url", node_settings.redis_url or ""]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin"})
    assert result.returncode == 2
    assert "cluster secret" in result.stderr


async def test_a_killed_node_s_call_comes_back_on_the_other_node_and_the_other_call_carries_on(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    nodes = {
        "node-1": start_node(media_nodes, node_settings, "node-1", "127.0.0.11"),
        "node-2": start_node(media_nodes, node_settings, "node-2", "127.0.0.12"),
    }
    async with front_door(node_settings, linked=2, users=REPS) as rapport:
        doomed = await rapport.media_call("rep1")
        survivor = await rapport.media_call("rep2")
        doomed_id, survivor_id = doomed.call["session_id"], survivor.call["session_id"]
        for placed in (doomed, survivor):
            await placed.rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await placed.customer_media.wait_to_see_and_hear(REP, timeout=20)
        lost_node, other_node = node_of(rapport, doomed_id), node_of(rapport, survivor_id)
        assert lost_node != other_node
        customer_seen, rep_seen = len(doomed.customer.inbox), len(doomed.rep.inbox)
        survivor_frames = survivor.rep_media.frames("video")

        killed_at = time.monotonic()
        nodes[lost_node].kill()
        # Both sides are told to offer again, and each sees the other reconnecting meanwhile.
        await doomed.customer.wait_for("media.restart", after=customer_seen)
        restart = await doomed.rep.wait_for("media.restart", after=rep_seen)
        assert restart == {"type": "media.restart", "session_id": doomed_id, "reason": "media_node_lost"}
        reconnecting = await doomed.customer.wait_for(
            lambda m: m["type"] == "peer.state" and m["state"] == "reconnecting", after=customer_seen
        )
        assert reconnecting["who"] == "rep"
        await doomed.rep.wait_for(lambda m: m["type"] == "peer.state" and m["state"] == "reconnecting", after=rep_seen)
        await until(lambda: doomed.customer_media.restarts >= 1 and doomed.rep_media.restarts >= 1, what="re-offers")
        left = 10.0 - (time.monotonic() - killed_at)
        await doomed.rep_media.wait_to_see_and_hear(CUSTOMER, timeout=left)
        survivor_at_restart = survivor.rep_media.frames("video")
        await doomed.customer_media.wait_to_see_and_hear(REP, timeout=max(0.1, 10.0 - (time.monotonic() - killed_at)))
        recovered_in = time.monotonic() - killed_at
        assert recovered_in < 10.0, f"media came back after {recovered_in:.1f} s"
        await doomed.customer.wait_for(
            lambda m: m["type"] == "peer.state" and m["state"] == "connected", after=customer_seen
        )

        assert node_of(rapport, doomed_id) == other_node
        record = await rapport.store.get_session(doomed_id)
        assert record is not None and record.state == "active", "the re-placed call ended in the database"
        assert center_of(rapport).sessions[doomed_id].state == "active"
        assert not any(m["type"] == "call.ended" for m in doomed.customer.inbox)
        # The call that was on the surviving node never stopped: frames kept arriving through the failover.
        survivor_after = survivor.rep_media.frames("video")
        assert survivor_frames < survivor_at_restart < survivor_after, "the surviving node's call stalled"
        assert node_of(rapport, survivor_id) == other_node
        assert survivor.customer_media.restarts == 0 and survivor.rep_media.restarts == 0
        async with aioredis.from_url(node_settings.redis_url or "", decode_responses=True) as r:
            assert await r.hget(SESSION_NODE_KEY, doomed_id) == other_node
            # Once its heartbeat key expired, the registry forgot the dead node.
            for _ in range(100):
                if lost_node not in await r.hkeys(NODES_KEY):
                    break
                await asyncio.sleep(0.1)
            assert await r.hkeys(NODES_KEY) == [other_node]


async def test_cues_run_on_the_node_and_no_frame_crosses_the_link(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    start_node(media_nodes, node_settings, "node-1", "127.0.0.11", detector="tests.support.fakes:ColourDetector")
    async with front_door(node_settings, linked=1) as rapport:
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer(reason="complaint", emotion_consent=True)
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        camera = SwitchingVideoTrack(lambda _t: solid_frame(GREY), lambda _t: solid_frame(RED))
        customer_media = MediaClient(video=camera)
        rep_media = MediaClient(video=PatternVideoTrack(frames=[solid_frame((255, 0, 0))]))
        rapport.media += [customer_media, rep_media]
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)

        first = await rep.wait_for("emotion.update", timeout=20)
        assert first["dominant"] == "neutral" and first["session_id"] == call["session_id"]
        seen = len(rep.inbox)
        camera.switch()
        flag = await rep.wait_for(
            lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", after=seen, timeout=20
        )
        assert flag["dominant"] == "angry"
        # The node stores the per-second timeline itself.
        for _ in range(150):
            if await rapport.store.list_timeline(call["session_id"]):
                break
            await asyncio.sleep(0.1)
        assert await rapport.store.list_timeline(call["session_id"]), "the node stored no timeline rows"
        link = pool_of(rapport).links["node-1"]
        assert link.received["emotion"] >= 2
        assert link.received["frame"] == 0, "the customer's frames crossed the link"


class FakeNode:
    """A process that holds the secret and announces itself, then misbehaves: ``garbage`` answers an open
    with bytes that are not a message; ``close`` takes calls, then hangs up on the first offer."""

    def __init__(self, name: str, host: str, redis_url: str, mode: str) -> None:
        self.name, self.host, self.redis_url, self.mode = name, host, redis_url, mode
        self.port = free_port(host)
        self.ops: list[str] = []
        self._server: asyncio.Server | None = None
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self._beat = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        async with aioredis.from_url(self.redis_url, decode_responses=True) as r:
            while True:
                # Far more room than the real node: every new call tries here first.
                info = NodeInfo(self.name, self.host, self.port, 50, 0, 0, time.time()).to_json()
                await r.hset(NODES_KEY, self.name, info)
                await r.set(heartbeat_key(self.name), info, px=3000)
                await asyncio.sleep(1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
            await self._misbehave(reader, writer)

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = handshake.new_nonce()
        writer.write(wire.encode({"event": "challenge", "node": self.name, "nonce": nonce}))
        auth, _ = await wire.read(reader)
        handshake.check(SECRET, nonce, auth["door"], auth["mac"])
        proof = handshake.mac(SECRET, auth["nonce"], self.name)
        writer.write(wire.encode({"event": "welcome", "node": self.name, "mac": proof}))
        while True:
            request, _ = await wire.read(reader)
            self.ops.append(request["op"])
            if self.mode == "garbage" and request["op"] == "open":
                writer.write(wire.HEADER.pack(9, 0) + b"not json!")
            elif self.mode == "close" and request["op"] == "answer":
                writer.close()
                return
            elif request.get("id") is not None:
                writer.write(wire.encode({"event": "reply", "id": request["id"]}))

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._server is not None:
            self._server.close()
        async with aioredis.from_url(self.redis_url) as r:
            await r.hdel(NODES_KEY, self.name)
            await r.delete(heartbeat_key(self.name))


@pytest.mark.parametrize("mode", ["garbage", "close"])
async def test_a_node_that_breaks_its_link_fails_only_its_own_calls_requests(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
    mode: str,
) -> None:
    start_node(media_nodes, node_settings, "node-1", "127.0.0.11", capacity=3)
    async with front_door(node_settings, linked=1, users=REPS) as rapport:
        steady = await rapport.media_call("rep1")
        await steady.rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
        fake = FakeNode("node-fake", "127.0.0.13", node_settings.redis_url or "", mode)
        await fake.start()
        try:
            pool = pool_of(rapport)
            await until(lambda: "node-fake" in pool.links, what="the pool to link the fake node")
            fake_link = pool.links["node-fake"]
            steady_frames = steady.rep_media.frames("video")
            rep = await rapport.rep("rep2")
            customer, call = await rapport.customer()
            await rep.request({"type": "call.accept", "session_id": call["session_id"]})
            customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
            rapport.media += [customer_media, rep_media]
            with contextlib.suppress(SignalingError):  # an offer in flight when the fake hangs up fails
                await customer_media.negotiate(customer)
            with contextlib.suppress(SignalingError):
                await rep_media.negotiate(rep)
            assert fake.ops[0] == "open", "the fake node was never tried"
            # The broken link is dropped; the call lives on the real node, with media both ways.
            await until(lambda: not fake_link.alive, what="the broken link to be dropped")
            await until(lambda: pool.worker_of(call["session_id"]) is not None, what="the call on a node")
            assert node_of(rapport, call["session_id"]) == "node-1"
            await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await customer_media.wait_to_see_and_hear(REP, timeout=20)
            # The call that was on the real node all along never noticed.
            assert steady.rep_media.frames("video") - steady_frames >= 10, "the steady call stalled"
            assert steady.customer_media.restarts == 0 and steady.rep_media.restarts == 0
            assert center_of(rapport).sessions[steady.call["session_id"]].state == "active"
        finally:
            await fake.stop()


async def test_with_no_node_able_to_take_a_call_the_answer_is_refused_and_the_call_keeps_waiting(
    node_settings: Settings,
    media_nodes: StartNode,  # noqa: F811
) -> None:
    # The only node linked breaks on its first call: the front door must not carry the media itself.
    fake = FakeNode("node-fake", "127.0.0.13", node_settings.redis_url or "", "garbage")
    await fake.start()
    try:
        async with front_door(node_settings, linked=1, users=REPS) as rapport:
            rep = await rapport.rep("rep1")
            customer, call = await rapport.customer()
            with pytest.raises(SignalingError) as refused:
                await rep.request({"type": "call.accept", "session_id": call["session_id"]})
            assert refused.value.code == "at_capacity"
            assert fake.ops == ["open"], "the node was not tried"
            record = await rapport.store.get_session(call["session_id"])
            assert record is not None and record.state == "waiting" and record.rep_id is None
            assert center_of(rapport).sessions[call["session_id"]].media is None

            # A real node joins: the same call is answered and carries media both ways.
            start_node(media_nodes, node_settings, "node-1", "127.0.0.11")
            await until(lambda: "node-1" in pool_of(rapport).links, what="the pool to link node-1")
            await rep.request({"type": "call.accept", "session_id": call["session_id"]})
            customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
            rapport.media += [customer_media, rep_media]
            await customer_media.negotiate(customer)
            await rep_media.negotiate(rep)
            await rep_media.wait_to_see_and_hear(CUSTOMER, timeout=20)
            await customer_media.wait_to_see_and_hear(REP, timeout=20)
            assert node_of(rapport, call["session_id"]) == "node-1"
    finally:
        await fake.stop()
