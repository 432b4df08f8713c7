"""The front door's side of the media nodes: one authenticated link per live node, calls placed by load.

``MediaNodePool`` has the face the call centre uses of ``MediaWorkerPool``. It reads the registry
(``server.media.registry``) every ``node_timeout_s / 3``, links to each node it finds alive
(``server.media.handshake``), and places each new call on the node with the most free room. A node is gone
when its link ends (a killed node's socket closes at once) or its heartbeat key has been missing for
``node_timeout_s`` while Redis answers (a hung or cut-off node): its calls are handed to ``on_lost``, and
the call centre gives them new media on a surviving node (``replaces_lost_calls``). Redis being away makes no
node gone: only a link that ends does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..config import IceServer, Settings
from ..metrics import BucketCounts
from . import handshake, wire
from .call import MediaClosed, MediaStateCallback
from .handshake import LinkRefused
from .link import MediaLink, MediaLost, WorkerGone
from .pool import RemoteCallMedia
from .registry import NODES_KEY, SESSION_NODE_KEY, NodeInfo, heartbeat_key

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


class NodeLink(MediaLink):
    """The TCP link to one media node, authenticated both ways before any call crosses it."""

    def __init__(self, info: NodeInfo, transit: BucketCounts) -> None:
        super().__init__(info.name, transit)
        self.info = info
        self.last_alive = time.monotonic()
        self.on_gone: Callable[[NodeLink], Awaitable[None]] | None = None
        self.on_forget: Callable[[str], None] | None = None
        # It sent garbage: the pool waits longer before it trusts this node again.
        self.broken = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self, door: str, secret: str) -> None:
        """Dial the node and prove the secret both ways; LinkRefused, OSError or TimeoutError if not."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.info.address, self.info.port, limit=wire.MAX_BODY), CONNECT_TIMEOUT_S
        )
        try:
            await asyncio.wait_for(self._handshake(reader, writer, door, secret), handshake.HANDSHAKE_TIMEOUT_S)
        except BaseException:
            writer.close()
            raise
        self._writer = writer
        self.alive = True
        self._reader_task = asyncio.create_task(self._read(reader), name=f"media-node-{self.name}")

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, door: str, secret: str
    ) -> None:
        limits = {"max_header": handshake.MAX_HANDSHAKE_HEADER, "max_body": 0}
        try:
            challenge, _ = await wire.read(reader, **limits)
            if challenge.get("event") != "challenge":
                raise LinkRefused("the node did not start with a challenge")
            ours = handshake.new_nonce()
            answer = handshake.mac(secret, str(challenge.get("nonce", "")), door)
            writer.write(wire.encode({"op": "auth", "door": door, "mac": answer, "nonce": ours}))
            welcome, _ = await wire.read(reader, **limits)
        except (asyncio.IncompleteReadError, ValueError) as exc:
            raise LinkRefused(f"the node closed the link or broke the handshake ({type(exc).__name__})") from None
        if welcome.get("event") != "welcome":
            raise LinkRefused("the node did not welcome us")
        handshake.check(secret, ours, self.name, welcome.get("mac"))

    def _write(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            await self._read_events(reader)
            log.warning("media node %s closed its link", self.name)
        except ValueError:
            self.broken = True
            log.error("media node %s sent garbage: dropping its link", self.name)
        finally:
            self._fail_pending()
            if self._writer is not None:
                self._writer.close()
            if self.on_gone is not None:
                await self.on_gone(self)

    def forget(self, session_id: str) -> None:
        self.calls.pop(session_id, None)
        if self.on_forget is not None:
            self.on_forget(session_id)

    def free(self) -> int:
        """Calls this node can still take: its capacity less what it reported or we gave it, whichever is more."""
        return self.info.capacity - max(self.info.load, len(self.calls))

    async def close(self) -> None:
        self.on_gone = None
        self._fail_pending()
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


class MediaNodePool:
    """Links to the live media nodes; each new call goes to the one with the most free room."""

    def __init__(self, settings: Settings, transit: BucketCounts, *, redis: aioredis.Redis | None = None) -> None:
        if not settings.cluster_secret or not settings.redis_url:
            raise ValueError("media nodes need redis_url and cluster_secret")
        self.settings = settings
        self.secret = settings.cluster_secret
        self.door = settings.node_name
        self.transit = transit
        self.links: dict[str, NodeLink] = {}
        self.on_lost: MediaLost | None = None
        self.replaces_lost_calls = True
        self.redis = redis or aioredis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self._dialing: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._redis_down = False

    async def start(self) -> None:
        # The nodes up now are linked before the first call is placed.
        await self.refresh()
        if self._dialing:
            await asyncio.gather(*self._dialing.values(), return_exceptions=True)
        self._watcher = asyncio.create_task(self._watch(), name="media-node-registry")
        log.info("media nodes: %s", ", ".join(sorted(self.links)) or "none yet")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_timeout_s / 3)
            try:
                await self.refresh()
            except Exception:  # the watcher must outlive any one bad round
                log.exception("reading the media node registry failed")

    async def refresh(self) -> None:
        """Read the registry: link to new nodes, and drop those whose heartbeat stopped."""
        try:
            entries: dict[str, str] = await self.redis.hgetall(NODES_KEY)  # type: ignore[assignment]
            names = list(entries)
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.exists(heartbeat_key(name))
                beats = await pipe.execute()
            beating = [name for name, beat in zip(names, beats, strict=True) if beat]
            silent = [name for name in names if name not in beating]
            if silent:
                # Their heartbeat key expired: the registry forgets them (a node re-registers on its next beat).
                await self.redis.hdel(NODES_KEY, *silent)
        except (RedisError, OSError) as exc:
            if not self._redis_down:
                log.error("cannot read the media node registry (%s): keeping the links we have", exc)
            self._redis_down = True
            return
        self._redis_down = False
        now = time.monotonic()
        for name in beating:
            try:
                info = NodeInfo.from_json(name, entries[name])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed registry entry for media node %s", name)
                continue
            link = self.links.get(name)
            if link is not None:
                link.info, link.last_alive = info, now
            elif name not in self._dialing and now >= self._retry_at.get(name, 0.0):
                self._dialing[name] = asyncio.create_task(self._dial(info), name=f"dial-{name}")
        for name, link in list(self.links.items()):
            if now - link.last_alive > self.settings.node_timeout_s:
                log.warning("media node %s missed its heartbeats for %.1f s: gone", name, now - link.last_alive)
                await link.close()
                await self._link_gone(link)

    async def _dial(self, info: NodeInfo) -> None:
        link = NodeLink(info, self.transit)
        try:
            await link.connect(self.door, self.secret)
        except (LinkRefused, OSError, TimeoutError) as exc:
            log.warning("cannot link to media node %s at %s:%d: %s", info.name, info.address, info.port, exc)
            self._retry_at[info.name] = time.monotonic() + self.settings.node_timeout_s
            return
        finally:
            self._dialing.pop(info.name, None)
        link.on_gone = self._link_gone
        link.on_forget = self._unmap
        self.links[info.name] = link
        log.info("linked to media node %s at %s:%d (%d calls)", info.name, info.address, info.port, info.capacity)

    async def _link_gone(self, link: NodeLink) -> None:
        if self.links.get(link.name) is link:
            del self.links[link.name]
        # Not dialled again at once: a node that just broke its link gets no new calls for a while.
        self._retry_at[link.name] = time.monotonic() + self.settings.node_timeout_s * (10 if link.broken else 1)
        lost = list(link.calls.values())
        link.calls.clear()
        for media in lost:
            media.abandon()
        if self.on_lost is not None and lost:
            log.warning("media node %s lost with %d call(s): re-placing them", link.name, len(lost))
            await self.on_lost([media.session_id for media in lost])

    async def open(
        self,
        session_id: str,
        ice_servers: tuple[IceServer, ...],
        *,
        on_media_state: MediaStateCallback,
        stall_after_s: float,
        forward: bool,
    ) -> RemoteCallMedia:
        """The call's media on the live node with the most free room; the next one if that one fails."""
        tried: set[str] = set()
        servers = [s.to_browser() for s in ice_servers]
        while True:
            candidates = [n for n in self.links.values() if n.alive and n.name not in tried and n.free() > 0]
            if not candidates:
                raise MediaClosed
            link = max(candidates, key=lambda n: (n.free(), n.name))
            tried.add(link.name)
            try:
                reply = await link.request(
                    "open", session=session_id, ice_servers=servers, stall_after_s=stall_after_s, forward=forward
                )
            except (WorkerGone, TimeoutError):
                continue
            if reply.get("error"):
                log.warning("media node %s refused %s: %s", link.name, session_id, reply.get("message"))
                continue
            media = RemoteCallMedia(link, session_id, on_media_state=on_media_state, forward=forward, cues_on_link=True)
            link.calls[session_id] = media
            self._spawn(self._map(session_id, link.name))
            return media

    async def _map(self, session_id: str, node: str) -> None:
        try:
            await self.redis.hset(SESSION_NODE_KEY, session_id, node)
        except (RedisError, OSError) as exc:
            log.warning("could not record %s on node %s in Redis: %s", session_id, node, exc)

    def _unmap(self, session_id: str) -> None:
        async def unmap() -> None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.hdel(SESSION_NODE_KEY, session_id)

        self._spawn(unmap())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def worker_of(self, session_id: str) -> NodeLink | None:
        return next((n for n in self.links.values() if session_id in n.calls), None)

    def capacity(self) -> int:
        """The cluster's room: the capacity of every node linked now."""
        return sum(n.info.capacity for n in self.links.values() if n.alive)

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for task in list(self._dialing.values()):
            task.cancel()
        await asyncio.gather(*(n.close() for n in self.links.values()), return_exceptions=True)
        self.links.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        await self.redis.aclose()
