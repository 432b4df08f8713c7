"""PUT /api/v1/me/language: any staff member sets their own staff pages' language; GET /api/v1/me answers it.

Hostile: an unknown code is 400 and changes nothing, a customer's call token and no login are refused, a write
without the CSRF token is refused; each change is audited.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.clients import start_call
from tests.support.server import PASSWORD, Rapport

URL = "/api/v1/me/language"


async def me(http: aiohttp.ClientSession, rapport: Rapport) -> dict[str, Any]:
    async with http.get(f"{rapport.url}/api/v1/me") as r:
        assert r.status == 200
        return dict(await r.json())


@pytest.mark.parametrize("role", ["rep", "qa", "supervisor", "admin"])
async def test_any_staff_member_chooses_their_own_language(rapport: Rapport, role: str) -> None:
    await rapport.add_user(f"user_{role}", role)
    http, csrf = await rapport.staff_session(f"user_{role}")
    assert (await me(http, rapport))["language"] is None
    async with http.put(f"{rapport.url}{URL}", json={"language": "fa"}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200, await r.text()
        assert await r.json() == {"language": "fa"}
    assert (await me(http, rapport))["language"] == "fa"
    # Another staff member is untouched, and a new login answers the choice at once.
    other, _ = await rapport.staff_session("rep1")
    assert (await me(other, rapport))["language"] is None
    async with aiohttp.ClientSession() as fresh:
        body = {"username": f"user_{role}", "password": PASSWORD}
        async with fresh.post(f"{rapport.url}/api/v1/auth/login", json=body) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["language"] == "fa"
    # null: follow the browser again.
    async with http.put(f"{rapport.url}{URL}", json={"language": None}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200 and await r.json() == {"language": None}
    assert (await me(http, rapport))["language"] is None
    entries = [e for e in await rapport.store.list_audit() if e.action == "user.language"]
    assert [e.detail for e in reversed(entries)] == [{"from": None, "to": "fa"}, {"from": "fa", "to": None}]


@pytest.mark.parametrize("bad", ["xx", "FA", "fa-IR", "", 7, ["fa"], "en;drop table"])
async def test_an_unknown_language_is_400_and_changes_nothing(rapport: Rapport, bad: Any) -> None:
    http, csrf = await rapport.staff_session("rep1")
    async with http.put(f"{rapport.url}{URL}", json={"language": "nl"}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200
    async with http.put(f"{rapport.url}{URL}", json={"language": bad}, headers={"X-CSRF-Token": csrf}) as r:
        if bad == "":
            # An empty code means "no choice", like null.
            assert r.status == 200
            return
        assert r.status == 400, await r.text()
        assert (await r.json())["error"]["code"] == "bad_request"
    assert (await me(http, rapport))["language"] == "nl"


async def test_a_customer_token_no_login_or_no_csrf_cannot_set_a_language(rapport: Rapport) -> None:
    call = await start_call(rapport.http, rapport.url)
    bearer = {"Authorization": f"Bearer {call['token']}"}
    async with rapport.http.put(f"{rapport.url}{URL}", json={"language": "fa"}, headers=bearer) as r:
        assert r.status in (401, 403), await r.text()
    async with rapport.http.get(f"{rapport.url}/api/v1/me", headers=bearer) as r:
        assert r.status in (401, 403)
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.put(f"{rapport.url}{URL}", json={"language": "fa"}) as r:
            assert r.status == 401
    http, _csrf = await rapport.staff_session("rep1")
    async with http.put(f"{rapport.url}{URL}", json={"language": "fa"}) as r:
        assert r.status == 403
    assert (await me(http, rapport))["language"] is None
