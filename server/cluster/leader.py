"""Leadership: while this front door holds the lease it runs the call centre for the whole cluster.

It serves the desk channel: sockets relayed from every front door (``relayed.RelayedSocket``) and the HTTP
routes' calls (``DeskCall``). When it stops leading it hands the calls over without ending them: the next
leader adopts them from the database and the live view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from redis.exceptions import RedisError

from ..calls.attachments import FileRefused
from ..calls.center import CallCenter
from ..calls.desk import LocalDesk
from ..config import Settings
from ..signalling.endpoint import dispatch
from ..storage.records import NewCall, User
from ..storage.store import Store
from . import live
from .bus import Bus, key
from .envelopes import DeskCall, DeskReply, NewLeader, SocketClosed, SocketOpened, SocketText, encode, to_leader
from .lease import LeaderLease
from .relayed import RelayedSocket, door_channel

log = logging.getLogger(__name__)

DESK_CHANNEL = key("desk")
DOORS_CHANNEL = key("doors")


def door_alive_key(door: str) -> str:
    return key("door-alive", door)


class Leadership:
    """Competes for the lease; ``center`` is the running call centre while this process leads, else None."""

    def __init__(self, bus: Bus, settings: Settings, store: Store, make_center: Callable[[], CallCenter]) -> None:
        self.bus, self.settings, self.store = bus, settings, store
        self.make_center = make_center
        self.center: CallCenter | None = None
        self.sockets: dict[tuple[str, int], RelayedSocket] = {}
        self.lease = LeaderLease(bus, settings.node_name, settings.node_timeout_s, self._elected, self._deposed)
        self._tasks: list[asyncio.Task[None]] = []
        self._changing = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.bus.on_resync.append(self._forget_sockets)
        await self.lease.start()

    async def _forget_sockets(self) -> None:
        # Redis was away: every door closes its sockets (``Door._start_over``) and the clients come back.
        for door, conn in list(self.sockets):
            await self._closed(door, conn)

    @property
    def leading(self) -> bool:
        return self.center is not None

    async def _elected(self, epoch: int) -> None:
        async with self._changing:
            center = self.make_center()
            await center.start(takeover=await live.read(self.bus))
            self.center = center
            await self.bus.subscribe(DESK_CHANNEL, self._received)
            self._tasks = [
                asyncio.create_task(live.keep_written(self.bus, center), name="live-view"),
                asyncio.create_task(self._reap_gone_doors(), name="door-reaper"),
            ]
            # Every door starts its sockets over with us; each client says hello again.
            await self.bus.publish(DOORS_CHANNEL, encode(NewLeader(name=self.settings.node_name, epoch=epoch)))

    async def _deposed(self) -> None:
        async with self._changing:
            await self._stand_down()

    async def _stand_down(self) -> None:
        center, self.center = self.center, None
        if center is None:
            return
        await self.bus.unsubscribe(DESK_CHANNEL)
        for task in self._tasks:
            task.cancel()
        sockets, self.sockets = list(self.sockets.values()), {}
        await asyncio.gather(*(s.finish() for s in sockets), return_exceptions=True)
        await center.aclose(handover=True)
        log.info("this front door no longer leads; its calls are handed over")

    # the desk channel

    def _received(self, payload: bytes) -> None:
        try:
            message = to_leader(payload)
        except msgspec.ValidationError:
            log.warning("bad message on the desk channel: %r", payload[:200])
            return
        if isinstance(message, SocketText):
            socket = self.sockets.get((message.door, message.conn))
            if socket is not None:
                socket.received(message.text)
        elif isinstance(message, SocketOpened):
            self._opened(message)
        elif isinstance(message, SocketClosed):
            self._spawn(self._closed(message.door, message.conn))
        elif isinstance(message, DeskCall):
            self._spawn(self._answer(message))

    def _opened(self, message: SocketOpened) -> None:
        self.sockets[(message.door, message.conn)] = RelayedSocket(
            self.bus,
            message.door,
            message.conn,
            remote=message.remote,
            user=self._user(message.user_id),
            login_id=message.login_id,
            max_pending=self.settings.ws_max_pending,
            handle=self._handle,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _user(self, user_id: int | None) -> User | None:
        return await self.store.get_user(user_id) if user_id is not None else None

    async def _handle(self, socket: RelayedSocket, text: str) -> None:
        if self.center is not None:
            await dispatch(self.center, socket, text)

    async def _closed(self, door: str, conn: int) -> None:
        socket = self.sockets.pop((door, conn), None)
        if socket is None:
            return
        await socket.finish()
        if self.center is not None:
            await self.center.disconnected(socket)

    async def _reap_gone_doors(self) -> None:
        """A front door that died sent no "closed" for its sockets: its heartbeat's end says it."""
        while True:
            await asyncio.sleep(self.settings.node_timeout_s / 3)
            doors = {door for door, _conn in self.sockets}
            for door in doors:
                try:
                    alive = await self.bus.redis.exists(door_alive_key(door))
                except (RedisError, OSError):
                    break  # Redis is away: nothing is known about the doors
                if not alive:
                    log.warning("front door %s is gone: its sockets left", door)
                    for socket_key in [k for k in self.sockets if k[0] == door]:
                        await self._closed(*socket_key)

    async def _answer(self, call: DeskCall) -> None:
        reply = DeskReply(id=call.id)
        try:
            if self.center is None:
                raise RuntimeError("this front door no longer leads")
            reply.value = await _call_desk(LocalDesk(self.center), call.method, call.args)
        except Exception as exc:
            if not isinstance(exc, (LookupError, ValueError)) and type(exc).__name__ not in RELAYED_ERRORS:
                log.exception("desk call %s failed", call.method)
            reply.error, reply.message = type(exc).__name__, str(exc)
        await self.bus.publish(door_channel(call.door), encode(reply))

    async def aclose(self) -> None:
        # Stop competing first, then hand the calls over, then free the lease for the next leader.
        await self.lease.stop()
        async with self._changing:
            await self._stand_down()
        await self.lease.release()


# Raised again at the door as themselves (``door.ClusterDesk``).
RELAYED_ERRORS = ("AtCapacity", "QueueFull", "TooManyWaiting")


async def _call_desk(desk: LocalDesk, method: str, args: dict[str, Any]) -> Any:
    if method == "create_call":
        queued = await desk.create_call(msgspec.convert(args["call"], NewCall), address=args.get("address"))
        return list(queued)
    if method == "wrapped_up":
        return await desk.wrapped_up(int(args["rep_id"]), str(args["session_id"]))
    if method == "floor":
        return await desk.floor()
    if method == "live_floor":
        return await desk.live_floor()
    if method == "next_waits":
        return await desk.next_waits()
    if method == "close_login":
        return await desk.close_login(str(args["login_id"]))
    if method == "update_routing":
        return await desk.update_routing(int(args["user_id"]), frozenset(args["skills"]), frozenset(args["languages"]))
    if method == "reserve_file":
        try:
            user_id = args.get("user_id")
            await desk.reserve_file(
                str(args["session_id"]), str(args["role"]), None if user_id is None else int(user_id), str(args["kind"])
            )
        except FileRefused as refused:
            return [refused.status, refused.code, refused.message]
        return None
    if method == "release_file":
        return await desk.release_file(str(args["session_id"]))
    if method == "file_shared":
        return await desk.file_shared(str(args["session_id"]), str(args["file_id"]))
    raise LookupError(f"no desk method {method}")
