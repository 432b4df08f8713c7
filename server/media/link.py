"""The front door's end of one link to media: a worker's pipes or a media node's TCP socket.

Both speak :mod:`server.media.wire`: requests carry an ``id`` and get a ``reply`` with it; events name their
session and go to that call's :class:`server.media.pool.RemoteCallMedia`. A link that ends, or sends garbage,
fails exactly its own requests in flight (``WorkerGone``); the pool above decides what becomes of its calls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..config import IceServer
from ..metrics import BucketCounts
from . import wire

if TYPE_CHECKING:
    from .call import MediaStateCallback
    from .pool import RemoteCallMedia

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 20.0

# The session ids whose media went with a worker or a node.
MediaLost = Callable[[list[str]], Awaitable[None]]


class WorkerGone(Exception):
    """The worker or media node went away (or broke its link) with the request in flight."""


class MediaLink:
    """Requests, replies and events over one wire link; subclasses say how bytes leave (``_write``)."""

    def __init__(self, name: str, transit: BucketCounts) -> None:
        self.name = name
        self.transit = transit
        self.calls: dict[str, RemoteCallMedia] = {}
        self.alive = False
        # Events by type that arrived on this link (what crossed it, for operators and tests).
        self.received: Counter[str] = Counter()
        # Asyncio tasks alive at the other end, as of its last stats report (None until one came).
        self.tasks: int | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def send(self, op: str, **fields: Any) -> None:
        if self.alive:
            self._write(wire.encode({"op": op, **fields}))

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        if not self.alive:
            raise WorkerGone
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        self.send(op, id=request_id, **fields)
        try:
            return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        finally:
            self._replies.pop(request_id, None)

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        """Dispatch events until the link ends; ``ValueError`` when the other end sends garbage."""
        while True:
            try:
                header, body = await wire.read(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                self._dispatch(header, body)
            except Exception:  # one bad event must not cut the link
                log.exception("media link %s: event %s failed", self.name, header.get("event"))

    def forget(self, session_id: str) -> None:
        """The call's media was closed: this link no longer carries it."""
        self.calls.pop(session_id, None)

    def _fail_pending(self) -> None:
        self.alive = False
        for future in self._replies.values():
            if not future.done():
                future.set_exception(WorkerGone())

    def _dispatch(self, header: dict[str, Any], body: bytes) -> None:
        event = header.get("event")
        self.received[str(event)] += 1
        if event == "reply":
            future = self._replies.get(header.get("id", -1))
            if future is not None and not future.done():
                future.set_result(header)
            return
        if event == "stats":
            if "transit" in header:  # frame transit since the last report, into the one histogram
                self.transit.add(header["transit"])
            if isinstance(header.get("tasks"), int):
                self.tasks = header["tasks"]
            for session, stats in (header.get("calls") or {}).items():
                call = self.calls.get(session)
                if call is not None:
                    call.last_stats = stats
            return
        call = self.calls.get(str(header.get("session")))
        if call is not None:
            call.on_event(header, body)


class MediaPool(Protocol):
    """What the call centre uses of a pool of media links (local workers or media nodes)."""

    on_lost: MediaLost | None
    # True: a lost link's calls can get new media elsewhere (the participants re-offer); False: they end.
    replaces_lost_calls: bool

    async def start(self) -> object: ...

    async def aclose(self) -> None: ...

    async def open(
        self,
        session_id: str,
        ice_servers: tuple[IceServer, ...],
        *,
        on_media_state: MediaStateCallback,
        stall_after_s: float,
        forward: bool,
    ) -> RemoteCallMedia: ...

    def capacity(self) -> int | None:
        """Calls the pool can carry now, or None when the server's own model applies (local workers)."""
        ...
