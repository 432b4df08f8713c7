"""The queue as reps and waiting customers see it, sent coalesced: at most ``queue_updates_per_s`` a second.

Reps get the whole queue once (``queue.snapshot`` on connect or ``queue.resync``), then ``queue.delta``s
(queue_feed.py): one delta, encoded once, for every rep, not the whole queue each. A waiting customer hears their
place when it or their estimate changed, and again every ``QUEUE_TICK_S`` whatever happened. A send orders the queue
and counts the free reps once, however many wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from . import routing, views
from .participant import encode_message
from .payloads import QueueSnapshot
from .queue_feed import QueueFeed
from .state import LiveSession, Shared
from .waits import WaitEstimates

# Waiting customers hear their estimate again this often even when nothing changed.
QUEUE_TICK_S = 10.0


class QueueBroadcast:
    """Rings first on every change, then tells everyone, folding a burst of changes into one send."""

    def __init__(self, shared: Shared, waits: WaitEstimates, ring: Callable[[], None]) -> None:
        self.shared = shared
        self.waits = waits
        self.ring = ring
        self.closed = False
        # When the last send went out, and the one waiting to go.
        self._sent_at = float("-inf")
        self._flush: asyncio.TimerHandle | None = None
        self._tick: asyncio.Task[None] | None = None
        self.feed = QueueFeed()
        # What each waiting customer was last told (position, estimate): unchanged, it is not sent again until
        # the next tick.
        self._told: dict[str, tuple[int, int]] = {}
        self._retell = False

    def start(self) -> None:
        self._tick = asyncio.create_task(self._ticker(), name="queue-ticker")

    async def aclose(self) -> None:
        self.closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick

    def changed(self) -> None:
        """Ring at once; tell reps and waiting customers at most ``queue_updates_per_s`` times a second.

        Every join, leave and status change calls this: without coalescing, a burst of N joins
        would send N snapshots of up to N items to every rep. The first change goes out at once,
        later ones within the interval are folded into one send at its end.
        """
        if self.closed:
            return
        self.ring()
        if self._flush is not None:
            return
        loop = asyncio.get_running_loop()
        rate = self.shared.settings.queue_updates_per_s
        due = self._sent_at + (1.0 / rate if rate > 0 else 0.0)
        if loop.time() >= due:
            self._send()
        else:
            self._flush = loop.call_later(due - loop.time(), self._flush_due)

    def waiting(self) -> list[LiveSession]:
        return routing.waiting_order(self.shared.sessions.values())

    def available_reps(self) -> int:
        return routing.available_reps(self.shared.reps.values())

    def estimated_wait(self, position: int, reason: str | None = None) -> int:
        return self.waits.estimate(position, reason, self.available_reps())

    def send_position(self, live: LiveSession, position: int) -> None:
        wait = self.estimated_wait(position, live.record.reason)
        self._told[live.id] = (position, wait)
        live.send_to_customer(views.queue_position(position, wait))

    def snapshot(self) -> QueueSnapshot:
        """The queue for a rep who (re)connects or asks for ``queue.resync``: the version the next delta follows.

        A change still waiting for its turn goes out now (to everyone), so the copy is not behind the queue.
        """
        if self._flush is not None and not self.closed:
            self._flush.cancel()
            self._flush = None
            self._send()
        elif self.feed.version == 0:
            self._update_feed(self.waiting(), self.available_reps())
        return self.feed.snapshot()

    def _update_feed(self, waiting: list[LiveSession], available: int) -> None:
        online = [(r.user, r.status) for r in self.shared.reps.values() if r.conns]
        delta = self.feed.update(views.queue_items(waiting), available, views.rep_entries(online))
        if delta is None:
            return
        frame = encode_message(delta)
        for rep in self.shared.reps.values():
            for conn in rep.conns:
                conn.send_encoded(delta, frame)

    def _flush_due(self) -> None:
        self._flush = None
        if not self.closed:
            self._send()

    def _send(self) -> None:
        self._sent_at = asyncio.get_running_loop().time()
        retell, self._retell = self._retell, False
        waiting = self.waiting()
        available = self.available_reps()
        told, self._told = self._told, {}
        for position, live in enumerate(waiting, start=1):
            wait = self.waits.estimate(position, live.record.reason, available)
            if retell or told.get(live.id) != (position, wait):
                live.send_to_customer(views.queue_position(position, wait))
            self._told[live.id] = (position, wait)
        self._update_feed(waiting, available)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(QUEUE_TICK_S)
            if self.waiting():
                self._retell = True
                self.changed()
