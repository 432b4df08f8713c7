"""``rapport media-node``: the peers, forwarding, recording and emotion analysis of the calls front doors give it.

A node listens on its own address. The call centre (on the cluster's leading front door) opens an
authenticated TCP link to it (``server.media.handshake``) and speaks the media workers' protocol over it
(``server.media.worker``: the same :class:`WorkerHost` runs each link's calls), plus ``cues_on`` /
``cues_off``: the customer's frames never leave the node, only emotion readings do. A link that ends closes
its calls, as a worker whose pipe closes does. The node announces itself in Redis every ``node_timeout_s / 3``
(``server.media.registry``); Redis being away only pauses that, never a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from emotion import EmotionService, fer_available

from ..config import Settings
from . import handshake, ice, wire
from .analysis import settings_of
from .handshake import LinkRefused
from .registry import NODES_KEY, NodeInfo, heartbeat_key
from .worker import LazyStore, WorkerHost, serve_link

log = logging.getLogger("server.media.node")

WILDCARDS = ("", "0.0.0.0", "::")


class NodeConfigError(Exception):
    """The node cannot run with these settings; the message says what to set."""


class NodeHost(WorkerHost):
    """One front door link's calls on this node; a new call beyond the node's capacity is refused."""

    def __init__(self, writer: asyncio.StreamWriter, node: MediaNode) -> None:
        super().__init__(writer, node.store, emotion=node.emotion, emotion_message=node.emotion_message)
        self.node = node

    async def handle(self, header: dict[str, Any]) -> None:
        if header.get("op") == "open" and self.node.load() >= self.node.capacity:
            full = {"error": "at_capacity", "message": f"media node {self.node.name} carries {self.node.capacity}"}
            self.send({"event": "reply", "id": header.get("id"), **full})
            return
        await super().handle(header)


class MediaNode:
    """The listening socket, one :class:`NodeHost` per authenticated link, and the heartbeat."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str,
        port: int,
        capacity: int,
        advertise: str | None = None,
        emotion: EmotionService | None = None,
        emotion_message: str = "emotion cues are turned off on this media node",
    ) -> None:
        if not settings.cluster_secret:
            raise NodeConfigError(
                "a media node needs the cluster secret (--cluster-secret or RAPPORT_CLUSTER_SECRET): "
                "front doors prove they hold it before any call crosses the link"
            )
        if not settings.redis_url:
            raise NodeConfigError("a media node needs Redis (--redis-url or RAPPORT_REDIS_URL) to announce itself")
        if capacity < 1:
            raise NodeConfigError("--capacity must be at least 1 call")
        self.settings = settings
        self.secret = settings.cluster_secret
        self.host, self.port = host, port
        self.address = advertise or host
        if self.address in WILDCARDS:
            raise NodeConfigError("listening on every address: give --advertise HOST, the address front doors dial")
        # Never more calls than the media port range has room for.
        self.capacity = min(capacity, ice.ports_capacity(settings.rtc_ports))
        self.name = settings.node_id or f"{self.address}:{port}"
        self.emotion, self.emotion_message = emotion, emotion_message
        self.store = LazyStore(settings.db_url)
        self.hosts: set[NodeHost] = set()
        self._server: asyncio.Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._links: set[asyncio.Task[None]] = set()

    def load(self) -> int:
        return sum(len(h.calls) for h in self.hosts)

    async def start(self) -> None:
        ice.install(ice.IcePolicy.of(self.settings, address=self.address))
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=wire.MAX_BODY)
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])
            self.name = self.settings.node_id or f"{self.address}:{self.port}"
        self._redis = aioredis.from_url(
            self.settings.redis_url or "", socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self._heartbeat = asyncio.create_task(self._beat(), name="media-node-heartbeat")
        log.info("media node %s listening on %s:%d for %d call(s)", self.name, self.host, self.port, self.capacity)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._links.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                door = await asyncio.wait_for(self._handshake(reader, writer), handshake.HANDSHAKE_TIMEOUT_S)
            except (LinkRefused, ValueError, KeyError, TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
                log.warning("refused a link from %s: %s", peer, exc or type(exc).__name__)
                return
            log.info("link from front door %s (%s) authenticated", door, peer)
            host = NodeHost(writer, self)
            self.hosts.add(host)
            try:
                await serve_link(reader, host)
            except ValueError:
                log.error("front door %s sent garbage: link closed, its calls with it", door)
            finally:
                self.hosts.discard(host)
            log.warning("link from front door %s closed; its calls here are closed", door)
        finally:
            writer.close()
            if task is not None:
                self._links.discard(task)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        assert self.secret is not None
        nonce = handshake.new_nonce()
        writer.write(wire.encode({"event": "challenge", "node": self.name, "nonce": nonce}))
        header, _ = await wire.read(reader, max_header=handshake.MAX_HANDSHAKE_HEADER, max_body=0)
        door = header.get("door")
        if header.get("op") != "auth" or not isinstance(door, str):
            raise LinkRefused("the first message was not an auth")
        handshake.check(self.secret, nonce, door, header.get("mac"))
        proof = handshake.mac(self.secret, str(header.get("nonce", "")), self.name)
        writer.write(wire.encode({"event": "welcome", "node": self.name, "mac": proof}))
        return door

    def info(self) -> NodeInfo:
        return NodeInfo(self.name, self.address, self.port, self.capacity, self.load(), os.getpid(), time.time())

    async def _beat(self) -> None:
        assert self._redis is not None
        interval = self.settings.node_timeout_s / 3
        ttl_ms = max(1, int(self.settings.node_timeout_s * 1000))
        down = False
        while True:
            try:
                entry = self.info().to_json()
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hset(NODES_KEY, self.name, entry)
                    pipe.set(heartbeat_key(self.name), entry, px=ttl_ms)
                    await pipe.execute()
                if down:
                    log.warning("Redis is back: media node %s announced again", self.name)
                down = False
            except (RedisError, OSError) as exc:
                # The calls go on; the heartbeat resumes when Redis answers again.
                if not down:
                    log.error("cannot reach Redis (%s): calls continue, retrying every %.1f s", exc, interval)
                down = True
            await asyncio.sleep(interval)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.hdel(NODES_KEY, self.name)
                await self._redis.delete(heartbeat_key(self.name))
            await self._redis.aclose()
        await self.store.aclose()


async def node_emotion(settings: Settings, detector: str | None, mode: str) -> tuple[EmotionService | None, str]:
    """The node's own emotion service (started), or None and why: cues stay optional, as in the front door."""
    if not settings.emotion_cues:
        return None, "emotion cues are turned off on this media node (emotion_cues = false)"
    if detector is None:
        available, message = fer_available()
        if not available:
            return None, message
        service = EmotionService(settings=settings_of(settings), mode="process")
    else:
        in_thread = mode == "thread"  # tests' fake detectors; a real model belongs in its own process
        service = EmotionService(detector, settings=settings_of(settings), mode="thread" if in_thread else "process")
    await service.start()
    return service, "emotion cues are on"


async def run_node(
    settings: Settings,
    *,
    host: str,
    port: int,
    capacity: int,
    advertise: str | None,
    detector: str | None = None,
    detector_mode: str = "process",
    stop: asyncio.Event | None = None,
) -> None:
    """Run a media node until ``stop`` is set (SIGTERM/SIGINT in ``rapport media-node``)."""
    stop = stop or asyncio.Event()
    # Built first: a node missing its secret or Redis says so before it loads a model.
    node = MediaNode(settings, host=host, port=port, capacity=capacity, advertise=advertise)
    node.emotion, node.emotion_message = await node_emotion(settings, detector, detector_mode)
    try:
        await node.start()
        try:
            await stop.wait()
        finally:
            await node.aclose()
    finally:
        if node.emotion is not None:
            await node.emotion.aclose()
