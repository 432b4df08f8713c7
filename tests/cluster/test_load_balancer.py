"""haproxy in front of two front doors (tests/support/haproxy.py, the configuration docs/scaling.md shows): requests
spread over both, a WebSocket upgrades through it and outlives the ordinary request timeouts, the doors get
X-Forwarded-For/-Proto, and a door whose /healthz turns 503 (it lost its database) or that stops is taken out of
rotation, then put back when it is ready again.

Each door is a Rapport server on its own loopback address (127.0.0.3, 127.0.0.4: the whole of 127/8 is local);
door1 stores into a PostgreSQL cluster of the test's own, so the test can take its database away, door2 into
SQLite.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.config import Settings
from tests.support.clients import SignalingClient
from tests.support.haproxy import HAProxy, StartHAProxy, documented_config
from tests.support.postgres import PostgresServer
from tests.support.server import Rapport, running, with_settings

SCALING_DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"
DOOR_HOSTS = ("127.0.0.3", "127.0.0.4")
CLIENT_HOST = "127.0.0.5"


@pytest.fixture
async def doors(settings: Settings, own_postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[list[Rapport]]:
    """Two front doors: door1 on its own PostgreSQL, door2 on SQLite; both trust haproxy's X-Forwarded-*."""
    door_settings = [
        with_settings(settings, data_dir=tmp_path / "door1", database_url=own_postgres.create_database()),
        with_settings(settings, data_dir=tmp_path / "door2"),
    ]
    async with AsyncExitStack() as stack:
        started = []
        for host, door in zip(DOOR_HOSTS, door_settings, strict=True):
            door = with_settings(door, trusted_proxies=("127.0.0.1",))
            started.append(await stack.enter_async_context(running(door, host=host)))
        yield started


def address(door: Rapport) -> tuple[str, int]:
    return door.server.host, door.server.port or 0


async def served_by(http: aiohttp.ClientSession, balancer: HAProxy, requests: int) -> collections.Counter[str]:
    """Which door answered each of ``requests`` GET /api/v1/config through the balancer."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(requests):
        async with http.get(f"{balancer.url}/api/v1/config") as r:
            assert r.status == 200, await r.text()
            seen[r.headers["X-Served-By"]] += 1
    return seen


async def test_requests_spread_and_a_websocket_upgrades_through_haproxy(
    doors: list[Rapport], haproxy: StartHAProxy
) -> None:
    # Ordinary requests may idle 1 s; an upgraded socket lives by the tunnel timeout.
    balancer = haproxy([address(d) for d in doors], client_timeout_s=1.0, tunnel_timeout_s=30.0)
    balancer.wait_for_states({"door1": "UP", "door2": "UP"})
    async with aiohttp.ClientSession() as http:
        seen = await served_by(http, balancer, 10)
        assert seen == {"door1": 5, "door2": 5}, f"round robin: {seen}"

        client = SignalingClient(http, balancer.url)
        await client.connect()
        try:
            assert (await client.request({"type": "ping"}))["type"] == "pong"
            await asyncio.sleep(2.0)  # idle past the client timeout (and under the server's 5 s heartbeat)
            assert (await client.request({"type": "ping"}))["type"] == "pong"
            assert client.closed_code is None
        finally:
            await client.close()


async def test_least_connections_and_the_forwarded_headers(haproxy: StartHAProxy) -> None:
    """What each door is told about the client: its address and the scheme it used."""
    heard: list[tuple[list[str], list[str]]] = []

    async def echo(request: web.Request) -> web.Response:
        # haproxy adds a header line of its own; the client's stays, on the left (the doors read the right-most).
        forwarded_for = [
            hop.strip() for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")
        ]
        heard.append((forwarded_for, request.headers.getall("X-Forwarded-Proto", [])))
        return web.json_response({})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/healthz", ready)
    async with TestServer(app, host=DOOR_HOSTS[0]) as door:
        balancer = haproxy([(DOOR_HOSTS[0], door.port or 0)], balance="leastconn")
        balancer.wait_for_states({"door1": "UP"})
        connector = aiohttp.TCPConnector(local_addr=(CLIENT_HOST, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            # A client's own X-Forwarded-* are kept to the left or replaced: the door believes only haproxy's.
            headers = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
            async with http.get(f"{balancer.url}/echo", headers=headers) as r:
                assert r.status == 200
    forwarded_for, forwarded_proto = heard[-1]
    assert forwarded_for[-1] == CLIENT_HOST, forwarded_for
    assert forwarded_proto == ["http"], "haproxy's own, replacing the client's"


async def test_a_door_that_is_not_ready_or_stopped_leaves_the_rotation_and_comes_back(
    doors: list[Rapport], own_postgres: PostgresServer, haproxy: StartHAProxy
) -> None:
    door1, door2 = doors
    balancer = haproxy([address(d) for d in doors])
    balancer.wait_for_states({"door1": "UP", "door2": "UP"})
    async with aiohttp.ClientSession() as http:
        # door1 loses its database: its /healthz answers 503, and haproxy stops sending it requests.
        await asyncio.to_thread(own_postgres.stop)
        async with http.get(f"{door1.url}/healthz") as r:
            assert r.status == 503
        await asyncio.to_thread(balancer.wait_for_states, {"door1": "DOWN", "door2": "UP"})
        assert await served_by(http, balancer, 6) == {"door2": 6}

        await asyncio.to_thread(own_postgres.start)
        await asyncio.to_thread(balancer.wait_for_states, {"door1": "UP", "door2": "UP"})
        assert set(await served_by(http, balancer, 6)) == {"door1", "door2"}

        # door2 stops altogether: connections refused, the same.
        await door2.stop()
        await asyncio.to_thread(balancer.wait_for_states, {"door1": "UP", "door2": "DOWN"})
        assert await served_by(http, balancer, 6) == {"door1": 6}


def test_docs_show_the_tested_configuration() -> None:
    """docs/scaling.md's haproxy.cfg is what tests/support/haproxy.py writes, with production timings."""
    blocks = re.findall(r"```haproxy\n(.*?)```", SCALING_DOC.read_text(), re.DOTALL)
    assert blocks == [documented_config()], "docs/scaling.md: paste tests.support.haproxy.documented_config()"
