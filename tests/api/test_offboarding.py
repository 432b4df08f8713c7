"""Offboarding: `rapport users disable` and a password reset end the user's logins and, in a running
server, their open sockets (which re-check their login every login_recheck_s)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from server.config import Settings
from tests.support.clients import SignalingClient, welcomed
from tests.support.server import PASSWORD, Rapport, running

ROOT = Path(__file__).resolve().parents[2]


def rapport_cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, on the running server's database."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data-dir", str(data_dir)],
        input=stdin,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def rechecking(settings: Settings) -> AsyncIterator[Rapport]:
    async with running(replace(settings, login_recheck_s=0.2), (("rep1", "rep"), ("rep2", "rep"))) as rapport:
        yield rapport


async def me_status(http: aiohttp.ClientSession, rapport: Rapport) -> int:
    async with http.get(f"{rapport.url}/api/v1/me") as r:
        return r.status


async def login_status(rapport: Rapport, username: str, password: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{rapport.url}/api/v1/auth/login", json={"username": username, "password": password}
        ) as r:
            return r.status


async def staff_socket(rapport: Rapport, http: aiohttp.ClientSession) -> SignalingClient:
    client = await welcomed(http, rapport.url)
    await client.request({"type": "rep.status", "status": "available"})
    return client


async def closed_with(client: SignalingClient, reason: str) -> int | None:
    """The ``bye`` this socket got, then its close code."""
    bye = await client.wait_for("bye", timeout=10.0)
    assert bye == {"type": "bye", "reason": reason}
    assert client._reader is not None
    await client._reader  # the server closes the socket right after its bye
    return client.closed_code


async def test_disable_ends_logins_and_open_sockets_then_enable_lets_the_user_back(
    rechecking: Rapport, settings: Settings
) -> None:
    rapport = rechecking
    rep1_http, _csrf = await rapport.staff_session("rep1")
    rep2_http, _csrf2 = await rapport.staff_session("rep2")
    rep1 = await staff_socket(rapport, rep1_http)
    rep2 = await staff_socket(rapport, rep2_http)
    async with rapport.http.get(f"{rapport.url}/healthz") as r:
        assert (await r.json())["available_reps"] == 2

    done = rapport_cli(settings.data_dir, "users", "disable", "rep1")
    assert done.returncode == 0 and done.stdout.strip() == "disabled rep1; ended 1 login(s)", done.stderr

    assert await closed_with(rep1, "disabled") == 4001
    assert await me_status(rep1_http, rapport) == 401
    assert await login_status(rapport, "rep1", PASSWORD) == 401
    async with rapport.http.get(f"{rapport.url}/healthz") as r:
        assert (await r.json())["available_reps"] == 1, "a disabled rep is offered no calls"
    # The other rep carries on.
    assert (await rep2.request({"type": "ping"}))["type"] == "pong"
    assert rep2.closed_code is None and await me_status(rep2_http, rapport) == 200

    done = rapport_cli(settings.data_dir, "users", "enable", "rep1")
    assert done.returncode == 0 and done.stdout.strip() == "enabled rep1", done.stderr
    assert await login_status(rapport, "rep1", PASSWORD) == 200
    await rep2.close()


async def test_a_password_reset_ends_every_login_made_with_the_old_one(rechecking: Rapport, settings: Settings) -> None:
    rapport = rechecking
    console_http, _csrf = await rapport.staff_session("rep1")
    laptop_http, _csrf2 = await rapport.staff_session("rep1")
    console = await staff_socket(rapport, console_http)

    done = rapport_cli(settings.data_dir, "users", "add", "rep1", "--role", "rep", stdin="a brand new password\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "updated password of rep1; ended 2 login(s) made with the old one"

    assert await closed_with(console, "logged_out") == 4001
    assert await me_status(console_http, rapport) == 401
    assert await me_status(laptop_http, rapport) == 401
    assert await login_status(rapport, "rep1", PASSWORD) == 401
    assert await login_status(rapport, "rep1", "a brand new password") == 200


async def test_unknown_users_are_an_error(rechecking: Rapport, settings: Settings) -> None:
    for command in ("disable", "enable"):
        done = rapport_cli(settings.data_dir, "users", command, "nobody")
        assert done.returncode == 1 and done.stderr.strip() == "error: no user nobody"


async def test_a_socket_whose_login_is_fine_stays_open(rechecking: Rapport) -> None:
    rapport = rechecking
    http, _csrf = await rapport.staff_session("rep1")
    rep = await staff_socket(rapport, http)
    # Several re-checks later (0.2 s apart) the socket still answers: only an ended login closes it.
    await asyncio.sleep(1.0)
    assert (await rep.request({"type": "ping"}))["type"] == "pong"
    assert rep.closed_code is None and not [m for m in rep.inbox if m.get("type") == "bye"]
    await rep.close()
