"""The cluster's message bus: Redis pub/sub between front doors, and a Redis client for short-lived keys.

One listener task owns the subscription. When Redis goes away it retries, re-subscribes when Redis is back, and
then runs the ``on_resync`` callbacks: messages published meanwhile are lost, so whoever relies on them (a
front door's relayed sockets) starts over from the state of record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PREFIX = "rapport:"
RETRY_S = 0.5
Handler = Callable[[bytes], None]


def key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


class Bus:
    """Publish to channels and subscribe handlers; ``handler(payload)`` runs on the listener task: keep it quick."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Short timeouts: a front door must notice a dead Redis in seconds, not minutes.
        self.redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=5
        )
        self._sub_client: aioredis.Redis = aioredis.from_url(url, socket_connect_timeout=2.0, health_check_interval=5)
        self._handlers: dict[str, Handler] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.on_resync: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._resyncs: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="cluster-bus")

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._handlers.pop(channel, None)
        if self._pubsub is not None and self.connected:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, payload: bytes) -> int:
        """Receivers reached (0: nobody listens, or Redis is down)."""
        try:
            return int(await self.redis.publish(channel, payload))
        except (RedisError, OSError) as exc:
            log.warning("could not publish on %s: %s", channel, exc)
            return 0

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                channels = list(self._handlers)
                if channels:
                    await pubsub.subscribe(*channels)
                else:
                    await pubsub.ping()
                self._pubsub = pubsub
                self._connected.set()
                if not first:
                    log.info("bus: Redis is back; resynchronising")
                    for resync in self.on_resync:
                        task = asyncio.create_task(resync())
                        self._resyncs.add(task)
                        task.add_done_callback(self._resyncs.discard)
                first = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    handler = self._handlers.get(message["channel"].decode())
                    if handler is not None:
                        try:
                            handler(message["data"])
                        except Exception:
                            log.exception("bus handler for %s failed", message["channel"])
            except (RedisError, OSError, TimeoutError) as exc:
                if self._connected.is_set():
                    log.warning("bus: lost Redis (%s); retrying", exc)
                self._connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(RETRY_S)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._sub_client.aclose()
        await self.redis.aclose()


BUS = web.AppKey("cluster_bus", Bus)
