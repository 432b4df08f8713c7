"""What a customer tells us before the call, checked once for every way in (the page, an invite)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from ...calls.capacity import AtCapacity, QueueFull, TooManyWaiting
from ...calls.centre_settings import CENTRE
from ...calls.desk import CALL_DESK, QueuedCall
from ...config import SETTINGS, Settings
from ...storage.records import NewCall, iso
from ..models.sessions import CallToken, Contact
from ..ratelimit import CALL_LIMITER
from ..security import ApiError, client_address

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s.]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")


def validate_reason(request: web.Request, value: Any) -> str | None:
    codes = {code for code, _ in request.app[CENTRE].current.reasons}
    if value is None or value == "":
        return None
    if value not in codes:
        raise ApiError(400, "bad_request", f"reason: one of {', '.join(sorted(codes))}")
    return str(value)


def validate_language(request: web.Request, value: Any) -> str | None:
    codes = {code for code, _name, _dir in request.app[SETTINGS].languages}
    if value is None or value == "":
        return None
    if value not in codes:
        raise ApiError(400, "bad_request", f"language: one of {', '.join(sorted(codes))}")
    return str(value)


def clean(text: str | None) -> str | None:
    """A free-text field as stored: stripped, and None when nothing is left (types and lengths msgspec checked)."""
    if text is None:
        return None
    return text.strip() or None


def check_contact(contact: Contact | None) -> dict[str, str] | None:
    """The e-mail address and phone number the customer gave, checked; None when neither."""
    if contact is None:
        return None
    email, phone = clean(contact.email), clean(contact.phone)
    if email is not None and not EMAIL.match(email):
        raise ApiError(400, "bad_request", "contact.email: not an e-mail address")
    if phone is not None and not PHONE.match(phone):
        raise ApiError(400, "bad_request", "contact.phone: not a phone number")
    checked = {k: v for k, v in (("email", email), ("phone", phone)) if v}
    return checked or None


def day_start(day: date | None, *, end: bool = False) -> float | None:
    """A day (UTC) as a timestamp: its start, or for ``end`` the next day's start."""
    if day is None:
        return None
    start = datetime.combine(day, time.min, tzinfo=UTC)
    if not end:
        return start.timestamp()
    try:
        return (start + timedelta(days=1)).timestamp()
    except OverflowError:  # 9999-12-31 has no next day (a 500 before; found by make fuzz)
        return datetime.max.replace(tzinfo=UTC).timestamp()


def limit_calls(request: web.Request) -> None:
    wait = request.app[CALL_LIMITER].hit(client_address(request))
    if wait > 0:
        raise ApiError(429, "rate_limited", "too many calls from this address", {"Retry-After": str(int(wait) + 1)})


def negotiate_language(accept_language: str | None, settings: Settings) -> str:
    """The best of our languages for an Accept-Language header; English when nothing matches."""
    codes = [code for code, _name, _dir in settings.languages]
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-quality, index, tag.strip().lower()))
    aliases = {"no": "nb", "nn": "nb", "pes": "fa", "prs": "fa"}
    for _q, _i, tag in sorted(ranked):
        base = tag.split("-")[0]
        base = aliases.get(base, base)
        if base in codes:
            return base
    return "en" if "en" in codes else codes[0]


def _localised(value: Any, language: str) -> Any:
    if isinstance(value, dict):
        return value.get(language) or value.get("en") or next(iter(value.values()), None)
    return value


def help_for(settings: Settings, reason: str, language: str) -> list[dict[str, Any]]:
    return [
        {
            "title": _localised(a.get("title"), language),
            "body": _localised(a.get("body"), language),
            "url": a.get("url"),
        }
        for a in settings.help_articles.get(reason, ())
    ]


async def queue_customer(request: web.Request, call: NewCall) -> QueuedCall:
    """Queue a customer (from the page or an invite); 503 when every line is busy or the queue is full,
    429 when this address already has its share of waiting calls."""
    try:
        return await request.app[CALL_DESK].create_call(call, address=client_address(request))
    except QueueFull as exc:
        raise ApiError(503, "queue_full", str(exc), {"Retry-After": "120"}) from None
    except AtCapacity as exc:
        raise ApiError(503, "all_lines_busy", str(exc), {"Retry-After": "120"}) from None
    except TooManyWaiting as exc:
        raise ApiError(429, "too_many_waiting", str(exc), {"Retry-After": "60"}) from None


def call_token(queued: QueuedCall) -> CallToken:
    """What the customer's page needs to join (answered with 201)."""
    return CallToken(session_id=queued.session_id, token=queued.token, expires_at=iso(queued.token_expires_at))
