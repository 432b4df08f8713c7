"""Invite links: one call per link however the redeems race, revocation by API key and by staff, links built
only from public_url (or a loopback host), and tokens kept out of the access log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from sqlalchemy import func, select

from server.config import Settings
from server.http.security import token_fingerprint
from server.storage import schema
from server.storage.api_keys import ApiKeyStore
from tests.support.clients import welcomed
from tests.support.server import BOTH_DATABASES, Rapport, running_full, start_rapport, with_settings

# Every test here that runs a server runs it on SQLite and on PostgreSQL (tests/support/server.py).
ON_DATABASES = BOTH_DATABASES

ROOT = Path(__file__).resolve().parents[2]


async def key(rapport: Rapport, *scopes: str) -> dict[str, str]:
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", scopes)
    return {"Authorization": f"Bearer {secret}"}


async def invite(rapport: Rapport, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    async with rapport.http.post(f"{rapport.url}/api/v1/invites", json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
        return dict(await r.json())


async def redeem(base: str, token: str) -> tuple[int, dict[str, Any]]:
    """One customer's redeem, on a connection of its own."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/invites/{token}/redeem", json={"device": "test"}) as r:
            return r.status, await r.json()


async def join_page(rapport: Rapport, token: str) -> tuple[int, str]:
    async with rapport.http.get(f"{rapport.url}/join/{token}") as r:
        return r.status, await r.text()


async def sessions_of(rapport: Rapport, customer_ref: str) -> int:
    table = schema.support_sessions
    async with rapport.store.engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.customer_ref == customer_ref)
        return int((await conn.execute(query)).scalar_one())


async def leave(rapport: Rapport, call_token: str) -> None:
    """The customer leaves the queue: the call ends."""
    async with aiohttp.ClientSession() as http:
        client = await welcomed(http, rapport.url, call_token)
        await client.send({"type": "call.end"})
        await client.wait_for("call.ended")
        await client.close()


# single use


async def test_two_redeems_racing_start_exactly_one_call(rapport: Rapport) -> None:
    headers = await key(rapport, "invites:write")
    for round_ in range(8):
        ref = f"crm-race-{round_}"
        made = await invite(rapport, headers, customer={"id": ref, "name": "Ada"})
        first, second = await asyncio.gather(redeem(rapport.url, made["code"]), redeem(rapport.url, made["code"]))
        answers = sorted([first, second], key=lambda a: a[0])
        (won_status, won), (lost_status, lost) = answers
        assert (won_status, lost_status) == (201, 409), answers
        assert lost["error"]["code"] == "conflict" and "already in a call" in lost["error"]["message"]
        assert await sessions_of(rapport, ref) == 1, round_
        await leave(rapport, won["token"])  # so the next round is not limited by this address's waiting calls


async def test_a_used_link_stays_open_for_its_own_call_then_shows_the_link_error(rapport: Rapport) -> None:
    headers = await key(rapport, "invites:write")
    made = await invite(rapport, headers, customer={"id": "crm-used", "name": "Bo"})
    status, call = await redeem(rapport.url, made["code"])
    assert status == 201
    # While its call is open, the page still opens (a reload reconnects); a second redeem is refused.
    status, page = await join_page(rapport, made["code"])
    assert status == 200 and 'data-testid="link-error"' not in page
    status, answer = await redeem(rapport.url, made["code"])
    assert status == 409 and answer["error"]["code"] == "conflict"
    await leave(rapport, call["token"])
    status, page = await join_page(rapport, made["code"])
    assert status == 410 and "<title>Link already used</title>" in page and 'data-testid="link-error"' in page
    assert "has been used already" in page
    status, answer = await redeem(rapport.url, made["code"])
    assert status == 410 and answer["error"] == {
        "code": "link_used",
        "message": "This link has been used already. Ask for a new one, or start a new call.",
    }
    async with rapport.http.get(f"{rapport.url}{made['qr_png_url']}") as r:
        assert r.status == 410 and (await r.json())["error"]["code"] == "link_used"
    assert await sessions_of(rapport, "crm-used") == 1


async def test_a_call_that_cannot_start_does_not_use_up_the_link(settings: Settings) -> None:
    async with running_full(settings) as rapport:
        headers = await key(rapport, "invites:write")
        made = await invite(rapport, headers, customer={"id": "crm-busy"})
        status, answer = await redeem(rapport.url, made["code"])
        assert status == 503 and answer["error"]["code"] == "all_lines_busy"
        # Still unused: the page opens and the customer can try again later.
        status, page = await join_page(rapport, made["code"])
        assert status == 200 and 'data-testid="link-error"' not in page
        table = schema.invites
        async with rapport.store.engine.connect() as conn:
            claimed = (await conn.execute(select(table.c.claimed_at).where(table.c.id == made["id"]))).scalar_one()
        assert claimed is None


# revocation


async def test_api_keys_and_supervisors_revoke_links_reps_and_other_keys_may_not(rapport: Rapport) -> None:
    writer = await key(rapport, "invites:write")
    reader = await key(rapport, "sessions:read")
    made = await invite(rapport, writer, customer={"id": "crm-revoke"})
    revoke_url = f"{rapport.url}/api/v1/invites/{made['id']}"
    assert made["id"].startswith("inv_") and made["id"] not in made["code"]

    async with rapport.http.delete(revoke_url, headers=reader) as r:
        assert r.status == 403
    rep, rep_csrf = await rapport.staff_session("rep1")
    async with rep.delete(revoke_url, headers={"X-CSRF-Token": rep_csrf}) as r:
        assert r.status == 403
    status, page = await join_page(rapport, made["code"])
    assert status == 200  # nobody has revoked it yet

    async with rapport.http.delete(revoke_url, headers=writer) as r:
        assert r.status == 204
    status, page = await join_page(rapport, made["code"])
    assert status == 410 and "<title>Link withdrawn</title>" in page and 'data-testid="link-error"' in page
    status, answer = await redeem(rapport.url, made["code"])
    assert status == 410 and answer["error"]["code"] == "link_revoked"
    assert "withdrawn" in answer["error"]["message"]
    async with rapport.http.delete(revoke_url, headers=writer) as r:
        assert r.status == 204  # again: still revoked, no error
    assert await sessions_of(rapport, "crm-revoke") == 0

    await rapport.add_user("sup1", "supervisor")
    supervisor, sup_csrf = await rapport.staff_session("sup1")
    second = await invite(rapport, writer, customer={"id": "crm-revoke-2"})
    async with supervisor.delete(
        f"{rapport.url}/api/v1/invites/{second['id']}", headers={"X-CSRF-Token": sup_csrf}
    ) as r:
        assert r.status == 204
    assert (await redeem(rapport.url, second["code"]))[0] == 410

    for unknown in ("inv_0000000000000000", "inv_zz", second["code"][:40], "1"):
        async with rapport.http.delete(f"{rapport.url}/api/v1/invites/{unknown}", headers=writer) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found"), unknown
    actions = [(a.action, a.target) for a in await rapport.store.list_audit()]
    assert ("invite.revoke", made["id"]) in actions and ("invite.revoke", second["id"]) in actions


# links only from public_url, or a loopback host


def decode_qr(png: bytes) -> str:
    """The text of a QR code image (OpenCV's two detectors each miss some codes: ask both)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):
        text, _points, _straight = detector.detectAndDecode(image)
        if text:
            return str(text)
    return ""


async def test_without_public_url_a_foreign_host_header_mints_no_link(rapport: Rapport) -> None:
    headers = await key(rapport, "invites:write")
    made = await invite(rapport, headers)  # Host: 127.0.0.1:port, loopback: fine
    assert made["url"].startswith(f"{rapport.url}/join/")
    foreign = {**headers, "Host": "support.evil.example"}
    async with rapport.http.post(f"{rapport.url}/api/v1/invites", json={}, headers=foreign) as r:
        answer = await r.json()
    assert r.status == 409 and answer["error"]["code"] == "public_url_required"
    assert "set public_url" in answer["error"]["message"]
    async with rapport.http.get(f"{rapport.url}{made['qr_png_url']}", headers={"Host": "support.evil.example"}) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "public_url_required"
    async with rapport.http.get(f"{rapport.url}{made['qr_png_url']}") as r:
        assert r.status == 200 and decode_qr(await r.read()) == made["url"]


async def test_with_public_url_links_and_qr_codes_use_it_whatever_the_host(settings: Settings) -> None:
    rapport = await start_rapport(with_settings(settings, public_url="https://support.example.com/"))
    try:
        headers = {**await key(rapport, "invites:write"), "Host": "support.evil.example"}
        made = await invite(rapport, headers)
        assert made["url"] == f"https://support.example.com/join/{made['code']}"
        async with rapport.http.get(f"{rapport.url}{made['qr_png_url']}", headers={"Host": "x.evil.example"}) as r:
            assert r.status == 200 and decode_qr(await r.read()) == made["url"]
    finally:
        await rapport.stop()


# the access log


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    return caplog


async def logged(caplog: pytest.LogCaptureFixture, needle: str, count: int) -> list[str]:
    """The access-log lines, once ``needle`` is in ``count`` of them (aiohttp logs after the answer is sent)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        if sum(needle in line for line in lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_the_access_log_shows_a_hash_prefix_never_the_token(
    rapport: Rapport, access_log: pytest.LogCaptureFixture
) -> None:
    headers = await key(rapport, "invites:write")
    made = await invite(rapport, headers, customer={"id": "crm-log"})
    token = made["code"]
    fingerprint = token_fingerprint(token)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 12
    async with rapport.http.get(f"{rapport.url}/join/{token}") as r:
        assert r.status == 200
    async with rapport.http.get(f"{rapport.url}/api/v1/config", params={"invite": token}) as r:
        assert r.status == 200
    async with rapport.http.get(f"{rapport.url}{made['qr_png_url']}") as r:
        assert r.status == 200
    status, _call = await redeem(rapport.url, token)
    assert status == 201
    lines = await logged(access_log, fingerprint, 4)
    assert [line for line in lines if token in line or token[:20] in line] == []
    with_fingerprint = [line for line in lines if fingerprint in line]
    assert any(f"GET /join/{fingerprint} " in line for line in with_fingerprint), lines
    assert any(f"/api/v1/config?invite={fingerprint} " in line for line in with_fingerprint), lines
    assert any(f"/api/v1/invites/{fingerprint}/qr.png " in line for line in with_fingerprint), lines
    assert any(f"POST /api/v1/invites/{fingerprint}/redeem " in line for line in with_fingerprint), lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served_cli(tmp_path: Path) -> AsyncIterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """``rapport serve`` as an operator starts it, with an API key made by ``rapport api-keys create``."""
    data = tmp_path / "data"
    env = {
        **os.environ,
        "RAPPORT_MEDIA_WORKERS": "0",
        "RAPPORT_EMOTION_CUES": "false",
        "RAPPORT_COMPOSE_RECORDINGS": "false",
    }
    cli = [sys.executable, "-m", "server.cli"]
    made = subprocess.run(
        [*cli, "api-keys", "create", "--name", "crm", "--scopes", "invites:write", "--data-dir", str(data)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    secret = made.stdout.decode().strip().splitlines()[-1]
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--data-dir", str(data)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(log.read_text())
        yield base, secret, server
    finally:
        server.terminate()
        server.wait(timeout=20)


async def test_rapport_serve_logs_a_hash_prefix_never_the_token(
    served_cli: tuple[str, str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    base, secret, server = served_cli
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/invites", json={}, headers={"Authorization": f"Bearer {secret}"}) as r:
            assert r.status == 201
            token = (await r.json())["code"]
        async with http.get(f"{base}/join/{token}") as r:
            assert r.status == 200
    await asyncio.sleep(0.5)
    server.terminate()
    server.wait(timeout=20)
    log = (tmp_path / "serve.log").read_text()
    assert f"GET /join/{token_fingerprint(token)} " in log, log[-2000:]
    assert token not in log
