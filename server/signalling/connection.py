"""One client's WebSocket: a bounded writer queue and a per-connection logger."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from ..calls.payloads import ServerMessage
from ..calls.views import stray_keys
from ..storage.records import User

log = logging.getLogger(__name__)

_ids = itertools.count(1)
_encode = msgspec.json.Encoder().encode


class ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[ws {self.extra['conn'] if self.extra else '?'}] {msg}", kwargs


class ClientSocket(Protocol):
    """What the protocol's handlers need of a client's socket: a ``Connection`` here, or a socket relayed from
    another front door (``server.cluster.relayed``)."""

    role: str | None
    user: User | None
    session_id: str | None
    login_id: str | None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    @property
    def authenticated(self) -> bool: ...

    def send(self, message: ServerMessage) -> None: ...

    def send_encoded(self, message: ServerMessage, frame: bytes) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


def withheld_from_customer(role: str | None, message: ServerMessage, logger: logging.LoggerAdapter[Any]) -> bool:
    """Defence in depth: a customer's types have no staff fields; a staff type bound for a customer is a bug."""
    if role != "customer" or message.audience in ("customer", "both"):
        return False
    stray = stray_keys(msgspec.to_builtins(message))
    tag = type(message).__struct_config__.tag
    logger.error("not sent to a customer: %s with keys %s", tag, sorted(stray))
    return True


class Connection:
    """Only the handler task reads the socket; everyone else calls ``send``. A ``calls.participant.Participant``."""

    def __init__(self, ws: web.WebSocketResponse, *, max_pending: int, remote: str) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.remote = remote
        self.log = ConnectionLog(log, {"conn": self.id})
        self.user: User | None = None
        self.login_id: str | None = None
        self.session_id: str | None = None  # customers: their one session
        self.role: str | None = None  # "customer" or "rep" (any staff role)
        # Encoded frames: what a slow client makes us hold is bytes, not live objects.
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=max_pending)
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work for this connection beside its reader; cancelled when it goes."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def authenticated(self) -> bool:
        return self.role is not None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    def send(self, message: ServerMessage) -> None:
        if self.close_code is not None or withheld_from_customer(self.role, message, self.log):
            return
        self.send_frame(_encode(message))

    def send_encoded(self, message: ServerMessage, frame: bytes) -> None:
        """``send`` for a message encoded once for many sockets (``calls.participant.encode_message``)."""
        if self.close_code is not None or withheld_from_customer(self.role, message, self.log):
            return
        self.send_frame(frame)

    def send_frame(self, frame: bytes) -> None:
        """An encoded message (from the cluster's leader, which built and checked it)."""
        if self.close_code is not None:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A client that cannot keep up would make us buffer without bound.
            self.log.warning("send queue full, disconnecting slow client")
            self.close(1008, "too slow")

    def close(self, code: int, reason: str = "") -> None:
        """Ask the writer to flush what is queued, then close with ``code``."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._close_reason = reason
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._queue.full():
            # No room for the sentinel: close right away.
            task = asyncio.create_task(self.ws.close(code=code, message=reason.encode()))
            task.add_done_callback(lambda _t: None)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    break
                await self.ws.send_frame(item, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            if self.close_code is not None and not self.ws.closed:
                with contextlib.suppress(Exception):
                    await self.ws.close(code=self.close_code, message=self._close_reason.encode())

    async def finish(self) -> None:
        """After the reader loop ends: stop spawned work and the writer."""
        for task in list(self._tasks):
            task.cancel()
        if self._writer is None:
            return
        if not self._writer.done():
            if self.close_code is None:
                self.close_code = 1000
                self._close_reason = ""
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(self._writer, 2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
