"""Logins: limits in front of argon2 per address and server-wide, a bound on checks at once, pruning.

argon2 really runs (about 50 ms of CPU per check); the guard's verify function is wrapped only to count
how often and how many at once. Windows pass on an injected clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from server.config import Settings
from server.http.auth import LOGIN_GUARD, LoginGuard, LoginLimits, LoginRefused, verify_password
from tests.support.server import ONE_REP, PASSWORD, Rapport, Users, running


class CountingVerify:
    """The real argon2 check, counted: calls in all and the most running at one moment."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return verify_password(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def counted_logins(
    settings: Settings, users: Users = (), **changes: Any
) -> AsyncIterator[tuple[Rapport, CountingVerify]]:
    """A server with ``changes`` to its settings whose password checks are counted; stopped on the way out."""
    async with running(replace(settings, **changes), users) as rapport:
        verify = CountingVerify()
        rapport.app[LOGIN_GUARD].verify = verify
        yield rapport, verify


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[tuple[Rapport, CountingVerify, Clock]]:
    async with counted_logins(
        settings,
        ONE_REP,
        login_failures_per_account=3,
        login_failures_per_address=5,
        login_failures_server_wide=8,
        login_window_s=60.0,
        login_concurrency=2,
    ) as (rapport, verify):
        clock = Clock()
        rapport.app[LOGIN_GUARD].clock = clock
        yield rapport, verify, clock


async def attempt(
    rapport: Rapport, username: str, password: str, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], dict[str, object]]:
    """One login from ``source`` (a loopback address of its own, so the server sees a different client)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(
            f"{rapport.url}/api/v1/auth/login", json={"username": username, "password": password}
        ) as r:
            return r.status, dict(r.headers), await r.json()


async def test_random_usernames_from_one_address_are_refused_before_argon2_runs(
    limited: tuple[Rapport, CountingVerify, Clock],
) -> None:
    rapport, verify, _clock = limited
    results = await asyncio.gather(*(attempt(rapport, secrets.token_hex(6), "guess") for _ in range(40)))
    statuses = sorted(status for status, _h, _b in results)
    assert statuses == [401] * 5 + [429] * 35
    assert verify.calls == 5, "argon2 ran only for the attempts the address was allowed"
    assert verify.peak <= 2
    for status, headers, body in results:
        if status == 429:
            assert body == {"error": {"code": "rate_limited", "message": "too many failed logins from your address"}}
            assert 1 <= int(headers["Retry-After"]) <= 61
    # The right password from the same address is refused too until the window passes: nothing is checked.
    status, _h, _b = await attempt(rapport, "rep1", PASSWORD)
    assert status == 429 and verify.calls == 5


async def test_at_most_two_argon2_checks_run_at_once(settings: Settings) -> None:
    # A long queue wait: on a loaded machine sixteen checks two at a time take seconds.
    async with counted_logins(settings, login_failures_per_address=100, login_concurrency=2, login_queue_s=120.0) as (
        rapport,
        verify,
    ):
        results = await asyncio.gather(*(attempt(rapport, f"user{i}", "guess") for i in range(16)))
        assert [status for status, _h, _b in results] == [401] * 16
        # Sixteen waited their turn: all were checked, never more than two at a time (and two did overlap).
        assert verify.calls == 16 and verify.peak == 2


async def test_a_check_that_cannot_get_a_slot_in_time_gets_a_clear_429(settings: Settings) -> None:
    async with counted_logins(settings, login_failures_per_address=100, login_concurrency=1, login_queue_s=0.0) as (
        rapport,
        verify,
    ):
        results = await asyncio.gather(*(attempt(rapport, f"user{i}", "guess") for i in range(6)))
        busy = [(h, b) for status, h, b in results if status == 429]
        assert busy and verify.peak == 1 and verify.calls == 6 - len(busy)
        for headers, body in busy:
            assert body["error"]["message"] == "the server is busy checking other logins; try again"
            assert headers["Retry-After"] == "2"


async def test_the_server_wide_budget_refuses_every_address_then_recovers(
    limited: tuple[Rapport, CountingVerify, Clock],
) -> None:
    rapport, verify, clock = limited
    # Four addresses, two failures each: the server-wide budget of eight is spent, no address is over its own.
    for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        for _ in range(2):
            status, _h, _b = await attempt(rapport, secrets.token_hex(6), "guess", source)
            assert status == 401
    assert verify.calls == 8
    status, headers, body = await attempt(rapport, "rep1", PASSWORD, "127.0.0.7")
    assert status == 429 and verify.calls == 8
    assert body["error"] == {
        "code": "rate_limited",
        "message": "too many failed logins on this server; try again later",
    }
    assert 1 <= int(headers["Retry-After"]) <= 61
    clock.now += 61
    status, _h, body = await attempt(rapport, "rep1", PASSWORD, "127.0.0.7")
    assert status == 200 and body["user"]["username"] == "rep1"  # type: ignore[index]


async def test_successful_logins_do_not_use_up_an_address(limited: tuple[Rapport, CountingVerify, Clock]) -> None:
    rapport, verify, _clock = limited
    # An office behind one address: more logins than the per-address limit, all correct, all let in.
    for _ in range(8):
        status, _h, _b = await attempt(rapport, "rep1", PASSWORD)
        assert status == 200
    assert verify.calls == 8


async def test_one_username_from_one_address_keeps_its_own_lower_limit(
    limited: tuple[Rapport, CountingVerify, Clock],
) -> None:
    rapport, verify, clock = limited
    for _ in range(3):
        assert (await attempt(rapport, "rep1", "wrong"))[0] == 401
    status, _h, body = await attempt(rapport, "rep1", PASSWORD)
    assert status == 429 and verify.calls == 3
    assert body["error"]["message"] == "too many failed logins for this username from your address"  # type: ignore[index]
    assert (await attempt(rapport, "rep1", PASSWORD, "127.0.0.3"))[0] == 200  # from elsewhere: fine
    clock.now += 61
    assert (await attempt(rapport, "rep1", PASSWORD))[0] == 200


def test_random_usernames_and_addresses_cannot_grow_memory() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_account=5, per_address=20, server_wide=100, window_s=60.0), clock=clock)
    refused = 0
    for i in range(20_000):
        clock.now += 0.001
        username, address = secrets.token_hex(8), f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        try:
            stamp = guard.admit(username, address)
        except LoginRefused:
            refused += 1
            continue
        guard.settle(username, address, stamp, ok=False)
    # Only the server-wide budget got in; every other attempt was turned away without leaving a trace.
    assert refused == 20_000 - 100
    assert guard.tracked() <= 2 * 100
    clock.now += 61
    stamp = guard.admit("rep1", "10.9.9.9")
    guard.settle("rep1", "10.9.9.9", stamp, ok=True)
    assert guard.tracked() == 0, "idle entries are pruned once their window has passed"


def test_a_login_that_never_got_checked_gives_its_place_back() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_account=5, per_address=2, server_wide=100), clock=clock)
    for _ in range(10):
        stamp = guard.admit("rep1", "10.0.0.1")
        guard.settle("rep1", "10.0.0.1", stamp, ok=None)
    assert guard.tracked() == 0
