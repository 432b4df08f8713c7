"""Intake and identity: languages, help articles, contact details, signed invite links, API keys, the card, ratings."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config import LANGUAGES
from server.http.routes.invites import INVITE_KEY, open_link, sign_link
from server.storage.api_keys import ApiKeyStore
from tests.support.clients import welcomed, wrap_up
from tests.support.raw import raw_url
from tests.support.server import Rapport


async def config_for(rapport: Rapport, accept_language: str) -> dict[str, Any]:
    async with rapport.http.get(f"{rapport.url}/api/v1/config", headers={"Accept-Language": accept_language}) as r:
        return dict(await r.json())


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("fa-IR,fa;q=0.9,en;q=0.5", "fa"),
        ("nb-NO", "nb"),
        ("no", "nb"),
        ("de-DE,cs;q=0.8", "cs"),
        ("de-DE", "en"),
        ("", "en"),
        ("nl;q=0.2,cs;q=0.9", "cs"),
        ("x" * 5000, "en"),
    ],
)
async def test_the_page_language_follows_accept_language(rapport: Rapport, header: str, language: str) -> None:
    assert (await config_for(rapport, header))["language"] == language


async def test_help_articles_come_in_the_customers_language_with_an_english_fallback(rapport: Rapport) -> None:
    dutch = await config_for(rapport, "nl")
    not_working = next(r for r in dutch["reasons"] if r["code"] == "not_working")
    assert not_working["help"][0]["title"] == "Start het apparaat opnieuw"
    czech = await config_for(rapport, "cs")
    assert next(r for r in czech["reasons"] if r["code"] == "not_working")["help"][0]["title"] == "Restart the device"
    assert next(r for r in czech["reasons"] if r["code"] == "other")["help"] == []


async def test_an_invite_link_opens_the_page_in_the_invites_language(rapport: Rapport) -> None:
    headers, _ = await api_key(rapport, "invites:write")
    async with rapport.http.post(f"{rapport.url}/api/v1/invites", json={"language": "nl"}, headers=headers) as r:
        token = (await r.json())["code"]
    async with rapport.http.get(
        f"{rapport.url}/api/v1/config?invite={token}", headers={"Accept-Language": "en-US"}
    ) as r:
        assert (await r.json())["language"] == "nl"
    async with rapport.http.get(f"{rapport.url}/api/v1/config?invite=tampered.x") as r:
        assert r.status == 200 and (await r.json())["language"] == "en"


async def test_intake_fields_are_validated_and_reach_the_session(rapport: Rapport) -> None:
    url = f"{rapport.url}/api/v1/calls"
    for bad in (
        {"language": "klingon"},
        {"contact": {"email": "not-an-address"}},
        {"contact": {"phone": "call me maybe"}},
        {"contact": {"fax": "123"}},
        {"contact": "ada@example.com"},
        {"reason": "../../etc"},
    ):
        async with rapport.http.post(url, json=bad) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request", bad
    good = {"reason": "order", "language": "fa", "name": "Ada", "contact": {"email": "ada@example.com"}}
    async with rapport.http.post(url, json=good) as r:
        call = await r.json()
    record = await rapport.store.get_session(call["session_id"])
    assert record is not None and record.language == "fa" and record.contact == {"email": "ada@example.com"}


async def api_key(rapport: Rapport, *scopes: str) -> tuple[dict[str, str], int]:
    key, secret = await ApiKeyStore(rapport.store.engine).create("crm", scopes)
    return {"Authorization": f"Bearer {secret}"}, key.id


async def test_an_identified_customer_reaches_a_rep_whose_card_shows_context_and_history(rapport: Rapport) -> None:
    headers, _ = await api_key(rapport, "invites:write", "sessions:read")
    invite_body = {
        "customer": {"id": "crm-77", "name": "Ada Lovelace", "email": "ada@example.com"},
        "context": {"order": "A-1001", "device_id": "th-42", "fault": "E17"},
        "reason": "not_working",
        "language": "nl",
    }
    rep = await rapport.rep("rep1")
    for turn in range(2):
        async with rapport.http.post(f"{rapport.url}/api/v1/invites", json=invite_body, headers=headers) as r:
            assert r.status == 201
            invite = await r.json()
        assert invite["qr_svg"].lstrip().startswith("<svg") and invite["url"].endswith(invite["code"])
        async with rapport.http.get(rapport.url + invite["qr_png_url"]) as r:
            assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")
        async with rapport.http.post(f"{rapport.url}/api/v1/invites/{invite['code']}/redeem", json={}) as r:
            call = await r.json()
        customer = await welcomed(rapport.http, rapport.url, call["token"])
        n = len(rep.inbox)
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        card = (await rep.wait_for("call.accepted", after=n))["customer"]
        assert card["identified"] is True and card["ref"] == "crm-77" and card["name"] == "Ada Lovelace"
        assert card["context"] == invite_body["context"] and card["language"] == "nl"
        assert card["contact"] == {"email": "ada@example.com"}
        if turn == 0:
            assert card["history"] == []
            await rep.send({"type": "call.end"})
            await rep.wait_for("call.ended", after=n)
            await wrap_up(rep.http, rapport.url, call["session_id"], "follow_up")
        else:
            assert [(h["outcome"], h["reason"]) for h in card["history"]] == [("follow_up", "not_working")]
        await customer.close()
    # The calling system follows its customer's sessions with the same key.
    async with rapport.http.get(f"{rapport.url}/api/v1/sessions?customer_ref=crm-77", headers=headers) as r:
        assert r.status == 200 and len((await r.json())["items"]) == 2


async def test_expired_and_tampered_links_get_a_clear_error_page(rapport: Rapport) -> None:
    key = rapport.app[INVITE_KEY]
    expired = sign_link(key, {"c": "whatever", "r": None, "exp": int(time.time()) - 10})
    async with rapport.http.get(f"{rapport.url}/join/{expired}") as r:
        page = await r.text()
        assert r.status == 410 and "expired" in page.lower() and "text/html" in r.headers["Content-Type"]
    async with rapport.http.post(f"{rapport.url}/api/v1/invites/{expired}/redeem", json={}) as r:
        assert r.status == 410 and (await r.json())["error"]["code"] == "link_expired"
    valid = sign_link(key, {"c": "whatever", "r": None, "exp": int(time.time()) + 60})
    body, _, mac = valid.partition(".")
    tampered = sign_link(b"another server's key", {"c": "whatever", "r": None, "exp": int(time.time()) + 60})
    # The script goes out raw (%2F, not "/"), so it reaches /join/{token} as the token and join_page refuses it.
    script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    for bad in (tampered, f"{body}x.{mac}", f"{body}.{mac[:-1]}", "no-dot-at-all", script, "%22%3E%3Cimg%20src=x%3E"):
        async with rapport.http.get(raw_url(rapport.url, f"/join/{bad}")) as r:
            page = await r.text()
            assert r.status == 400, bad
            assert 'data-testid="link-error"' in page and "<title>Link not valid</title>" in page, bad
            assert "<script>alert" not in page and "<img" not in page
        async with rapport.http.post(raw_url(rapport.url, f"/api/v1/invites/{bad}/redeem"), json={}) as r:
            assert (r.status, (await r.json())["error"]["code"]) == (400, "link_invalid"), bad
    assert open_link(key, valid, now=time.time())["c"] == "whatever"


async def test_the_api_contract_for_keys_wrong_revoked_and_unscoped(rapport: Rapport) -> None:
    writer, writer_id = await api_key(rapport, "invites:write")
    reader, _ = await api_key(rapport, "sessions:read")
    invites, sessions = f"{rapport.url}/api/v1/invites", f"{rapport.url}/api/v1/sessions"
    async with rapport.http.post(invites, json={"priority": "urgent"}, headers=writer) as r:
        assert r.status == 400 and "priority" in (await r.json())["error"]["message"]
    async with rapport.http.post(invites, json={"context": ["not", "an", "object"]}, headers=writer) as r:
        assert r.status == 400
    async with rapport.http.post(invites, json={"context": {"blob": "x" * 9000}}, headers=writer) as r:
        assert r.status == 400
    async with rapport.http.post(invites, json={"customer": {"id": 5}}, headers=writer) as r:
        assert r.status == 400
    async with rapport.http.post(invites, json={"language": "xx"}, headers=writer) as r:
        assert r.status == 400
    async with rapport.http.post(invites, json={}, headers=reader) as r:
        assert r.status == 403
    async with rapport.http.get(sessions, headers=writer) as r:
        assert r.status == 403
    async with rapport.http.get(sessions, headers=reader) as r:
        assert r.status == 200
    async with rapport.http.get(f"{sessions}?state=bogus", headers=reader) as r:
        assert r.status == 400
    async with rapport.http.get(f"{sessions}?from=2026-13-45", headers=reader) as r:
        assert r.status == 400
    async with rapport.http.get(f"{sessions}/s_nope", headers=reader) as r:
        assert r.status == 404
    for wrong in ({"Authorization": "Bearer rk_wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        async with rapport.http.get(sessions, headers=wrong) as r:
            assert r.status == 401, wrong
    assert await ApiKeyStore(rapport.store.engine).revoke(writer_id)
    async with rapport.http.post(invites, json={}, headers=writer) as r:
        assert r.status == 401 and "revoked" in (await r.json())["error"]["message"]


async def test_the_customer_rates_an_answered_call_once(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    url = f"{rapport.url}/api/v1/calls/rating"
    async with aiohttp.ClientSession() as phone:
        async with phone.post(url, json={"token": call["token"], "rating": 5}) as r:
            assert r.status == 409, "not over yet"
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await customer.send({"type": "call.end"})
        await customer.wait_for("call.ended")
        for bad in (
            {"token": call["token"], "rating": 0},
            {"token": call["token"], "rating": 6},
            {"token": call["token"], "rating": "5"},
            {"token": call["token"], "rating": 4, "comment": "x" * 3000},
            {"rating": 4},
        ):
            async with phone.post(url, json=bad) as r:
                assert r.status == 400, bad
        async with phone.post(url, json={"token": "x" * 43, "rating": 4}) as r:
            assert r.status == 404
        async with phone.post(url, json={"token": call["token"], "rating": 4, "comment": "Quick and kind"}) as r:
            assert r.status == 200
        async with phone.post(url, json={"token": call["token"], "rating": 1}) as r:
            assert r.status == 409
    record = await rapport.store.get_session(call["session_id"])
    assert record is not None and (record.rating, record.rating_comment) == (4, "Quick and kind")


async def test_admins_set_reps_skills_and_languages(rapport: Rapport) -> None:
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    async with admin.get(f"{rapport.url}/api/v1/users") as r:
        rep1 = next(u for u in (await r.json())["items"] if u["username"] == "rep1")
    url = f"{rapport.url}/api/v1/users/{rep1['id']}/routing"
    headers = {"X-CSRF-Token": csrf}
    for bad in ({"skills": ["juggling"]}, {"languages": "nl"}, {"skills": [1]}):
        async with admin.put(url, json=bad, headers=headers) as r:
            assert r.status == 400, bad
    async with admin.put(f"{rapport.url}/api/v1/users/99999/routing", json={}, headers=headers) as r:
        assert r.status == 404
    async with admin.put(url, json={"skills": ["order"], "languages": ["nl", "en"]}, headers=headers) as r:
        assert r.status == 200 and (await r.json())["languages"] == ["en", "nl"]
    assert await rapport.store.get_routing(rep1["id"]) == (frozenset({"order"}), frozenset({"en", "nl"}))


# ---------------------------------------------------------------- catalogues and the link error page (files)

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"
CATALOGUES = WEB_CLIENT / "i18n"
# CLDR plural categories for whole numbers, which the page's counts use (cs "many" is for fractions,
# but Intl.PluralRules may still ask for it, so the catalogue has it).
PLURAL_CATEGORIES = {
    "en": {"one", "other"},
    "nl": {"one", "other"},
    "nb": {"one", "other"},
    "fa": {"one", "other"},
    "cs": {"one", "few", "many", "other"},
}


def _placeholders(value: Any) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in re.findall(r"\{(\w+)\}", text)}


def test_every_catalogue_has_exactly_the_keys_of_english() -> None:
    english = json.loads((CATALOGUES / "en.json").read_text(encoding="utf-8"))
    assert len(english) > 50
    for code, _name, _dir in LANGUAGES:
        catalogue = json.loads((CATALOGUES / f"{code}.json").read_text(encoding="utf-8"))
        assert set(catalogue) == set(english), (
            code,
            sorted(set(english) - set(catalogue)),
            sorted(set(catalogue) - set(english)),
        )
        for key, value in catalogue.items():
            assert isinstance(value, str | dict), (code, key)
            if isinstance(value, dict):
                # A plural entry: exactly the categories this language needs, all strings.
                assert isinstance(english[key], dict), (code, key)
                assert set(value) == PLURAL_CATEGORIES[code], (code, key, sorted(value))
                assert all(isinstance(v, str) and v.strip() for v in value.values()), (code, key)
            else:
                assert value.strip(), (code, key)
            # The same {placeholders} as English: a translation may not drop the number or the name.
            assert _placeholders(value) == _placeholders(english[key]), (code, key)


def test_link_error_page_has_its_placeholders() -> None:
    page = (WEB_CLIENT / "link-error.html").read_text(encoding="utf-8")
    assert page.count("{{message}}") == 1 and "{{title}}" in page
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert 'href="/call"' in page and 'data-testid="link-error"' in page
