"""Waiting: how long the next caller will wait (smoothed from recent answers), and the limit on waiting."""

from __future__ import annotations

import asyncio
import logging

from . import views
from .state import LiveSession, Shared

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 60.0
# Weight of the newest wait in the moving average.
ALPHA = 0.3


class WaitEstimates:
    """Recent waits, overall and per reason, as exponential moving averages."""

    def __init__(self) -> None:
        self.overall: float | None = None
        self.by_reason: dict[str, float] = {}

    def observe(self, wait_s: float, reason: str | None = None) -> None:
        self.overall = wait_s if self.overall is None else ALPHA * wait_s + (1 - ALPHA) * self.overall
        key = reason or ""
        old = self.by_reason.get(key)
        self.by_reason[key] = wait_s if old is None else ALPHA * wait_s + (1 - ALPHA) * old

    def estimate(self, position: int, reason: str | None, available_reps: int) -> int:
        # Recent waits in this queue (smoothed) stand for one place in line per free rep.
        per_place = self.by_reason.get(reason or "", self.overall)
        per_place = max(per_place if per_place is not None else DEFAULT_WAIT_S, 10.0)
        return int(round(per_place * position / max(1, available_reps)))


class WaitLimits:
    """Ends a call that still waits after ``max_wait_s``: the customer may then ask for a callback."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def start(self, live: LiveSession, remaining_s: float) -> None:
        """End the call if it still waits after ``remaining_s``."""
        cancel_wait_limit(live)
        if self.shared.settings.max_wait_s <= 0:
            return

        async def expire() -> None:
            await asyncio.sleep(max(0.0, remaining_s))
            if live.wait_limit is asyncio.current_task():
                live.wait_limit = None
            if live.state == "waiting":
                log.info("call %s waited %.0f s without an answer: ending it", live.id, self.shared.settings.max_wait_s)
                await self.shared.finish(live, state="abandoned", ended_by="system", reason=views.MAX_WAIT)

        live.wait_limit = asyncio.create_task(expire(), name=f"wait-limit-{live.id}")


def cancel_wait_limit(live: LiveSession) -> None:
    task, live.wait_limit = live.wait_limit, None
    if task is not None and task is not asyncio.current_task():
        task.cancel()
