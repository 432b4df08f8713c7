"""Webhooks cannot be turned against the server's own network (SSRF).

Literal internal addresses are refused when an endpoint is registered; names are checked at connect time on the
addresses they resolve to (here a resolver injected into the dispatcher plays DNS, so nothing leaves the netns);
webhook_allowed_hosts lets named hosts through; last_error never repeats what the remote said.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from server.config import Settings
from server.storage.api_keys import ApiKeyStore
from server.webhooks.dispatcher import WebhookDispatcher
from server.webhooks.guard import BlockedAddress, blocked_reason, guarded_socket, literal_address
from tests.support.server import Rapport, start_rapport, with_settings

MARKER = "RECEIVER-SECRET-7f3a"
FAST = (0.2,)

# Literal hosts of every internal kind, with the class the refusal names.
INTERNAL_URLS: list[tuple[str, str]] = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://127.9.9.9/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://127.1/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),
    ("http://0x7f000001/hook", "loopback"),
    ("http://0177.0.0.1/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fd12:3456::1]/hook", "private"),
    ("http://[64:ff9b::a01:203]/hook", "private"),  # NAT64 of 10.1.2.3
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://100.100.100.200/latest/meta-data/", "cloud metadata"),
    ("http://168.63.129.16/machine", "cloud metadata"),
    ("http://169.254.10.10/hook", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://100.64.0.1/hook", "reserved"),  # carrier-grade NAT: not public
    ("http://198.18.0.1/hook", "private"),  # benchmarking (Python's ipaddress counts it as private)
    ("http://192.0.2.1/hook", "private"),  # documentation
]


class NamesResolver(AbstractResolver):
    """DNS for the test: fixed answers, and nothing for any other name (no lookup leaves the test)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"no such name in the test: {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A webhook receiver on loopback: its port, and the bodies it was sent."""
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield int(server.port or 0), bodies
    finally:
        await server.close()


async def settled(dispatcher: WebhookDispatcher, endpoint_id: int, timeout: float = 10.0) -> dict[str, Any]:
    """The endpoint's delivery once it is delivered or failed."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await dispatcher.list_deliveries(endpoint_id)
        if rows and rows[0]["state"] in ("delivered", "failed"):
            return rows[0]
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


# at registration


def test_every_internal_class_is_named() -> None:
    for url, reason in INTERNAL_URLS:
        host = urlsplit(url).hostname or ""
        if "localhost" in host:
            continue
        address = literal_address(host)
        assert address is not None and blocked_reason(address) == reason, (url, address)
    for public in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"):
        address = literal_address(public)
        assert address is not None and blocked_reason(address) is None, public


async def test_the_api_refuses_literal_internal_addresses_with_a_clear_400(rapport: Rapport) -> None:
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("webhooks:manage",))
    headers = {"Authorization": f"Bearer {secret}"}
    for url, reason in INTERNAL_URLS:
        body = {"url": url, "events": ["session.ended"]}
        async with rapport.http.post(f"{rapport.url}/api/v1/webhooks", json=body, headers=headers) as r:
            answer = await r.json()
        assert r.status == 400 and answer["error"]["code"] == "bad_request", (url, answer)
        message = answer["error"]["message"]
        assert f"a {reason} address" in message and "webhook_allowed_hosts" in message, (url, message)
    async with rapport.http.get(f"{rapport.url}/api/v1/webhooks", headers=headers) as r:
        assert (await r.json())["items"] == []
    # A public host is fine (it is checked again, on its addresses, when a delivery connects).
    body = {"url": "https://crm.example.com/hook", "events": ["session.ended"]}
    async with rapport.http.post(f"{rapport.url}/api/v1/webhooks", json=body, headers=headers) as r:
        assert r.status == 201


async def test_webhook_allowed_hosts_lets_an_operator_allow_an_internal_host(settings: Settings) -> None:
    rapport = await start_rapport(with_settings(settings, webhook_allowed_hosts=("10.1.2.3", "crm.internal")))
    try:
        _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("webhooks:manage",))
        headers = {"Authorization": f"Bearer {secret}"}
        for url, status in (
            ("http://10.1.2.3/hook", 201),
            ("http://crm.internal:8443/hook", 201),
            ("http://10.1.2.4/hook", 400),
            ("http://127.0.0.1/hook", 400),
        ):
            body = {"url": url, "events": ["session.ended"]}
            async with rapport.http.post(f"{rapport.url}/api/v1/webhooks", json=body, headers=headers) as r:
                assert r.status == status, (url, await r.text())
    finally:
        await rapport.stop()


# at connect time


async def test_a_name_that_resolves_to_loopback_is_refused_when_the_delivery_connects(
    engine: AsyncEngine, receiver: tuple[int, list[bytes]]
) -> None:
    port, bodies = receiver
    # What DNS rebinding does: a public-looking name whose answer is an internal address at delivery time.
    resolver = NamesResolver(
        {
            "hooks.example.com": ["127.0.0.1"],
            "mixed.example.com": ["10.0.0.7", "::ffff:127.0.0.1", "169.254.169.254"],
        }
    )
    # An endpoint stored while 127.0.0.1 was allowed (or before this check existed) is refused once it is not.
    earlier = WebhookDispatcher(engine, allowed_hosts=("127.0.0.1",))
    stored, _ = await earlier.create_endpoint(f"http://127.0.0.1:{port}/hook", ("session.ended",))
    dispatcher = WebhookDispatcher(engine, backoff_s=FAST, resolver=resolver)
    rebinding, _ = await dispatcher.create_endpoint(f"http://hooks.example.com:{port}/hook", ("session.ended",))
    mixed, _ = await dispatcher.create_endpoint(f"http://mixed.example.com:{port}/hook", ("session.ended",))
    await dispatcher.start()
    try:
        assert await dispatcher.emit("session.ended", {"session": {"session_id": "s_1"}}) == 3
        for endpoint in (rebinding, mixed, stored):
            row = await settled(dispatcher, endpoint.id)
            # Refused for good on the first attempt: retrying cannot make the address public.
            assert (row["state"], row["attempts"], row["last_error"], row["last_status"]) == (
                "failed",
                1,
                "blocked address",
                None,
            ), endpoint.url
    finally:
        await dispatcher.aclose()
    assert {"hooks.example.com", "mixed.example.com"} <= set(resolver.asked)
    assert bodies == []


async def test_the_allow_list_lets_a_named_host_through_and_no_other(
    engine: AsyncEngine, receiver: tuple[int, list[bytes]]
) -> None:
    port, bodies = receiver
    resolver = NamesResolver({"crm.internal": ["127.0.0.1"], "evil.example.com": ["127.0.0.1"]})
    dispatcher = WebhookDispatcher(engine, backoff_s=FAST, resolver=resolver, allowed_hosts=("CRM.internal",))
    allowed, _ = await dispatcher.create_endpoint(f"http://crm.internal:{port}/hook", ("session.ended",))
    other, _ = await dispatcher.create_endpoint(f"http://evil.example.com:{port}/hook", ("session.ended",))
    await dispatcher.start()
    try:
        await dispatcher.emit("session.ended", {"session": {"session_id": "s_2"}})
        assert (await settled(dispatcher, allowed.id))["state"] == "delivered"
        assert (await settled(dispatcher, other.id))["last_error"] == "blocked address"
    finally:
        await dispatcher.aclose()
    assert len(bodies) == 1 and b'"s_2"' in bodies[0]


def test_the_socket_factory_refuses_internal_addresses_whatever_resolved_them() -> None:
    for address in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fe80::1%1", "::ffff:192.168.0.1"):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with pytest.raises(BlockedAddress):
            guarded_socket((family, socket.SOCK_STREAM, 6, "", (address, 80)))
    sock = guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)))
    sock.close()  # a public address only gets its socket; nothing is connected here


# what last_error may say


async def _talker(reply: bytes) -> tuple[asyncio.Server, int]:
    """A TCP server on loopback that answers every request with ``reply`` and hangs up."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_last_error_is_a_class_of_error_never_the_remote_s_words(engine: AsyncEngine) -> None:
    replies = {
        "http 500": f"HTTP/1.1 500 {MARKER}\r\nContent-Length: {len(MARKER)}\r\n\r\n{MARKER}".encode(),
        "http 302 (redirects are not followed)": (
            f"HTTP/1.1 302 {MARKER}\r\nLocation: http://{MARKER}/\r\nContent-Length: 0\r\n\r\n"
        ).encode(),
        "invalid response": f"{MARKER} {MARKER}\r\n\r\n".encode(),
        "connection closed": b"",
    }
    servers = []
    dispatcher = WebhookDispatcher(engine, backoff_s=(), allowed_hosts=("127.0.0.1",))
    endpoints = {}
    for expected, reply in replies.items():
        server, port = await _talker(reply)
        servers.append(server)
        endpoints[expected], _ = await dispatcher.create_endpoint(f"http://127.0.0.1:{port}/h", ("session.ended",))
    # Nothing listens here: refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    endpoints["connection refused"], _ = await dispatcher.create_endpoint(
        f"http://127.0.0.1:{closed_port}/h", ("session.ended",)
    )
    await dispatcher.start()
    try:
        await dispatcher.emit("session.ended", {"session": {"session_id": "s_3"}})
        for expected, endpoint in endpoints.items():
            row = await settled(dispatcher, endpoint.id)
            assert row["state"] == "failed" and row["last_error"] == expected, (expected, row)
            assert MARKER not in str(row)
    finally:
        await dispatcher.aclose()
        for server in servers:
            server.close()
            await server.wait_closed()
