"""Callbacks and business hours: the hours an admin sets, what the customer page is told, the customer's request,
and reps' callbacks (listed due first, started once with a single-use invite link that rings the rep first).

The rules a callback request must meet (else 409, or 429 for too many from one address):

- with a call's token: the call ended because nobody could take it in time (max_wait), or it is still
  waiting and the wait of a customer joining now is past ``callback_wait_threshold_s`` (the page then leaves
  the queue), or its queue closed meanwhile; once per call, within 2 hours;
- without one: only while the reason's queue is closed, or its wait is past the threshold; a few per address
  an hour. A contact that already has an open callback gets the same answer as a new one (nothing tells
  whether a number or address is known), and no second request is stored.

A preferred window must lie in open hours, within 31 days. The webhooks ``callback.requested`` (contact and
preferred time, for an SMS or e-mail system to confirm) and ``callback.started`` (the link the customer
opens) carry the customer's contact to the systems that send it; their deliveries are erased with the call.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from ... import tokens
from ...calls.centre_settings import CENTRE
from ...calls.desk import CALL_DESK
from ...calls.hours import ALL_QUEUES, ALWAYS_OPEN, BusinessHours, HoursError, parse_hours
from ...calls.views import MAX_WAIT
from ...storage import records, schema
from ...storage.records import iso
from ...storage.store import STORE
from ...webhooks.dispatcher import WEBHOOKS
from ..api import CUSTOMER, Routes, caller, staff, staff_user
from ..models.callbacks import (
    Callback,
    CallbackList,
    CallbackPath,
    CallbackRequest,
    CallbacksQuery,
    StartedCallback,
)
from ..models.common import OK, Ok
from ..models.hours import Availability, SetBusinessHours
from ..models.hours import BusinessHours as BusinessHoursModel
from ..models.invites import Invite
from ..ratelimit import AddressLimiter
from ..security import ApiError, client_address
from .intake import check_contact, clean, validate_language, validate_reason
from .invites import INVITE_KEY, _qr_svg, link_base, sign_link

log = logging.getLogger(__name__)
routes = Routes(tag="Callbacks")
REP_ROLES = ("rep", "supervisor", "admin")
CALLBACK_WINDOW_S = 2 * 3600  # after the call ended
CALLBACK_LINK_TTL_S = 2 * 3600
CALLBACK_PRIORITY = 10
MAX_WINDOW_S = 4 * 3600
MAX_AHEAD_S = 31 * 86_400
SLOTS = 12
# Requests without a call, per address: a handful an hour.
CALLBACK_LIMITER = web.AppKey("callback_limiter", AddressLimiter)
CALLBACK_LIMIT, CALLBACK_LIMIT_WINDOW_S = 5, 3600.0


# business hours


async def current_hours(request: web.Request) -> BusinessHours:
    """The stored business hours; always open when an admin never set them (or the row does not parse)."""
    stored = await request.app[STORE].get_business_hours()
    if stored is None:
        return ALWAYS_OPEN
    try:
        return parse_hours(stored)
    except HoursError:
        return ALWAYS_OPEN


def _known_queues(request: web.Request) -> set[str]:
    return set(_reason_codes(request))


def _reason_codes(request: web.Request) -> list[str]:
    """The reason codes calls are taken for now (with /admin's changes)."""
    return [code for code, _label in request.app[CENTRE].current.reasons]


@routes.get("/api/v1/business-hours", op="getBusinessHours", auth=staff())
async def get_business_hours(request: web.Request) -> BusinessHoursModel:
    """The centre's business hours

    The time zone, the wait past which a waiting customer is offered a callback, and each queue's weekly hours
    and holidays. No queues: always open (the default).
    """
    return BusinessHoursModel.of((await current_hours(request)).to_json())


@routes.put("/api/v1/business-hours", op="setBusinessHours", auth=staff("admin"), answer="The hours as saved.")
async def set_business_hours(request: web.Request, *, body: SetBusinessHours) -> BusinessHoursModel:
    """Set the centre's business hours

    Replaces them all. Checked hard: an unknown time zone, an interval that ends before it starts or overlaps
    another, a bad date or an unknown queue is 400 naming the field. Intervals are local times in the centre's
    time zone ("24:00" ends a day; an interval over midnight is two). Audited.
    """
    document = msgspec.to_builtins(body)
    try:
        hours = parse_hours(document, _known_queues(request))
    except HoursError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    saved = hours.to_json()
    store = request.app[STORE]
    user = staff_user(request)
    await store.save_business_hours(saved, user.id)
    await store.audit(
        user.id,
        "business_hours.set",
        "business_hours",
        {"timezone": hours.timezone, "queues": sorted(hours.queues), "threshold_s": hours.callback_wait_threshold_s},
    )
    return BusinessHoursModel.of(saved)


async def availability(request: web.Request) -> Availability:
    """Each queue's state for the customer page (GET /api/v1/config): open, next opening, wait, callback slots."""
    hours = await current_hours(request)
    now = datetime.now(UTC)
    try:
        waits = await request.app[CALL_DESK].next_waits()
    except Exception:  # the call centre is not reachable right now: the page still opens
        waits = {}
    queues = []
    for code in [ALL_QUEUES, *_reason_codes(request)]:
        key = None if code == ALL_QUEUES else code
        opening = hours.next_opening(key, now)
        queues.append(
            {
                "queue": code,
                "open": hours.open_now(key, now),
                "next_opening": iso(opening.timestamp()) if opening else None,
                "estimated_wait_s": int(waits.get(key or "", waits.get("", 0))),
                "callback_slots": [
                    {"start": iso(s.timestamp()), "end": iso(e.timestamp())}
                    for s, e in hours.slots(key, now, count=SLOTS)
                ],
            }
        )
    return Availability.of(
        {"timezone": hours.timezone, "callback_wait_threshold_s": hours.callback_wait_threshold_s, "queues": queues}
    )


# the customer's request


def _parse_time(text: str, where: str) -> float:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "bad_request", f"{where}: a date-time, e.g. 2026-12-07T08:00:00Z") from None
    if value.tzinfo is None:
        raise ApiError(400, "bad_request", f"{where}: give the time zone (Z or +01:00)")
    return value.timestamp()


def _window(body: CallbackRequest, hours: BusinessHours, queue: str | None, now: float) -> tuple[float, float] | None:
    if body.window is None:
        return None
    start, end = _parse_time(body.window.start, "window.start"), _parse_time(body.window.end, "window.end")
    if end <= start or end - start > MAX_WINDOW_S:
        raise ApiError(400, "bad_request", "window: end after start, at most 4 hours")
    if end < now or start > now + MAX_AHEAD_S:
        raise ApiError(400, "bad_request", "window: a time in the next 31 days")
    if not hours.open_now(queue, datetime.fromtimestamp(max(start, now), UTC)):
        raise ApiError(400, "bad_request", "window: not within opening hours; pick one of the callback slots")
    return start, end


async def _wait_is_long(request: web.Request, hours: BusinessHours, queue: str | None) -> bool:
    try:
        waits = await request.app[CALL_DESK].next_waits()
    except Exception:
        return False
    return int(waits.get(queue or "", waits.get("", 0))) >= hours.callback_wait_threshold_s


@routes.post("/api/v1/calls/callback", op="requestCallback", auth=CUSTOMER, answer="Saved.", errors=(404, 409, 429))
async def request_callback(request: web.Request, *, body: CallbackRequest) -> Ok:
    """Ask to be called back

    With the call's token: after a wait that ran out (max_wait), or while waiting when the estimated wait
    passed the centre's callback threshold or the queue closed (the page then leaves the queue); once per call,
    within 2 hours of its end. Without a token: only while the reason's queue is closed or its wait is past the
    threshold, at most 5 an hour per address (429). Otherwise 409. A contact with an open callback already gets
    the same answer and no second one. Staff see it in GET /api/v1/callbacks; the callback.requested webhook
    fires.
    """
    contact = check_contact(body.contact)
    if contact is None:
        raise ApiError(400, "bad_request", "contact: a phone number or an e-mail address")
    store = request.app[STORE]
    hours = await current_hours(request)
    now = time.time()
    origin: records.SessionRecord | None = None
    if body.token is not None:
        origin = await store.session_for_token(body.token)
        if origin is None:
            raise ApiError(404, "not_found", "no such call")
        queue = origin.reason
        if origin.state == "waiting":
            closed = not hours.open_now(queue, datetime.now(UTC))
            if not closed and not await _wait_is_long(request, hours, queue):
                raise ApiError(409, "conflict", "the wait is short: stay in line, a rep will answer soon")
        elif origin.ended_at is None or origin.end_reason != MAX_WAIT:
            raise ApiError(409, "conflict", "a callback can be asked for when no one could take the call in time")
        elif now - origin.ended_at > CALLBACK_WINDOW_S:
            raise ApiError(409, "conflict", "the time to ask for a callback is over")
        if await store.callback_for_origin(origin.id) is not None:
            raise ApiError(409, "conflict", "a callback has been asked for already")
        reason, language, name = origin.reason, origin.language, origin.customer_name or clean(body.name)
    else:
        reason = validate_reason(request, body.reason)
        language = validate_language(request, body.language)
        name = clean(body.name)
        queue = reason
        if hours.open_now(queue, datetime.now(UTC)) and not await _wait_is_long(request, hours, queue):
            raise ApiError(409, "conflict", "we are open: start a call instead")
        wait = request.app[CALLBACK_LIMITER].hit(client_address(request))
        if wait > 0:
            raise ApiError(
                429, "rate_limited", "too many callback requests from this address", {"Retry-After": str(int(wait) + 1)}
            )
    window = _window(body, hours, queue, now)
    if origin is None and await store.open_callback_for_contact(contact):
        return OK  # the same answer: nothing tells whether this contact is known
    due = window[0] if window else now
    if window is None:
        opening = hours.next_opening(queue, datetime.fromtimestamp(now, UTC))
        due = opening.timestamp() if opening else now
    callback = await store.create_callback(
        reason=reason,
        language=language,
        customer_name=name,
        contact=contact,
        window=window,
        due_at=max(due, now),
        origin_session_id=origin.id if origin else None,
    )
    if callback is None:
        raise ApiError(409, "conflict", "a callback has been asked for already")
    if origin is not None:
        await store.add_event_once(origin.id, "callback_requested", {"callback_id": callback.id})
    await request.app[WEBHOOKS].emit("callback.requested", {"callback": _hook(callback)})
    return OK


def _hook(callback: records.Callback) -> dict[str, Any]:
    """What the callback webhooks carry: the callback with the contact (the receiver confirms or sends the link)."""
    data = callback.to_json()
    if callback.origin_session_id:
        data["origin_session_id"] = callback.origin_session_id
    return data


# reps' callbacks


async def _visible(request: web.Request, callback: records.Callback) -> bool:
    """A rep sees the callbacks of their skills and languages (empty: any); supervisors and admins every one."""
    user = staff_user(request)
    if user.role != "rep":
        return True
    skills, languages = await request.app[STORE].get_routing(user.id)
    return (not skills or callback.reason is None or callback.reason in skills) and (
        not languages or callback.language is None or callback.language in languages
    )


@routes.get("/api/v1/callbacks", op="listCallbacks", auth=staff(*REP_ROLES))
async def list_callbacks(request: web.Request, *, query: CallbacksQuery) -> CallbackList:
    """Callbacks, due first

    By default the open ones (requested or started). A rep sees those of their skills and languages.
    """
    states = ("requested", "started") if query.state == "open" else (query.state,)
    items = [c for c in await request.app[STORE].list_callbacks(states) if await _visible(request, c)]
    return CallbackList(items=Callback.all_of(c.to_json() for c in items))


@routes.post(
    "/api/v1/callbacks/{callback_id}/start",
    op="startCallback",
    auth=staff(*REP_ROLES),
    answer="Started: the customer's link.",
    errors=(409,),
)
async def start_callback(request: web.Request, *, path_params: CallbackPath) -> StartedCallback:
    """Start a callback

    Makes a single-use invite link for the customer (valid 2 hours) and fires callback.started with it; the
    customer's call then rings at this rep first. Started already (by anyone) is 409.
    """
    store = request.app[STORE]
    user = staff_user(request)
    callback = await store.get_callback(path_params.callback_id)
    if callback is None or not await _visible(request, callback):
        raise ApiError(404, "not_found", "no such callback")
    base = link_base(request)  # 409 public_url_required before anything changes
    if not await store.start_callback(callback.id, user.id):
        raise ApiError(409, "conflict", "this callback has been started already")
    contact = callback.contact or {}
    identity = {k: v for k, v in (("name", callback.customer_name), *contact.items()) if v}
    code, expires_at = await store.create_invite(
        customer_name=callback.customer_name,
        reason=callback.reason,
        created_by=user.id,
        ttl_s=CALLBACK_LINK_TTL_S,
        identity=identity or None,
        context={"callback": callback.id},
        language=callback.language,
        priority=CALLBACK_PRIORITY,
    )
    token = sign_link(request.app[INVITE_KEY], {"c": code, "r": None, "exp": int(expires_at)})
    url = f"{base}/join/{token}"
    invite_id = schema.invite_id(tokens.digest(code))
    await store.set_callback_invite(callback.id, invite_id)
    started = await store.get_callback(callback.id) or callback
    await store.audit(user.id, "callback.start", callback.id, {"invite": invite_id})
    await request.app[WEBHOOKS].emit(
        "callback.started",
        {
            "callback": _hook(started),
            "url": url,
            "expires_at": iso(expires_at),
            "rep": {"id": user.id, "display_name": user.display_name},
        },
    )
    invite = Invite(
        id=invite_id,
        code=token,
        url=url,
        expires_at=iso(expires_at),
        qr_svg=_qr_svg(url),
        qr_png_url=f"/api/v1/invites/{token}/qr.png",
    )
    return StartedCallback(callback=Callback.of(started.to_json()), invite=invite)


@routes.post(
    "/api/v1/callbacks/{callback_id}/cancel",
    op="cancelCallback",
    auth=staff(*REP_ROLES),
    answer="Cancelled.",
    errors=(409,),
)
async def cancel_callback(request: web.Request, *, path_params: CallbackPath) -> Ok:
    """Cancel a callback

    For one that cannot or need not be made. Closed already is 409. Audited.
    """
    store = request.app[STORE]
    callback = await store.get_callback(path_params.callback_id)
    if callback is None or not await _visible(request, callback):
        raise ApiError(404, "not_found", "no such callback")
    if not await store.cancel_callback(callback.id):
        raise ApiError(409, "conflict", "this callback is closed already")
    await store.audit(caller(request).user_id, "callback.cancel", callback.id)
    return OK


# the callback's call


async def callback_of_invite(request: web.Request, code: str) -> records.Callback | None:
    """The started callback an invite was made for (its call rings at the rep who started it)."""
    return await request.app[STORE].callback_for_invite(schema.invite_id(tokens.digest(code)))


def finish_on_end(app: web.Application) -> Any:
    """An event sink for the call centre: when a callback's call ends, the callback is completed (answered)
    or failed; then the event goes on to the webhooks."""

    async def on_event(event: str, data: dict[str, Any]) -> None:
        if event == "session.ended":
            session = data.get("session") or {}
            session_id = session.get("session_id")
            if isinstance(session_id, str):
                state = "completed" if session.get("answered_at") else "failed"
                try:
                    await app[STORE].finish_callback(session_id, state)
                except Exception:  # the call's end must not fail for this
                    log.exception("could not close the callback of %s", session_id)
        await app[WEBHOOKS].emit(event, data)

    return on_event


def setup_routes(app: web.Application) -> None:
    app[CALLBACK_LIMITER] = AddressLimiter(limit=CALLBACK_LIMIT, window_s=CALLBACK_LIMIT_WINDOW_S)
    routes.setup(app)
