"""What the supervisor sees of the floor: the queue, every rep, and live calls with the customer's frustration."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec

from . import views
from .state import LiveSession, RepState


def live_floor(
    sessions: Iterable[LiveSession],
    reps: Iterable[RepState],
    *,
    waiting: Iterable[LiveSession],
    estimated_wait_s: dict[str, int],
) -> dict[str, Any]:
    """``waiting`` in queue order; a rep with neither a socket nor a call shows as offline."""
    now, mono = time.time(), time.monotonic()
    calls = []
    for live in sessions:
        if live.state != "active":
            continue
        update = live.cues.last_update if live.cues is not None else None
        calls.append(
            {
                "session_id": live.id,
                "rep": {"id": live.rep.id, "display_name": live.rep.display_name} if live.rep else None,
                "reason": live.record.reason,
                "language": live.record.language,
                "talk_s": int(now - (live.record.answered_at or now)),
                "customer_frustration": update.smoothed if update else None,
                "customer_flag": bool(update and update.flag_active),
            }
        )
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
    return {
        # Plain values: the HTTP answer's own QueueItem model is converted from them.
        "queue": [msgspec.to_builtins(views.queue_item(live)) for live in waiting],
        "reps": rep_rows,
        "calls": calls,
        "estimated_wait_s": estimated_wait_s,
    }
