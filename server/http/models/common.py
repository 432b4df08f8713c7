"""What every area of the API shares: the error answer, base classes for answers and bodies, and annotated types.

Answers subclass :class:`Reply`: every field is always sent (give no defaults, except ``UNSET`` for a field
left out when absent) and an undocumented key is an error, both in the OpenAPI document
(``additionalProperties: false``) and when a dict from the store is checked with :meth:`Reply.of`. Request
bodies subclass :class:`Body` (unknown fields are refused) and query strings :class:`Query` (unknown
parameters are ignored). msgspec does not inherit ``kw_only``: write ``class Thing(Reply, kw_only=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

import msgspec
from msgspec import Meta

# Settings-dependent enums: plain strings here; the generator puts the server's codes in for the marker.
ENUM_MARKER = "x-rapport-enum"
ReasonCode = Annotated[
    str, Meta(description="A reason code (see GET /api/v1/config).", extra_json_schema={ENUM_MARKER: "reasons"})
]
LanguageCode = Annotated[str, Meta(description="A language code.", extra_json_schema={ENUM_MARKER: "languages"})]
DispositionCode = Annotated[
    str, Meta(description="A wrap-up outcome code.", extra_json_schema={ENUM_MARKER: "dispositions"})
]

Time = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Date = Annotated[str, Meta(extra_json_schema={"format": "date"})]
SESSION_ID_EXAMPLE = "s_Zm9yLWV4YW1wbGUtb25seQ"
SessionId = Annotated[str, Meta(max_length=64, description="The session's id.", examples=[SESSION_ID_EXAMPLE])]
# A database id (in a path or a body): past 2**63 - 1 SQLite overflows (a 500 before).
RowId = Annotated[int, Meta(ge=1, le=2**63 - 1)]
FromDay = Annotated[date, Meta(description="Sessions created on or after this day (UTC).", examples=["2026-12-01"])]
ToDay = Annotated[
    date, Meta(description="Sessions created on or before this day (UTC, inclusive).", examples=["2026-12-31"])
]
Share = Annotated[float, Meta(ge=0, le=1)]
Count = Annotated[int, Meta(ge=0)]
# A JSON object of any shape (a context, an event's detail).
AnyObject = Annotated[dict[str, Any], Meta(extra_json_schema={"additionalProperties": True})]

ErrorCode = Literal[
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
    "too_many_waiting",
    "all_lines_busy",
    "queue_full",
    "unavailable",
    "unsupported_type",
    "unreadable_image",
    "image_too_large",
    "empty_file",
    "files_full",
    "call_not_live",
    "no_snapshot_requested",
    "http_error",
    "internal",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class Reply(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # No docstring: msgspec would not inherit it anyway, and each answer says what it is.

    @classmethod
    def of(cls, data: Any) -> Self:
        """``data`` (a dict from the store) as this answer; a key the model does not know is a ValidationError."""
        return msgspec.convert(data, cls)

    @classmethod
    def all_of(cls, items: Iterable[Any]) -> list[Self]:
        return msgspec.convert(list(items), list[cls])  # type: ignore[valid-type]


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class Query(msgspec.Struct, kw_only=True):
    pass


class ErrorBody(Reply, kw_only=True):
    code: Annotated[ErrorCode, Meta(description="A stable, machine-readable code.")]
    message: Annotated[str, Meta(description="A readable explanation; may change.")]


class Error(Reply, kw_only=True):
    """Every error answer of the API."""

    error: ErrorBody


class Ok(Reply, kw_only=True):
    """Done."""

    ok: Literal[True]


class SessionPath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such session"
    session_id: Annotated[
        str,
        Meta(
            max_length=64,
            description="The session's id; an unknown one (or one over 64 characters) is 404.",
            examples=[SESSION_ID_EXAMPLE],
        ),
    ]


class UserRef(Reply, kw_only=True):
    """A staff member, by id and name."""

    id: int
    display_name: str


OK = Ok(ok=True)
