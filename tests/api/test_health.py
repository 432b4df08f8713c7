"""``/healthz`` is readiness: 200 while the database (and, in a cluster, Redis) answers, 503 naming what does not,
never slower than its timeouts, and ready again by itself once the engine is back. ``/livez`` asks nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.config import Settings
from tests.support.postgres import SUPERUSER, PostgresCluster, PostgresServer
from tests.support.redis import RedisServer
from tests.support.server import Rapport, running, with_settings

# The checks' own timeout is 1 s; an answer slower than this hung somewhere.
PROMPT_S = 3.0
RECOVER_S = 10.0


async def health(rapport: Rapport) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    async with rapport.http.get(f"{rapport.url}/healthz") as r:
        return r.status, await r.json(), time.monotonic() - started


async def ready_again(rapport: Rapport) -> dict[str, Any]:
    """The first 200 answer within RECOVER_S (a balancer's next probes)."""
    deadline = time.monotonic() + RECOVER_S
    while True:
        status, body, _took = await health(rapport)
        if status == 200:
            return body
        assert time.monotonic() < deadline, f"not ready again: {status} {body}"


def psql(cluster: PostgresCluster, sql: str) -> None:
    subprocess.run(
        [cluster.bindir / "psql", "-h", str(cluster.socket_dir), "-U", SUPERUSER, "-d", "postgres", "-v",
         "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )  # fmt: skip


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def family(pid: int) -> list[int]:
    """``pid`` and its children (a PostgreSQL postmaster and its backends)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """The processes stopped (SIGSTOP): they keep their sockets open and answer nothing, like a hung host."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def test_ready_on_sqlite_without_redis(rapport: Rapport) -> None:
    status, body, _took = await health(rapport)
    assert status == 200
    assert body == {"ok": True, "checks": {"database": "ok", "redis": "off"}, "waiting": 0, "active": 0,
                    "available_reps": 0}  # fmt: skip
    await rapport.rep("rep1")
    await rapport.customer()
    _status, body, _took = await health(rapport)
    assert (body["waiting"], body["available_reps"]) == (1, 1)
    async with rapport.http.get(f"{rapport.url}/livez") as r:
        assert (r.status, await r.json()) == (200, {"ok": True})


@pytest.mark.parametrize("database", ["postgresql"])
async def test_a_database_that_refuses_connections_is_named_and_readiness_returns(
    rapport: Rapport, settings: Settings, postgres: PostgresCluster
) -> None:
    assert settings.database_url is not None
    name = database_name(settings.database_url)
    assert (await health(rapport))[0] == 200  # the pool holds a connection now
    # Its connections cut and new ones refused: what a failed-over or dropped database looks like to a client.
    psql(postgres, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false; "
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")  # fmt: skip
    try:
        status, body, took = await health(rapport)
        assert status == 503, body
        assert body["ok"] is False and body["checks"] == {"database": "unavailable", "redis": "off"}
        assert took < PROMPT_S
        # The floor's counts still come: they do not depend on the database.
        assert body["waiting"] == 0
        async with rapport.http.get(f"{rapport.url}/livez") as r:
            assert r.status == 200, "liveness asks no database"
    finally:
        psql(postgres, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    body = await ready_again(rapport)
    assert body["checks"] == {"database": "ok", "redis": "off"}


async def test_a_stopped_or_hung_postgresql_is_unready_within_the_timeout(
    own_postgres: PostgresServer, settings: Settings
) -> None:
    url = own_postgres.create_database()
    async with running(with_settings(settings, database_url=url)) as rapport:
        assert (await health(rapport))[0] == 200
        own_postgres.stop()
        status, body, took = await health(rapport)
        assert (status, body["checks"]["database"]) == (503, "unavailable") and took < PROMPT_S
        own_postgres.start()
        await ready_again(rapport)

        assert own_postgres.process is not None
        with frozen(family(own_postgres.process.pid)):
            for _probe in range(3):  # the first probe hangs; the next ones must not pile up behind it
                status, body, took = await health(rapport)
                assert (status, body["checks"]["database"]) == (503, "unavailable")
                assert took < PROMPT_S, f"/healthz took {took:.1f} s with the database hung"
        await ready_again(rapport)


@pytest.mark.parametrize("database", ["postgresql"])
async def test_a_stopped_or_hung_redis_is_named_and_readiness_returns(
    redis_server: RedisServer, settings: Settings
) -> None:
    clustered = with_settings(settings, redis_url=redis_server.url, cluster_secret="health-test-secret")
    async with running(clustered) as rapport:
        status, body, _took = await health(rapport)
        assert (status, body["checks"]) == (200, {"database": "ok", "redis": "ok"})

        redis_server.stop()
        status, body, took = await health(rapport)
        assert status == 503 and body["ok"] is False, body
        assert body["checks"] == {"database": "ok", "redis": "unavailable"} and took < PROMPT_S
        redis_server.start()  # empty, on the same address, as a restarted Redis
        assert (await ready_again(rapport))["checks"]["redis"] == "ok"

        assert redis_server.process is not None
        with frozen([redis_server.process.pid]):
            status, body, took = await health(rapport)
            assert (status, body["checks"]["redis"]) == (503, "unavailable") and took < PROMPT_S
        await ready_again(rapport)
