"""Webhook endpoints and their deliveries: the request to subscribe one, and what is listed."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from ...webhooks.dispatcher import DESCRIPTION_MAX, EVENTS, TEST_EVENT, URL_MAX, validate_events
from .common import Body, Query, Reply, RowId, Time

LIMIT_DEFAULT = 100
LIMIT_MAX = 500

Event = Annotated[str, Meta(extra_json_schema={"enum": list(EVENTS)})]
# A delivery's event: one of the events, or the test an admin sent (POST /api/v1/webhooks/{webhook_id}/test).
DeliveredEvent = Annotated[str, Meta(extra_json_schema={"enum": [*EVENTS, TEST_EVENT]})]
Url = Annotated[str, Meta(extra_json_schema={"format": "uri"})]


class CreateWebhook(Body, kw_only=True):
    """An endpoint to send events to."""

    # The dispatcher's own checks name the rule that failed (tests and clients read them): the URL's in the
    # handler (its allowed hosts are the server's), the events' here, so their limits are only documented.
    url: Annotated[
        str,
        Meta(
            description="http:// or https://, without credentials.",
            extra_json_schema={"format": "uri", "maxLength": URL_MAX},
        ),
    ]
    events: Annotated[
        list[Any], Meta(extra_json_schema={"items": {"type": "string", "enum": list(EVENTS)}, "minItems": 1})
    ]
    description: Annotated[str, Meta(max_length=DESCRIPTION_MAX)] | None = None

    example: ClassVar[dict[str, Any]] = {
        "url": "https://crm.example.com/hooks/rapport",
        "events": ["session.ended"],
        "description": "CRM",
    }

    def __post_init__(self) -> None:
        self.events = list(validate_events(self.events))


class WebhookPath(msgspec.Struct, kw_only=True):
    webhook_id: Annotated[RowId, Meta(description="An unknown or deleted endpoint is 404.", examples=[1])]


class Webhook(Reply, kw_only=True):
    """A webhook endpoint (its secret is never listed)."""

    id: int
    url: Url
    events: list[Event]
    description: str | None
    created_at: Time


class WebhookCreated(Webhook, kw_only=True):
    """A new webhook endpoint, with its secret."""

    secret: Annotated[str, Meta(description="The signing secret (whsec_…): shown once, here.")]


class WebhookList(Reply, kw_only=True):
    """The live endpoints."""

    items: list[Webhook]


class DeliveriesQuery(Query, kw_only=True):
    """How many deliveries, newest first."""

    limit: Annotated[int, Meta(ge=1, le=LIMIT_MAX, examples=[20])] = LIMIT_DEFAULT


class Delivery(Reply, kw_only=True):
    """One event sent (or to be sent) to one endpoint."""

    id: int
    event: DeliveredEvent
    event_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: Annotated[int, Meta(ge=0)]
    last_status: int | None
    last_error: str | None
    created_at: Time
    delivered_at: Time | None
    next_attempt_at: Time | None


class DeliveryList(Reply, kw_only=True):
    """An endpoint's deliveries, newest first."""

    items: list[Delivery]


class WebhookTestResult(Reply, kw_only=True):
    """The test delivery after its first attempt (still pending when that took longer than the wait)."""

    delivery_id: int
    state: Literal["pending", "delivered", "failed"]
    attempts: Annotated[int, Meta(ge=0)]
    last_status: int | None
    last_error: str | None
