"""Behind a reverse proxy: X-Forwarded-For/-Proto count only from trusted_proxies; Secure cookies and HSTS under
HTTPS; /metrics with its token or from loopback only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request

from server.app import create_app
from server.config import Settings, load_settings
from server.http.auth import hash_password
from server.http.security import HSTS, client_address, original_scheme
from server.metrics import require_metrics_access
from server.storage.store import STORE
from server.tls import ssl_context
from tests.support.server import PASSWORD, Rapport, running, start_rapport, with_settings

PROXY = "127.0.0.1"  # the test client's own address: trusting it makes the test a reverse proxy
METRICS_TOKEN = "metrics-" + "k" * 32


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[Rapport]:
    """A server that trusts the test client as its reverse proxy."""
    async with running(with_settings(settings, trusted_proxies=(PROXY,), max_calls=100)) as rapport:
        yield rapport


@pytest.fixture
async def direct(settings: Settings) -> AsyncIterator[Rapport]:
    """A server that trusts some other proxy, not the test client."""
    async with running(with_settings(settings, trusted_proxies=("10.9.9.9", "fd00::/8"), max_calls=100)) as rapport:
        yield rapport


async def start_calls(rapport: Rapport, forwarded_for: list[str]) -> list[int]:
    """POST /api/v1/calls once per X-Forwarded-For value; the statuses."""
    statuses = []
    async with aiohttp.ClientSession() as http:
        for address in forwarded_for:
            headers = {"X-Forwarded-For": address}
            async with http.post(f"{rapport.url}/api/v1/calls", json={}, headers=headers) as r:
                statuses.append(r.status)
    return statuses


# the client address limits are keyed on


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(direct: Rapport) -> None:
    # 31 "different" clients: all one peer, so the per-address limits (waiting calls, calls a minute) stop them.
    statuses = await start_calls(direct, [f"203.0.113.{i}" for i in range(31)])
    assert statuses[0] == 201 and 429 in statuses, statuses


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(proxied: Rapport) -> None:
    # Each client its own limits: 31 calls through the proxy from 31 addresses all queue.
    statuses = await start_calls(proxied, [f"198.51.100.7, 203.0.113.{i}" for i in range(31)])
    assert statuses == [201] * 31
    # One client through the proxy is limited like one client (the left-most entry is the client's own claim).
    statuses = await start_calls(proxied, [f"10.{i}.0.1, 203.0.113.200" for i in range(31)])
    assert statuses[0] == 201 and 429 in statuses, statuses


def _request(peer: str, headers: dict[str, str], settings: Settings) -> web.Request:
    class Peer:
        """The transport's one answer that matters here: who is on the other end."""

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 40000) if name == "peername" else default

    return make_mocked_request("GET", "/", headers=headers, app=create_app(settings), transport=Peer())


def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(settings: Settings) -> None:
    trusting = with_settings(settings, trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    cases = [
        # (peer, X-Forwarded-For, client)
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # 1.2.3.4 is the client's invention
        ("127.0.0.1", "1.2.3.4, 203.0.113.9, 10.1.1.1", "203.0.113.9"),  # two proxies in a row
        ("127.0.0.1", "10.2.2.2, 10.1.1.1", "10.2.2.2"),  # all proxies: the furthest one
        ("127.0.0.1", "not-an-address, 203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, junk", "127.0.0.1"),  # junk next to us: believe nothing beyond it
        ("127.0.0.1", "[2001:db8::9]:4711", "2001:db8::9"),
        ("127.0.0.1", "203.0.113.9:4711", "203.0.113.9"),
        ("127.0.0.1", "::ffff:203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("192.0.2.50", "203.0.113.9", "192.0.2.50"),  # not a trusted proxy: its header means nothing
    ]
    for peer, forwarded, expected in cases:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        assert client_address(_request(peer, headers, trusting)) == expected, (peer, forwarded)
    # Nobody is trusted by default.
    assert client_address(_request("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, settings)) == "127.0.0.1"
    for proto, expected in (("https", "https"), ("HTTPS", "https"), ("http, https", "https"), ("gopher", "http")):
        request = _request("10.3.3.3", {"X-Forwarded-Proto": proto}, trusting)
        assert original_scheme(request) == expected, proto
    assert original_scheme(_request("192.0.2.50", {"X-Forwarded-Proto": "https"}, trusting)) == "http"


def test_trusted_proxies_are_checked_when_the_settings_load() -> None:
    loaded = load_settings({"trusted_proxies": "127.0.0.1, 10.0.0.0/8,fd00::/8"}, env={})
    assert loaded.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "fd00::/8")
    with pytest.raises(ValueError, match="'proxy.example.com' is not an IP address"):
        load_settings({"trusted_proxies": "127.0.0.1,proxy.example.com"}, env={})
    with pytest.raises(ValueError, match="metrics_token"):
        load_settings({"metrics_public": True}, env={})


# HTTPS as the browser saw it


async def login(rapport: Rapport, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        body = {"username": "rep1", "password": PASSWORD}
        async with http.post(f"{rapport.url}/api/v1/auth/login", json=body, headers=headers) as r:
            assert r.status == 200
            return r


async def test_https_via_a_trusted_proxy_gives_secure_cookies_and_hsts(proxied: Rapport) -> None:
    r = await login(proxied, {"X-Forwarded-Proto": "https"})
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("rapport_session=") and "Secure" in cookie and "HttpOnly" in cookie
    assert r.headers["Strict-Transport-Security"] == HSTS == "max-age=31536000; includeSubDomains"
    async with aiohttp.ClientSession() as http:
        for path in ("/call", "/api/v1/config", "/api/v1/sessions"):  # a page, an answer, an error
            async with http.get(f"{proxied.url}{path}", headers={"X-Forwarded-Proto": "https"}) as page:
                assert page.headers.get("Strict-Transport-Security") == HSTS, path
        # Plain HTTP through the same proxy: neither.
        async with http.get(f"{proxied.url}/call", headers={"X-Forwarded-Proto": "http"}) as page:
            assert "Strict-Transport-Security" not in page.headers
    r = await login(proxied, {})
    assert "Secure" not in r.headers["Set-Cookie"] and "Strict-Transport-Security" not in r.headers


async def test_https_served_directly_gives_secure_cookies_and_hsts(settings: Settings) -> None:
    context, _cert = ssl_context(None, None, settings.data_dir)  # self-signed, as `rapport serve --https`
    app = create_app(with_settings(settings, https=True))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    try:
        await app[STORE].create_user("rep1", "Rep", "rep", hash_password(PASSWORD))
        async with aiohttp.ClientSession() as http:
            body = {"username": "rep1", "password": PASSWORD}
            async with http.post(server.make_url("/api/v1/auth/login"), json=body, ssl=False) as r:
                assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]
                assert r.headers["Strict-Transport-Security"] == HSTS
            async with http.get(server.make_url("/call"), ssl=False) as r:
                assert r.headers["Strict-Transport-Security"] == HSTS
    finally:
        await server.close()


async def test_an_untrusted_peer_cannot_claim_https(direct: Rapport) -> None:
    r = await login(direct, {"X-Forwarded-Proto": "https"})
    assert "Secure" not in r.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in r.headers


async def test_invite_links_use_the_scheme_the_browser_used(proxied: Rapport) -> None:
    http, csrf = await proxied.staff_session("rep1")
    headers = {"X-CSRF-Token": csrf, "X-Forwarded-Proto": "https"}
    async with http.post(f"{proxied.url}/api/v1/invites", json={}, headers=headers) as r:
        assert r.status == 201
        url = (await r.json())["url"]
    assert url.startswith(f"https://{proxied.url.removeprefix('http://')}/join/")


# /metrics


async def test_metrics_answer_loopback_and_the_token_and_nobody_else(settings: Settings) -> None:
    rapport = await start_rapport(with_settings(settings, metrics_token=METRICS_TOKEN, trusted_proxies=(PROXY,)))
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{rapport.url}/metrics"
            async with http.get(url) as r:
                assert r.status == 200 and "rapport_calls" in await r.text()  # loopback, not proxied
            async with http.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as r:
                assert r.status == 200 and "rapport_calls" in await r.text()
            for authorization in (f"Bearer {METRICS_TOKEN}x", "Bearer ", f"Basic {METRICS_TOKEN}"):
                async with http.get(url, headers={"Authorization": authorization}) as r:
                    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer", authorization
                    assert "rapport_" not in await r.text()
            # A loopback proxy passing on a request from elsewhere: the token, or nothing.
            async with http.get(url, headers={"X-Forwarded-For": "203.0.113.9"}) as r:
                assert r.status == 401 and "rapport_" not in await r.text()
            async with http.get(
                url, headers={"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {METRICS_TOKEN}"}
            ) as r:
                assert r.status == 200
    finally:
        await rapport.stop()


def test_metrics_refuse_a_peer_that_is_not_loopback(settings: Settings) -> None:
    without_token = settings
    with_token = with_settings(settings, metrics_token=METRICS_TOKEN)
    outside = "192.0.2.50"
    with pytest.raises(web.HTTPForbidden) as refused:
        require_metrics_access(_request(outside, {}, without_token), without_token)
    assert "set metrics_token" in refused.value.text
    with pytest.raises(web.HTTPUnauthorized):
        require_metrics_access(_request(outside, {}, with_token), with_token)
    with pytest.raises(web.HTTPUnauthorized):
        require_metrics_access(_request(outside, {"Authorization": "Bearer nope"}, with_token), with_token)
    with pytest.raises(web.HTTPUnauthorized):  # no token configured: no token is right
        require_metrics_access(_request(outside, {"Authorization": "Bearer "}, without_token), without_token)
    require_metrics_access(_request(outside, {"Authorization": f"Bearer {METRICS_TOKEN}"}, with_token), with_token)
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        require_metrics_access(_request(loopback, {}, without_token), without_token)
