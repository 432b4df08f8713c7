"""Capacity: how many calls this server carries, and who may still join the queue.

A full server refuses new calls rather than degrading the ones it carries; anonymous load meets a
bounded queue and a bounded share of it per client address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from ..media.call import other
from ..media.link import MediaPool
from ..media.pool import default_capacity
from . import routing
from .errors import ProtocolError
from .state import LiveSession, Shared

FULL_MESSAGE = "All lines are busy right now. Please try again in a few minutes."
QUEUE_FULL_MESSAGE = "Too many people are waiting right now. Please try again in a few minutes."
TOO_MANY_WAITING_MESSAGE = "Calls from this address are already waiting. Use the page where you started one."


class AtCapacity(Exception):
    """The server carries as many calls as it can; new ones are refused, not degraded."""


class QueueFull(AtCapacity):
    """As many customers wait as the server keeps waiting (``max_waiting_calls``)."""


class TooManyWaiting(Exception):
    """This client address already has ``max_waiting_per_address`` calls waiting."""


class Admission:
    """The server's call capacity and the caps on waiting, over the centre's live sessions."""

    def __init__(self, shared: Shared, pool: MediaPool | None = None) -> None:
        self.shared = shared
        # Media nodes: the cluster's capacity is what its live nodes announce.
        self.pool = pool
        # Calls being created (between the cap check and the queue), in all and per address.
        self.joining: dict[str, int] = {}
        self.joining_total = 0

    @property
    def capacity(self) -> int:
        cluster = self.pool.capacity() if self.pool is not None else None
        return default_capacity(self.shared.settings) if cluster is None else cluster

    def active_calls(self) -> int:
        return sum(1 for s in self.shared.sessions.values() if s.state == "active")

    def load(self) -> int:
        """Calls, and supervisors in calls: a third party's peer forwards as many tracks as a call's two do.

        A supervisor may always join a call (help for a call in trouble comes before the next caller); the
        room they take is counted against the next answer instead.
        """
        assisted = sum(1 for s in self.shared.sessions.values() if s.state == "active" and s.assist is not None)
        return self.active_calls() + assisted

    def is_full(self) -> bool:
        """Every media slot is busy and as many customers already wait: a new one would only wait longer."""
        waiting = len(routing.waiting_order(self.shared.sessions.values()))
        return self.load() >= self.capacity and waiting >= self.capacity

    def check_answer(self, live: LiveSession) -> None:
        """A rep may answer only while a media slot is free (a transferred call keeps its own)."""
        if live.media is None and self.load() >= self.capacity:
            self.shared.metrics.refused("accept")
            raise ProtocolError("at_capacity", FULL_MESSAGE)

    @contextlib.contextmanager
    def admit(self, address: str | None) -> Iterator[None]:
        """Refuse a new call the server cannot take; count it as joining until the block ends."""
        if self.is_full():
            self.shared.metrics.refused("customer")
            raise AtCapacity(FULL_MESSAGE)
        self._check_waiting_caps(address)
        # Counted from here until the call is in the queue, so a burst cannot slip past the caps.
        self.joining_total += 1
        if address is not None:
            self.joining[address] = self.joining.get(address, 0) + 1
        try:
            yield
        finally:
            self.joining_total -= 1
            if address is not None:
                left = self.joining.pop(address) - 1
                if left:
                    self.joining[address] = left

    def _check_waiting_caps(self, address: str | None) -> None:
        """Anonymous load: a bounded queue, and a bounded share of it for one address."""
        waiting = [s for s in self.shared.sessions.values() if s.state == "waiting"]
        total_cap = self.shared.settings.max_waiting_calls
        if total_cap > 0 and len(waiting) + self.joining_total >= total_cap:
            self.shared.metrics.refused("customer")
            raise QueueFull(QUEUE_FULL_MESSAGE)
        per_address = self.shared.settings.max_waiting_per_address
        if per_address > 0 and address is not None:
            mine = sum(1 for s in waiting if s.address == address) + self.joining.get(address, 0)
            if mine >= per_address:
                raise TooManyWaiting(TOO_MANY_WAITING_MESSAGE)


def media_stats(sessions: Mapping[str, LiveSession]) -> list[dict[str, Any]]:
    """Frames each way of every call with media, for the metrics scrape."""
    out = []
    for live in sessions.values():
        if live.media is None:
            continue
        stats = live.media.stats()
        for role in ("customer", "rep"):
            out.append(
                {
                    "session_id": live.id,
                    "from": role,
                    "to": other(role),
                    "video_in": stats[role].get("video_in", 0),
                    "video_out": stats[other(role)].get("video_out", 0),
                }
            )
    return out
