"""The customer page's API (configuration, calls, ratings, callbacks), staff login, sessions and recordings;
and the page routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...calls.centre_settings import CENTRE
from ...calls.cues import EMOTION
from ...calls.desk import CALL_DESK
from ...calls.views import PROTOCOL_VERSION, staff_file_url
from ...config import SETTINGS
from ...metrics import METRICS, require_metrics_access
from ...storage import records
from ...storage.store import STORE
from ..api import CUSTOMER, PUBLIC, Answer, Routes, caller, respond, staff, staff_or_key, staff_user
from ..apikeys import Principal
from ..auth import LOGIN_GUARD, LoginRefused
from ..models.common import OK, Ok, SessionPath
from ..models.sessions import (
    AuditEntry,
    AuditLog,
    CallToken,
    Config,
    ConfigQuery,
    Login,
    LoginResult,
    Rating,
    Recording,
    RecordingList,
    RecordingPath,
    Session,
    SessionDetail,
    SessionList,
    SessionsQuery,
    StaffLanguage,
    StaffLanguageSet,
    StartCall,
    User,
)
from ..pages import WEB_CLIENT, page_response
from ..security import COOKIE, LOGIN_TTL_S, ApiError, client_address, require_staff, set_login_cookie
from .callbacks import availability
from .intake import (
    call_token,
    check_contact,
    clean,
    day_start,
    help_for,
    limit_calls,
    negotiate_language,
    queue_customer,
    validate_language,
    validate_reason,
)
from .invites import INVITE_KEY, LinkError, open_link

routes = Routes(tag="Sessions")


# pages


async def customer_page(request: web.Request) -> web.Response:
    return page_response(request, "customer")


async def console_page(request: web.Request) -> web.Response:
    return page_response(request, "console")


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/call")


async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text; with the metrics token or to loopback only (it shows how busy the server is)."""
    require_metrics_access(request, request.app[SETTINGS])
    registry = request.app[METRICS].registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


# auth

staff_login = routes.under("Auth")


@staff_login.post(
    "/api/v1/auth/login", op="login", auth=PUBLIC, response=LoginResult, answer="Logged in.", errors=(401, 429)
)
async def login(request: web.Request, *, body: Login) -> web.Response:
    """Log a staff member in

    Sets the rapport_session cookie (HttpOnly, SameSite=Strict) and returns the CSRF token. Failed logins are
    limited per username and address, per address and server-wide (429 with Retry-After, checked before the
    password is); see docs/api.md.
    """
    store = request.app[STORE]
    try:
        user = await request.app[LOGIN_GUARD].authenticate(store, body.username, body.password, client_address(request))
    except LoginRefused as refused:
        retry_after = {"Retry-After": str(int(refused.retry_after) + 1)}
        raise ApiError(429, "rate_limited", refused.message, retry_after) from None
    if user is None:
        raise ApiError(401, "not_authenticated", "wrong username or password")
    cookie, csrf = await store.create_login(user.id, LOGIN_TTL_S)
    language = await store.get_language(user.id)
    response = respond(LoginResult(user=User.of(user.to_json()), csrf_token=csrf, language=language))
    set_login_cookie(response, cookie, request.app[SETTINGS])
    return response


@staff_login.post(
    "/api/v1/auth/logout", op="logout", auth=staff(), status=204, answer="Logged out; the cookie is cleared."
)
async def logout(request: web.Request) -> web.Response:
    """Log out

    Ends this login and closes its live sockets (code 4001).
    """
    _user, _csrf, login_id = await require_staff(request)
    await request.app[STORE].revoke_login(login_id)
    await request.app[CALL_DESK].close_login(login_id)
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


@staff_login.get("/api/v1/me", op="getMe", auth=staff())
async def me(request: web.Request) -> LoginResult:
    """Who is logged in"""
    user, csrf, _login_id = await require_staff(request)
    language = await request.app[STORE].get_language(user.id)
    return LoginResult(user=User.of(user.to_json()), csrf_token=csrf, language=language)


@staff_login.put("/api/v1/me/language", op="setMyLanguage", auth=staff(), answer="The language, as stored.")
async def set_my_language(request: web.Request, *, body: StaffLanguage) -> StaffLanguageSet:
    """Choose the staff pages' language

    For the signed-in staff member only, any role: one of the deployment's languages (400 otherwise), or null to
    follow the browser again. Audited.
    """
    user = staff_user(request)
    language = validate_language(request, body.language)
    store = request.app[STORE]
    before = await store.get_language(user.id)
    if language != before:
        await store.set_language(user.id, language)
        await store.audit(user.id, "user.language", str(user.id), {"from": before, "to": language})
    return StaffLanguageSet(language=language)


# customers

customers = routes.under("Customers")


@customers.get("/api/v1/config", op="getConfig", auth=PUBLIC, headers={"Accept-Language": "The browser's languages."})
async def config(request: web.Request, *, query: ConfigQuery) -> Config:
    """The customer page's configuration

    ICE servers, languages, reasons with their self-help articles, the emotion-cue and recording policies, and
    whether each queue is open (business hours), when it opens next, the wait now and the callback slots.
    """
    settings = request.app[CENTRE].current  # with /admin's changes
    emotion = request.app[EMOTION]
    codes = {code for code, _n, _d in settings.languages}
    language = query.lang or await invite_language(request, query.invite) or ""
    if language not in codes:
        language = negotiate_language(request.headers.get("Accept-Language"), settings)
    return Config.of(
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
            "emotion": {
                "available": emotion.service is not None and settings.emotion_cues_allowed,
                "default_consent": settings.emotion_default_consent,
            },
            "recording": {"policy": settings.recording_policy},
            "hours": await availability(request),
        }
    )


async def invite_language(request: web.Request, token: str | None) -> str | None:
    """The language the calling system gave an invite (``?invite=<token>`` on the join page)."""
    if not token:
        return None
    try:
        link = open_link(request.app[INVITE_KEY], token, now=time.time())
    except LinkError:
        return None  # the page says so when it redeems the link
    invite = await request.app[STORE].get_invite(link["c"]) if isinstance(link.get("c"), str) else None
    return invite.language if invite else None


@customers.post("/api/v1/calls", op="startCall", auth=PUBLIC, status=201, errors=(429, 503))
async def start_call(request: web.Request, *, body: StartCall) -> CallToken:
    """Start a call (join the queue)

    Everything is optional. The answer's token opens /ws/v1 (see docs/protocol.md). Rate limited per address;
    refused with 503 when every line is busy.
    """
    reason = validate_reason(request, body.reason)
    language = validate_language(request, body.language)
    contact = check_contact(body.contact)
    limit_calls(request)
    call = records.NewCall(
        reason=reason,
        customer_name=clean(body.name),
        device=clean(body.device),
        language=language,
        contact=contact,
        emotion_consent=body.emotion_consent,
        recording_consent=body.recording_consent,
    )
    return call_token(await queue_customer(request, call))


RATING_WINDOW_S = 2 * 3600


async def _ended_call(
    request: web.Request, token: str, ready: Callable[[records.SessionRecord], bool], not_ready: str, late: str
) -> records.SessionRecord:
    """The ended call a customer's own token names, for what they may do after it (rate it, ask for a callback):
    404 for no such call, 409 ``not_ready`` unless it ended and is ``ready``, 409 ``late`` after RATING_WINDOW_S."""
    record = await request.app[STORE].session_for_token(token)
    if record is None:
        raise ApiError(404, "not_found", "no such call")
    if record.ended_at is None or not ready(record):
        raise ApiError(409, "conflict", not_ready)
    if time.time() - record.ended_at > RATING_WINDOW_S:
        raise ApiError(409, "conflict", late)
    return record


@customers.post("/api/v1/calls/rating", op="rateCall", auth=CUSTOMER, answer="Saved.", errors=(404, 409))
async def rate_call(request: web.Request, *, body: Rating) -> Ok:
    """Rate a call afterwards

    Authorised by the call's own token; once, within 2 hours of the end of an answered call (else 409).
    """
    record = await _ended_call(
        request,
        body.token,
        lambda call: call.answered_at is not None,
        "a call can be rated once it has been answered and has ended",
        "the time to rate this call is over",
    )
    if not await request.app[STORE].save_rating(record.id, body.rating, clean(body.comment)):
        raise ApiError(409, "conflict", "this call has been rated already")
    return OK


# sessions (staff and other systems)

# Roles that read every session; a rep reads only the sessions they took (API keys need sessions:read).
BULK_READ_ROLES = ("qa", "supervisor", "admin")
SESSIONS_READ = staff_or_key("sessions:read")


def own_sessions_only(principal: Principal) -> int | None:
    """The rep whose sessions are all this principal may read, or None for every session."""
    if principal.user is not None and principal.user.role not in BULK_READ_ROLES:
        return principal.user.id
    return None


@routes.get("/api/v1/sessions", op="listSessions", auth=SESSIONS_READ)
async def list_sessions(request: web.Request, *, query: SessionsQuery) -> SessionList:
    """List sessions

    Newest first. A rep gets only the sessions they took; qa, supervisor, admin and API keys get all.
    """
    items = await request.app[STORE].list_sessions(
        state=query.state,
        limit=query.limit,
        reason=validate_reason(request, query.reason),
        customer_ref=query.customer_ref,
        created_from=day_start(query.from_),
        created_to=day_start(query.to, end=True),
        rep_id=own_sessions_only(caller(request)),
    )
    return SessionList(items=Session.all_of(s.to_json() for s in items))


@routes.get("/api/v1/sessions/{session_id}", op="getSession", auth=SESSIONS_READ, answer="The session.")
async def get_session(request: web.Request, *, path_params: SessionPath) -> SessionDetail:
    """One session with its chat, events and emotion timeline

    A rep reads only the sessions they took: any other id is 404.
    """
    store = request.app[STORE]
    record = await store.get_session(path_params.session_id)
    only_rep = own_sessions_only(caller(request))
    if record is None or (only_rep is not None and record.rep_id != only_rep):
        # A session that is not yours gets the same answer as one that does not exist.
        raise ApiError(404, "not_found", "no such session")
    data = record.to_json()
    data["chat"] = [c.to_json() for c in await store.list_chat(record.id)]
    data["files"] = [file_json(f, staff_file_url(f)) for f in await store.list_files(record.id)]
    data["events"] = [e.to_json() for e in await store.list_events(record.id)]
    data["emotion_timeline"] = [s.to_json() for s in await store.list_timeline(record.id)]
    return SessionDetail.of(data)


def file_json(file: records.SessionFile, url: str) -> dict[str, Any]:
    """A photo, file or snapshot as the API sends it: by its random id and URL, never its path on disk."""
    data = file.to_json()
    del data["id"], data["session_id"]
    return {**data, "file_id": file.id, "url": url}


# recordings (QA)

recordings = routes.under("Recordings")
REVIEWERS = staff("qa", "supervisor", "admin")  # QA's routes too
MEDIA_TYPES = {".mkv": "video/x-matroska", ".mka": "audio/x-matroska", ".webm": "video/webm"}
MEDIA = tuple(sorted(set(MEDIA_TYPES.values())))
SERVABLE_STATES = ("complete", "truncated", "recovered")


def recording_json(row: records.Recording) -> dict[str, Any]:
    # The file is played through the API by its id, never by its path on disk.
    return {**row.to_json(), "url": f"/api/v1/recordings/{row.id}/media"}


@recordings.get("/api/v1/sessions/{session_id}/recordings", op="listSessionRecordings", auth=REVIEWERS)
async def list_session_recordings(request: web.Request, *, path_params: SessionPath) -> RecordingList:
    """A session's recordings

    Every access is written to the audit log.
    """
    store = request.app[STORE]
    session_id = path_params.session_id
    if await store.get_session(session_id) is None:
        raise ApiError(404, "not_found", "no such session")
    rows = await store.list_recordings(session_id)
    await store.audit(staff_user(request).id, "recordings.list", session_id)
    return RecordingList(items=Recording.all_of(recording_json(r) for r in rows))


@recordings.get(
    "/api/v1/recordings/{recording_id}/media",
    op="getRecordingMedia",
    auth=REVIEWERS,
    media=MEDIA,
    answer="The file.",
    also={206: Answer("The requested range.", media=MEDIA), 416: Answer("The range is outside the file.")},
    headers={"Range": "For example bytes=0-1023."},
)
async def recording_media(request: web.Request, *, path_params: RecordingPath) -> web.StreamResponse:
    """Play or download a recording

    Found by database id only: the request never names a path. Range requests give 206. Every access is audited.
    """
    store = request.app[STORE]
    recording_id = path_params.recording_id
    row = await store.get_recording(recording_id)
    if row is None or row.state not in SERVABLE_STATES:
        raise ApiError(404, "not_found", "no such recording")
    root = request.app[SETTINGS].recordings_path.resolve()
    path = (root / row.path).resolve()
    # Belt and braces: even a tampered database row cannot point outside the recordings folder.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "no such recording")
    detail = {"range": request.headers.get("Range")}
    await store.audit(staff_user(request).id, "recording.play", str(recording_id), detail)
    return web.FileResponse(path, headers={"Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream")})


@recordings.get("/api/v1/audit", op="getAuditLog", auth=staff("admin"))
async def audit_log(request: web.Request) -> AuditLog:
    """The audit log

    The newest 200 entries.
    """
    return AuditLog(items=AuditEntry.all_of(e.to_json() for e in await request.app[STORE].list_audit()))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/call", customer_page)
    app.router.add_get("/console", console_page)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_static("/static/", WEB_CLIENT, follow_symlinks=False, append_version=False)
    routes.setup(app)
