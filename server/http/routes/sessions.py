"""HTTP API v1 and the page routes."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...calls.center import CALL_CENTER
from ...calls.cues import EMOTION
from ...calls.views import MAX_WAIT, PROTOCOL_VERSION
from ...config import SETTINGS
from ...metrics import METRICS, require_metrics_access
from ...storage.store import STORE, iso
from ..apikeys import Principal, require_principal
from ..auth import LOGIN_GUARD, LoginRefused
from ..security import (
    COOKIE,
    ApiError,
    client_address,
    optional_str,
    read_json,
    require_staff,
    set_login_cookie,
)
from .intake import (
    call_answer,
    consent_field,
    help_for,
    limit_calls,
    negotiate_language,
    query_date,
    queue_customer,
    validate_contact,
    validate_language,
    validate_reason,
)
from .invites import INVITE_KEY, LinkError, open_link

WEB_CLIENT = Path(__file__).resolve().parents[3] / "web_client"
# A database id in a path: a longer number overflows SQLite's 64-bit INTEGER (a 500 before; found by make fuzz).
ROW_ID = re.compile(r"[0-9]{1,18}")
STAFF_ROLES = ("rep", "qa", "supervisor", "admin")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# pages


async def customer_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_CLIENT / "customer.html")


async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_CLIENT / "console.html")


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/call")


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text; with the metrics token or to loopback only (it shows how busy the server is)."""
    require_metrics_access(request, request.app[SETTINGS])
    registry = request.app[METRICS].registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return _json({"ok": True, **request.app[CALL_CENTER].floor()})


# auth


async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or len(username) > 64:
        raise ApiError(400, "bad_request", "username and password are required strings")
    if len(password) > 1024:
        raise ApiError(400, "bad_request", "password: too long")
    store = request.app[STORE]
    try:
        user = await request.app[LOGIN_GUARD].authenticate(store, username, password, client_address(request))
    except LoginRefused as refused:
        retry_after = {"Retry-After": str(int(refused.retry_after) + 1)}
        raise ApiError(429, "rate_limited", refused.message, retry_after) from None
    if user is None:
        raise ApiError(401, "not_authenticated", "wrong username or password")
    cookie, csrf = await store.create_login(user.id, 12 * 3600)
    response = _json({"user": user.to_json(), "csrf_token": csrf})
    set_login_cookie(response, cookie, request.app[SETTINGS])
    return response


async def logout(request: web.Request) -> web.Response:
    _user, _csrf, login_id = await require_staff(request)
    await request.app[STORE].revoke_login(login_id)
    await request.app[CALL_CENTER].close_login(login_id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user, csrf, _login_id = await require_staff(request)
    return _json({"user": user.to_json(), "csrf_token": csrf})


# customers


async def config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    emotion = request.app[EMOTION]
    codes = {code for code, _n, _d in settings.languages}
    language = request.query.get("lang") or await invite_language(request) or ""
    if language not in codes:
        language = negotiate_language(request.headers.get("Accept-Language"), settings)
    return _json(
        {
            "protocol": PROTOCOL_VERSION,
            "ice_servers": [s.to_browser() for s in settings.ice_servers],
            "languages": [{"code": c, "name": n, "dir": d} for c, n, d in settings.languages],
            "language": language,
            "reasons": [
                {"code": code, "label": label, "help": help_for(settings, code, language)}
                for code, label in settings.reasons
            ],
            # The notice is shown whenever cues may run; the toggle starts at the deployment's default.
            "emotion": {"available": emotion.service is not None, "default_consent": settings.emotion_default_consent},
            "recording": {"policy": settings.recording_policy},
        }
    )


async def invite_language(request: web.Request) -> str | None:
    """The language the calling system gave an invite (``?invite=<token>`` on the join page)."""
    token = request.query.get("invite")
    if not token:
        return None
    try:
        link = open_link(request.app[INVITE_KEY], token, now=time.time())
    except LinkError:
        return None  # the page says so when it redeems the link
    invite = await request.app[STORE].get_invite(link["c"]) if isinstance(link.get("c"), str) else None
    return invite["language"] if invite else None


async def start_call(request: web.Request) -> web.Response:
    body = await read_json(request)
    reason = validate_reason(request, body.get("reason"))
    name = optional_str(body, "name", 200)
    device = optional_str(body, "device", 200)
    language = validate_language(request, body.get("language"))
    contact = validate_contact(body)
    consent = consent_field(body)
    limit_calls(request)
    record, token = await queue_customer(
        request,
        reason=reason,
        customer_name=name,
        device=device,
        emotion_consent=consent,
        recording_consent=consent_field(body, "recording_consent"),
        language=language,
        contact=contact,
    )
    return call_answer(record, token)


RATING_WINDOW_S = 2 * 3600


async def rate_call(request: web.Request) -> web.Response:
    """The customer's rating after the call, authorised by the call's own token."""
    body = await read_json(request)
    token, rating = body.get("token"), body.get("rating")
    if not isinstance(token, str) or not 20 <= len(token) <= 128:
        raise ApiError(400, "bad_request", "token: the call's token")
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise ApiError(400, "bad_request", "rating: an integer from 1 to 5")
    comment = optional_str(body, "comment", 2000)
    store = request.app[STORE]
    record = await store.session_for_token(token)
    if record is None:
        raise ApiError(404, "not_found", "no such call")
    if record.ended_at is None or record.answered_at is None:
        raise ApiError(409, "conflict", "a call can be rated once it has been answered and has ended")
    if time.time() - record.ended_at > RATING_WINDOW_S:
        raise ApiError(409, "conflict", "the time to rate this call is over")
    if not await store.save_rating(record.id, rating, comment):
        raise ApiError(409, "conflict", "this call has been rated already")
    return _json({"ok": True})


CALLBACK_EVENT = "callback_requested"


async def request_callback(request: web.Request) -> web.Response:
    """No rep could take the call in time: the customer leaves a phone number or e-mail for staff to call back.

    Authorised by the call's own token; once per call. Stored as a ``callback_requested`` event of the session.
    """
    body = await read_json(request)
    token = body.get("token")
    if not isinstance(token, str) or not 20 <= len(token) <= 128:
        raise ApiError(400, "bad_request", "token: the call's token")
    contact = validate_contact(body)
    if contact is None:
        raise ApiError(400, "bad_request", "contact: a phone number or an e-mail address")
    store = request.app[STORE]
    record = await store.session_for_token(token)
    if record is None:
        raise ApiError(404, "not_found", "no such call")
    if record.end_reason != MAX_WAIT or record.ended_at is None:
        raise ApiError(409, "conflict", "a callback can be asked for when no one could take the call in time")
    if time.time() - record.ended_at > RATING_WINDOW_S:
        raise ApiError(409, "conflict", "the time to ask for a callback is over")
    if not await store.add_event_once(record.id, CALLBACK_EVENT, {"contact": contact}):
        raise ApiError(409, "conflict", "a callback has been asked for already")
    return _json({"ok": True})


# sessions (staff and other systems)

SESSION_STATES = ("waiting", "active", "ended", "abandoned", "interrupted")
# Roles that read every session; a rep reads only the sessions they took (API keys need sessions:read).
BULK_READ_ROLES = ("qa", "supervisor", "admin")


def own_sessions_only(principal: Principal) -> int | None:
    """The rep whose sessions are all this principal may read, or None for every session."""
    if principal.user is not None and principal.user.role not in BULK_READ_ROLES:
        return principal.user.id
    return None


async def list_sessions(request: web.Request) -> web.Response:
    principal = await require_principal(request, scope="sessions:read", roles=STAFF_ROLES)
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in SESSION_STATES:
        raise ApiError(400, "bad_request", f"state: one of {', '.join(SESSION_STATES)}")
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "bad_request", "limit: an integer") from None
    if not 1 <= limit <= 500:
        raise ApiError(400, "bad_request", "limit: from 1 to 500")
    customer_ref = q.get("customer_ref") or None
    if customer_ref is not None and len(customer_ref) > 128:
        raise ApiError(400, "bad_request", "customer_ref: at most 128 characters")
    items = await request.app[STORE].list_sessions(
        state=state,
        limit=limit,
        reason=validate_reason(request, q.get("reason")),
        customer_ref=customer_ref,
        created_from=query_date(q.get("from"), "from"),
        created_to=query_date(q.get("to"), "to", end=True),
        rep_id=own_sessions_only(principal),
    )
    return _json({"items": [s.to_json() for s in items]})


async def get_session(request: web.Request) -> web.Response:
    principal = await require_principal(request, scope="sessions:read", roles=STAFF_ROLES)
    store = request.app[STORE]
    session_id = request.match_info["session_id"]
    record = await store.get_session(session_id) if len(session_id) <= 64 else None
    only_rep = own_sessions_only(principal)
    if record is None or (only_rep is not None and record.rep_id != only_rep):
        # A session that is not yours gets the same answer as one that does not exist.
        raise ApiError(404, "not_found", "no such session")
    data = record.to_json()
    data["chat"] = [c.to_json() for c in await store.list_chat(record.id)]
    data["events"] = await store.list_events(record.id)
    data["emotion_timeline"] = await store.list_timeline(record.id)
    return _json(data)


# recordings (QA)

REVIEW_ROLES = ("qa", "supervisor", "admin")
MEDIA_TYPES = {".mkv": "video/x-matroska", ".mka": "audio/x-matroska", ".webm": "video/webm"}
SERVABLE_STATES = ("complete", "truncated", "recovered")


def recording_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "participant": row["participant"],
        "kind": row["kind"],
        "state": row["state"],
        "progress": row["progress"],
        "error": row["error"],
        "size": row["size"],
        "sha256": row["sha256"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
        "url": f"/api/v1/recordings/{row['id']}/media",
    }


async def list_session_recordings(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    store = request.app[STORE]
    session_id = request.match_info["session_id"]
    record = await store.get_session(session_id) if len(session_id) <= 64 else None
    if record is None:
        raise ApiError(404, "not_found", "no such session")
    rows = await store.list_recordings(session_id)
    await store.audit(user.id, "recordings.list", session_id)
    return _json({"items": [recording_json(r) for r in rows]})


async def recording_media(request: web.Request) -> web.StreamResponse:
    """Serve a recording by its database id; the request never names a path."""
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    store = request.app[STORE]
    raw_id = request.match_info["recording_id"]
    if not ROW_ID.fullmatch(raw_id):
        raise ApiError(404, "not_found", "no such recording")
    recording_id = int(raw_id)
    row = await store.get_recording(recording_id)
    if row is None or row["state"] not in SERVABLE_STATES:
        raise ApiError(404, "not_found", "no such recording")
    root = request.app[SETTINGS].recordings_path.resolve()
    path = (root / row["path"]).resolve()
    # Belt and braces: even a tampered database row cannot point outside the recordings folder.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "no such recording")
    await store.audit(user.id, "recording.play", str(recording_id), {"range": request.headers.get("Range")})
    response = web.FileResponse(
        path, headers={"Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream")}
    )
    return response


async def audit_log(request: web.Request) -> web.Response:
    await require_staff(request, ("admin",))
    return _json({"items": await request.app[STORE].list_audit()})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/call", customer_page)
    app.router.add_get("/console", console_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_static("/static/", WEB_CLIENT, follow_symlinks=False, append_version=False)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_get("/api/v1/me", me)
    app.router.add_get("/api/v1/config", config)
    app.router.add_post("/api/v1/calls", start_call)
    app.router.add_post("/api/v1/calls/rating", rate_call)
    app.router.add_post("/api/v1/calls/callback", request_callback)
    app.router.add_get("/api/v1/sessions", list_sessions)
    app.router.add_get("/api/v1/sessions/{session_id}", get_session)
    app.router.add_get("/api/v1/sessions/{session_id}/recordings", list_session_recordings)
    app.router.add_get("/api/v1/recordings/{recording_id}/media", recording_media)
    app.router.add_get("/api/v1/audit", audit_log)
