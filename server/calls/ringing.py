"""Ringing: a waiting call is offered to one rep at a time until they answer, decline, or it rings out.

A transfer puts a live call back in line, ringing at the chosen rep first when there is one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import routing, views
from .errors import ProtocolError
from .grace import ReconnectGrace
from .state import LiveSession, Offer, RepState, Shared
from .waits import WaitLimits

log = logging.getLogger(__name__)


class Ringing:
    """The offers out at reps: who rings, for how long, and what each rep hears when it stops."""

    def __init__(
        self,
        shared: Shared,
        *,
        grace: ReconnectGrace,
        wait_limits: WaitLimits,
        set_status: Callable[[RepState, str], None],
    ) -> None:
        self.shared = shared
        self.grace = grace
        self.wait_limits = wait_limits
        # A rep's status changes through this (it tells them and the queue).
        self.set_status = set_status

    def offer_calls(self) -> None:
        """Ring the longest-idle matching rep for each waiting call, in queue order, one rep per call."""
        waiting = routing.waiting_order(self.shared.sessions.values())
        for live, rep in routing.next_offers(waiting, self.shared.reps.values()):
            self.ring(live, rep)

    def ring(self, live: LiveSession, rep: RepState, *, transfer: bool = False, note: str | None = None) -> None:
        rep.offer = live.id
        timer = asyncio.create_task(self._ring_out(live, rep), name=f"ring-{live.id}-{rep.user.id}")
        live.offer = Offer(rep.user.id, timer, transfer)
        message = views.call_offer(
            live, ring_timeout_s=self.shared.settings.ring_timeout_s, transfer=transfer, note=note
        )
        for conn in rep.conns:
            conn.send(message)

    async def _ring_out(self, live: LiveSession, rep: RepState) -> None:
        await asyncio.sleep(self.shared.settings.ring_timeout_s)
        if live.offer is None or live.offer.rep_id != rep.user.id:
            return
        live.offer = None
        rep.offer = None
        for conn in rep.conns:
            conn.send(views.offer_cancelled(live.id, "timeout"))
        # Nobody answered: this rep is probably not at the desk, so stop ringing them.
        log.info("call %s rang out at rep %s; rep set away", live.id, rep.user.username)
        self.set_status(rep, "away")

    def cancel(self, live: LiveSession | None, reason: str) -> None:
        """Stop ``live`` ringing; the rep hears ``reason`` unless it is that they accepted."""
        if live is None or live.offer is None:
            return
        offer, live.offer = live.offer, None
        if offer.timer is not asyncio.current_task():
            offer.timer.cancel()
        rep = self.shared.reps.get(offer.rep_id)
        if rep is None:
            return
        if rep.offer == live.id:
            rep.offer = None
        if reason != "accepted":
            for conn in rep.conns:
                conn.send(views.offer_cancelled(live.id, reason))

    def cancel_rep_offer(self, rep: RepState, reason: str) -> None:
        """Stop whatever call rings at ``rep``."""
        if rep.offer is not None:
            self.cancel(self.shared.sessions.get(rep.offer), reason)

    def decline(self, rep: RepState, session_id: str) -> None:
        """The rep said no: the call is not offered to them again, and their idle time starts afresh."""
        live = self.shared.sessions.get(session_id)
        if live is None or live.offer is None or live.offer.rep_id != rep.user.id:
            raise ProtocolError("session_not_found", "no such offer")
        live.declined.add(rep.user.id)
        self.cancel(live, "declined")
        rep.idle_since = time.monotonic()

    async def transfer(
        self, live: LiveSession, rep: RepState, *, to_rep: int | None, to_reason: str | None, note: str | None
    ) -> None:
        """``rep`` hands their live call to another rep or back to a queue; the customer's media and context stay."""
        if live.state != "active":
            raise ProtocolError("not_in_call", "only a live call can be transferred")
        if to_reason is not None and to_reason not in {code for code, _ in self.shared.settings.reasons}:
            raise ProtocolError("bad_message", "reason: unknown")
        target: RepState | None = None
        if to_rep is not None:
            target = self.shared.reps.get(to_rep)
            if target is None or target is rep or not routing.can_ring(target):
                raise ProtocolError("rep_unavailable", "that rep cannot take a call now")
        detail = {"from_rep": rep.user.id, "to_rep": to_rep, "to_reason": to_reason, "note": note}
        live.record = await self.shared.store.requeue_session(
            live.id, reason=to_reason or live.record.reason, detail=detail
        )
        live.rep = None
        live.conns["rep"] = None
        live.media_flags.pop("rep", None)
        live.declined.clear()
        self.grace.cancel(live, "rep")
        rep.session_id = None
        self.set_status(rep, "available")
        if live.media is not None:
            await live.media.drop("rep")
        to = "rep" if target else "queue"
        live.send_to_customer(views.customer_transferred(live.id, to))
        for c in rep.conns:
            c.send(views.rep_transferred(live.id, to, note))
        # Waiting again: the wait limit starts afresh (the time with the first rep does not count).
        self.wait_limits.start(live, self.shared.settings.max_wait_s)
        if target is not None:
            self.ring(live, target, transfer=True, note=note)
        self.shared.changed()
