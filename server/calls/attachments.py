"""Photos, files and snapshots in a live call: who may send one, how many, and telling both sides.

The bytes come over HTTP (``server/http/routes/files.py``), which asks here first (:meth:`Attachments.reserve`:
the call is live, the sender is one of its two parties, the call has room, a snapshot was asked for), then
stores the file and announces it (:meth:`Attachments.shared`), or gives the place back (:meth:`release`).
A snapshot starts at the rep (``snapshot.take``): the customer's page gets ``snapshot.request`` and uploads
a still of its camera; if none comes within ``snapshot_timeout_s`` the rep hears so (``snapshot.failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from . import views
from .errors import ProtocolError
from .participant import TokenBucket
from .state import LiveSession, Shared

SNAPSHOT = "snapshot"
FILE = "file"


class FileRefused(Exception):
    """An upload the call does not take: an HTTP ``status`` with the API's ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class CallFiles:
    """One live call's files: stored, being uploaded, and the snapshot the rep is waiting for."""

    count: int | None = None
    pending: int = 0
    snapshot_timer: asyncio.Task[None] | None = None
    snapshot_bucket: TokenBucket | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Attachments:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.calls: dict[str, CallFiles] = {}

    def _live(self, session_id: str, role: str, user_id: int | None) -> LiveSession:
        live = self.shared.sessions.get(session_id)
        if live is None and role == "customer":
            # Their token names the session: it is over (or not live in this process any more).
            raise FileRefused(409, "call_not_live", "files can be sent only during the call")
        if live is None or (role == "rep" and (live.rep is None or live.rep.id != user_id)):
            # Not your call: the same answer as no call at all.
            raise FileRefused(404, "not_found", "no such call")
        if live.state != "active":
            raise FileRefused(409, "call_not_live", "files can be sent only during the call")
        return live

    async def reserve(self, session_id: str, role: str, user_id: int | None, kind: str) -> None:
        """Hold a place for one upload by ``role`` (the call's customer, or its rep ``user_id``), or FileRefused."""
        live = self._live(session_id, role, user_id)
        files = self.calls.setdefault(live.id, CallFiles())
        if kind == SNAPSHOT and (role != "customer" or files.snapshot_timer is None):
            raise FileRefused(409, "no_snapshot_requested", "no snapshot was asked for")
        async with files.lock:
            if files.count is None:
                files.count = await self.shared.store.count_files(live.id)
            cap = self.shared.settings.max_files_per_session
            if kind != SNAPSHOT and cap > 0 and files.count + files.pending >= cap:
                raise FileRefused(409, "files_full", f"this call holds at most {cap} files")
            files.pending += 1

    def release(self, session_id: str) -> None:
        """An upload that was reserved but is not kept (refused, or broken off)."""
        files = self.calls.get(session_id)
        if files is not None and files.pending > 0:
            files.pending -= 1

    async def shared_file(self, session_id: str, file_id: str) -> bool:
        """A reserved upload is stored: both sides see it. False when the call ended meanwhile (drop it)."""
        files = self.calls.get(session_id)
        live = self.shared.sessions.get(session_id)
        self.release(session_id)
        record = await self.shared.store.get_file(file_id)
        if files is None or live is None or live.state != "active" or record is None:
            return False
        files.count = (files.count or 0) + 1
        if record.kind == SNAPSHOT and files.snapshot_timer is not None:
            files.snapshot_timer.cancel()
            files.snapshot_timer = None
        live.send_to_customer(views.customer_file_shared(record))
        live.send_to_rep([views.rep_file_shared(record)])
        return True

    # snapshots

    def take_snapshot(self, live: LiveSession) -> None:
        """The rep asks for a still of the customer's camera."""
        if live.state != "active":
            raise ProtocolError("not_in_call", "you are not in a call")
        if live.conns.get("customer") is None:
            raise ProtocolError("customer_absent", "the customer is not connected")
        files = self.calls.setdefault(live.id, CallFiles())
        if files.snapshot_timer is not None:
            raise ProtocolError("snapshot_pending", "a snapshot is on its way already")
        per_minute = self.shared.settings.snapshots_per_minute
        if files.snapshot_bucket is None:
            files.snapshot_bucket = TokenBucket(per_minute / 60.0, max(1, min(per_minute, 3)))
        if per_minute > 0 and not files.snapshot_bucket.take():
            raise ProtocolError("rate_limited", f"at most {per_minute} snapshots a minute")
        files.snapshot_timer = asyncio.create_task(self._snapshot_timeout(live, files), name=f"snapshot-{live.id}")
        live.send_to_customer(views.snapshot_request(live.id))

    async def _snapshot_timeout(self, live: LiveSession, files: CallFiles) -> None:
        await asyncio.sleep(self.shared.settings.snapshot_timeout_s)
        files.snapshot_timer = None
        live.send_to_rep([views.snapshot_failed(live.id, "timeout")])

    async def ended(self, live: LiveSession) -> None:
        """The call is over: no more files; a snapshot still awaited will not come."""
        files = self.calls.pop(live.id, None)
        if files is not None and files.snapshot_timer is not None:
            files.snapshot_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await files.snapshot_timer

    async def aclose(self) -> None:
        for files in self.calls.values():
            if files.snapshot_timer is not None:
                files.snapshot_timer.cancel()
        self.calls.clear()
