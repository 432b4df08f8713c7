"""Reconnect grace: a participant who drops keeps their call (or place in line) for ``reconnect_grace_s``.

Presence is the socket and, once media flows, the media too: either one lost starts the timer, and the
other side hears that its peer is reconnecting.
"""

from __future__ import annotations

import asyncio
import time

from ..media.call import other
from . import views
from .participant import Participant
from .state import LiveSession, Shared


class ReconnectGrace:
    """The grace timers of every call, and what each side is told of the other's presence."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def seat(self, live: LiveSession, role: str, conn: Participant) -> None:
        """``conn`` is ``role``'s socket in the call now: an older one is told and closed, the grace ends."""
        previous = live.conns.get(role)
        if previous is not None and previous is not conn:
            previous.send(views.bye("replaced"))
            previous.close(4002, "replaced by a newer connection")
        live.conns[role] = conn
        self.cancel(live, role)

    def start(self, live: LiveSession, role: str, within_s: float | None = None) -> None:
        """``role`` has ``within_s`` (default: the reconnect grace) to come back before the call ends."""
        if role in live.grace:
            return
        delay = self.shared.settings.reconnect_grace_s if within_s is None else max(0.0, within_s)
        # Wall clock: a cluster's next leader resumes the timer from it (``server.cluster.live``).
        live.grace_until[role] = time.time() + delay

        async def expire() -> None:
            await asyncio.sleep(delay)
            live.grace.pop(role, None)
            live.grace_until.pop(role, None)
            if live.state == "waiting":
                await self.shared.finish(live, state="abandoned", ended_by="system", reason="customer_lost")
            elif live.state == "active":
                await self.shared.finish(live, state="ended", ended_by="system", reason=f"{role}_lost")

        live.grace[role] = asyncio.create_task(expire(), name=f"grace-{live.id}-{role}")

    def cancel(self, live: LiveSession, role: str) -> None:
        task = live.grace.pop(role, None)
        live.grace_until.pop(role, None)
        if task is not None:
            task.cancel()

    @staticmethod
    def present(live: LiveSession, role: str) -> bool:
        if live.conns.get(role) is None:
            return False
        return live.media is None or live.media.media_state(role) != "lost"

    def presence_changed(self, live: LiveSession, role: str) -> None:
        """Start or stop ``role``'s grace in a live call, and tell the other side."""
        present = self.present(live, role)
        if live.state == "active":
            if present:
                self.cancel(live, role)
            else:
                self.start(live, role)
        target = live.conns.get(other(role))
        if target is not None:
            target.send(views.peer_state(live.id, role, "connected" if present else "reconnecting"))

    async def media_state_changed(self, live: LiveSession, role: str, state: str) -> None:
        if live.state == "active":
            self.presence_changed(live, role)
