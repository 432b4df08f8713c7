"""``/healthz``, readiness: whether a load balancer should send this server traffic; ``/livez``, liveness.

Ready means the database answers a trivial query and, in a cluster (``redis_url`` set), Redis answers PING,
each within :data:`CHECK_TIMEOUT_S`. A server that lost either answers 503 naming it, so haproxy's
``option httpchk GET /healthz`` takes it out of rotation until it answers 200 again (docs/scaling.md). Nothing
here waits longer than the timeouts: a check that hangs is a check that failed. The call desk's counts ride
along for monitoring but do not decide readiness: in a cluster they come from the leader, and no front door
should leave rotation because another one is being replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ...calls.desk import CALL_DESK
from ...config import SETTINGS
from ...storage.health import database_answers
from ...storage.store import STORE, Store
from ..api import PUBLIC, Answer, Routes, respond
from ..models.health import Checks, Health, Liveness, RedisCheck

log = logging.getLogger(__name__)

# Short next to haproxy's ``timeout check`` (docs/scaling.md), so the answer, not the balancer, says why.
CHECK_TIMEOUT_S = 1.0
FLOOR_KEYS = ("waiting", "active", "available_reps")

routes = Routes(tag="Health")


class Readiness:
    """Asks the database and Redis whether they answer now; owns this app's Redis client for the PING.

    Each probe runs as its own task, and the answer waits for it no longer than the timeout: after a cancel a
    driver's cleanup (a rollback on a frozen connection) can hang too. While an earlier probe of a check still
    hangs, no new one starts, so a frozen engine costs one connection, not one per balancer probe. A check logs
    when its state changes, not on every probe (the balancer asks every second or two).
    """

    def __init__(self, redis_url: str | None, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.redis_url = redis_url
        self.timeout_s = timeout_s
        self._redis: Redis | None = None
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, bool] = {}

    async def start(self) -> None:
        if self.redis_url is not None:
            # Connects on first use, so a Redis that is down at start makes the server unready, not unstartable.
            # Retries are _probe's, within its timeout.
            self._redis = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=self.timeout_s,
                socket_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 0),
            )

    async def aclose(self) -> None:
        for probe in self._probes.values():
            probe.cancel()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def checks(self, store: Store) -> Checks:
        ask_database = partial(database_answers, store.engine)
        database, redis = await asyncio.gather(self._probe("database", ask_database), self._redis_answers())
        return Checks(database="ok" if database else "unavailable", redis=redis)

    async def _redis_answers(self) -> RedisCheck:
        if self._redis is None:
            return "off"
        return "ok" if await self._probe("redis", self._redis.ping) else "unavailable"

    async def _probe(self, check: str, ask: Callable[[], Awaitable[object]]) -> bool:
        running = self._probes.get(check)
        if running is not None and not running.done():
            return self._noted(check, False, "the previous probe has not answered yet")
        probe = asyncio.create_task(_twice(ask), name=f"readiness-{check}")
        probe.add_done_callback(_retrieve)
        self._probes[check] = probe
        done, _pending = await asyncio.wait({probe}, timeout=self.timeout_s)
        if not done:
            probe.cancel()
            return self._noted(check, False, f"no answer within {self.timeout_s:g} s")
        failure = probe.exception()
        if failure is not None:
            return self._noted(check, False, f"{type(failure).__name__}: {failure}")
        return self._noted(check, True)

    def _noted(self, check: str, ready: bool, why: str = "") -> bool:
        if self._ready.get(check, True) != ready:
            if ready:
                log.warning("readiness: %s answers again", check)
            else:
                log.warning("readiness: %s unavailable (%s)", check, why)
        self._ready[check] = ready
        return ready


async def _twice(ask: Callable[[], Awaitable[object]]) -> None:
    # A connection the server dropped while it restarted fails once; the pool then drops it (SQLAlchemy
    # invalidates the pool, redis-py the connection), so the second try connects afresh.
    try:
        await ask()
    except Exception:
        await ask()


def _retrieve(probe: asyncio.Task[None]) -> None:
    # An abandoned probe's failure was reported as "no answer": keep asyncio from logging it again.
    if not probe.cancelled():
        probe.exception()


READINESS = web.AppKey("readiness", Readiness)


async def readiness_ctx(app: web.Application) -> AsyncIterator[None]:
    """The readiness checks for the app's life (in ``cleanup_ctx``, after the storage they ask)."""
    readiness = Readiness(app[SETTINGS].redis_url)
    try:
        await readiness.start()
        app[READINESS] = readiness
        yield
    finally:
        await readiness.aclose()


async def _floor(app: web.Application) -> dict[str, int | None]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            floor = await app[CALL_DESK].floor()
        return {key: floor[key] for key in FLOOR_KEYS}
    except Exception:
        log.debug("readiness: the call desk did not answer", exc_info=True)
        return dict.fromkeys(FLOOR_KEYS)


@routes.get(
    "/healthz",
    op="getHealth",
    auth=PUBLIC,
    response=Health,
    answer="Ready: every check is ok (or off).",
    also={503: Answer("Not ready: the checks name what failed; route traffic elsewhere.", Health)},
)
async def healthz(request: web.Request) -> web.Response:
    """Readiness, for a load balancer

    200 when the database answers a trivial query and, in a cluster, Redis answers PING, each within a second;
    503 with the same answer when one did not, naming it as unavailable. The waiting, active and available-rep
    counts come from the call desk and are null when it did not answer in time (they do not decide readiness).
    """
    app = request.app
    checks, floor = await asyncio.gather(app[READINESS].checks(app[STORE]), _floor(app))
    ready = checks.database == "ok" and checks.redis != "unavailable"
    return respond(Health(ok=ready, checks=checks, **floor), 200 if ready else 503)


@routes.get("/livez", op="getLiveness", auth=PUBLIC)
async def livez(request: web.Request) -> Liveness:
    """Liveness

    Answers while the process and its event loop run; asks nothing else, so it stays cheap and a database or
    Redis outage never makes a supervisor restart a server that would recover by itself.
    """
    return Liveness(ok=True)


def setup_routes(app: web.Application) -> None:
    routes.setup(app)
