"""Who may do what: a role × route matrix over every API route, recording downloads, and the guards on paths
and call tokens, each reached with the request an attacker would send."""

from __future__ import annotations

import time

import aiohttp
import pytest
from sqlalchemy import update

from server.storage import schema
from tests.support.clients import SignalingClient
from tests.support.media import record_a_file
from tests.support.raw import raw_url
from tests.support.server import Rapport

ANON = "anonymous"
# route → roles that get a non-401/403 answer (anonymous means "no login needed").
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("POST", "/api/v1/auth/login"): {ANON},
    ("POST", "/api/v1/auth/logout"): {"rep", "qa", "supervisor", "admin"},
    ("GET", "/api/v1/me"): {"rep", "qa", "supervisor", "admin"},
    ("GET", "/api/v1/config"): {ANON},
    ("POST", "/api/v1/calls"): {ANON},
    ("POST", "/api/v1/calls/callback"): {ANON},
    ("POST", "/api/v1/invites"): {"rep", "qa", "supervisor", "admin"},
    ("POST", "/api/v1/invites/{code}/redeem"): {ANON},
    ("DELETE", "/api/v1/invites/{invite_id}"): {"supervisor", "admin"},
    ("GET", "/api/v1/sessions"): {"rep", "qa", "supervisor", "admin"},
    ("GET", "/api/v1/sessions/{session_id}"): {"rep", "qa", "supervisor", "admin"},
    ("GET", "/api/v1/sessions/{session_id}/recordings"): {"qa", "supervisor", "admin"},
    ("GET", "/api/v1/recordings/{recording_id}/media"): {"qa", "supervisor", "admin"},
    ("GET", "/api/v1/audit"): {"admin"},
    ("GET", "/api/v1/dispositions"): {"rep", "qa", "supervisor", "admin"},
    ("POST", "/api/v1/sessions/{session_id}/wrapup"): {"rep", "qa", "supervisor", "admin"},
    ("PUT", "/api/v1/sessions/{session_id}/legal-hold"): {"supervisor", "admin"},
    ("DELETE", "/api/v1/sessions/{session_id}"): {"admin"},
    ("DELETE", "/api/v1/customers/{customer_ref}"): {"admin"},
    ("GET", "/api/v1/qa/sessions"): {"qa", "supervisor", "admin"},
    ("GET", "/api/v1/qa/sessions/{session_id}"): {"qa", "supervisor", "admin"},
    ("POST", "/api/v1/qa/sessions/{session_id}/reviews"): {"qa", "supervisor", "admin"},
    ("POST", "/api/v1/qa/sessions/{session_id}/compose"): {"qa", "supervisor", "admin"},
    ("GET", "/api/v1/qa/scorecard"): {"qa", "supervisor", "admin"},
    ("PUT", "/api/v1/qa/scorecard"): {"admin"},
    ("GET", "/api/v1/qa/export.csv"): {"qa", "supervisor", "admin"},
    ("POST", "/api/v1/calls/rating"): {ANON},
    ("GET", "/api/v1/invites/{token}/qr.png"): {ANON},
    ("GET", "/api/v1/floor"): {"supervisor", "admin"},
    ("GET", "/api/v1/reports"): {"supervisor", "admin"},
    ("GET", "/api/v1/reports.csv"): {"supervisor", "admin"},
    ("GET", "/api/v1/users"): {"admin"},
    ("PUT", "/api/v1/users/{user_id}/routing"): {"admin"},
    ("POST", "/api/v1/webhooks"): {"admin"},
    ("GET", "/api/v1/webhooks"): {"admin"},
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): {"admin"},
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): {"admin"},
    ("PUT", "/api/v1/me/language"): {"rep", "qa", "supervisor", "admin"},
    ("GET", "/api/v1/business-hours"): {"rep", "qa", "supervisor", "admin"},
    ("PUT", "/api/v1/business-hours"): {"admin"},
    ("GET", "/api/v1/callbacks"): {"rep", "supervisor", "admin"},
    ("POST", "/api/v1/callbacks/{callback_id}/start"): {"rep", "supervisor", "admin"},
    ("POST", "/api/v1/callbacks/{callback_id}/cancel"): {"rep", "supervisor", "admin"},
    # A call's own token only: no login of any role opens them.
    ("POST", "/api/v1/calls/files"): set(),
    ("GET", "/api/v1/calls/files/{file_id}"): set(),
    ("POST", "/api/v1/sessions/{session_id}/files"): {"rep"},
    ("GET", "/api/v1/sessions/{session_id}/files/{file_id}"): {"rep", "qa", "supervisor", "admin"},
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): {"admin"},
    ("POST", "/api/v1/users"): {"admin"},
    ("PUT", "/api/v1/users/{user_id}/role"): {"admin"},
    ("PUT", "/api/v1/users/{user_id}/active"): {"admin"},
    ("POST", "/api/v1/users/{user_id}/password"): {"admin"},
    ("GET", "/api/v1/api-keys"): {"admin"},
    ("POST", "/api/v1/api-keys"): {"admin"},
    ("DELETE", "/api/v1/api-keys/{key_id}"): {"admin"},
    ("GET", "/api/v1/settings"): {"admin"},
    ("PUT", "/api/v1/settings/dispositions"): {"admin"},
    ("PUT", "/api/v1/settings/reasons"): {"admin"},
    ("PUT", "/api/v1/settings/help-articles"): {"admin"},
    ("PUT", "/api/v1/settings/recording"): {"admin"},
    ("PUT", "/api/v1/settings/emotion"): {"admin"},
    ("DELETE", "/api/v1/settings/{section}"): {"admin"},
    ("GET", "/api/v1/openapi.json"): {ANON},
    ("GET", "/api/docs"): {ANON},
}
ROLES = ("anonymous", "rep", "qa", "supervisor", "admin")


@pytest.fixture
async def recorded(rapport: Rapport) -> tuple[str, int]:
    """A session with one finished recording file in the server's recordings folder."""
    _customer, call = await rapport.customer()
    rec_id = await record_a_file(rapport, call["session_id"], frames=60)
    return call["session_id"], rec_id


def test_the_matrix_covers_every_api_route(rapport: Rapport) -> None:
    routes = {
        (r.method, r.resource.canonical)
        for r in rapport.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    assert routes == set(EXPECTED)


async def test_role_route_matrix(rapport: Rapport, recorded: tuple[str, int]) -> None:
    session_id, rec_id = recorded
    await rapport.add_user("sup1", "supervisor")
    await rapport.add_user("adm1", "admin")
    users = {"rep": "rep1", "qa": "qa1", "supervisor": "sup1", "admin": "adm1"}
    for role in ROLES:
        if role == "anonymous":
            http, csrf = aiohttp.ClientSession(), ""
        else:
            http, csrf = await rapport.staff_session(users[role])
        try:
            for (method, route), allowed in EXPECTED.items():
                if route == "/api/v1/auth/logout":
                    continue  # would end this login; covered in test_session_life
                url = rapport.url + route.format(
                    code="nope",
                    token="nope",
                    session_id=session_id,
                    recording_id=rec_id,
                    customer_ref="nobody",
                    user_id=1,
                    webhook_id=1,
                    invite_id="inv_0000000000000000",
                    callback_id="cb_nope",
                    file_id="f_nope",
                    key_id=999999,
                    section="nope",
                )
                body = {"username": "x", "password": "y"} if route.endswith("login") else {}
                async with http.request(method, url, json=body, headers={"X-CSRF-Token": csrf}) as r:
                    denied = r.status in (401, 403)
                    permitted = ANON in allowed or role in allowed
                    if route.endswith("login"):
                        continue  # a wrong password is a 401 for everybody, by design
                    assert denied != permitted, (role, method, route, r.status)
        finally:
            if role == "anonymous":
                await http.close()


async def test_recordings_play_by_id_with_ranges_and_every_access_is_audited(
    rapport: Rapport, recorded: tuple[str, int]
) -> None:
    session_id, rec_id = recorded
    qa, _ = await rapport.staff_session("qa1")
    async with qa.get(f"{rapport.url}/api/v1/sessions/{session_id}/recordings") as r:
        items = (await r.json())["items"]
    assert [i["id"] for i in items] == [rec_id] and items[0]["url"].endswith(f"/{rec_id}/media")
    url = f"{rapport.url}/api/v1/recordings/{rec_id}/media"
    async with qa.get(url) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/x-matroska"
        whole = await r.read()
    async with qa.get(url, headers={"Range": "bytes=10-19"}) as r:
        assert r.status == 206 and await r.read() == whole[10:20]
    async with qa.get(url, headers={"Range": f"bytes={len(whole) + 100}-"}) as r:
        assert r.status == 416
    await rapport.add_user("adm1", "admin")
    admin, _ = await rapport.staff_session("adm1")
    async with admin.get(f"{rapport.url}/api/v1/audit") as r:
        actions = [e["action"] for e in (await r.json())["items"]]
    assert actions.count("recording.play") == 3 and "recordings.list" in actions


# What only recording_media's own check answers (the router's 404 says "Not Found").
NO_SUCH_RECORDING = {"error": {"code": "not_found", "message": "no such recording"}}


async def test_recording_ids_that_try_to_escape_reach_the_handler_and_get_its_404(
    rapport: Rapport, recorded: tuple[str, int]
) -> None:
    session_id, _rec_id = recorded
    qa, _ = await rapport.staff_session("qa1")
    # Sent raw: each reaches /api/v1/recordings/{recording_id}/media with the id as written ("../../etc/passwd" ...).
    for bad in (
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%252f..%252fetc",
        "%2e%2e",
        "..",
        "%2Fetc%2Fpasswd",
        "1%00",
        "1e3",
        "-1",
        "9999",
    ):
        async with qa.get(raw_url(rapport.url, f"/api/v1/recordings/{bad}/media")) as r:
            assert (r.status, await r.json()) == (404, NO_SUCH_RECORDING), bad
    # Even a tampered row cannot reach outside the recordings folder.
    outside = await rapport.store.add_recording(session_id, "rep", "video", "../../../../etc/passwd")
    await rapport.store.finish_recording(outside, state="complete", size=1, sha256="x")
    async with qa.get(f"{rapport.url}/api/v1/recordings/{outside}/media") as r:
        assert (r.status, await r.json()) == (404, NO_SUCH_RECORDING)


async def test_an_expired_token_of_a_live_call_no_longer_opens_a_socket(rapport: Rapport) -> None:
    customer, call = await rapport.customer()
    await customer.close()
    # The call is still waiting (within the reconnect grace): only the token's expiry stands in the way.
    assert call["session_id"] in rapport.center.sessions
    table = schema.support_sessions
    async with rapport.store.engine.begin() as conn:
        await conn.execute(
            update(table).where(table.c.id == call["session_id"]).values(token_expires_at=time.time() - 1)
        )
    async with aiohttp.ClientSession() as http:
        late = SignalingClient(http, rapport.url)
        await late.connect()
        await late.send({"type": "hello", "token": call["token"]})
        reply = await late.wait_for("error", timeout=10)
        await late.close()
    assert reply["code"] == "token_invalid"
    assert not any(m["type"] == "welcome" for m in late.inbox)
    assert call["session_id"] in rapport.center.sessions
