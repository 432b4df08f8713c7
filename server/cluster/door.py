"""A front door in a cluster: its sockets' frames go to the leader, and the leader's messages come back.

Each socket is still read by one task and written through its own bounded queue
(``signalling.connection.Connection``); the door authenticates staff from their cookie, limits each socket's
rate and frame size, and stops the hello timer once the leader has seated the socket. What the door cannot
deliver it does not buffer: when no leader listens, or a new one took over, or Redis was away, the door closes
its sockets and the clients reconnect and say hello again, which rebuilds everything they see.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import msgspec
from redis.exceptions import RedisError

from ..calls import capacity
from ..calls.attachments import FileRefused
from ..calls.desk import QueuedCall
from ..http.security import ApiError
from ..signalling.connection import Connection
from ..signalling.endpoint import error
from ..storage.records import NewCall
from .bus import Bus
from .envelopes import (
    CloseSocket,
    Deliver,
    DeskCall,
    DeskReply,
    NewLeader,
    Seated,
    SocketClosed,
    SocketOpened,
    SocketText,
    encode,
    to_door,
)
from .leader import DESK_CHANNEL, DOORS_CHANNEL, RELAYED_ERRORS, door_alive_key
from .relayed import door_channel

log = logging.getLogger(__name__)

DESK_TIMEOUT_S = 10.0
# Close codes: 1012 "service restart" (a new leader), 1013 "try again later" (no leader yet, or Redis away).
NEW_LEADER_CLOSE = 1012
TRY_AGAIN_CLOSE = 1013


class Door:
    """This process's sockets and its calls to the leader; a ``signalling.endpoint.SocketSink``."""

    def __init__(self, bus: Bus, name: str, alive_s: float) -> None:
        self.bus, self.name, self.alive_s = bus, name, alive_s
        self.sockets: dict[int, Connection] = {}
        self._replies: dict[int, asyncio.Future[DeskReply]] = {}
        self._ids = itertools.count(1)
        self._epoch: int | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.subscribe(door_channel(self.name), self._received)
        await self.bus.subscribe(DOORS_CHANNEL, self._announced)
        self.bus.on_resync.append(self._start_over)
        self._heartbeat = asyncio.create_task(self._beat(), name="door-heartbeat")

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(RedisError, OSError):
                await self.bus.redis.set(door_alive_key(self.name), "1", px=int(self.alive_s * 1000))
            await asyncio.sleep(self.alive_s / 3)

    # sockets (SocketSink)

    async def opened(self, conn: Connection) -> None:
        self.sockets[conn.id] = conn
        opened = SocketOpened(
            door=self.name,
            conn=conn.id,
            remote=conn.remote,
            user_id=conn.user.id if conn.user is not None else None,
            login_id=conn.login_id,
        )
        await self._to_leader(conn, encode(opened))

    async def received(self, conn: Connection, text: str) -> None:
        await self._to_leader(conn, encode(SocketText(door=self.name, conn=conn.id, text=text)))

    async def closed(self, conn: Connection) -> None:
        if self.sockets.pop(conn.id, None) is not None:
            await self.bus.publish(DESK_CHANNEL, encode(SocketClosed(door=self.name, conn=conn.id)))

    async def _to_leader(self, conn: Connection, payload: bytes) -> None:
        if await self.bus.publish(DESK_CHANNEL, payload) == 0:
            conn.send(error("unavailable", "the call desk is changing hands; reconnecting"))
            conn.close(TRY_AGAIN_CLOSE, "no leader")

    def _received(self, payload: bytes) -> None:
        try:
            message = to_door(payload)
        except msgspec.ValidationError:
            log.warning("bad message on %s: %r", door_channel(self.name), payload[:200])
            return
        if isinstance(message, DeskReply):
            future = self._replies.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if isinstance(message, NewLeader):
            return
        conn = self.sockets.get(message.conn)
        if conn is None:
            return
        if isinstance(message, Deliver):
            conn.send_frame(bytes(message.frame))
        elif isinstance(message, Seated):
            conn.role = message.role
        elif isinstance(message, CloseSocket):
            conn.close(message.code, message.reason)

    def _announced(self, payload: bytes) -> None:
        try:
            message = to_door(payload)
        except msgspec.ValidationError:
            return
        if isinstance(message, NewLeader) and message.epoch != self._epoch:
            first = self._epoch is None
            self._epoch = message.epoch
            if not first or self.sockets:
                self._close_all(NEW_LEADER_CLOSE, "a new leader took over")

    async def _start_over(self) -> None:
        # Redis was away: whatever was published meanwhile is lost, so every client starts over.
        self._close_all(TRY_AGAIN_CLOSE, "reconnect")

    def _close_all(self, code: int, reason: str) -> None:
        if self.sockets:
            log.info("closing %d socket(s): %s", len(self.sockets), reason)
        for conn in list(self.sockets.values()):
            conn.close(code, reason)

    # the HTTP routes' calls

    async def call(self, method: str, **args: Any) -> Any:
        call_id = next(self._ids)
        future: asyncio.Future[DeskReply] = asyncio.get_running_loop().create_future()
        self._replies[call_id] = future
        try:
            payload = encode(DeskCall(door=self.name, id=call_id, method=method, args=args))
            if await self.bus.publish(DESK_CHANNEL, payload) == 0:
                raise _unavailable()
            reply = await asyncio.wait_for(future, DESK_TIMEOUT_S)
        except TimeoutError:
            raise _unavailable() from None
        finally:
            self._replies.pop(call_id, None)
        if reply.error is not None:
            if reply.error in RELAYED_ERRORS:
                raise getattr(capacity, reply.error)(reply.message)
            raise ApiError(503, "unavailable", "the call desk could not answer; try again")
        return reply.value

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        with contextlib.suppress(RedisError, OSError):
            await self.bus.redis.delete(door_alive_key(self.name))


def _unavailable() -> ApiError:
    return ApiError(
        503, "unavailable", "the call desk is changing hands; try again in a few seconds", {"Retry-After": "2"}
    )


class ClusterDesk:
    """A ``calls.desk.CallDesk`` over the bus, on every door alike (the leader's own included)."""

    def __init__(self, door: Door) -> None:
        self.door = door

    async def create_call(self, call: NewCall, *, address: str | None) -> QueuedCall:
        value = await self.door.call("create_call", call=msgspec.to_builtins(call), address=address)
        return QueuedCall(str(value[0]), str(value[1]), float(value[2]))

    async def wrapped_up(self, rep_id: int, session_id: str) -> None:
        await self.door.call("wrapped_up", rep_id=rep_id, session_id=session_id)

    async def floor(self) -> dict[str, Any]:
        return dict(await self.door.call("floor"))

    async def live_floor(self) -> dict[str, Any]:
        return dict(await self.door.call("live_floor"))

    async def next_waits(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in dict(await self.door.call("next_waits")).items()}

    async def close_login(self, login_id: str) -> None:
        await self.door.call("close_login", login_id=login_id)

    async def update_routing(self, user_id: int, skills: frozenset[str], languages: frozenset[str]) -> None:
        await self.door.call("update_routing", user_id=user_id, skills=sorted(skills), languages=sorted(languages))

    async def reserve_file(self, session_id: str, role: str, user_id: int | None, kind: str) -> None:
        refused = await self.door.call("reserve_file", session_id=session_id, role=role, user_id=user_id, kind=kind)
        if refused:  # the leader's FileRefused, as [status, code, message]
            raise FileRefused(int(refused[0]), str(refused[1]), str(refused[2]))

    async def release_file(self, session_id: str) -> None:
        await self.door.call("release_file", session_id=session_id)

    async def file_shared(self, session_id: str, file_id: str) -> bool:
        return bool(await self.door.call("file_shared", session_id=session_id, file_id=file_id))
