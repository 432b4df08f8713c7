"""What a load balancer and a supervisor's monitoring read: liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .common import Count, Reply

DatabaseCheck = Literal["ok", "unavailable"]
RedisCheck = Literal["ok", "unavailable", "off"]
# None: the call desk did not answer in time (in a cluster, while no front door holds the leader lease).
FloorCount = Annotated[Count | None, Meta(description="From the call desk; null when it did not answer in time.")]


class Checks(Reply, kw_only=True):
    """What this server depends on, each asked now with a short timeout."""

    database: Annotated[DatabaseCheck, Meta(description="A trivial query on the database.")]
    redis: Annotated[RedisCheck, Meta(description="PING to Redis; off on one box (no redis_url).")]


class Health(Reply, kw_only=True):
    """Whether this server is ready for traffic, what it checked, and the floor's counts."""

    ok: Annotated[bool, Meta(description="Every check is ok or off: route traffic here.")]
    checks: Checks
    waiting: FloorCount
    active: FloorCount
    available_reps: FloorCount


class Liveness(Reply, kw_only=True):
    """The process runs and its event loop answers; nothing else is asked."""

    ok: Literal[True]
