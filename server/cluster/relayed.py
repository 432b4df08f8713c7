"""A client's socket as the leader sees it when the client is connected to another front door.

It stands where a ``signalling.connection.Connection`` stands: the protocol's handlers read from it and the
call centre sends to it. Frames arrive in order on an inbox and are handled one at a time, as a socket's reader
would; messages leave in order through a bounded outbox, published to the client's front door.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from ..calls.payloads import ServerMessage
from ..signalling.connection import ConnectionLog, withheld_from_customer
from ..storage.records import User
from .bus import Bus, key
from .envelopes import CloseSocket, Deliver, Seated, encode

log = logging.getLogger(__name__)

_encode_message = msgspec.json.Encoder().encode
MAX_INBOX = 256


def door_channel(door: str) -> str:
    return key("door", door)


class RelayedSocket:
    """A ``calls.participant.Participant`` (and ``signalling.connection.ClientSocket``) on another front door."""

    def __init__(
        self,
        bus: Bus,
        door: str,
        conn: int,
        *,
        remote: str,
        user: Awaitable[User | None],
        login_id: str | None,
        max_pending: int,
        handle: Callable[[RelayedSocket, str], Awaitable[None]],
    ) -> None:
        self.bus, self.door, self.conn = bus, door, conn
        self.remote = remote
        self.user: User | None = None
        self.login_id: str | None = None
        self._user, self._login_id = user, login_id
        self.role: str | None = None
        self.session_id: str | None = None
        self.log = ConnectionLog(log, {"conn": f"{door}/{conn}"})
        self.close_code: int | None = None
        self._handle = handle
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=MAX_INBOX)
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=max_pending)
        self._seated = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read(), name=f"relayed-read-{door}/{conn}")
        self._writer = asyncio.create_task(self._write(), name=f"relayed-write-{door}/{conn}")

    @property
    def authenticated(self) -> bool:
        return self.role is not None

    def received(self, text: str) -> None:
        try:
            self._inbox.put_nowait(text)
        except asyncio.QueueFull:
            # The door rate-limits each socket, so this is a leader that cannot keep up with it.
            self.log.warning("relayed inbox full, disconnecting")
            self.close(1013, "try again later")

    async def _read(self) -> None:
        # Looked up here, so frames that follow the "open" wait behind it in order.
        self.user = await self._user
        self.login_id = self._login_id if self.user is not None else None
        while True:
            text = await self._inbox.get()
            if text is None:
                return
            await self._handle(self, text)
            if self.role is not None and not self._seated:
                self._seated = True
                self._post(encode(Seated(conn=self.conn, role=self.role)))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, message: ServerMessage) -> None:
        if self.close_code is not None or withheld_from_customer(self.role, message, self.log):
            return
        self._post(encode(Deliver(conn=self.conn, frame=msgspec.Raw(_encode_message(message)))))

    def send_encoded(self, message: ServerMessage, frame: bytes) -> None:
        if self.close_code is not None or withheld_from_customer(self.role, message, self.log):
            return
        self._post(encode(Deliver(conn=self.conn, frame=msgspec.Raw(frame))))

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self._post(encode(CloseSocket(conn=self.conn, code=code, reason=reason)))
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)

    def _post(self, payload: bytes) -> None:
        try:
            self._outbox.put_nowait(payload)
        except asyncio.QueueFull:
            self.log.warning("relayed outbox full, disconnecting slow client")
            self.close_code = 1008
            closing = encode(CloseSocket(conn=self.conn, code=1008, reason="too slow"))
            self.spawn(self._publish(closing))

    async def _publish(self, payload: bytes) -> None:
        await self.bus.publish(door_channel(self.door), payload)

    async def _write(self) -> None:
        channel = door_channel(self.door)
        while True:
            payload = await self._outbox.get()
            if payload is None:
                return
            await self.bus.publish(channel, payload)

    async def finish(self) -> None:
        """The socket is gone: the frame being handled completes (as a reader's would), the rest is dropped."""
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self._inbox.put_nowait(None)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), 10.0)
        for task in [self._reader, self._writer, *self._tasks]:
            task.cancel()
        for task in [self._reader, self._writer, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
