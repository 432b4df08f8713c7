"""The leader's live view in Redis: the queue order, ring offers, rep presence and status, grace deadlines.

The leader is the only writer, and writes the whole view at most a few times a second (it is small: the
waiting calls and the reps). The next leader reads the grace deadlines and rep statuses back, so a takeover
keeps each participant's time to come back and each rep's availability. Supervisors' tools and operators can
read it too (docs/scaling.md). If Redis restarts empty, the next write fills it again.
"""

from __future__ import annotations

import asyncio
import json
import logging

from redis.exceptions import RedisError

from ..calls import routing
from ..calls.center import CallCenter
from ..calls.state import LiveView
from .bus import Bus, key

log = logging.getLogger(__name__)

QUEUE = key("live", "queue")
OFFERS = key("live", "offers")
REPS = key("live", "reps")
GRACE = key("live", "grace")
WRITE_EVERY_S = 0.5


async def write(bus: Bus, center: CallCenter) -> None:
    waiting = routing.waiting_order(center.sessions.values())
    offers = {live.id: str(live.offer.rep_id) for live in waiting if live.offer is not None}
    reps = {
        str(rep.user.id): json.dumps(
            {"status": rep.status, "session_id": rep.session_id, "wrap_up": rep.wrap_up, "sockets": len(rep.conns)}
        )
        for rep in center.reps.values()
    }
    grace = {
        f"{live.id}:{role}": str(until) for live in center.sessions.values() for role, until in live.grace_until.items()
    }
    pipe = bus.redis.pipeline(transaction=True)
    pipe.delete(QUEUE, OFFERS, REPS, GRACE)
    if waiting:
        pipe.rpush(QUEUE, *[live.id for live in waiting])
    for name, mapping in ((OFFERS, offers), (REPS, reps), (GRACE, grace)):
        if mapping:
            pipe.hset(name, mapping=mapping)  # type: ignore[arg-type]
    await pipe.execute()


async def read(bus: Bus) -> LiveView:
    """What the last leader left; empty when Redis lost it (then everyone gets a full grace)."""
    try:
        grace = await bus.redis.hgetall(GRACE)
        reps = await bus.redis.hgetall(REPS)
    except (RedisError, OSError) as exc:
        log.warning("could not read the live view (%s); starting from the database alone", exc)
        return LiveView()
    view = LiveView(grace_until={_text(k): float(v) for k, v in grace.items()})
    for rep_id, value in reps.items():
        view.rep_status[int(rep_id)] = json.loads(value)["status"]
    return view


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def keep_written(bus: Bus, center: CallCenter) -> None:
    """While this process leads: the view in Redis follows the call centre's."""
    while True:
        try:
            await write(bus, center)
        except (RedisError, OSError) as exc:
            log.debug("live view not written: %s", exc)
        await asyncio.sleep(WRITE_EVERY_S)
