"""The admin API (/admin's): staff accounts, API keys, a webhook's test delivery and the centre's settings.

Admins only (any other role 403, no login or an API key 401), every change audited, guard rails held, and a
settings change used by the next call and the customer page's configuration without a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.calls.centre_settings import CentreSettings
from server.config import Settings
from server.storage.schema import Engine
from server.storage.store import Store
from server.storage.users import LastAdmin
from server.webhooks.signing import verify
from tests.support.clients import login
from tests.support.server import PASSWORD, Rapport, running, with_settings

STAFF = (("admin1", "admin"), ("rep1", "rep"), ("qa1", "qa"), ("sup1", "supervisor"))


@dataclass
class Client:
    """A logged-in staff member's HTTP session (with the CSRF header on every request)."""

    http: aiohttp.ClientSession
    csrf: str
    base: str

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        sent = {"X-CSRF-Token": self.csrf, **headers}
        async with self.http.request(method, self.base + path, json=body, headers=sent) as r:
            text = await r.text()
            return r.status, json.loads(text) if text else None


async def client(rapport: Rapport, username: str, password: str = PASSWORD) -> Client:
    http, csrf = await rapport.staff_session(username, password)
    return Client(http, csrf, rapport.url)


@pytest.fixture
async def centre(settings: Settings) -> AsyncIterator[Rapport]:
    async with running(with_settings(settings, webhook_allowed_hosts=("127.0.0.1",)), STAFF) as r:
        yield r


async def actions(rapport: Rapport) -> list[str]:
    return [e.action for e in await rapport.store.list_audit()]


def user_id(items: list[dict[str, Any]], username: str) -> int:
    return next(u["id"] for u in items if u["username"] == username)


# who may call

ADMIN_OPERATIONS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/users", {"username": "x1", "display_name": "X", "role": "rep"}),
    ("PUT", "/api/v1/users/2/role", {"role": "qa"}),
    ("PUT", "/api/v1/users/2/active", {"active": False}),
    ("POST", "/api/v1/users/2/password", None),
    ("GET", "/api/v1/api-keys", None),
    ("POST", "/api/v1/api-keys", {"name": "k", "scopes": ["sessions:read"]}),
    ("DELETE", "/api/v1/api-keys/1", None),
    ("GET", "/api/v1/settings", None),
    ("PUT", "/api/v1/settings/recording", {"policy": "always"}),
    ("PUT", "/api/v1/settings/reasons", {"items": [{"code": "order", "label": "Order"}]}),
    ("DELETE", "/api/v1/settings/recording", None),
]


async def test_only_an_admin_login_may_use_the_admin_api(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    _s, key = await admin.call("POST", "/api/v1/api-keys", {"name": "all", "scopes": ["webhooks:manage"]})
    for username in ("rep1", "qa1", "sup1"):
        other = await client(centre, username)
        for method, path, body in ADMIN_OPERATIONS:
            status, answer = await other.call(method, path, body)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), (username, method, path)
    anonymous = Client(centre.http, "", centre.url)
    customer_client, call = await centre.customer()
    for method, path, body in ADMIN_OPERATIONS:
        status, _ = await anonymous.call(method, path, body)
        assert status == 401, (method, path)
        # A customer's call token and an API key (even one that manages webhooks) are no admin login.
        for token in (call["token"], key["secret"]):
            status, _ = await anonymous.call(method, path, body, Authorization=f"Bearer {token}")
            assert status == 401, (method, path)
    # Nothing changed: the rep is still a rep and active, the recording policy as configured.
    users = (await admin.call("GET", "/api/v1/users"))[1]["items"]
    rep = next(u for u in users if u["username"] == "rep1")
    assert (rep["role"], rep["active"]) == ("rep", True)
    assert (await admin.call("GET", "/api/v1/settings"))[1]["recording"] == {"policy": "never"}


# staff accounts


async def test_an_admin_adds_a_rep_with_routing_and_a_generated_password_shown_once(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    status, made = await admin.call(
        "POST",
        "/api/v1/users",
        {"username": "rep7", "display_name": "Rep Seven", "role": "rep", "skills": ["order"], "languages": ["nl"]},
    )
    assert status == 201, made
    password = made["password"]
    assert isinstance(password, str) and len(password) >= 16
    assert made["user"] | {"id": 0} == {
        "id": 0,
        "username": "rep7",
        "display_name": "Rep Seven",
        "role": "rep",
        "active": True,
        "skills": ["order"],
        "languages": ["nl"],
    }
    # The password works; it is never listed or answered again.
    rep7 = await client(centre, "rep7", password)
    status, _ = await rep7.call("GET", "/api/v1/dispositions")
    assert status == 200
    listed = await admin.call("GET", "/api/v1/users")
    assert password not in json.dumps(listed)
    # Given a password: none answered.
    status, made = await admin.call(
        "POST", "/api/v1/users", {"username": "qa9", "display_name": "Q", "role": "qa", "password": "a long secret"}
    )
    assert (status, made["password"]) == (201, None)
    await client(centre, "qa9", "a long secret")
    assert (await actions(centre)).count("user.create") == 2
    entry = next(e for e in await centre.store.list_audit() if e.action == "user.create")
    assert password not in json.dumps(entry.to_json())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "Bad Name", "display_name": "X", "role": "rep"}, "username"),
        ({"username": "x", "display_name": "X", "role": "rep"}, "username"),
        ({"username": "ok1", "display_name": "  ", "role": "rep"}, "display_name"),
        ({"username": "ok1", "display_name": "X", "role": "root"}, "role"),
        ({"username": "ok1", "display_name": "X", "role": "rep", "password": "short"}, "password"),
        ({"username": "ok1", "display_name": "X", "role": "rep", "skills": ["nope"]}, "skills"),
        ({"username": "ok1", "display_name": "X", "role": "rep", "languages": ["xx"]}, "languages"),
        ({"username": "ok1", "display_name": "X", "role": "rep", "admin": True}, "admin"),
        ({"display_name": "X", "role": "rep"}, "username"),
    ],
)
async def test_a_bad_new_account_is_refused_naming_the_field(centre: Rapport, body: Any, field: str) -> None:
    admin = await client(centre, "admin1")
    status, answer = await admin.call("POST", "/api/v1/users", body)
    assert status == 400, answer
    assert answer["error"]["message"].startswith(f"{field}:"), answer
    assert "user.create" not in await actions(centre)


async def test_a_username_in_use_is_409_in_any_case(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    for name in ("rep1", "REP1".lower(), "admin1"):
        status, answer = await admin.call(
            "POST", "/api/v1/users", {"username": name, "display_name": "X", "role": "rep"}
        )
        assert (status, answer["error"]["code"]) == (409, "conflict")
    await centre.store.create_user("MixedCase", "M", "rep", "x")  # made by the CLI, which allows capitals
    status, _ = await admin.call("POST", "/api/v1/users", {"username": "mixedcase", "display_name": "X", "role": "rep"})
    assert status == 409


async def test_disabling_ends_the_logins_and_enabling_lets_them_back(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    rep = await client(centre, "rep1")
    rep_id = user_id((await admin.call("GET", "/api/v1/users"))[1]["items"], "rep1")
    status, changed = await admin.call("PUT", f"/api/v1/users/{rep_id}/active", {"active": False})
    assert (status, changed["user"]["active"], changed["logins_ended"]) == (200, False, 1)
    assert (await rep.call("GET", "/api/v1/dispositions"))[0] == 401
    with pytest.raises(RuntimeError, match="401"):
        await login(aiohttp.ClientSession(), centre.url, "rep1", PASSWORD)
    status, changed = await admin.call("PUT", f"/api/v1/users/{rep_id}/active", {"active": True})
    assert (status, changed["user"]["active"]) == (200, True)
    await client(centre, "rep1")
    assert [a for a in await actions(centre) if a.startswith("user.")] == ["user.enable", "user.disable"]


async def test_a_password_reset_is_shown_once_and_ends_the_old_logins(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    rep = await client(centre, "rep1")
    rep_id = user_id((await admin.call("GET", "/api/v1/users"))[1]["items"], "rep1")
    status, reset = await admin.call("POST", f"/api/v1/users/{rep_id}/password")
    assert (status, reset["logins_ended"]) == (200, 1)
    assert (await rep.call("GET", "/api/v1/dispositions"))[0] == 401
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(RuntimeError, match="401"):
            await login(fresh, centre.url, "rep1", PASSWORD)
    await client(centre, "rep1", reset["password"])
    assert "user.password_reset" in await actions(centre)
    assert (await admin.call("POST", "/api/v1/users/999/password"))[0] == 404


async def test_a_new_role_ends_the_logins_and_no_admin_demotes_or_disables_themselves(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    users = (await admin.call("GET", "/api/v1/users"))[1]["items"]
    rep_id, admin_id = user_id(users, "rep1"), user_id(users, "admin1")
    rep = await client(centre, "rep1")
    status, changed = await admin.call("PUT", f"/api/v1/users/{rep_id}/role", {"role": "supervisor"})
    assert (status, changed["user"]["role"], changed["logins_ended"]) == (200, "supervisor", 1)
    assert (await rep.call("GET", "/api/v1/floor"))[0] == 401
    supervisor = await client(centre, "rep1")
    assert (await supervisor.call("GET", "/api/v1/floor"))[0] == 200
    for path, body in (
        (f"/api/v1/users/{admin_id}/role", {"role": "rep"}),
        (f"/api/v1/users/{admin_id}/active", {"active": False}),
    ):
        status, answer = await admin.call("PUT", path, body)
        assert (status, answer["error"]["code"]) == (409, "conflict"), answer
    # Still an admin, still logged in.
    assert (await admin.call("GET", "/api/v1/users"))[0] == 200
    assert (await admin.call("PUT", "/api/v1/users/999/role", {"role": "rep"}))[0] == 404
    assert (await admin.call("PUT", f"/api/v1/users/{rep_id}/role", {"role": "owner"}))[0] == 400
    # A second admin may be demoted by the first; then the first is the last.
    status, made = await admin.call(
        "POST", "/api/v1/users", {"username": "admin2", "display_name": "A2", "role": "admin"}
    )
    admin2_id = made["user"]["id"]
    assert (await admin.call("PUT", f"/api/v1/users/{admin2_id}/role", {"role": "qa"}))[0] == 200
    assert "user.role" in await actions(centre)


async def test_the_last_active_admin_stays_an_admin_in_storage(engine: Engine) -> None:
    store = Store(engine)
    only = await store.create_user("boss", "Boss", "admin", "x")
    with pytest.raises(LastAdmin):
        await store.set_role(only.id, "rep")
    with pytest.raises(LastAdmin):
        await store.set_active_guarded(only.id, False)
    other = await store.create_user("boss2", "Boss 2", "admin", "x")
    await store.set_active_guarded(other.id, False)  # a disabled admin does not count
    with pytest.raises(LastAdmin):
        await store.set_role(only.id, "qa")
    await store.set_active_guarded(other.id, True)
    await store.set_role(only.id, "qa")
    assert (await store.get_user(only.id)).role == "qa"  # type: ignore[union-attr]


# API keys


async def test_an_api_key_is_shown_once_works_and_stops_when_revoked(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    status, key = await admin.call("POST", "/api/v1/api-keys", {"name": "CRM", "scopes": ["sessions:read"]})
    assert status == 201, key
    secret = key["secret"]
    assert secret.startswith("rk_") and key["prefix"] == secret[:10]
    async with centre.http.get(f"{centre.url}/api/v1/sessions", headers={"Authorization": f"Bearer {secret}"}) as r:
        assert r.status == 200
    async with centre.http.get(f"{centre.url}/api/v1/invites", headers={"Authorization": f"Bearer {secret}"}) as r:
        assert r.status in (403, 405)  # no invites:write scope
    status, listed = await admin.call("GET", "/api/v1/api-keys")
    assert secret not in json.dumps(listed)
    (item,) = [k for k in listed["items"] if k["id"] == key["id"]]
    assert item["scopes"] == ["sessions:read"] and item["last_used_at"] is not None and item["revoked_at"] is None
    assert (await admin.call("DELETE", f"/api/v1/api-keys/{key['id']}"))[0] == 204
    async with centre.http.get(f"{centre.url}/api/v1/sessions", headers={"Authorization": f"Bearer {secret}"}) as r:
        assert r.status == 401
    assert (await admin.call("DELETE", f"/api/v1/api-keys/{key['id']}"))[0] == 404
    assert [a for a in await actions(centre) if a.startswith("api_key.")] == ["api_key.revoke", "api_key.create"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": ["sessions:read", "sessions:read"]}, "scopes"),
        ({"name": " ", "scopes": ["sessions:read"]}, "name"),
        ({"name": "x" * 101, "scopes": ["sessions:read"]}, "name"),
        ({"scopes": ["sessions:read"]}, "name"),
    ],
)
async def test_a_bad_api_key_request_is_refused_naming_the_field(centre: Rapport, body: Any, field: str) -> None:
    admin = await client(centre, "admin1")
    status, answer = await admin.call("POST", "/api/v1/api-keys", body)
    assert status == 400 and answer["error"]["message"].startswith(f"{field}:"), answer
    assert (await admin.call("GET", "/api/v1/api-keys"))[1]["items"] == []


# a webhook's test delivery


async def test_a_test_delivery_reaches_the_receiver_signed_and_is_in_the_log(centre: Rapport) -> None:
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    try:
        admin = await client(centre, "admin1")
        url = str(receiver.make_url("/hook"))
        status, endpoint = await admin.call("POST", "/api/v1/webhooks", {"url": url, "events": ["session.ended"]})
        assert status == 201
        status, result = await admin.call("POST", f"/api/v1/webhooks/{endpoint['id']}/test")
        assert status == 200, result
        assert (result["state"], result["attempts"], result["last_status"]) == ("delivered", 1, 204)
        ((headers, body),) = got
        assert verify(endpoint["secret"], headers["Rapport-Signature"], body)
        sent = json.loads(body)
        assert (sent["type"], sent["data"]) == ("webhook.test", {"test": True, "by": "admin1"})
        status, log = await admin.call("GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries")
        assert [(d["event"], d["state"]) for d in log["items"]] == [("webhook.test", "delivered")]
        assert "webhook.test" in await actions(centre)
        # Failure is shown too: the receiver gone, the first attempt fails and the answer says why.
        await receiver.close()
        status, result = await admin.call("POST", f"/api/v1/webhooks/{endpoint['id']}/test")
        assert status == 200 and result["attempts"] == 1 and result["state"] != "delivered"
        assert result["last_error"]
        assert (await admin.call("POST", "/api/v1/webhooks/999/test"))[0] == 404
        rep = await client(centre, "rep1")
        assert (await rep.call("POST", f"/api/v1/webhooks/{endpoint['id']}/test"))[0] == 403
    finally:
        await receiver.close()


# the centre's settings


async def config(rapport: Rapport) -> dict[str, Any]:
    async with rapport.http.get(f"{rapport.url}/api/v1/config") as r:
        return dict(await r.json())


async def test_new_dispositions_apply_to_the_next_wrap_up_without_a_restart(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    items = [
        {"code": "fixed", "label": "Fixed on the call", "category": "Resolved"},
        {"code": "callback", "label": "Call back", "category": "Open"},
    ]
    status, doc = await admin.call("PUT", "/api/v1/settings/dispositions", {"items": items})
    assert status == 200 and doc["dispositions"] == items and doc["overridden"] == ["dispositions"]
    rep = await client(centre, "rep1")
    listed = (await rep.call("GET", "/api/v1/dispositions"))[1]["items"]
    assert [d["code"] for d in listed] == ["fixed", "callback"]
    entry = next(e for e in await centre.store.list_audit() if e.action == "settings.update")
    assert entry.target == "dispositions" and entry.detail["after"] == items  # type: ignore[index]
    status, doc = await admin.call("DELETE", "/api/v1/settings/dispositions")
    assert status == 200 and doc["overridden"] == [] and doc["dispositions"][0]["code"] == "resolved"
    assert "settings.reset" in await actions(centre)


async def test_new_reasons_and_help_reach_the_customer_page_and_skills_guard_them(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    reasons = [{"code": "order", "label": "My order"}, {"code": "billing", "label": "A bill"}]
    status, doc = await admin.call("PUT", "/api/v1/settings/reasons", {"items": reasons})
    assert status == 200, doc
    assert any("not_working" in w for w in doc["warnings"])  # its help is no longer shown
    page = await config(centre)
    assert [(r["code"], r["label"]) for r in page["reasons"]] == [("order", "My order"), ("billing", "A bill")]
    # A call may give the new reason, not a removed one.
    _customer, call = await centre.customer(reason="billing")
    assert (await centre.store.get_session(call["session_id"])).reason == "billing"  # type: ignore[union-attr]
    async with centre.http.post(f"{centre.url}/api/v1/calls", json={"reason": "complaint"}) as r:
        assert r.status == 400
    # A rep's skill now names billing: removing it is refused.
    rep_id = user_id((await admin.call("GET", "/api/v1/users"))[1]["items"], "rep1")
    assert (await admin.call("PUT", f"/api/v1/users/{rep_id}/routing", {"skills": ["billing"]}))[0] == 200
    status, answer = await admin.call("PUT", "/api/v1/settings/reasons", {"items": [{"code": "order", "label": "O"}]})
    assert status == 409 and "billing (rep1)" in answer["error"]["message"]
    status, answer = await admin.call("DELETE", "/api/v1/settings/reasons")
    assert status == 409
    # Help articles, per language, for a current reason only.
    article = {"title": {"en": "Bills", "nl": "Rekeningen"}, "body": "They come monthly.", "url": "https://x.example/b"}
    status, doc = await admin.call("PUT", "/api/v1/settings/help-articles", {"articles": {"billing": [article]}})
    assert status == 200, doc
    async with centre.http.get(f"{centre.url}/api/v1/config?lang=nl") as r:
        billing = next(x for x in (await r.json())["reasons"] if x["code"] == "billing")
    assert billing["help"] == [{"title": "Rekeningen", "body": "They come monthly.", "url": "https://x.example/b"}]
    status, answer = await admin.call("PUT", "/api/v1/settings/help-articles", {"articles": {"complaint": [article]}})
    assert status == 400 and answer["error"]["message"].startswith("articles.complaint:")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("reasons", {"items": []}, "items"),
        ("reasons", {"items": [{"code": "a", "label": "A"}, {"code": "a", "label": "B"}]}, "items"),
        ("reasons", {"items": [{"code": "Bad Code", "label": "A"}]}, "items[0].code"),
        ("reasons", {"items": [{"code": "a", "label": "x" * 81}]}, "items[0].label"),
        ("dispositions", {"items": []}, "items"),
        ("dispositions", {"items": [{"code": "a", "label": "A"}]}, "items[0].category"),
        ("help-articles", {"articles": {"order": [{"title": "", "body": "b"}]}}, "articles[...][0].title"),
        ("help-articles", {"articles": {"order": [{"title": {"xx": "t"}, "body": "b"}]}}, "articles[...][0].title"),
        ("help-articles", {"articles": {"order": [{"title": "t", "body": "b" * 2001}]}}, "articles[...][0].body"),
        (
            "help-articles",
            {"articles": {"order": [{"title": "t", "body": "b", "url": "javascript:x"}]}},
            "articles[...][0].url",
        ),
        ("recording", {"policy": "sometimes"}, "policy"),
        (
            "emotion",
            {"cues": False, "default_consent": True, "raise_threshold": 0.99, "clear_threshold": 0.3, "hold_s": 1},
            "raise_threshold",
        ),
        (
            "emotion",
            {"cues": False, "default_consent": True, "raise_threshold": 0.5, "clear_threshold": 0.6, "hold_s": 1},
            "clear_threshold",
        ),
        (
            "emotion",
            {"cues": False, "default_consent": True, "raise_threshold": 0.5, "clear_threshold": 0.3, "hold_s": 99},
            "hold_s",
        ),
        ("emotion", {"cues": False}, "default_consent"),
    ],
)
async def test_a_bad_section_is_refused_naming_the_field(centre: Rapport, path: str, body: Any, field: str) -> None:
    admin = await client(centre, "admin1")
    before = (await admin.call("GET", "/api/v1/settings"))[1]
    status, answer = await admin.call("PUT", f"/api/v1/settings/{path}", body)
    assert status == 400, answer
    assert answer["error"]["message"].startswith(f"{field}:") or answer["error"]["message"].startswith(f"{field}."), (
        answer
    )
    assert (await admin.call("GET", "/api/v1/settings"))[1] == before
    assert "settings.update" not in await actions(centre)


async def test_the_recording_and_emotion_policies_apply_to_the_next_call(centre: Rapport) -> None:
    admin = await client(centre, "admin1")
    _c, before = await centre.customer()
    assert (await centre.store.get_session(before["session_id"])).recording_consent is None  # type: ignore[union-attr]
    assert (await admin.call("PUT", "/api/v1/settings/recording", {"policy": "always"}))[0] == 200
    assert (await config(centre))["recording"] == {"policy": "always"}
    _c, after = await centre.customer()
    assert (await centre.store.get_session(after["session_id"])).recording_consent is True  # type: ignore[union-attr]

    policy = {"cues": False, "default_consent": False, "raise_threshold": 0.6, "clear_threshold": 0.2, "hold_s": 2.0}
    status, doc = await admin.call("PUT", "/api/v1/settings/emotion", policy)
    assert status == 200 and doc["emotion"] == policy
    assert (await config(centre))["emotion"] == {"available": False, "default_consent": False}
    _c, call = await centre.customer()
    assert (await centre.store.get_session(call["session_id"])).emotion_consent is False  # type: ignore[union-attr]
    assert centre.center.settings.emotion_raise_threshold == 0.6
    # This server runs no emotion model: cues on is refused.
    status, answer = await admin.call("PUT", "/api/v1/settings/emotion", policy | {"cues": True})
    assert status == 409 and answer["error"]["message"].startswith("cues:")


async def test_another_front_door_sees_a_change_at_its_next_poll(engine: Engine) -> None:
    store = Store(engine)
    one = CentreSettings(Settings(), store)
    other = CentreSettings(Settings(), store, poll_s=0.05)
    await one.start()
    await other.start()
    try:
        await one.save("recording", {"policy": "always"}, None)
        assert one.current.recording_policy == "always"
        for _ in range(100):
            if other.current.recording_policy == "always":
                break
            await asyncio.sleep(0.05)
        assert other.current.recording_policy == "always" and other.overridden == {"recording"}
        await one.reset("recording")
        for _ in range(100):
            if other.current.recording_policy == "ask":
                break
            await asyncio.sleep(0.05)
        assert other.current.recording_policy == "ask" and other.overridden == frozenset()
    finally:
        await one.aclose()
        await other.aclose()


async def test_a_stored_section_that_no_longer_applies_falls_back_to_the_default(engine: Engine) -> None:
    store = Store(engine)
    await store.save_centre_section("reasons", [{"nope": 1}], None)
    await store.save_centre_section("recording", {"policy": "always"}, None)
    centre = CentreSettings(Settings(), store)
    await centre.start()
    assert centre.current.reasons == Settings().reasons
    assert centre.current.recording_policy == "always"
