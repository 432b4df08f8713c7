"""A cluster's new leader takes over the calls in progress (docs/scaling.md, "The leader and the relay").

The database says which calls are active and who answered them; the last leader's live view in Redis says how
long each participant still has to come back and which reps were available. Each call gets new media here:
both sides re-offer when they say hello to the new leader.
"""

from __future__ import annotations

import logging

from .errors import ProtocolError
from .grace import ReconnectGrace
from .media_life import MediaLife
from .state import LiveSession, LiveView, RepState, Shared

log = logging.getLogger(__name__)


async def adopt_active_calls(shared: Shared, grace: ReconnectGrace, media: MediaLife, view: LiveView) -> None:
    store = shared.store
    for record in await store.active_sessions():
        rep = await store.get_user(record.rep_id) if record.rep_id is not None else None
        if rep is None:
            continue
        live = LiveSession(record, rep=rep)
        shared.sessions[record.id] = live
        shared.reps[rep.id] = RepState(rep, status="busy", session_id=record.id)
        for role in ("customer", "rep"):
            grace.start(live, role, view.grace_left(record.id, role))
        if record.customer_ref:
            live.history = await store.customer_history(record.customer_ref, exclude=live.id)
        try:
            await media.start(live)
        except ProtocolError:
            log.warning("ending %s: no media node can carry it after the takeover", live.id)
            await shared.finish(live, state="ended", ended_by="system", reason="media_failed")
    for rep_id, status in view.rep_status.items():
        known = shared.reps.get(rep_id)
        if known is None:
            user = await store.get_user(rep_id)
            if user is None or user.role != "rep":
                continue
            known = shared.reps[rep_id] = RepState(user)
            known.skills, known.languages = await store.get_routing(rep_id)
        if known.session_id is None and status in ("available", "away"):
            known.status = status
