"""Invite links for identified customers: created by staff or other systems, signed, with an expiry.

The link is ``/join/<token>``. The token is signed with the server's secret
(HMAC-SHA256) and names the invite, the customer's reference and the expiry;
the identity and context themselves stay in the database, so they never sit in
browser histories or proxy logs. A changed character anywhere in the token is
a tampered link; a token past its expiry is an expired one. Both get a plain
error page.

A link opens one call: the redeem that claims the invite (one conditional
UPDATE, so two racing redeems give one call) starts it, and later redeems are
refused (409 while that call is open, 410 link_used after). Staff (supervisor,
admin) and API keys with ``invites:write`` revoke an invite by its id (410
link_revoked). Links point at ``public_url``; without it, links are minted only
for a loopback Host, never from a Host header someone else chose. The access
log shows a token as the first 12 hex digits of its SHA-256
(:class:`server.http.security.AccessLogger`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from ... import tokens
from ...config import SETTINGS
from ...storage import records, schema
from ...storage.records import iso
from ...storage.store import STORE, Store
from ..api import PUBLIC, Routes, caller, staff_or_key
from ..models.invites import MAX_TOKEN_CHARS, CreateInvite, Invite, InvitePath, QrPath, RedeemInvite, RedeemPath
from ..models.sessions import CallToken
from ..pages import page_response
from ..security import ApiError, is_loopback, original_scheme
from .intake import call_token, clean, limit_calls, queue_customer, validate_language, validate_reason

routes = Routes(tag="Invites")
REVOKE_ROLES = ("supervisor", "admin")
LIVE_STATES = ("waiting", "active")
EXPIRED = "This link has expired. Ask for a new one, or start a new call."
USED = "This link has been used already. Ask for a new one, or start a new call."
REVOKED = "This link has been withdrawn. Ask for a new one, or start a new call."
IN_CALL = "this invite is already in a call; use the original tab"
PRIORITIES = {"normal": 0, "high": 10}


class LinkError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def load_secret(data_dir: Path) -> bytes:
    """The server's signing key, made on first start (``data/secret.key``, readable by the owner only)."""
    path = data_dir / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


# The server's secret for signing invite links, read by load_secret at startup.
INVITE_KEY = web.AppKey("invite_key", bytes)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(key: bytes, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def open_link(key: bytes, token: str, *, now: float) -> dict[str, Any]:
    """The payload of a valid token; LinkError for a tampered or expired one."""
    body, _, mac = token.partition(".")
    if not body or not mac or len(token) > MAX_TOKEN_CHARS:
        raise LinkError(400, "link_invalid", "This link is not valid. Ask for a new one.")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        raise LinkError(400, "link_invalid", "This link is not valid. Ask for a new one.")
    try:
        payload = json.loads(_unb64(body))
    except ValueError:
        raise LinkError(400, "link_invalid", "This link is not valid. Ask for a new one.") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int | float):
        raise LinkError(400, "link_invalid", "This link is not valid. Ask for a new one.")
    if payload["exp"] < now:
        raise LinkError(410, "link_expired", "This link has expired. Ask for a new one, or start a new call.")
    return payload


async def _in_call(store: Store, invite: records.Invite) -> bool:
    """Whether the call this invite started is still open (or being started by a redeem right now)."""
    if invite.session_id is None:
        return True
    record = await store.get_session(invite.session_id)
    return record is not None and record.state in LIVE_STATES


async def _open_invite(request: web.Request, token: str) -> tuple[str, records.Invite]:
    """The code and invite a token names, if the link still works; LinkError otherwise (claims are the caller's)."""
    link = open_link(request.app[INVITE_KEY], token, now=_now())
    code = link.get("c")
    invite = await request.app[STORE].get_invite(code) if isinstance(code, str) else None
    if invite is None or not isinstance(code, str):
        raise LinkError(410, "link_expired", EXPIRED)
    if invite.revoked_at is not None:
        raise LinkError(410, "link_revoked", REVOKED)
    return code, invite


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # name:port
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    name = name.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost") or is_loopback(name)


def link_base(request: web.Request) -> str:
    """Where links point: ``public_url``; without it this request's own host, but only a loopback one, so a
    Host header someone else chose never ends up in a link sent to a customer."""
    public_url = request.app[SETTINGS].public_url
    if public_url:
        return public_url.rstrip("/")
    if not _loopback_host(request.host or ""):
        raise ApiError(
            409,
            "public_url_required",
            "this server does not know its public address, and will not build links from a Host header: "
            "set public_url (for example https://support.example.com)",
        )
    return f"{original_scheme(request)}://{request.host}"


def _qr_svg(url: str) -> str:
    import segno

    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return buffer.getvalue().decode()


@routes.post(
    "/api/v1/invites",
    op="createInvite",
    auth=staff_or_key("invites:write"),
    status=201,
    answer="The invite.",
    errors=(409,),
)
async def create_invite(request: web.Request, *, body: CreateInvite) -> Invite:
    """Create an invite link for an identified customer

    The link carries a token signed with the server's secret; the customer's identity and context stay in the
    database. The link opens one call. It points at the server's public_url; without one, links are made only
    for a loopback Host (else 409 public_url_required).
    """
    principal = caller(request)
    base = link_base(request)
    identity = body.customer
    reason = validate_reason(request, body.reason)
    language = validate_language(request, body.language)
    priority = PRIORITIES[body.priority] if isinstance(body.priority, str) else body.priority
    name = clean(body.customer_name) or (identity or {}).get("name")
    customer_ref = clean(body.customer_ref) or (identity or {}).get("id")
    store = request.app[STORE]
    code, expires_at = await store.create_invite(
        customer_name=name,
        reason=reason,
        created_by=principal.user_id,
        ttl_s=body.ttl_s,
        customer_ref=customer_ref,
        identity=identity,
        context=body.context,
        language=language,
        priority=priority,
    )
    token = sign_link(request.app[INVITE_KEY], {"c": code, "r": customer_ref, "exp": int(expires_at)})
    url = f"{base}/join/{token}"
    public_id = schema.invite_id(tokens.digest(code))
    await store.audit(principal.user_id, "invite.create", customer_ref or "", {"by": principal.label, "id": public_id})
    return Invite(
        id=public_id,
        code=token,
        url=url,
        expires_at=iso(expires_at),
        qr_svg=_qr_svg(url),
        qr_png_url=f"/api/v1/invites/{token}/qr.png",
    )


@routes.get(
    "/api/v1/invites/{token}/qr.png",
    op="getInviteQr",
    auth=PUBLIC,
    media="image/png",
    answer="A PNG image.",
    errors=(400, 409, 410),
)
async def invite_qr(request: web.Request, *, path_params: QrPath) -> web.Response:
    """The invite link as a QR code

    410 once the link no longer opens a call; 409 public_url_required as for createInvite.
    """
    import segno

    token = path_params.token
    try:
        _code, invite = await _open_invite(request, token)
        if invite.claimed_at is not None and not await _in_call(request.app[STORE], invite):
            raise LinkError(410, "link_used", USED)
    except LinkError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    base = link_base(request)
    buffer = io.BytesIO()
    segno.make(f"{base}/join/{token}", error="m").save(buffer, kind="png", scale=8)
    return web.Response(body=buffer.getvalue(), content_type="image/png")


def _now() -> float:
    return schema.now()


@routes.post(
    "/api/v1/invites/{code}/redeem",
    op="redeemInvite",
    auth=PUBLIC,
    status=201,
    answer="The call is queued.",
    errors=(409, 410, 429, 503),
)
async def redeem_invite(request: web.Request, *, path_params: RedeemPath, body: RedeemInvite) -> CallToken:
    """Start the call of an invite

    As POST /api/v1/calls, with the invite's name, reason, language, priority, identity and context. One call per
    link: of redeems that race, one wins; the others get 409 while its call is open, 410 link_used after. A
    tampered token is 400 link_invalid; an expired one 410 link_expired; a revoked one 410 link_revoked. A call
    that cannot start (503, 429) leaves the link unused.
    """
    store = request.app[STORE]
    try:
        code, invite = await _open_invite(request, path_params.code)
    except LinkError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    language = validate_language(request, body.language) or invite.language
    limit_calls(request)
    if not await store.claim_invite(code):
        # Used already, or another redeem of the same link won the race: read again to say which.
        invite = await store.get_invite(code) or invite
        if invite.revoked_at is not None:
            raise ApiError(410, "link_revoked", REVOKED)
        if invite.claimed_at is None:
            raise ApiError(410, "link_expired", EXPIRED)
        if await _in_call(store, invite):
            raise ApiError(409, "conflict", IN_CALL)
        raise ApiError(410, "link_used", USED)
    identity = invite.identity or {}
    contact = {k: identity[k] for k in ("email", "phone") if identity.get(k)}
    # A callback's link: the call rings first at the rep who started the callback.
    callback = await store.callback_for_invite(schema.invite_id(tokens.digest(code)))
    try:
        call = records.NewCall(
            reason=invite.reason,
            customer_name=invite.customer_name,
            device=clean(body.device),
            language=language,
            contact=contact or None,
            context=invite.context,
            emotion_consent=body.emotion_consent,
            recording_consent=body.recording_consent,
            customer_ref=invite.customer_ref,
            priority=invite.priority or 0,
            identified=True,
            preferred_rep=callback.started_by if callback else None,
        )
        queued = await queue_customer(request, call)
    except BaseException:
        await store.release_invite(code)
        raise
    await store.link_invite(code, queued.session_id)
    if callback is not None:
        await store.link_callback_session(callback.id, queued.session_id)
    return call_token(queued)


@routes.delete(
    "/api/v1/invites/{invite_id}",
    op="revokeInvite",
    auth=staff_or_key("invites:write", *REVOKE_ROLES),
    status=204,
    answer="Revoked.",
)
async def revoke_invite(request: web.Request, *, path_params: InvitePath) -> None:
    """Revoke an invite link

    From now on the link opens nothing (410 link_revoked, and the link error page); a call it already started
    carries on. Revoking twice is fine.
    """
    principal = caller(request)
    invite_id = path_params.invite_id
    if not await request.app[STORE].revoke_invite(invite_id):
        raise ApiError(404, "not_found", "no such invite")
    await request.app[STORE].audit(principal.user_id, "invite.revoke", invite_id, {"by": principal.label})


LINK_TITLES = {"link_expired": "Link expired", "link_used": "Link already used", "link_revoked": "Link withdrawn"}


async def join_page(request: web.Request) -> web.StreamResponse:
    """The customer page for a link that still works (or whose call is open: a reload reconnects);
    a plain error page for an expired, tampered, used or revoked one."""
    try:
        _code, invite = await _open_invite(request, request.match_info["token"])
        if invite.claimed_at is not None and not await _in_call(request.app[STORE], invite):
            raise LinkError(410, "link_used", USED)
    except LinkError as exc:
        title = LINK_TITLES.get(exc.code, "Link not valid")
        return page_response(request, "link-error", status=exc.status, title=title, message=exc.message)
    return page_response(request, "customer")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/join/{token}", join_page)
    routes.setup(app)
