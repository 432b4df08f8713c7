"""The end of a call: the record made final, both sides told, timers and media stopped, listeners notified."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from . import views
from .ringing import Ringing
from .state import LiveSession, Shared
from .waits import cancel_wait_limit

log = logging.getLogger(__name__)


class Teardown:
    """Ends calls for good, once each, even when the socket whose message ended it goes away meanwhile."""

    def __init__(
        self, shared: Shared, ringing: Ringing, *, on_recorded: Callable[[str], Awaitable[object]] | None
    ) -> None:
        self.shared = shared
        self.ringing = ringing
        self.on_recorded = on_recorded
        # Run for every call that ends, inside the ending job (the socket whose message ended it may be gone).
        self.on_ended: list[Callable[[LiveSession], Awaitable[None]]] = []
        self._jobs: set[asyncio.Task[None]] = set()

    async def finish(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> None:
        # aiohttp cancels a socket's handler when the client goes; ending a call must
        # not stop halfway (peers half-closed leak sockets), so it runs as its own task.
        job = asyncio.create_task(self._finish_now(live, state=state, ended_by=ended_by, reason=reason))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        await asyncio.shield(job)

    async def drain(self, timeout: float) -> None:
        """Let the endings under way complete (for up to ``timeout`` seconds)."""
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=timeout)

    async def shut(self, live: LiveSession, *, handover: bool = False) -> None:
        """The server stops: a live call is marked interrupted (unless another leader takes it over) and its
        media closed; nobody is told."""
        for task in live.grace.values():
            task.cancel()
        cancel_wait_limit(live)
        if live.state == "active" and not handover:
            await self.shared.store.finish_session(
                live.id, state="interrupted", ended_by="system", reason="server_shutdown"
            )
        if live.cues is not None:
            await live.cues.aclose()
        if live.recording is not None:
            await live.recording.stop()
        if live.media is not None:
            await live.media.aclose()

    async def _finish_now(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> None:
        async with live.lock:
            if live.id not in self.shared.sessions:
                return
            record = await self.shared.store.finish_session(live.id, state=state, ended_by=ended_by, reason=reason)
            if record is None:
                record = await self.shared.store.get_session(live.id)
            if record is not None:
                live.record = record
            self.shared.sessions.pop(live.id, None)
            # In the same step as the pop, so the frame counters never dip between the two.
            self.shared.metrics.call_ended(state, live.media.stats() if live.media is not None else None)
        if live.offer is not None:
            self.ringing.cancel(live, "ended")
        for task in list(live.grace.values()):
            if task is not asyncio.current_task():
                task.cancel()
        live.grace.clear()
        cancel_wait_limit(live)
        # The record is final before anyone hears the call ended: a reader never sees it half-written.
        if live.cues is not None:
            cues, live.cues = live.cues, None
            await cues.aclose()
        if live.record.answered_at is not None:
            await self.shared.store.summarize_emotion(live.id)
        customer = live.conns.get("customer")
        if customer is not None:
            customer.send(views.customer_ended(live.record, self._disposition_codes()))
            customer.close(4003, "session over")
        if live.rep is not None:
            self._release_rep(live, live.rep.id)
        for hook in self.on_ended:
            try:
                await hook(live)
            except Exception:
                log.exception("after the end of %s", live.id)
        final = await self.shared.store.get_session(live.id)
        await self.shared.emit("session.ended", {"session": (final or live.record).to_json()})
        recorded = live.recording is not None
        if live.recording is not None:
            recording, live.recording = live.recording, None
            await recording.stop()
        if live.media is not None:
            await live.media.aclose()
        if recorded and self.on_recorded is not None:
            try:
                await self.on_recorded(live.id)
            except Exception:
                log.exception("could not queue the QA file of %s", live.id)
        log.info("session %s %s (%s by %s)", live.id, live.record.state, reason, ended_by)
        self.shared.changed()

    def _release_rep(self, live: LiveSession, rep_id: int) -> None:
        """The rep's call is over: a disposition is due before the next one."""
        rep = self.shared.reps.get(rep_id)
        if rep is None:
            return
        if rep.session_id == live.id:
            rep.session_id = None
            rep.wrap_up = live.id
            rep.status = "wrap_up"
            rep.idle_since = time.monotonic()
        for c in rep.conns:
            c.send(views.rep_ended(live.record, wrap_up=rep.wrap_up == live.id))
            c.send(views.rep_status(rep.status))

    def _disposition_codes(self) -> frozenset[str]:
        return frozenset(code for code, _label, _category in self.shared.settings.dispositions)
