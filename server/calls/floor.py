"""What the supervisor sees of the floor: the queue, every rep, live calls with the customer's frustration, and
the calls that need attention.

A call needs attention when its rep asked for help, when the customer's frustration flag is up, or when it runs
far past its reason's usual handle time. The list names the call and its rep; it never scores a rep.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import msgspec

from . import views
from .state import LiveSession, RepState

# Urgency of each reason a call needs attention; a call's urgency is their sum.
URGENCY = {"help": 4, "frustration": 2, "long_call": 1}
HANDLE_SAMPLES = 50
MIN_HANDLE_SAMPLES = 5


class HandleTimes:
    """The usual handle time of each reason: the median of the last calls answered here."""

    def __init__(self, default_s: float) -> None:
        self.default_s = default_s
        self._seen: defaultdict[str | None, deque[float]] = defaultdict(lambda: deque(maxlen=HANDLE_SAMPLES))

    def observe(self, reason: str | None, handle_s: float) -> None:
        if handle_s > 0:
            self._seen[reason].append(handle_s)

    def usual(self, reason: str | None) -> float:
        seen = self._seen.get(reason)
        if seen is None or len(seen) < MIN_HANDLE_SAMPLES:
            return self.default_s
        return statistics.median(seen)


def attention(live: LiveSession, *, now: float, long_after_s: float) -> tuple[list[str], float] | None:
    """Why this live call needs a supervisor, and since when; None when it does not."""
    why: list[str] = []
    since: list[float] = []
    if live.help_since is not None:
        why.append("help")
        since.append(live.help_since)
    update = live.cues.last_update if live.cues is not None else None
    if update is not None and update.flag_active:
        why.append("frustration")
        since.append(now - update.flag_seconds)
    answered = live.record.answered_at
    if answered is not None and now - answered > long_after_s:
        why.append("long_call")
        since.append(answered + long_after_s)
    return (why, min(since)) if why else None


def live_floor(
    sessions: Iterable[LiveSession],
    reps: Iterable[RepState],
    *,
    waiting: Iterable[LiveSession],
    estimated_wait_s: dict[str, int],
    handle_times: HandleTimes | None = None,
    long_call_factor: float = 2.0,
) -> dict[str, Any]:
    """``waiting`` in queue order; a rep with neither a socket nor a call shows as offline."""
    now, mono = time.time(), time.monotonic()
    calls = []
    needs: list[tuple[int, float, Any]] = []
    for live in sessions:
        if live.state != "active":
            continue
        update = live.cues.last_update if live.cues is not None else None
        talk_s = int(now - (live.record.answered_at or now))
        assist = live.assist
        calls.append(
            {
                "session_id": live.id,
                "rep": {"id": live.rep.id, "display_name": live.rep.display_name} if live.rep else None,
                "reason": live.record.reason,
                "language": live.record.language,
                "talk_s": talk_s,
                "customer_frustration": update.smoothed if update else None,
                "customer_flag": bool(update and update.flag_active),
                "help": live.help_since is not None,
                "assist": (
                    {
                        "supervisor": {"id": assist.supervisor.id, "display_name": assist.supervisor.display_name},
                        "mode": assist.mode,
                    }
                    if assist is not None
                    else None
                ),
            }
        )
        usual = handle_times.usual(live.record.reason) if handle_times is not None else float("inf")
        found = attention(live, now=now, long_after_s=usual * long_call_factor)
        if found is not None:
            why, since = found
            urgency = sum(URGENCY[w] for w in why)
            entry = views.attention_entry(live, why=why, urgency=urgency, since=since, talk_s=talk_s)
            needs.append((urgency, since, entry))
    rep_rows = [
        {
            "id": r.user.id,
            "display_name": r.user.display_name,
            "status": r.status if r.conns or r.session_id else "offline",
            "idle_s": int(mono - r.idle_since),
            "session_id": r.session_id,
            "skills": sorted(r.skills),
            "languages": sorted(r.languages),
        }
        for r in reps
    ]
    # Most urgent first; of equal urgency, the one waiting longest for help.
    needs.sort(key=lambda item: (-item[0], item[1]))
    return {
        # Plain values: the HTTP answer's own models are converted from them.
        "queue": [msgspec.to_builtins(views.queue_item(live)) for live in waiting],
        "reps": rep_rows,
        "calls": calls,
        "attention": [msgspec.to_builtins(entry) for _u, _s, entry in needs],
        "estimated_wait_s": estimated_wait_s,
    }
