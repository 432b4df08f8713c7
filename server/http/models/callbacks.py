"""The customer's callback request, and callbacks as staff see them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from .common import Body, LanguageCode, Query, ReasonCode, Reply, Time
from .invites import Invite
from .sessions import CallToken_, Contact, ContactDetails, Text200

# the customer's request


class Window(Body, kw_only=True):
    start: Time
    end: Time


class CallbackRequest(Body, kw_only=True):
    """Where and when to call the customer back.

    With a call's token: after a wait that ran out, or instead of a long wait. Without one: only while the
    queue is closed or its wait is past the threshold (rate limited per address).
    """

    token: CallToken_ | None = None
    contact: Annotated[Contact, Meta(description="At least one of the two.")]
    name: Annotated[Text200 | None, Meta(description="The customer's name.")] = None
    reason: ReasonCode | None = None
    language: LanguageCode | None = None
    window: Annotated[
        Window | None, Meta(description="A preferred time (one of the callback slots); none: soonest.")
    ] = None
    example: ClassVar[dict[str, Any]] = {
        "contact": {"phone": "+31 6 1234 5678"},
        "name": "Ada",
        "reason": "order",
        "window": {"start": "2026-12-07T08:00:00.000Z", "end": "2026-12-07T09:00:00.000Z"},
    }


# callbacks as staff see them

CallbackState = Literal["requested", "started", "completed", "failed", "cancelled"]


class CallbackWindow(Reply, kw_only=True):
    start: Time
    end: Time


class Callback(Reply, kw_only=True):
    """A customer's callback request."""

    id: Annotated[str, Meta(description="cb_ and 22 random characters.")]
    state: CallbackState
    reason: str | None
    language: str | None
    customer_name: str | None
    contact: Annotated[ContactDetails | None, Meta(description="null once erased or past retention.")]
    window: Annotated[CallbackWindow | None, Meta(description="The customer's preferred time.")]
    created_at: Time
    due_at: Time
    started_at: Time | None
    started_by: int | None
    ended_at: Time | None
    session_id: Annotated[str | None, Meta(description="The callback's call, once the customer opened the link.")]


class CallbackList(Reply, kw_only=True):
    """Callbacks, due first."""

    items: list[Callback]


class CallbacksQuery(Query, kw_only=True):
    state: Annotated[
        Literal["open", "requested", "started", "completed", "failed", "cancelled"],
        Meta(description="open: requested or started."),
    ] = "open"


class CallbackPath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such callback"
    callback_id: Annotated[str, Meta(max_length=40, pattern=r"^cb_[A-Za-z0-9_-]{16,32}$")]


class StartedCallback(Reply, kw_only=True):
    """The callback, now started, and the single-use invite link for the customer (its QR too)."""

    callback: Callback
    invite: Invite
