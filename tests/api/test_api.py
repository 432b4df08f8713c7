"""HTTP API: login, cookies, CSRF, origins, invites, sessions, settings."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from server.config import IceServer, load_settings, parse_ice_servers
from server.http.pages import PAGES
from server.storage.migrations import migrate, revisions
from server.storage.schema import create_engine
from tests.support.raw import raw_url
from tests.support.server import BOTH_DATABASES, PASSWORD, Rapport

# Every test here that runs a server runs it on SQLite and on PostgreSQL (tests/support/server.py).
ON_DATABASES = BOTH_DATABASES


async def test_login_sets_a_hardened_cookie_and_me_answers(rapport: Rapport) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{rapport.url}/api/v1/auth/login", json={"username": "rep1", "password": PASSWORD}) as r:
            assert r.status == 200
            body = await r.json()
            cookie = r.headers["Set-Cookie"]
        assert body["user"]["role"] == "rep" and len(body["csrf_token"]) >= 32
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
        async with http.get(f"{rapport.url}/api/v1/me") as r:
            assert r.status == 200
            assert (await r.json())["user"]["username"] == "rep1"


async def test_wrong_passwords_are_refused_then_throttled(rapport: Rapport) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.post(
                f"{rapport.url}/api/v1/auth/login", json={"username": "rep1", "password": "nope"}
            ) as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "not_authenticated"
        async with http.post(f"{rapport.url}/api/v1/auth/login", json={"username": "rep1", "password": PASSWORD}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        async with http.post(f"{rapport.url}/api/v1/auth/login", json={"username": "ghost", "password": "x"}) as r:
            assert r.status == 401
        async with http.post(f"{rapport.url}/api/v1/auth/login", json={"username": ["rep1"], "password": 1}) as r:
            assert r.status == 400


async def test_state_changing_requests_need_the_csrf_token(rapport: Rapport) -> None:
    http, csrf = await rapport.staff_session("rep1")
    async with http.post(f"{rapport.url}/api/v1/invites", json={"customer_name": "Ada"}) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"
    async with http.post(
        f"{rapport.url}/api/v1/invites", json={"customer_name": "Ada"}, headers={"X-CSRF-Token": "wrong"}
    ) as r:
        assert r.status == 403
    async with http.post(
        f"{rapport.url}/api/v1/invites", json={"customer_name": "Ada"}, headers={"X-CSRF-Token": csrf}
    ) as r:
        assert r.status == 201
    async with http.post(f"{rapport.url}/api/v1/auth/logout") as r:
        assert r.status == 403  # logout is state-changing too


async def test_requests_from_a_foreign_origin_are_refused(rapport: Rapport) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{rapport.url}/api/v1/calls", json={}, headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "bad_origin"
        async with http.post(f"{rapport.url}/api/v1/calls", json={}, headers={"Origin": rapport.url}) as r:
            assert r.status == 201


async def test_an_invite_link_opens_a_session_with_its_name_and_reason(rapport: Rapport) -> None:
    http, csrf = await rapport.staff_session("rep1")
    async with http.post(
        f"{rapport.url}/api/v1/invites",
        json={"customer_name": "Ada Lovelace", "reason": "order", "ttl_s": 3600},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        invite = await r.json()
    assert invite["url"].endswith(f"/join/{invite['code']}")
    async with aiohttp.ClientSession() as phone:
        async with phone.get(invite["url"]) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        async with phone.post(f"{rapport.url}/api/v1/invites/{invite['code']}/redeem", json={"device": "iPhone"}) as r:
            assert r.status == 201
            call = await r.json()
        record = await rapport.store.get_session(call["session_id"])
        assert record is not None
        assert (record.customer_name, record.reason, record.device) == ("Ada Lovelace", "order", "iPhone")
        # A second tab cannot mint a second token for the same open call.
        async with phone.post(f"{rapport.url}/api/v1/invites/{invite['code']}/redeem", json={}) as r:
            assert r.status == 409
        # A changed character anywhere makes the link invalid: a clear 400, never a session.
        tampered = invite["code"][:-2] + ("AA" if not invite["code"].endswith("AA") else "BB")
        for bad in ("nope", "x" * 300, "..%2f..%2fetc%2fpasswd", tampered):
            async with phone.post(f"{rapport.url}/api/v1/invites/{bad}/redeem", json={}) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "link_invalid", bad


async def test_invite_ttl_is_validated(rapport: Rapport) -> None:
    http, csrf = await rapport.staff_session("rep1")
    for ttl in (0, "1h", True, 10**9):
        async with http.post(f"{rapport.url}/api/v1/invites", json={"ttl_s": ttl}, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 400, ttl


async def test_sessions_are_for_staff_only_and_unknown_ids_are_404(rapport: Rapport) -> None:
    _customer, call = await rapport.customer(name="Ada")
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{rapport.url}/api/v1/sessions") as r:
            assert r.status == 401
        async with anonymous.get(f"{rapport.url}/api/v1/sessions/{call['session_id']}") as r:
            assert r.status == 401
    http, _ = await rapport.staff_session("qa1")
    async with http.get(f"{rapport.url}/api/v1/sessions?state=waiting") as r:
        items = (await r.json())["items"]
    assert [i["session_id"] for i in items] == [call["session_id"]]
    async with http.get(f"{rapport.url}/api/v1/sessions/{call['session_id']}") as r:
        detail = await r.json()
    assert detail["customer_name"] == "Ada" and detail["events"][0]["kind"] == "created"
    for bad in ("s_unknown", "x" * 100, "%2e%2e%2fetc"):
        async with http.get(f"{rapport.url}/api/v1/sessions/{bad}") as r:
            assert r.status == 404
    for query in ("state=bogus", "limit=0", "limit=abc"):
        async with http.get(f"{rapport.url}/api/v1/sessions?{query}") as r:
            assert r.status == 400


async def test_static_files_cannot_escape_the_web_client_folder(rapport: Rapport) -> None:
    async with aiohttp.ClientSession() as http:
        # Paths go out raw, and the server does not resolve "..": had it, this would be /static/css/app.css (200).
        async with http.get(raw_url(rapport.url, "/static/../static/css/app.css")) as r:
            assert r.status == 404
        async with http.get(raw_url(rapport.url, "/static/js/../css/app.css")) as r:
            assert r.status == 200  # inside the folder, ".." is fine
        for path in (
            "/static/../server/config.py",
            "/static/%2e%2e/pyproject.toml",
            "/static/..%2fREADME.md",
            "/static/js/..%2f..%2fpyproject.toml",
            "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/static/%2fetc%2fpasswd",
        ):
            async with http.get(raw_url(rapport.url, path)) as r:
                body = await r.read()
                assert r.status in (403, 404), path
                assert b"[project]" not in body and b"Settings" not in body and b"root:" not in body, path


async def test_pages_are_served_with_a_strict_content_security_policy(rapport: Rapport) -> None:
    async with aiohttp.ClientSession() as http:
        pages = {"/call": "customer", "/console": "console", "/qa": "qa", "/supervisor": "supervisor"}
        for path, name in pages.items():
            async with http.get(f"{rapport.url}{path}") as r:
                assert r.status == 200 and r.content_type == "text/html"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Cache-Control"] == "no-store"
                # The page assembled at startup from its body and head partial (tests/unit/test_pages.py).
                assert await r.text() == rapport.app[PAGES][name].render()
        async with http.get(f"{rapport.url}/api/v1/config") as r:
            config = await r.json()
        assert config["ice_servers"] == [] and config["protocol"] == 1
        assert {"code": "order", "label": "An order"}.items() <= config["reasons"][0].items()
        assert [lang["code"] for lang in config["languages"]] == ["en", "nl", "cs", "fa", "nb"]


def test_settings_precedence_is_flags_then_env_then_toml(tmp_path: Path) -> None:
    toml = tmp_path / "rapport.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\nice_servers = ["stun:stun.example.org:3478"]\n')
    env = {"RAPPORT_PORT": "9100", "RAPPORT_HEARTBEAT_S": "7.5"}
    settings = load_settings({"port": 9200}, env=env, config_file=toml)
    assert settings.port == 9200
    assert settings.heartbeat_s == 7.5
    assert settings.host == "0.0.0.0"
    assert settings.ice_servers == (IceServer(urls=("stun:stun.example.org:3478",)),)
    assert load_settings({}, env=env, config_file=toml).port == 9100
    assert load_settings({}, env={}, config_file=toml).port == 9000
    assert load_settings({}, env={}).ice_servers == ()  # never a public STUN server by default
    with pytest.raises(ValueError, match="unknown settings"):
        load_settings({}, env={}, config_file=_write(tmp_path / "bad.toml", "colour = 'red'\n"))


def test_ice_servers_parse_from_flags_and_json() -> None:
    assert parse_ice_servers("stun:a:3478, turn:b:3478") == (
        IceServer(urls=("stun:a:3478",)),
        IceServer(urls=("turn:b:3478",)),
    )
    parsed = parse_ice_servers('[{"urls": ["turn:t:3478"], "username": "u", "credential": "c"}]')
    assert parsed[0].to_browser() == {"urls": ["turn:t:3478"], "username": "u", "credential": "c"}
    with pytest.raises(ValueError):
        parse_ice_servers([{"username": "u"}])


async def test_migrations_run_once_and_record_their_version(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    try:
        assert await migrate(engine) == revisions()
        assert await migrate(engine) == []
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        assert mode == "wal"
    finally:
        await engine.dispose()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
