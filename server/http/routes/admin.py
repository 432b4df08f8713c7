"""The admin page's API (/admin): staff accounts, API keys, testing a webhook and the centre's settings.

Admins only (a staff login with the admin role; API keys are refused: a key must not mint keys or accounts),
and every change is in the audit log. The guard rails are here: no admin disables or demotes the last active
admin, or themselves; a reason still in a rep's skills cannot be removed.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from ...calls.centre_settings import CENTRE, SECTIONS
from ...calls.cues import EMOTION
from ...config import SETTINGS
from ...storage.api_keys import API_KEYS
from ...storage.store import STORE
from ...storage.users import LastAdmin, UsernameTaken
from ..api import Routes, staff, staff_user
from ..auth import hash_password
from ..models.admin import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyPath,
    CentreSettings,
    Dispositions,
    EmotionPolicy,
    HelpArticles,
    NewApiKey,
    NewUser,
    PasswordReset,
    Reasons,
    RecordingPolicy,
    SectionPath,
    SetActive,
    SetRole,
    UserChanged,
    UserCreated,
)
from ..models.supervisor import StaffUser, UserPath
from ..pages import page_response
from ..security import ApiError

routes = Routes(tag="Admin")
ADMIN = staff("admin")


def generated_password() -> str:
    """16 URL-safe characters (96 bits): shown once to the admin, who hands it over."""
    return secrets.token_urlsafe(12)


async def _account(request: web.Request, user_id: int) -> StaffUser:
    account = await request.app[STORE].get_account(user_id)
    if account is None:
        raise ApiError(404, "not_found", "no such user")
    return StaffUser.of(account.to_json())


def _check_routing(request: web.Request, skills: list[str], languages: list[str]) -> None:
    settings = request.app[CENTRE].current
    known = {
        "skills": {code for code, _ in settings.reasons},
        "languages": {code for code, _n, _d in settings.languages},
    }
    for name, values in (("skills", skills), ("languages", languages)):
        if set(values) - known[name]:
            raise ApiError(400, "bad_request", f"{name}: a list from {', '.join(sorted(known[name]))}")


# staff accounts


@routes.post(
    "/api/v1/users",
    op="createUser",
    auth=ADMIN,
    status=201,
    answer="The account, and its generated password (shown once) when none was given.",
    errors=(409,),
)
async def create_user(request: web.Request, *, body: NewUser) -> UserCreated:
    """Add a staff account

    A username in use (in any case) is 409. Skills and languages route calls to a rep (empty: any).
    """
    _check_routing(request, body.skills, body.languages)
    password = body.password or generated_password()
    store = request.app[STORE]
    try:
        user = await store.add_user(
            body.username,
            body.display_name.strip(),
            body.role,
            await asyncio.to_thread(hash_password, password),
            body.skills,
            body.languages,
        )
    except UsernameTaken:
        raise ApiError(409, "conflict", f"username: {body.username!r} is taken") from None
    detail = {"username": user.username, "role": user.role, "skills": body.skills, "languages": body.languages}
    await store.audit(staff_user(request).id, "user.create", str(user.id), detail)
    return UserCreated(user=await _account(request, user.id), password=None if body.password else password)


@routes.put("/api/v1/users/{user_id}/role", op="setRole", auth=ADMIN, answer="The account.", errors=(409,))
async def set_role(request: web.Request, *, path_params: UserPath, body: SetRole) -> UserChanged:
    """Set a staff account's role

    Their logins end. Demoting the last active admin, or yourself, is 409.
    """
    user_id, me, store = path_params.user_id, staff_user(request), request.app[STORE]
    before = await _account(request, user_id)
    if user_id == me.id and body.role != "admin":
        raise ApiError(409, "conflict", "role: you cannot take the admin role from yourself")
    if before.role == body.role:
        return UserChanged(user=before, logins_ended=0)
    try:
        ended = await store.set_role(user_id, body.role)
    except LastAdmin as exc:
        raise ApiError(409, "conflict", f"role: {exc}") from None
    await store.audit(me.id, "user.role", str(user_id), {"from": before.role, "to": body.role, "logins_ended": ended})
    return UserChanged(user=await _account(request, user_id), logins_ended=ended)


@routes.put("/api/v1/users/{user_id}/active", op="setActive", auth=ADMIN, answer="The account.", errors=(409,))
async def set_active(request: web.Request, *, path_params: UserPath, body: SetActive) -> UserChanged:
    """Enable or disable a staff account

    Disabling ends their logins (open pages and sockets close within login_recheck_s). Disabling yourself or
    the last active admin is 409.
    """
    user_id, me, store = path_params.user_id, staff_user(request), request.app[STORE]
    before = await _account(request, user_id)
    if user_id == me.id and not body.active:
        raise ApiError(409, "conflict", "active: you cannot disable yourself")
    try:
        ended = await store.set_active_guarded(user_id, body.active)
    except LastAdmin as exc:
        raise ApiError(409, "conflict", f"active: {exc}") from None
    if before.active != body.active:
        action = "user.enable" if body.active else "user.disable"
        await store.audit(me.id, action, str(user_id), {"username": before.username, "logins_ended": ended})
    return UserChanged(user=await _account(request, user_id), logins_ended=ended)


@routes.post("/api/v1/users/{user_id}/password", op="resetPassword", auth=ADMIN, answer="The new password, once.")
async def reset_password(request: web.Request, *, path_params: UserPath) -> PasswordReset:
    """Reset a staff account's password

    A new one is generated and answered once; every login made with the old one ends.
    """
    user_id, store = path_params.user_id, request.app[STORE]
    await _account(request, user_id)
    password = generated_password()
    ended = await store.set_password(user_id, await asyncio.to_thread(hash_password, password))
    await store.audit(staff_user(request).id, "user.password_reset", str(user_id), {"logins_ended": ended})
    return PasswordReset(user=await _account(request, user_id), password=password, logins_ended=ended)


# API keys


@routes.get("/api/v1/api-keys", op="listApiKeys", auth=ADMIN, answer="Every key, revoked ones too.")
async def list_api_keys(request: web.Request) -> ApiKeyList:
    """List API keys"""
    return ApiKeyList(items=ApiKey.all_of(k.to_json() for k in await request.app[API_KEYS].list()))


@routes.post(
    "/api/v1/api-keys", op="createApiKey", auth=ADMIN, status=201, answer="The key, with its secret (shown once)."
)
async def create_api_key(request: web.Request, *, body: NewApiKey) -> ApiKeyCreated:
    """Create an API key

    The secret is answered once and stored only as its SHA-256.
    """
    key, secret = await request.app[API_KEYS].create(body.name.strip(), tuple(body.scopes))
    await request.app[STORE].audit(
        staff_user(request).id, "api_key.create", str(key.id), {"name": key.name, "scopes": list(key.scopes)}
    )
    return ApiKeyCreated.of({**key.to_json(), "secret": secret})


@routes.delete("/api/v1/api-keys/{key_id}", op="revokeApiKey", auth=ADMIN, status=204, answer="Revoked.")
async def revoke_api_key(request: web.Request, *, path_params: ApiKeyPath) -> None:
    """Revoke an API key

    It stops authenticating at once; an unknown or already revoked key is 404.
    """
    if not await request.app[API_KEYS].revoke(path_params.key_id):
        raise ApiError(404, "not_found", "no such live API key")
    await request.app[STORE].audit(staff_user(request).id, "api_key.revoke", str(path_params.key_id))


# the centre's settings


def settings_doc(request: web.Request, warnings: list[str] | None = None) -> CentreSettings:
    centre = request.app[CENTRE]
    emotion = request.app.get(EMOTION)
    return CentreSettings.of(
        {
            **{name: centre.section(name) for name in SECTIONS},
            "overridden": sorted(centre.overridden),
            "emotion_available": emotion is not None and emotion.service is not None,
            "warnings": warnings or [],
        }
    )


async def _save(request: web.Request, section: str, value: Any, warnings: list[str] | None = None) -> CentreSettings:
    before = request.app[CENTRE].section(section)
    await request.app[CENTRE].save(section, value, staff_user(request).id)
    await request.app[STORE].audit(
        staff_user(request).id, "settings.update", section, {"before": before, "after": value}
    )
    return settings_doc(request, warnings)


@routes.get("/api/v1/settings", op="getCentreSettings", auth=ADMIN, answer="Every section, as in effect.")
async def get_settings(request: web.Request) -> CentreSettings:
    """The centre's settings

    Dispositions, reasons, help articles and the recording and emotion policies: the configured defaults with
    the admins' changes on top. A change applies to the next call, on every front door, without a restart.
    """
    return settings_doc(request)


@routes.put("/api/v1/settings/dispositions", op="putDispositions", auth=ADMIN, answer="The settings.")
async def put_dispositions(request: web.Request, *, body: Dispositions) -> CentreSettings:
    """Set the wrap-up outcomes

    One to 50, codes unique. Calls wrapped up before keep their codes.
    """
    items = [{"code": d.code, "label": d.label.strip(), "category": d.category.strip()} for d in body.items]
    return await _save(request, "dispositions", items)


@routes.put("/api/v1/settings/reasons", op="putReasons", auth=ADMIN, answer="The settings.", errors=(409,))
async def put_reasons(request: web.Request, *, body: Reasons) -> CentreSettings:
    """Set the call reasons

    One to 30, codes unique. Removing a reason that is in a rep's skills is 409 (change their routing first);
    help articles of a removed reason are kept but not shown (a warning says so).
    """
    codes = {r.code for r in body.items}
    in_use = {
        (u.username, skill)
        for u in await request.app[STORE].list_users()
        for skill in u.skills
        if u.active and skill not in codes
    }
    if in_use:
        named = ", ".join(f"{code} ({name})" for name, code in sorted(in_use))
        raise ApiError(409, "conflict", f"items: still in reps' skills: {named}")
    orphaned = sorted(set(request.app[CENTRE].current.help_articles) - codes)
    warnings = [f"help articles of {code} are not shown: it is no longer a reason" for code in orphaned]
    items = [{"code": r.code, "label": r.label.strip()} for r in body.items]
    return await _save(request, "reasons", items, warnings)


@routes.put("/api/v1/settings/help-articles", op="putHelpArticles", auth=ADMIN, answer="The settings.")
async def put_help_articles(request: web.Request, *, body: HelpArticles) -> CentreSettings:
    """Set the self-help articles

    Per reason code (each a current reason), at most 10; a title or body is text or an object per language.
    """
    reasons = {code for code, _ in request.app[CENTRE].current.reasons}
    for code in body.articles:
        if code not in reasons:
            raise ApiError(400, "bad_request", f"articles.{code}: not a reason code ({', '.join(sorted(reasons))})")
    value = {
        code: [{"title": a.title, "body": a.body, "url": a.url} for a in items]
        for code, items in body.articles.items()
        if items
    }
    return await _save(request, "help_articles", value)


@routes.put("/api/v1/settings/recording", op="putRecordingPolicy", auth=ADMIN, answer="The settings.")
async def put_recording(request: web.Request, *, body: RecordingPolicy) -> CentreSettings:
    """Set the recording policy

    Applies to calls created from now on; a call in progress keeps what it started with.
    """
    return await _save(request, "recording", {"policy": body.policy})


@routes.put("/api/v1/settings/emotion", op="putEmotionPolicy", auth=ADMIN, answer="The settings.", errors=(409,))
async def put_emotion(request: web.Request, *, body: EmotionPolicy) -> CentreSettings:
    """Set the emotion-cue policy

    On or off, the consent toggle's default and the flag's thresholds (clear below raise). Turning cues on
    where the server runs no emotion model is 409.
    """
    emotion = request.app.get(EMOTION)
    # With media nodes the nodes run the model, not this front door.
    runs_model = (emotion is not None and emotion.service is not None) or request.app[CENTRE].base.media_nodes
    if body.cues and not runs_model:
        raise ApiError(409, "conflict", "cues: this server runs no emotion model (emotion_cues in its configuration)")
    value = {
        "cues": body.cues,
        "default_consent": body.default_consent,
        "raise_threshold": body.raise_threshold,
        "clear_threshold": body.clear_threshold,
        "hold_s": body.hold_s,
    }
    return await _save(request, "emotion", value)


@routes.delete(
    "/api/v1/settings/{section}",
    op="resetCentreSettings",
    auth=ADMIN,
    answer="The settings, the section back at its configured default.",
    errors=(409,),
)
async def reset_section(request: web.Request, *, path_params: SectionPath) -> CentreSettings:
    """Put a section back to its configured default"""
    section = path_params.section
    if section == "reasons":
        configured = {code for code, _ in request.app[SETTINGS].reasons}
        in_use = sorted(
            {s for u in await request.app[STORE].list_users() if u.active for s in u.skills if s not in configured}
        )
        if in_use:
            raise ApiError(409, "conflict", f"section: reps' skills name {', '.join(in_use)}, not configured reasons")
    if await request.app[CENTRE].reset(section):
        await request.app[STORE].audit(staff_user(request).id, "settings.reset", section)
    return settings_doc(request)


async def admin_page(request: web.Request) -> web.Response:
    return page_response(request, "admin")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin", admin_page)
    routes.setup(app)
