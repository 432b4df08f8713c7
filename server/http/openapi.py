"""The OpenAPI 3.1 description of Rapport's HTTP API, written by hand, and a readable page made from it.

:func:`document` builds the document for one server's settings (its reasons,
languages and dispositions are the enums); nothing is built at import time.
``GET /api/v1/openapi.json`` serves it and ``GET /api/docs`` renders it as one
self-contained HTML page: no scripts, no inline styles, only /static/css/app.css,
so the page keeps to the same Content-Security-Policy as every other page.

tests/api/test_contract.py holds the document to the routes the app registers and to
the server's real answers: a route without a description here fails the tests.

Over 500 lines because the whole HTTP API is described here by hand; issue 11 replaces it with a document
generated from the typed models.
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..calls.views import PROTOCOL_VERSION
from ..config import SETTINGS, Settings
from ..storage.api_keys import KEY_PREFIX
from ..storage.reviews import CRITERION_TYPES
from ..storage.store import ROLES
from ..webhooks.dispatcher import DESCRIPTION_MAX, EVENTS, URL_MAX
from .apikeys import SCOPES
from .routes.invites import INVITE_MAX_TTL_S, MAX_JSON_BYTES, MAX_TOKEN_CHARS, REVOKE_ROLES
from .routes.qa import COMMENTS_MAX, NOTES_MAX
from .routes.sessions import MEDIA_TYPES, RATING_WINDOW_S, REVIEW_ROLES, SESSION_STATES, STAFF_ROLES
from .routes.supervisor import MAX_RANGE_S, SUPERVISOR_ROLES
from .routes.webhooks import LIMIT_DEFAULT, LIMIT_MAX
from .security import COOKIE, CSP, CSRF_HEADER, MAX_BODY_BYTES

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
ADMIN = ("admin",)
ERROR_CODES = (
    "bad_request",
    "not_authenticated",
    "forbidden",
    "csrf",
    "bad_origin",
    "not_found",
    "method_not_allowed",
    "conflict",
    "link_invalid",
    "link_expired",
    "link_used",
    "link_revoked",
    "public_url_required",
    "too_large",
    "rate_limited",
    "all_lines_busy",
    "unavailable",
    "http_error",
    "internal",
)
UNSAFE = ("post", "put", "patch", "delete")

# schema helpers


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null: a type list where there is a type, ``anyOf`` around a reference."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    out = {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


def _obj(
    properties: dict[str, Schema],
    required: list[str] | None = None,
    *,
    description: str | None = None,
    additional: bool | Schema = False,
) -> Schema:
    """An object; ``required=None`` means every property is always there (answers)."""
    out: Schema = {"type": "object"}
    if description:
        out["description"] = description
    out["properties"] = properties
    out["required"] = list(properties) if required is None else required
    out["additionalProperties"] = additional
    return out


def _items(item: Schema, description: str | None = None) -> Schema:
    return _obj({"items": {"type": "array", "items": item}}, description=description)


def _s(description: str | None = None, **keywords: Any) -> Schema:
    out: Schema = {"type": "string", **keywords}
    if description:
        out["description"] = description
    return out


def _i(description: str | None = None, **keywords: Any) -> Schema:
    out: Schema = {"type": "integer", **keywords}
    if description:
        out["description"] = description
    return out


def _n(description: str | None = None, **keywords: Any) -> Schema:
    out: Schema = {"type": "number", **keywords}
    if description:
        out["description"] = description
    return out


def _b(description: str | None = None) -> Schema:
    out: Schema = {"type": "boolean"}
    if description:
        out["description"] = description
    return out


TIME = _s(format="date-time")
TIME_OR_NULL = _nullable(TIME)
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
SESSION_ID_EXAMPLE = "s_Zm9yLWV4YW1wbGUtb25seQ"


def _codes(settings: Settings) -> tuple[list[str], list[str], list[str]]:
    reasons = [code for code, _label in settings.reasons]
    languages = [code for code, _name, _dir in settings.languages]
    dispositions = [code for code, _label, _cat in settings.dispositions]
    return reasons, languages, dispositions


# components


def _schemas(settings: Settings) -> dict[str, Schema]:
    reasons, languages, dispositions = _codes(settings)
    session: dict[str, Schema] = {
        "session_id": _s("The session's id.", example=SESSION_ID_EXAMPLE),
        "state": _s(enum=list(SESSION_STATES)),
        "reason": _nullable(_s("A reason code (see GET /api/v1/config).")),
        "customer_name": _nullable(_s()),
        "device": _nullable(_s()),
        "language": _nullable(_s("The customer's language code.")),
        "contact": _nullable(
            _obj({"email": _s(), "phone": _s()}, [], description="What the customer gave to be reached on.")
        ),
        "context": _nullable({**ANY_OBJECT, "description": "The invite's context, as the calling system gave it."}),
        "priority": _i("Higher is answered first.", minimum=0, maximum=100),
        "rating": _nullable(_i("The customer's rating after the call.", minimum=1, maximum=5)),
        "rating_comment": _nullable(_s()),
        "customer_ref": _nullable(_s("The calling system's customer id (from an invite).")),
        "disposition": _nullable(_s("The rep's outcome code, saved at wrap-up.")),
        "notes": _nullable(_s("The rep's wrap-up notes.")),
        "wrapped_at": TIME_OR_NULL,
        "peak_frustration": _nullable(_n("The customer's peak frustration (0-1).", minimum=0, maximum=1)),
        "flag_count": _nullable(_i("Episodes with the customer's frustration flag up.", minimum=0)),
        "legal_hold": _b(),
        "erased_at": TIME_OR_NULL,
        "emotion_consent": _nullable(_b("The customer's answer to the emotion-cue notice.")),
        "recording_consent": _nullable(_b("Whether this call may be recorded; null when the policy is never.")),
        "rep_id": _nullable(_i()),
        "created_at": TIME,
        "queued_at": TIME,
        "answered_at": TIME_OR_NULL,
        "ended_at": TIME_OR_NULL,
        "ended_by": _nullable(_s(enum=["customer", "rep", "system"])),
        "end_reason": _nullable(_s("For example rep_hangup, customer_left, customer_lost, server_restart.")),
    }
    chat = {
        "id": _i(),
        "session_id": _s(),
        "from": _s(enum=["customer", "rep"]),
        "name": _nullable(_s()),
        "text": _s(),
        "at": TIME,
    }
    report_fields: dict[str, Schema] = {
        "calls": _i(minimum=0),
        "answered": _i(minimum=0),
        "abandoned": _i(minimum=0),
        "abandonment_rate": _nullable(_n(minimum=0, maximum=1)),
        "wait_p50_s": _nullable(_n(minimum=0)),
        "wait_p90_s": _nullable(_n(minimum=0)),
        "handle_avg_s": _nullable(_n(minimum=0)),
        "rating_avg": _nullable(_n(minimum=1, maximum=5)),
        "ratings": _i(minimum=0),
        "flagged_share": _nullable(
            _n("Of answered calls with cues allowed, the share with a frustration flag.", minimum=0, maximum=1)
        ),
    }
    user_ref = _obj({"id": _i(), "display_name": _s()})
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": _s("A stable, machine-readable code.", enum=list(ERROR_CODES)),
                        "message": _s("A readable explanation; may change."),
                    }
                )
            },
            description="Every error answer of the API.",
        ),
        "User": _obj(
            {"id": _i(), "username": _s(), "display_name": _s(), "role": _s(enum=list(ROLES))},
            description="A staff member.",
        ),
        "UserRef": {**user_ref, "description": "A staff member, by id and name."},
        "LoginResult": _obj(
            {
                "user": _ref("User"),
                "csrf_token": _s(f"Send it back in {CSRF_HEADER} on every unsafe request made with the cookie."),
            }
        ),
        "StaffUser": _obj(
            {
                "id": _i(),
                "username": _s(),
                "display_name": _s(),
                "role": _s(enum=list(ROLES)),
                "active": _b(),
                "skills": {"type": "array", "items": _s(enum=reasons), "description": "Reason codes; empty: any."},
                "languages": {"type": "array", "items": _s(enum=languages), "description": "Empty: any."},
            },
            description="A staff account with its routing.",
        ),
        "Config": _obj(
            {
                "protocol": _i("The signalling protocol version.", enum=[PROTOCOL_VERSION]),
                "ice_servers": {
                    "type": "array",
                    "items": _obj(
                        {"urls": {"type": "array", "items": _s()}, "username": _s(), "credential": _s()}, ["urls"]
                    ),
                },
                "languages": {
                    "type": "array",
                    "items": _obj({"code": _s(enum=languages), "name": _s(), "dir": _s(enum=["ltr", "rtl"])}),
                },
                "language": _s("The server's pick from lang or Accept-Language.", enum=languages),
                "reasons": {
                    "type": "array",
                    "items": _obj(
                        {
                            "code": _s(enum=reasons),
                            "label": _s("English; pages translate by code."),
                            "help": {
                                "type": "array",
                                "items": _obj(
                                    {"title": _nullable(_s()), "body": _nullable(_s()), "url": _nullable(_s())},
                                    description="A self-help article, in the customer's language where there is one.",
                                ),
                            },
                        }
                    ),
                },
                "emotion": _obj(
                    {
                        "available": _b("Whether emotion cues run on this server."),
                        "default_consent": _b("Where the consent toggle starts."),
                    }
                ),
                "recording": _obj({"policy": _s(enum=["always", "ask", "never"])}),
            },
            description="What the customer page needs before a call.",
        ),
        "CallToken": _obj(
            {
                "session_id": _s(example=SESSION_ID_EXAMPLE),
                "token": _s("The customer's token for /ws/v1 and the rating: 256 random bits, base64url."),
                "expires_at": TIME,
            }
        ),
        "Ok": _obj({"ok": {"type": "boolean", "enum": [True]}}),
        "Session": _obj(session, description="A support session (one customer's call)."),
        "ChatMessage": _obj(chat),
        "SessionEvent": _obj(
            {
                "at": TIME,
                "kind": _s("created, answered, transferred, ended, wrapped_up, …"),
                "detail": _nullable(ANY_OBJECT),
            }
        ),
        "TimelineSecond": _obj(
            {
                "second": _i("Seconds from the start of the customer's video."),
                "samples": _i(minimum=0),
                "face_present": _b(),
                "mean_frustration": _nullable(_n(minimum=0, maximum=1)),
                "max_frustration": _nullable(_n(minimum=0, maximum=1)),
                "dominant": _nullable(_s("The dominant expression, e.g. neutral.")),
                "flag": _b(),
            },
            description="One second of the customer's emotion cues: scores only, never images.",
        ),
        "SessionDetail": _obj(
            {
                **session,
                "chat": {"type": "array", "items": _ref("ChatMessage")},
                "events": {"type": "array", "items": _ref("SessionEvent")},
                "emotion_timeline": {"type": "array", "items": _ref("TimelineSecond")},
            },
            description="A session with its chat, events and per-second emotion timeline.",
        ),
        "QueueItem": _obj(
            {
                "session_id": _s(),
                "customer_name": _nullable(_s()),
                "reason": _nullable(_s()),
                "device": _nullable(_s()),
                "priority": _i(minimum=0, maximum=100),
                "language": _nullable(_s()),
                "identified": _b("Came in through a signed invite."),
                "ringing": _b("Being offered to a rep right now."),
                "queued_at": TIME,
                "waited_s": _i(minimum=0),
                "connected": _b("The customer's socket is open."),
            },
            description="A waiting call.",
        ),
        "FloorRep": _obj(
            {
                "id": _i(),
                "display_name": _s(),
                "status": _s(enum=["available", "away", "busy", "wrap_up", "offline"]),
                "idle_s": _i(minimum=0),
                "session_id": _nullable(_s()),
                "skills": {"type": "array", "items": _s()},
                "languages": {"type": "array", "items": _s()},
            }
        ),
        "LiveCall": _obj(
            {
                "session_id": _s(),
                "rep": _nullable(_ref("UserRef")),
                "reason": _nullable(_s()),
                "language": _nullable(_s()),
                "talk_s": _i(minimum=0),
                "customer_frustration": _nullable(_n(minimum=0, maximum=1)),
                "customer_flag": _b(),
            }
        ),
        "Floor": _obj(
            {
                "queue": {"type": "array", "items": _ref("QueueItem")},
                "reps": {"type": "array", "items": _ref("FloorRep")},
                "calls": {"type": "array", "items": _ref("LiveCall")},
                "estimated_wait_s": {
                    "type": "object",
                    "description": "The estimated wait of the next caller, per reason code.",
                    "additionalProperties": _i(minimum=0),
                },
            },
            description="The live floor: queue, reps and calls.",
        ),
        "Recording": _obj(
            {
                "id": _i(),
                "session_id": _s(),
                "participant": _s("both: the composed side-by-side file.", enum=["customer", "rep", "both"]),
                "kind": _s(enum=["video", "audio", "composed"]),
                "state": _s(
                    enum=[
                        "recording",
                        "complete",
                        "truncated",
                        "recovered",
                        "failed",
                        "pending",
                        "composing",
                        "deleted",
                    ]
                ),
                "progress": _nullable(_n("Composing progress, 0-1.", minimum=0, maximum=1)),
                "error": _nullable(_s()),
                "size": _nullable(_i(minimum=0)),
                "sha256": _nullable(_s()),
                "started_at": TIME,
                "ended_at": TIME_OR_NULL,
                "url": _s("Where to play it: GET /api/v1/recordings/{id}/media."),
            },
            description="One recorded track, or the composed QA file.",
        ),
        "AuditEntry": _obj(
            {
                "id": _i(),
                "at": TIME,
                "user_id": _nullable(_i()),
                "action": _s("For example recording.play, qa.export, session.erase."),
                "target": _nullable(_s()),
                "detail": _nullable(ANY_OBJECT),
            }
        ),
        "Invite": _obj(
            {
                "id": _s("The invite's id, for revoking it (not a secret).", pattern="^inv_[0-9a-f]{16}$"),
                "code": _s("The signed token: what follows /join/, and what redeem and qr.png take."),
                "url": _s("The join link to send to the customer.", format="uri"),
                "expires_at": TIME,
                "qr_svg": _s("The join link as a QR code (SVG markup)."),
                "qr_png_url": _s("The same QR code as PNG."),
            },
            description="A signed invite link for an identified customer.",
        ),
        "Disposition": _obj({"code": _s(enum=dispositions), "label": _s(), "category": _s()}),
        "ErasureReport": _obj(
            {
                "session_id": _s(),
                "erased": _obj(
                    {
                        name: _i(minimum=0)
                        for name in (
                            "files",
                            "recordings",
                            "chat_messages",
                            "emotion_seconds",
                            "reviews",
                            "webhook_payloads",
                        )
                    },
                    description="How many of each were removed.",
                ),
            }
        ),
        "CustomerErasure": _obj(
            {
                "erased": {"type": "array", "items": _s(), "description": "Session ids erased."},
                "refused": {
                    "type": "array",
                    "items": _obj({"session_id": _s(), "why": _s()}),
                    "description": "Sessions kept: live or on legal hold.",
                },
            }
        ),
        "Criterion": _obj(
            {
                "id": _s("A slug: letters, digits and _.", maxLength=40, pattern="^[A-Za-z0-9_]+$"),
                "label": _s(minLength=1, maxLength=200),
                "type": _s("scale: 1-5; yesno: true or false.", enum=list(CRITERION_TYPES)),
            }
        ),
        "Scorecard": _obj(
            {
                "id": _i(),
                "criteria": {"type": "array", "items": _ref("Criterion")},
                "created_at": TIME,
                "created_by": _nullable(_i()),
            },
            description="A version of the QA rubric; earlier reviews keep theirs.",
        ),
        "Review": _obj(
            {
                "id": _i(),
                "reviewer": _ref("UserRef"),
                "scorecard_id": _i(),
                "answers": {
                    "type": "object",
                    "description": "Criterion id to answer.",
                    "additionalProperties": {"oneOf": [_i(minimum=1, maximum=5), _b()]},
                },
                "comments": _nullable(_s()),
                "score": _n("The share of available points.", minimum=0, maximum=1),
                "created_at": TIME,
            },
            description="A QA review of one session.",
        ),
        "QaRow": _obj(
            {
                "session_id": _s(),
                "created_at": TIME,
                "answered_at": TIME_OR_NULL,
                "ended_at": TIME_OR_NULL,
                "duration_s": _nullable(_i(minimum=0)),
                "reason": _nullable(_s()),
                "customer_name": _nullable(_s()),
                "state": _s(enum=["ended", "abandoned", "interrupted"]),
                "rep": _nullable(_ref("UserRef")),
                "disposition": _nullable(_s()),
                "notes": _nullable(_s()),
                "peak_frustration": _nullable(_n(minimum=0, maximum=1)),
                "flag_count": _i(minimum=0),
                "recorded": _b(),
                "qa_status": _s(enum=["scored", "unscored"]),
                "score": _nullable(_n(minimum=0, maximum=1)),
                "review": _nullable(_ref("Review")),
            },
            description="A closed session in the QA list, with its latest review.",
        ),
        "QaSession": _obj(
            {
                **session,
                "rep": _nullable(_ref("UserRef")),
                "disposition_label": _nullable(_s()),
            },
            description="A session as QA sees it.",
        ),
        "ReviewBundle": _obj(
            {
                "session": _ref("QaSession"),
                "media_epoch": _s("Wall-clock time of second 0 of the player and the timeline.", format="date-time"),
                "player": _nullable(_ref("Recording")),
                "recordings": {"type": "array", "items": _ref("Recording")},
                "chat": {
                    "type": "array",
                    "items": _obj({**chat, "t": _n("Seconds on the player's clock; negative while waiting.")}),
                },
                "timeline": {"type": "array", "items": _ref("TimelineSecond")},
                "flags": {
                    "type": "array",
                    "items": _obj({"start_s": _i(), "end_s": _i(), "peak": _n(minimum=0, maximum=1)}),
                },
                "notes": _nullable(_s()),
                "scorecard": _nullable(_ref("Scorecard")),
                "reviews": {"type": "array", "items": _ref("Review")},
            },
            description="Everything QA needs to review one session.",
        ),
        "ComposeJob": _obj({"id": _i(), "state": _s(enum=["pending"])}),
        "ReportRow": _obj({"key": _s("The day (YYYY-MM-DD) or the reason code (none: no reason)."), **report_fields}),
        "ReportTotals": _obj(report_fields),
        "Report": _obj(
            {
                "group": _s(enum=["day", "reason"]),
                "rows": {"type": "array", "items": _ref("ReportRow")},
                "totals": _ref("ReportTotals"),
            },
            description="Volumes, waits, handle times, abandonment and ratings; never a ranking of reps.",
        ),
        "Webhook": _obj(
            {
                "id": _i(),
                "url": _s(format="uri"),
                "events": {"type": "array", "items": _s(enum=list(EVENTS))},
                "description": _nullable(_s()),
                "created_at": TIME,
            },
            description="A webhook endpoint (its secret is never listed).",
        ),
        "WebhookCreated": _obj(
            {
                "id": _i(),
                "url": _s(format="uri"),
                "events": {"type": "array", "items": _s(enum=list(EVENTS))},
                "description": _nullable(_s()),
                "created_at": TIME,
                "secret": _s("The signing secret (whsec_…): shown once, here."),
            }
        ),
        "Delivery": _obj(
            {
                "id": _i(),
                "event": _s(enum=list(EVENTS)),
                "event_id": _s(),
                "state": _s(enum=["pending", "delivered", "failed"]),
                "attempts": _i(minimum=0),
                "last_status": _nullable(_i()),
                "last_error": _nullable(_s()),
                "created_at": TIME,
                "delivered_at": TIME_OR_NULL,
                "next_attempt_at": TIME_OR_NULL,
            },
            description="One event sent (or to be sent) to one endpoint.",
        ),
    }


def _parameters(settings: Settings) -> dict[str, Schema]:
    reasons, _languages, _dispositions = _codes(settings)
    return {
        "SessionId": {
            "name": "session_id",
            "in": "path",
            "required": True,
            "description": "The session's id; an unknown one (or one over 64 characters) is 404.",
            "schema": _s(maxLength=64),
            "example": SESSION_ID_EXAMPLE,
        },
        "From": {
            "name": "from",
            "in": "query",
            "description": "Sessions created on or after this day (UTC).",
            "schema": _s(format="date"),
            "example": "2026-12-01",
        },
        "To": {
            "name": "to",
            "in": "query",
            "description": "Sessions created on or before this day (UTC, inclusive).",
            "schema": _s(format="date"),
            "example": "2026-12-31",
        },
        "Reason": {"name": "reason", "in": "query", "description": "A reason code.", "schema": _s(enum=reasons)},
        "CsrfToken": {
            "name": CSRF_HEADER,
            "in": "header",
            "required": False,
            "description": "The csrf_token from login or /api/v1/me. Required with the staff cookie "
            "(403 csrf without it); not used with an API key.",
            "schema": _s(),
        },
        "RepId": {"name": "rep_id", "in": "query", "schema": _i(minimum=1, maximum=2**31)},
        "Outcome": {
            "name": "outcome",
            "in": "query",
            "description": "A disposition code, or a state such as abandoned.",
            "schema": _s(maxLength=64),
        },
        "MinDuration": {
            "name": "min_duration_s",
            "in": "query",
            "description": "Talk time in seconds, at least.",
            "schema": _n(minimum=0, maximum=10**7),
        },
        "MaxDuration": {
            "name": "max_duration_s",
            "in": "query",
            "description": "Talk time in seconds, at most.",
            "schema": _n(minimum=0, maximum=10**7),
        },
        "MinFrustration": {
            "name": "min_frustration",
            "in": "query",
            "description": "The customer's peak frustration, at least.",
            "schema": _n(minimum=0, maximum=1),
        },
        "Flagged": {
            "name": "flagged",
            "in": "query",
            "description": "Whether the customer's frustration flag went up.",
            "schema": _s(enum=["true", "false"]),
        },
        "QaStatus": {"name": "qa_status", "in": "query", "schema": _s(enum=["scored", "unscored"])},
    }


def _responses() -> dict[str, Schema]:
    def error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
        out: Schema = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
        if headers:
            out["headers"] = headers
        return out

    return {
        "BadRequest": error("Not valid: a field, a query parameter or the JSON body (bad_request)."),
        "Unauthorized": error("Not logged in, or a missing, unknown or revoked API key (not_authenticated)."),
        "Forbidden": error(
            "Not allowed: the staff role may not do this or the API key lacks the scope (forbidden); "
            f"a missing or wrong {CSRF_HEADER} with the staff cookie (csrf); a request from a foreign Origin "
            "(bad_origin)."
        ),
        "NotFound": error("No such thing, or not yours to see (not_found)."),
        "Conflict": error("Not now: the state of the thing does not allow it (conflict)."),
        "Gone": error(
            "The invite link has expired (link_expired), opened its one call already (link_used) or was "
            "revoked (link_revoked)."
        ),
        "TooLarge": error(f"The body is over {MAX_BODY_BYTES} bytes (too_large)."),
        "RateLimited": error(
            "Too many requests from this address or for this username (rate_limited); as many calls from this "
            "address already wait as one address may have waiting (too_many_waiting).",
            {"Retry-After": {"description": "Seconds to wait.", "schema": _i(minimum=1)}},
        ),
        "Unavailable": error("The service is not running on this server (unavailable)."),
        "AllLinesBusy": error(
            "Every line is busy: the server carries all the calls it can and as many customers already wait "
            "(all_lines_busy), or the queue holds as many waiting calls as the server keeps (queue_full). "
            "Try again later.",
            {"Retry-After": {"description": "Seconds to wait.", "schema": _i(minimum=1)}},
        ),
        "Unexpected": error(
            "An unexpected error (internal, with a reference for the logs), or a wrong method (method_not_allowed)."
        ),
    }


ERROR_RESPONSES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    413: "TooLarge",
    429: "RateLimited",
    503: "Unavailable",
}


# operations


@dataclass(frozen=True)
class Auth:
    """Who may call: nobody in particular, staff with ``roles``, and/or an API key with ``scope``."""

    roles: tuple[str, ...] | None = None
    scope: str | None = None


PUBLIC = Auth()


def _staff(*roles: str) -> Auth:
    return Auth(roles=roles)


def _json_content(schema: Schema, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _ok(description: str, schema: Schema | None = None, *, media: str | None = None, **extra: Any) -> Schema:
    out: Schema = {"description": description, **extra}
    if schema is not None:
        out["content"] = {media: {"schema": schema}} if media else _json_content(schema)
    return out


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _auth_text(auth: Auth) -> str:
    if auth.roles is None and auth.scope is None:
        return "Public: no login needed."
    parts = []
    if auth.roles is not None:
        roles = "any staff role" if set(auth.roles) == set(STAFF_ROLES) else "role " + ", ".join(auth.roles)
        parts.append(f"staff login ({roles})")
    if auth.scope is not None:
        parts.append(f"an API key with the {auth.scope} scope")
    return "Who: " + " or ".join(parts) + "."


def _operation(
    method: str,
    op_id: str,
    summary: str,
    tag: str,
    auth: Auth,
    *,
    ok: dict[str, Schema],
    description: str = "",
    params: tuple[Schema, ...] = (),
    body: Schema | None = None,
    body_required: bool = True,
    example: Any = None,
    errors: tuple[int, ...] = (),
    busy: bool = False,
) -> Schema:
    """One operation; the answers every such operation can give (401, 403, 400, 413) are added here.

    ``busy``: the operation starts a call, so a full server answers 503 all_lines_busy.
    """
    unsafe = method in UNSAFE
    codes = set(errors)
    if auth.roles is not None or auth.scope is not None:
        codes.add(401)
        if auth.scope is not None or set(auth.roles or ()) != set(STAFF_ROLES):
            codes.add(403)
    if unsafe:
        codes.add(403)  # a foreign Origin; with the cookie, a missing CSRF header
    if body is not None:
        codes.update((400, 413))
    parameters = list(params)
    if unsafe and auth.roles is not None:
        parameters.append(_param("CsrfToken"))
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "description": " ".join(p for p in (description, _auth_text(auth)) if p),
        "tags": [tag],
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _json_content(body, example)}
    responses: Schema = dict(ok)
    for code in sorted(codes):
        responses.setdefault(str(code), {"$ref": f"#/components/responses/{ERROR_RESPONSES[code]}"})
    if busy:
        responses["503"] = {"$ref": "#/components/responses/AllLinesBusy"}
    responses["default"] = {"$ref": "#/components/responses/Unexpected"}
    op["responses"] = responses
    security: list[Schema] = []
    if auth.scope is not None:
        security.append({"apiKey": [auth.scope]})
    if auth.roles is not None:
        security.append({"staffCookie": list(auth.roles)})
    op["security"] = security
    if auth.roles is not None:
        op["x-rapport-roles"] = list(auth.roles)
    if auth.scope is not None:
        op["x-rapport-scope"] = auth.scope
    return op


def _paths(settings: Settings) -> dict[str, dict[str, Schema]]:
    reasons, languages, dispositions = _codes(settings)
    staff, review, supervisor, admin = (
        _staff(*STAFF_ROLES),
        _staff(*REVIEW_ROLES),
        _staff(*SUPERVISOR_ROLES),
        _staff(*ADMIN),
    )
    sessions_key = Auth(roles=STAFF_ROLES, scope="sessions:read")
    invites_key = Auth(roles=STAFF_ROLES, scope="invites:write")
    webhooks_key = Auth(roles=ADMIN, scope="webhooks:manage")
    session_id = _param("SessionId")
    consent = _nullable(_b("The customer's answer to the emotion-cue notice; default: the server's."))
    recording_consent = _nullable(_b("Counts under the ask recording policy only; default: no."))
    device = _nullable(_s("The customer's device, as the page describes it.", maxLength=200))
    language = _nullable(_s("A language code.", enum=languages))
    reason = _nullable(_s("A reason code.", enum=reasons))
    qa_filters = tuple(
        _param(name)
        for name in (
            "From",
            "To",
            "RepId",
            "Reason",
            "Outcome",
            "MinDuration",
            "MaxDuration",
            "MinFrustration",
            "Flagged",
            "QaStatus",
        )
    )
    report_query = (
        {
            "name": "group",
            "in": "query",
            "description": "Rows per day or per reason.",
            "schema": _s(enum=["day", "reason"], default="day"),
        },
        _param("From"),
        _param("To"),
    )
    report_text = (
        f"The range defaults to the last 7 days and may span one day to {MAX_RANGE_S // 86_400} days; "
        "to before from is 400."
    )
    csv = "text/csv"
    webhook_id = {
        "name": "webhook_id",
        "in": "path",
        "required": True,
        "schema": _i(minimum=0),
        "description": "An unknown or deleted endpoint is 404.",
        "example": 1,
    }
    return {
        "/api/v1/auth/login": {
            "post": _operation(
                "post",
                "login",
                "Log a staff member in",
                "Auth",
                PUBLIC,
                description="Sets the rapport_session cookie (HttpOnly, SameSite=Strict) and returns the CSRF token. "
                "Failed logins are limited per username and address, per address and server-wide (429 with "
                "Retry-After, checked before the password is); see docs/api.md.",
                body=_obj(
                    {
                        "username": _s(minLength=1, maxLength=64),
                        "password": _s(maxLength=1024),
                    },
                    ["username", "password"],
                ),
                example={"username": "rep1", "password": "correct horse battery"},
                ok={
                    "200": _ok(
                        "Logged in.",
                        _ref("LoginResult"),
                        headers={"Set-Cookie": {"description": f"{COOKIE}=…", "schema": _s()}},
                    )
                },
                errors=(401, 429),
            )
        },
        "/api/v1/auth/logout": {
            "post": _operation(
                "post",
                "logout",
                "Log out",
                "Auth",
                staff,
                description="Ends this login and closes its live sockets (code 4001).",
                ok={"204": _ok("Logged out; the cookie is cleared.")},
            )
        },
        "/api/v1/me": {
            "get": _operation(
                "get",
                "getMe",
                "Who is logged in",
                "Auth",
                staff,
                ok={"200": _ok("The staff member and the login's CSRF token.", _ref("LoginResult"))},
            )
        },
        "/api/v1/config": {
            "get": _operation(
                "get",
                "getConfig",
                "The customer page's configuration",
                "Customers",
                PUBLIC,
                description="ICE servers, languages, reasons with their self-help articles, and the emotion-cue "
                "and recording policies.",
                params=(
                    {
                        "name": "lang",
                        "in": "query",
                        "description": "A language code to use; anything else is ignored and the language is "
                        "picked from Accept-Language (English when nothing matches).",
                        "schema": _s(),
                    },
                    {
                        "name": "invite",
                        "in": "query",
                        "description": "The signed token of an invite link: its language is used when no lang "
                        "is given. An expired or tampered token is ignored here.",
                        "schema": _s(),
                    },
                    {
                        "name": "Accept-Language",
                        "in": "header",
                        "description": "The browser's languages.",
                        "schema": _s(),
                    },
                ),
                ok={"200": _ok("The configuration.", _ref("Config"))},
            )
        },
        "/api/v1/calls": {
            "post": _operation(
                "post",
                "startCall",
                "Start a call (join the queue)",
                "Customers",
                PUBLIC,
                description="Everything is optional. The answer's token opens /ws/v1 (see docs/protocol.md). "
                "Rate limited per address; refused with 503 when every line is busy.",
                body=_obj(
                    {
                        "reason": reason,
                        "name": _nullable(_s("The customer's name.", maxLength=200)),
                        "device": device,
                        "language": language,
                        "contact": _nullable(
                            _obj(
                                {
                                    "email": _nullable(_s(format="email", maxLength=254)),
                                    "phone": _nullable(_s(pattern=r"^\+?[0-9 ()./-]{5,30}$", maxLength=30)),
                                },
                                [],
                                description="Both optional; validated.",
                            )
                        ),
                        "emotion_consent": consent,
                        "recording_consent": recording_consent,
                    },
                    [],
                ),
                body_required=False,
                example={"reason": "order", "name": "Ada", "language": "en", "emotion_consent": True},
                ok={"201": _ok("The call is queued.", _ref("CallToken"))},
                errors=(429,),
                busy=True,
            )
        },
        "/api/v1/calls/rating": {
            "post": _operation(
                "post",
                "rateCall",
                "Rate a call afterwards",
                "Customers",
                PUBLIC,
                description=f"Authorised by the call's own token; once, within {RATING_WINDOW_S // 3600} hours "
                "of the end of an answered call (else 409).",
                body=_obj(
                    {
                        "token": _s("The call's token from POST /api/v1/calls.", minLength=20, maxLength=128),
                        "rating": _i(minimum=1, maximum=5),
                        "comment": _nullable(_s(maxLength=2000)),
                    },
                    ["token", "rating"],
                ),
                example={"token": "<the call's token>", "rating": 5, "comment": "Quick and friendly"},
                ok={"200": _ok("Saved.", _ref("Ok"))},
                errors=(404, 409),
            )
        },
        "/api/v1/calls/callback": {
            "post": _operation(
                "post",
                "requestCallback",
                "Ask for a callback after a wait that ran out",
                "Customers",
                PUBLIC,
                description="When no rep could take the call within the server's max_wait_s, the call ends "
                "(end_reason max_wait) and the customer may leave a phone number or an e-mail address. Authorised "
                f"by the call's own token; once, within {RATING_WINDOW_S // 3600} hours (else 409). Staff see it "
                "as the session's callback_requested event.",
                body=_obj(
                    {
                        "token": _s("The call's token from POST /api/v1/calls.", minLength=20, maxLength=128),
                        "contact": _obj(
                            {
                                "email": _nullable(_s(format="email", maxLength=254)),
                                "phone": _nullable(_s(pattern=r"^\+?[0-9 ()./-]{5,30}$", maxLength=30)),
                            },
                            [],
                            description="At least one of the two; validated.",
                        ),
                    },
                    ["token", "contact"],
                ),
                example={"token": "<the call's token>", "contact": {"phone": "+31 6 1234 5678"}},
                ok={"200": _ok("Saved.", _ref("Ok"))},
                errors=(404, 409),
            )
        },
        "/api/v1/invites": {
            "post": _operation(
                "post",
                "createInvite",
                "Create an invite link for an identified customer",
                "Invites",
                invites_key,
                description="The link carries a token signed with the server's secret; the customer's identity "
                "and context stay in the database. The link opens one call. It points at the server's public_url; "
                "without one, links are made only for a loopback Host (else 409 public_url_required).",
                body=_obj(
                    {
                        "customer": _nullable(
                            _obj(
                                {name: _nullable(_s(maxLength=200)) for name in ("id", "name", "email", "phone")},
                                [],
                                description=f"Who the customer is (at most {MAX_JSON_BYTES} bytes as JSON); "
                                "id becomes customer_ref and name customer_name unless given.",
                                additional=True,
                            )
                        ),
                        "context": _nullable(
                            {
                                **ANY_OBJECT,
                                "description": f"Anything the rep should see (at most {MAX_JSON_BYTES} bytes as JSON).",
                            }
                        ),
                        "reason": reason,
                        "language": language,
                        "priority": {
                            "oneOf": [_s(enum=["normal", "high"]), _i(minimum=0, maximum=100)],
                            "default": "normal",
                            "description": "normal (0), high (10) or 0-100; higher is answered first.",
                        },
                        "customer_name": _nullable(_s(maxLength=200)),
                        "customer_ref": _nullable(_s("The calling system's customer id.", maxLength=128)),
                        "ttl_s": _i(
                            "How long the link works, in seconds.",
                            minimum=60,
                            maximum=INVITE_MAX_TTL_S,
                            default=24 * 3600,
                        ),
                    },
                    [],
                ),
                body_required=False,
                example={
                    "customer": {"id": "crm-77", "name": "Ada Lovelace", "email": "ada@example.com"},
                    "context": {"order": "A-1001"},
                    "reason": "not_working",
                    "language": "nl",
                    "priority": "high",
                    "ttl_s": 86400,
                },
                ok={"201": _ok("The invite.", _ref("Invite"))},
                errors=(409,),
            )
        },
        "/api/v1/invites/{invite_id}": {
            "delete": _operation(
                "delete",
                "revokeInvite",
                "Revoke an invite link",
                "Invites",
                Auth(roles=REVOKE_ROLES, scope="invites:write"),
                description="From now on the link opens nothing (410 link_revoked, and the link error page); a call "
                "it already started carries on. Revoking twice is fine.",
                params=(
                    {
                        "name": "invite_id",
                        "in": "path",
                        "required": True,
                        "description": "Invite.id; an unknown one is 404.",
                        "schema": _s(pattern="^inv_[0-9a-f]{16}$"),
                        "example": "inv_3f2a9c1b7d4e5f60",
                    },
                ),
                ok={"204": _ok("Revoked.")},
                errors=(404,),
            )
        },
        "/api/v1/invites/{code}/redeem": {
            "post": _operation(
                "post",
                "redeemInvite",
                "Start the call of an invite",
                "Invites",
                PUBLIC,
                description="As POST /api/v1/calls, with the invite's name, reason, language, priority, identity "
                "and context. One call per link: of redeems that race, one wins; the others get 409 while its call "
                "is open, 410 link_used after. A tampered token is 400 link_invalid; an expired one 410 "
                "link_expired; a revoked one 410 link_revoked. A call that cannot start (503, 429) leaves the link "
                "unused.",
                params=(
                    {
                        "name": "code",
                        "in": "path",
                        "required": True,
                        "description": "The invite's signed token (Invite.code).",
                        "schema": _s(maxLength=MAX_TOKEN_CHARS),
                    },
                ),
                body=_obj(
                    {
                        "device": device,
                        "language": language,
                        "emotion_consent": consent,
                        "recording_consent": recording_consent,
                    },
                    [],
                ),
                body_required=False,
                example={"device": "iPhone · Safari", "emotion_consent": True},
                ok={"201": _ok("The call is queued.", _ref("CallToken"))},
                errors=(409, 410, 429),
                busy=True,
            )
        },
        "/api/v1/invites/{token}/qr.png": {
            "get": _operation(
                "get",
                "getInviteQr",
                "The invite link as a QR code",
                "Invites",
                PUBLIC,
                description="410 once the link no longer opens a call; 409 public_url_required as for createInvite.",
                params=(
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "description": "The invite's signed token (Invite.code).",
                        "schema": _s(maxLength=MAX_TOKEN_CHARS),
                    },
                ),
                ok={"200": _ok("A PNG image.", _s(format="binary"), media="image/png")},
                errors=(400, 409, 410),
            )
        },
        "/api/v1/sessions": {
            "get": _operation(
                "get",
                "listSessions",
                "List sessions",
                "Sessions",
                sessions_key,
                description="Newest first. A rep gets only the sessions they took; qa, supervisor, admin and "
                "API keys get all.",
                params=(
                    {"name": "state", "in": "query", "schema": _s(enum=list(SESSION_STATES))},
                    _param("Reason"),
                    {
                        "name": "customer_ref",
                        "in": "query",
                        "description": "The calling system's customer id.",
                        "schema": _s(maxLength=128),
                        "example": "crm-77",
                    },
                    _param("From"),
                    _param("To"),
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": _i(minimum=1, maximum=500, default=50),
                        "example": 20,
                    },
                ),
                ok={"200": _ok("The sessions.", _items(_ref("Session")))},
                errors=(400,),
            )
        },
        "/api/v1/sessions/{session_id}": {
            "get": _operation(
                "get",
                "getSession",
                "One session with its chat, events and emotion timeline",
                "Sessions",
                sessions_key,
                description="A rep reads only the sessions they took: any other id is 404.",
                params=(session_id,),
                ok={"200": _ok("The session.", _ref("SessionDetail"))},
                errors=(404,),
            ),
            "delete": _operation(
                "delete",
                "eraseSession",
                "Erase a session's personal data",
                "Retention",
                admin,
                description="Removes its media, chat, emotion timeline, notes and reviews; the row stays, "
                "stripped, so reports still add up. 409 while live or on legal hold.",
                params=(session_id,),
                ok={"200": _ok("What was erased.", _ref("ErasureReport"))},
                errors=(404, 409),
            ),
        },
        "/api/v1/sessions/{session_id}/recordings": {
            "get": _operation(
                "get",
                "listSessionRecordings",
                "A session's recordings",
                "Recordings",
                review,
                description="Every access is written to the audit log.",
                params=(session_id,),
                ok={"200": _ok("The recordings.", _items(_ref("Recording")))},
                errors=(404,),
            )
        },
        "/api/v1/recordings/{recording_id}/media": {
            "get": _operation(
                "get",
                "getRecordingMedia",
                "Play or download a recording",
                "Recordings",
                review,
                description="Found by database id only. Range requests give 206. Every access is audited.",
                params=(
                    {
                        "name": "recording_id",
                        "in": "path",
                        "required": True,
                        "description": "The recording's id; anything else (or a file that is not servable) is 404.",
                        "schema": _i(minimum=1),
                        "example": 7,
                    },
                    {
                        "name": "Range",
                        "in": "header",
                        "description": "For example bytes=0-1023.",
                        "schema": _s(),
                    },
                ),
                ok={
                    "200": {
                        "description": "The file.",
                        "content": {m: {"schema": _s(format="binary")} for m in sorted(set(MEDIA_TYPES.values()))},
                    },
                    "206": {
                        "description": "The requested range.",
                        "content": {m: {"schema": _s(format="binary")} for m in sorted(set(MEDIA_TYPES.values()))},
                    },
                    "416": {"description": "The range is outside the file."},
                },
                errors=(404,),
            )
        },
        "/api/v1/audit": {
            "get": _operation(
                "get",
                "getAuditLog",
                "The audit log",
                "Recordings",
                admin,
                description="The newest 200 entries.",
                ok={"200": _ok("The entries, newest first.", _items(_ref("AuditEntry")))},
            )
        },
        "/api/v1/dispositions": {
            "get": _operation(
                "get",
                "listDispositions",
                "The wrap-up outcome codes",
                "Wrap-up",
                staff,
                ok={"200": _ok("The codes.", _items(_ref("Disposition")))},
            )
        },
        "/api/v1/sessions/{session_id}/wrapup": {
            "post": _operation(
                "post",
                "wrapUp",
                "Save the outcome and notes of a call",
                "Wrap-up",
                staff,
                description="The rep who took the call; supervisor and admin may correct any. A session that "
                "is not yours is 404; a live call is 409.",
                params=(session_id,),
                body=_obj(
                    {
                        "disposition": _s(enum=dispositions),
                        "notes": _s(maxLength=NOTES_MAX, default=""),
                    },
                    ["disposition"],
                ),
                example={"disposition": "resolved", "notes": "Sent a new charger"},
                ok={"200": _ok("The session.", _ref("Session"))},
                errors=(404, 409),
            )
        },
        "/api/v1/sessions/{session_id}/legal-hold": {
            "put": _operation(
                "put",
                "setLegalHold",
                "Put a session on legal hold, or release it",
                "Retention",
                supervisor,
                description="Held sessions are never deleted by retention or erasure.",
                params=(session_id,),
                body=_obj({"hold": _b(), "note": _nullable(_s(maxLength=200))}, ["hold"]),
                example={"hold": True, "note": "dispute #42"},
                ok={"200": _ok("The session.", _ref("Session"))},
                errors=(404,),
            )
        },
        "/api/v1/customers/{customer_ref}": {
            "delete": _operation(
                "delete",
                "eraseCustomer",
                "Erase every session of one customer",
                "Retention",
                admin,
                description="As DELETE /api/v1/sessions/{session_id} for each session with this customer_ref. "
                "When every session is refused (live or on hold) the answer is 409 with the same body.",
                params=(
                    {
                        "name": "customer_ref",
                        "in": "path",
                        "required": True,
                        "schema": _s(maxLength=128),
                        "description": "The calling system's customer id; no sessions (or over 128 characters) is 404.",
                        "example": "crm-77",
                    },
                ),
                ok={
                    "200": _ok("What was erased and what was kept.", _ref("CustomerErasure")),
                    "409": _ok("Every session was refused.", _ref("CustomerErasure")),
                },
                errors=(404,),
            )
        },
        "/api/v1/qa/sessions": {
            "get": _operation(
                "get",
                "listQaSessions",
                "Closed sessions for QA, with filters",
                "QA",
                review,
                description="Newest first; erased sessions are left out.",
                params=(
                    *qa_filters,
                    {"name": "limit", "in": "query", "schema": _i(minimum=1, maximum=500, default=100)},
                ),
                ok={
                    "200": _ok(
                        "The sessions and the reps who took calls (for the filter).",
                        _obj(
                            {
                                "items": {"type": "array", "items": _ref("QaRow")},
                                "reps": {"type": "array", "items": _ref("UserRef")},
                            }
                        ),
                    )
                },
                errors=(400,),
            )
        },
        "/api/v1/qa/sessions/{session_id}": {
            "get": _operation(
                "get",
                "getQaSession",
                "The review bundle of one session",
                "QA",
                review,
                description="Session, player file, tracks, chat and emotion timeline on one clock, flags, "
                "scorecard and reviews. Audited.",
                params=(session_id,),
                ok={"200": _ok("The bundle.", _ref("ReviewBundle"))},
                errors=(404,),
            )
        },
        "/api/v1/qa/sessions/{session_id}/reviews": {
            "post": _operation(
                "post",
                "addReview",
                "Review a session against a scorecard",
                "QA",
                review,
                description="Every criterion must be answered: scale 1-5, yesno true or false. A live call is 409.",
                params=(session_id,),
                body=_obj(
                    {
                        "scorecard_id": _i("An existing scorecard (any version)."),
                        "answers": {
                            "type": "object",
                            "description": "Criterion id to answer.",
                            "additionalProperties": {"oneOf": [_i(minimum=1, maximum=5), _b()]},
                        },
                        "comments": _nullable(_s(maxLength=COMMENTS_MAX)),
                    },
                    ["scorecard_id", "answers"],
                ),
                example={"scorecard_id": 1, "answers": {"greeting": 4, "resolved": True}, "comments": "Good"},
                ok={"201": _ok("The review.", _ref("Review"))},
                errors=(404, 409),
            )
        },
        "/api/v1/qa/sessions/{session_id}/compose": {
            "post": _operation(
                "post",
                "composeSession",
                "Queue the side-by-side QA file again",
                "QA",
                review,
                description="For example after a failure. 409 when nothing was recorded or composing is off.",
                params=(session_id,),
                ok={"202": _ok("Queued.", _ref("ComposeJob"))},
                errors=(404, 409),
            )
        },
        "/api/v1/qa/scorecard": {
            "get": _operation(
                "get",
                "getScorecard",
                "The current scorecard",
                "QA",
                review,
                ok={"200": _ok("The newest version of the rubric.", _ref("Scorecard"))},
            ),
            "put": _operation(
                "put",
                "putScorecard",
                "Publish a new scorecard version",
                "QA",
                admin,
                body=_obj(
                    {
                        "criteria": {
                            "type": "array",
                            "items": _ref("Criterion"),
                            "minItems": 1,
                            "maxItems": 30,
                            "description": "Ids must be unique.",
                        }
                    },
                    ["criteria"],
                ),
                example={
                    "criteria": [
                        {"id": "greeting", "label": "Greets the customer", "type": "scale"},
                        {"id": "resolved", "label": "Issue resolved", "type": "yesno"},
                    ]
                },
                ok={"201": _ok("The new version.", _ref("Scorecard"))},
            ),
        },
        "/api/v1/qa/export.csv": {
            "get": _operation(
                "get",
                "exportQaSessions",
                "The QA list as CSV",
                "QA",
                review,
                description="The same filters (up to 10,000 rows); one row per session with its latest review "
                "and one column per criterion. Audited.",
                params=qa_filters,
                ok={"200": _ok("A CSV attachment.", _s(), media=csv)},
                errors=(400,),
            )
        },
        "/api/v1/floor": {
            "get": _operation(
                "get",
                "getFloor",
                "The live floor",
                "Supervisor",
                supervisor,
                ok={"200": _ok("Queue, reps, live calls and wait estimates.", _ref("Floor"))},
            )
        },
        "/api/v1/reports": {
            "get": _operation(
                "get",
                "getReport",
                "Reports by day or reason",
                "Supervisor",
                supervisor,
                description=report_text,
                params=report_query,
                ok={"200": _ok("The rows and totals.", _ref("Report"))},
                errors=(400,),
            )
        },
        "/api/v1/reports.csv": {
            "get": _operation(
                "get",
                "exportReport",
                "Reports as CSV",
                "Supervisor",
                supervisor,
                description=report_text + " The last row is the total. Audited.",
                params=report_query,
                ok={"200": _ok("A CSV attachment.", _s(), media=csv)},
                errors=(400,),
            )
        },
        "/api/v1/users": {
            "get": _operation(
                "get",
                "listUsers",
                "Staff accounts with their routing",
                "Routing",
                admin,
                ok={"200": _ok("The accounts.", _items(_ref("StaffUser")))},
            )
        },
        "/api/v1/users/{user_id}/routing": {
            "put": _operation(
                "put",
                "setRouting",
                "Set a rep's skills and languages",
                "Routing",
                admin,
                description="Empty lists (the default) mean any.",
                params=(
                    {
                        "name": "user_id",
                        "in": "path",
                        "required": True,
                        "schema": _i(minimum=1),
                        "example": 2,
                    },
                ),
                body=_obj(
                    {
                        "skills": {"type": "array", "items": _s(enum=reasons), "default": []},
                        "languages": {"type": "array", "items": _s(enum=languages), "default": []},
                    },
                    [],
                ),
                example={"skills": ["order", "complaint"], "languages": ["en", "nl"]},
                ok={"200": _ok("The account.", _ref("StaffUser"))},
                errors=(404,),
            )
        },
        "/api/v1/webhooks": {
            "post": _operation(
                "post",
                "createWebhook",
                "Subscribe an endpoint to events",
                "Webhooks",
                webhooks_key,
                description="Each delivery is a signed POST (Rapport-Signature), retried with backoff.",
                body=_obj(
                    {
                        "url": _s("http:// or https://, without credentials.", format="uri", maxLength=URL_MAX),
                        "events": {
                            "type": "array",
                            "items": _s(enum=list(EVENTS)),
                            "minItems": 1,
                        },
                        "description": _nullable(_s(maxLength=DESCRIPTION_MAX)),
                    },
                    ["url", "events"],
                ),
                example={
                    "url": "https://crm.example.com/hooks/rapport",
                    "events": ["session.ended"],
                    "description": "CRM",
                },
                ok={"201": _ok("The endpoint and its secret (shown once).", _ref("WebhookCreated"))},
                errors=(503,),
            ),
            "get": _operation(
                "get",
                "listWebhooks",
                "List webhook endpoints",
                "Webhooks",
                webhooks_key,
                ok={"200": _ok("The live endpoints.", _items(_ref("Webhook")))},
                errors=(503,),
            ),
        },
        "/api/v1/webhooks/{webhook_id}": {
            "delete": _operation(
                "delete",
                "deleteWebhook",
                "Delete a webhook endpoint",
                "Webhooks",
                webhooks_key,
                description="Its pending deliveries fail; its delivery history stays.",
                params=(webhook_id,),
                ok={"204": _ok("Deleted.")},
                errors=(404, 503),
            )
        },
        "/api/v1/webhooks/{webhook_id}/deliveries": {
            "get": _operation(
                "get",
                "listDeliveries",
                "An endpoint's deliveries",
                "Webhooks",
                webhooks_key,
                description="Newest first.",
                params=(
                    webhook_id,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": _i(minimum=1, maximum=LIMIT_MAX, default=LIMIT_DEFAULT),
                        "example": 20,
                    },
                ),
                ok={"200": _ok("The deliveries.", _items(_ref("Delivery")))},
                errors=(400, 404, 503),
            )
        },
        "/api/v1/openapi.json": {
            "get": _operation(
                "get",
                "getOpenApi",
                "This document",
                "Documentation",
                PUBLIC,
                ok={"200": _ok("The OpenAPI 3.1 document.", {"type": "object"})},
            )
        },
        "/api/docs": {
            "get": _operation(
                "get",
                "getApiDocs",
                "This document as a readable page",
                "Documentation",
                PUBLIC,
                ok={"200": _ok("An HTML page.", _s(), media="text/html")},
            )
        },
    }


TAGS = (
    ("Auth", "Staff log in with a username and password; the cookie then authorises the console's requests."),
    ("Customers", "What the customer page uses: configuration, starting a call, rating it."),
    ("Invites", "Signed links for identified customers, made by staff or by another system."),
    ("Sessions", "Support sessions, for staff and for other systems."),
    ("Recordings", "Recorded tracks and the audit log (QA, supervisors and admins only)."),
    ("Wrap-up", "The rep's outcome and notes after a call."),
    ("QA", "Review of closed sessions. Emotion scores describe the customer, never the rep."),
    ("Retention", "Legal hold and erasure."),
    ("Supervisor", "The live floor and reports."),
    ("Routing", "Which reps take which calls."),
    ("Webhooks", "Signed POSTs of call events to other systems."),
    ("Documentation", "This description of the API."),
)


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server's HTTP API (a fresh copy: callers may change it)."""
    scopes = ", ".join(SCOPES)
    doc = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Rapport API",
            "version": API_VERSION,
            "summary": "Two-way video customer support: calls, invites, sessions, QA, reports and webhooks.",
            "description": "Staff use the console's login cookie; other systems use API keys "
            f"(Authorization: Bearer {KEY_PREFIX}…). Errors are JSON: "
            '{"error": {"code": "...", "message": "..."}}. Times are ISO 8601 in UTC.',
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": settings.public_url.rstrip("/") if settings.public_url else "/"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "parameters": _parameters(settings),
            "responses": _responses(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": f"{KEY_PREFIX}<43 characters>",
                    "description": f"An API key for another system (a CRM, a device fleet): {KEY_PREFIX} and 43 "
                    "URL-safe characters, created with `rapport api-keys create --name NAME --scopes SCOPES`, "
                    f"shown once, stored hashed, revoked with `rapport api-keys revoke ID`. Scopes: {scopes}. "
                    "A wrong or revoked key is 401 not_authenticated; a key without the route's scope is "
                    "403 forbidden. No CSRF header is needed with a key.",
                },
                "staffCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": COOKIE,
                    "description": "The staff login cookie set by POST /api/v1/auth/login (HttpOnly, "
                    f"SameSite=Strict, 12 hours). Every unsafe request (POST, PUT, PATCH, DELETE) made with it "
                    f"must send the login's csrf_token in the {CSRF_HEADER} header. The role names listed with "
                    "an operation are the staff roles it allows.",
                },
            },
        },
    }
    return copy.deepcopy(doc)  # the helpers share small schemas such as TIME


# the readable page


def _deref(doc: dict[str, Any], item: Any) -> Any:
    while isinstance(item, dict) and "$ref" in item:
        node: Any = doc
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def _ref_name(schema: Any) -> str | None:
    if isinstance(schema, dict) and "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    return None


def _type_html(schema: Schema, *, expand: bool = False) -> str:
    """The schema's type as HTML: a named schema links to its table; ``expand`` lists an inline object's fields."""
    name = _ref_name(schema)
    if name is not None:
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type_html(s) for s in schema[key])
    kinds = schema.get("type", "any")
    labels = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array":
            labels.append(f"array of {_type_html(schema.get('items', {}))}")
        elif kind == "object" and expand and schema.get("properties"):
            fields = ", ".join(
                f"<code>{html.escape(field)}</code>: {_type_html(item)}" for field, item in schema["properties"].items()
            )
            labels.append(f"object {{{fields}}}")
        elif "format" in schema and kind != "null":
            labels.append(f"{html.escape(str(kind))} ({html.escape(schema['format'])})")
        else:
            labels.append(html.escape(str(kind)))
    return " or ".join(labels)


def _constraints(schema: Schema) -> str:
    parts = []
    branches = [_constraints(s) for s in schema.get("oneOf") or schema.get("anyOf") or ()]
    if any(branches):
        parts.append(" or ".join(b for b in branches if b))
    if "enum" in schema:
        parts.append("one of " + ", ".join(json.dumps(v) for v in schema["enum"] if v is not None))
    if schema.get("items"):
        parts.append(_constraints(schema["items"]))
    for key, text in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
        ("pattern", "matches {}"),
        ("default", "default {}"),
    ):
        if key in schema:
            value = schema[key]
            parts.append(text.format(json.dumps(value) if key in ("default", "pattern") else value))
    return "; ".join(p for p in parts if p)


def _fields(doc: dict[str, Any], schema: Any, prefix: str = "") -> Iterator[tuple[str, Schema, str, str, str]]:
    """(name, schema, required, constraints, description) of each field; inline objects are flattened."""
    schema = _deref(doc, schema)
    required = set(schema.get("required", ()))
    for name, raw in schema.get("properties", {}).items():
        field = _deref(doc, raw)
        yield (
            prefix + name,
            raw,
            "yes" if name in required else "no",
            _constraints(field),
            str(field.get("description", "")),
        )
        if _ref_name(raw) is not None:
            continue  # a named schema has its own table
        if "properties" in field:
            yield from _fields(doc, field, f"{prefix}{name}.")
        items = field.get("items")
        if isinstance(items, dict) and _ref_name(items) is None and "properties" in items:
            yield from _fields(doc, items, f"{prefix}{name}[].")


def _table(caption: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A table of cells that are already HTML (escape before)."""
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _field_rows(doc: dict[str, Any], schema: Any) -> list[tuple[str, ...]]:
    return [
        (
            f"<code>{html.escape(name)}</code>",
            _type_html(kind),
            html.escape(req),
            html.escape(rules),
            html.escape(text),
        )
        for name, kind, req, rules, text in _fields(doc, schema)
    ]


def _base_url(doc: dict[str, Any]) -> str:
    url = str(doc.get("servers", [{"url": "/"}])[0]["url"])
    return "$RAPPORT_URL" if url == "/" else url.rstrip("/")


def _curl(doc: dict[str, Any], method: str, path: str, op: Schema) -> str:
    url = _base_url(doc) + path
    query = []
    for raw in op.get("parameters", ()):
        param = _deref(doc, raw)
        if "example" not in param:
            continue
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", str(param["example"]))
        elif param["in"] == "query":
            query.append(f"{param['name']}={param['example']}")
    if query:
        url += "?" + "&".join(query)
    lines = ['curl -H "Authorization: Bearer $RAPPORT_KEY"']
    if method != "get":
        lines.append(f"-X {method.upper()}")
    example = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    if example is not None:
        lines.append('-H "Content-Type: application/json"')
        lines.append(f"-d '{json.dumps(example, ensure_ascii=False)}'")
    lines.append(f'"{url}"')
    return " \\\n  ".join(lines)


def _auth_html(op: Schema) -> str:
    roles, scope = op.get("x-rapport-roles"), op.get("x-rapport-scope")
    if roles is None and scope is None:
        return "public (no login)"
    parts = []
    if roles is not None:
        parts.append("staff cookie, roles: " + ", ".join(roles))
    if scope is not None:
        parts.append(f"API key with scope {scope}")
    return " · or ".join(parts)


def _operation_html(doc: dict[str, Any], method: str, path: str, op: Schema) -> str:
    op_id = str(op["operationId"])
    out = [
        f'<article class="card" id="{html.escape(op_id)}">',
        f'<h3><span class="badge">{html.escape(method.upper())}</span> <code>{html.escape(path)}</code></h3>',
        f"<p><strong>{html.escape(op['summary'])}</strong></p>",
    ]
    if op.get("description"):
        out.append(f'<p class="muted">{html.escape(op["description"])}</p>')
    out.append("<dl>")
    out.append(f"<dt>Operation</dt><dd><code>{html.escape(op_id)}</code></dd>")
    out.append(f"<dt>Auth</dt><dd>{html.escape(_auth_html(op))}</dd>")
    out.append("</dl>")
    params = [_deref(doc, p) for p in op.get("parameters", ())]
    if params:
        rows = [
            (
                f"<code>{html.escape(p['name'])}</code>",
                html.escape(p["in"]),
                _type_html(p.get("schema", {})),
                "yes" if p.get("required") else "no",
                html.escape(_constraints(p.get("schema", {}))),
                html.escape(str(p.get("description", ""))),
            )
            for p in params
        ]
        out.append(_table("Parameters", ("name", "in", "type", "required", "constraints", "description"), rows))
    body = op.get("requestBody")
    if body:
        caption = "Request body (JSON, " + ("required)" if body.get("required") else "optional)")
        fields = _field_rows(doc, body["content"]["application/json"]["schema"])
        out.append(_table(caption, ("field", "type", "required", "constraints", "description"), fields))
    answers: list[tuple[str, str, str]] = []
    for status, raw in op["responses"].items():
        response = _deref(doc, raw)
        kinds = []
        for media, item in response.get("content", {}).items():
            kinds.append(f"{html.escape(media)}: {_type_html(item.get('schema', {}), expand=True)}")
        answers.append(
            (f"<code>{html.escape(status)}</code>", html.escape(response["description"]), "<br>".join(kinds))
        )
    out.append(_table("Responses", ("status", "meaning", "body"), answers))
    if op.get("x-rapport-scope"):
        out.append("<p>Example:</p>")
        out.append(f"<pre><code>{html.escape(_curl(doc, method, path, op))}</code></pre>")
    out.append("</article>")
    return "\n".join(out)


def render_html(doc: dict[str, Any]) -> str:
    """The document as one readable page: by tag, each operation with its auth, parameters, body and answers."""
    info = doc["info"]
    by_tag: dict[str, list[tuple[str, str, Schema]]] = {t["name"]: [] for t in doc.get("tags", ())}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            by_tag.setdefault(op["tags"][0], []).append((method, path, op))
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", ())}
    schemes = doc["components"]["securitySchemes"]
    out = [
        "<!doctype html>",
        '<html lang="en" dir="ltr">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(info['title'])} {html.escape(info['version'])}</title>",
        '<link rel="stylesheet" href="/static/css/app.css">',
        "</head>",
        '<body class="api-docs">',
        '<header class="card">',
        f'<h1>{html.escape(info["title"])} <small class="muted">{html.escape(info["version"])}</small></h1>',
        f"<p>{html.escape(info.get('summary', ''))}</p>",
        f"<p>{html.escape(info.get('description', ''))}</p>",
        '<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> '
        f"(OpenAPI {html.escape(doc['openapi'])}). Server: <code>{html.escape(doc['servers'][0]['url'])}</code></p>",
        "</header>",
        "<main>",
        '<nav class="card" aria-label="Contents"><h2>Contents</h2><ul>',
    ]
    for tag, ops in by_tag.items():
        if not ops:
            continue
        links = ", ".join(
            f'<a href="#{html.escape(op["operationId"])}">{html.escape(op["summary"])}</a>' for _m, _p, op in ops
        )
        out.append(f'<li><a href="#tag-{html.escape(tag)}">{html.escape(tag)}</a>: {links}</li>')
    out.append('<li><a href="#schemas">Schemas</a></li>')
    out.append("</ul></nav>")
    out.append('<section class="card" id="authentication"><h2>Authentication</h2><dl>')
    for name, scheme in schemes.items():
        out.append(f"<dt><code>{html.escape(name)}</code></dt><dd>{html.escape(scheme.get('description', ''))}</dd>")
    out.append("</dl></section>")
    for tag, ops in by_tag.items():
        if not ops:
            continue
        out.append(f'<section id="tag-{html.escape(tag)}">')
        about = html.escape(tag_text.get(tag, ""))
        out.append(f'<h2 class="card">{html.escape(tag)}<br><small class="muted">{about}</small></h2>')
        out.extend(_operation_html(doc, method, path, op) for method, path, op in ops)
        out.append("</section>")
    out.append('<section id="schemas"><h2 class="card">Schemas</h2>')
    for name, schema in doc["components"]["schemas"].items():
        out.append(f'<article class="card" id="schema-{html.escape(name)}"><h3>{html.escape(name)}</h3>')
        if schema.get("description"):
            out.append(f'<p class="muted">{html.escape(schema["description"])}</p>')
        rows = _field_rows(doc, schema)
        if rows:
            out.append(_table("Fields", ("field", "type", "required", "constraints", "description"), rows))
        out.append("</article>")
    out.append("</section>")
    out.append("</main>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"


# routes


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[SETTINGS]))


async def docs_page(request: web.Request) -> web.Response:
    page = render_html(document(request.app[SETTINGS]))
    # /api/ answers get no CSP from the middleware (they are JSON); this one is a page.
    return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": CSP})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/docs", docs_page)
