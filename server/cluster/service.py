"""The cluster's parts started and stopped in order: the bus, this front door, then the leader lease."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..calls.center import CallCenter
from ..calls.desk import CALL_DESK
from ..config import SETTINGS
from ..signalling.endpoint import SOCKET_SINK
from ..storage.store import STORE
from .bus import BUS, Bus
from .door import ClusterDesk, Door
from .leader import Leadership

LEADERSHIP = web.AppKey("leadership", Leadership)
DOOR = web.AppKey("door", Door)
BUS_START_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def running_cluster(app: web.Application, make_center: Callable[[], CallCenter]) -> AsyncIterator[None]:
    """Shut down in reverse: stop leading (handing the calls over), stop the door, close the bus."""
    settings = app[SETTINGS]
    assert settings.redis_url is not None
    if settings.db_url.startswith("sqlite"):
        raise ValueError("a cluster shares one PostgreSQL database: set database_url (docs/scaling.md)")
    if not settings.cluster_secret:
        raise ValueError("a cluster needs cluster_secret: it signs invite links and authenticates media nodes")
    bus = Bus(settings.redis_url)
    await bus.start()
    try:
        await bus.wait_connected(BUS_START_TIMEOUT_S)
    except TimeoutError:
        await bus.aclose()
        raise RuntimeError(f"could not reach Redis at {settings.redis_url}") from None
    door = Door(bus, settings.node_name, settings.node_timeout_s)
    leadership = Leadership(bus, settings, app[STORE], make_center)
    try:
        await door.start()
        app[BUS], app[DOOR] = bus, door
        app[CALL_DESK] = ClusterDesk(door)
        app[SOCKET_SINK] = door
        await leadership.start()
        app[LEADERSHIP] = leadership
        yield
    finally:
        await leadership.aclose()
        await door.aclose()
        await bus.aclose()
