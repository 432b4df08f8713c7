"""Routing rules: which rep may ring, which calls a rep takes, the queue's order and who rings next.

Pure functions over the live state: no I/O, no timers, no sockets touched, so each rule is tested alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..storage.records import SessionRecord
from .state import LiveSession, RepState


def can_ring(rep: RepState) -> bool:
    """At the desk, connected, free, past their last call's disposition, and not ringing already."""
    return (
        rep.status == "available"
        and bool(rep.conns)
        and rep.session_id is None
        and rep.wrap_up is None
        and rep.offer is None
    )


def matches(rep: RepState, record: SessionRecord) -> bool:
    """Skills and languages: an empty list takes anything, a call without one goes to anyone."""
    reason_ok = not rep.skills or record.reason is None or record.reason in rep.skills
    language_ok = not rep.languages or record.language is None or record.language in rep.languages
    return reason_ok and language_ok


def waiting_order(sessions: Iterable[LiveSession]) -> list[LiveSession]:
    """The waiting calls, highest priority first, then longest waiting; ties keep their arrival order."""
    waiting = [s for s in sessions if s.state == "waiting"]
    waiting.sort(key=lambda s: (-s.record.priority, s.record.queued_at))
    return waiting


def positions(waiting: Iterable[LiveSession]) -> dict[str, int]:
    """Each waiting call's place in line, from 1, given the calls in ``waiting_order``."""
    return {s.id: i + 1 for i, s in enumerate(waiting)}


def available_reps(reps: Iterable[RepState]) -> int:
    return sum(1 for r in reps if r.status == "available" and r.conns)


def next_offers(waiting: Iterable[LiveSession], reps: Iterable[RepState]) -> list[tuple[LiveSession, RepState]]:
    """Which call rings at which rep now: in queue order, the longest-idle matching free rep, one rep per call
    (a callback's call: the rep who started it, when they are free and have not declined it).

    A call already ringing, or whose customer is not connected, waits; so does a call every free rep
    declined or does not match. Equal idle times go to the rep seen first.
    """
    free = [r for r in reps if can_ring(r)]
    pairs: list[tuple[LiveSession, RepState]] = []
    # Callbacks first: their customer was promised the rep who started them (stable: queue order otherwise).
    for live in sorted(waiting, key=lambda s: s.preferred_rep is None):
        if not free:
            break
        if live.offer is not None or live.conns.get("customer") is None:
            continue
        preferred = [r for r in free if r.user.id == live.preferred_rep and r.user.id not in live.declined]
        candidates = preferred or [r for r in free if r.user.id not in live.declined and matches(r, live.record)]
        if not candidates:
            continue
        rep = min(candidates, key=lambda r: r.idle_since)
        free.remove(rep)
        pairs.append((live, rep))
    return pairs
