"""HTTP routes for webhook endpoints and their deliveries (see docs/api.md, "Webhooks")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ...storage.store import STORE
from ...storage.webhooks import Endpoint
from ...webhooks.dispatcher import WEBHOOKS, WebhookDispatcher
from ..api import Routes, caller, staff_or_key
from ..models.webhooks import (
    CreateWebhook,
    DeliveriesQuery,
    Delivery,
    DeliveryList,
    Webhook,
    WebhookCreated,
    WebhookList,
    WebhookPath,
    WebhookTestResult,
)
from ..security import ApiError
from .intake import clean

routes = Routes(tag="Webhooks")
MANAGE = staff_or_key("webhooks:manage", "admin")
TEST_WAIT_S = 15.0


def _dispatcher(request: web.Request) -> WebhookDispatcher:
    dispatcher = request.app.get(WEBHOOKS)
    if dispatcher is None:
        raise ApiError(503, "unavailable", "webhooks are not running on this server")
    return dispatcher


async def _endpoint(request: web.Request, webhook_id: int) -> Endpoint:
    endpoint = await _dispatcher(request).get_endpoint(webhook_id)
    if endpoint is None:
        raise ApiError(404, "not_found", "no such webhook")
    return endpoint


@routes.post(
    "/api/v1/webhooks",
    op="createWebhook",
    auth=MANAGE,
    status=201,
    answer="The endpoint and its secret (shown once).",
    errors=(503,),
)
async def create_webhook(request: web.Request, *, body: CreateWebhook) -> WebhookCreated:
    """Subscribe an endpoint to events

    Each delivery is a signed POST (Rapport-Signature), retried with backoff.
    """
    principal = caller(request)
    dispatcher = _dispatcher(request)
    try:
        url = dispatcher.check_url(body.url)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    endpoint, secret = await dispatcher.create_endpoint(url, tuple(body.events), clean(body.description))
    await request.app[STORE].audit(
        principal.user_id,
        "webhook.create",
        str(endpoint.id),
        {"url": endpoint.url, "events": list(endpoint.events), "by": principal.label},
    )
    return WebhookCreated.of({**endpoint.to_json(), "secret": secret})


@routes.get("/api/v1/webhooks", op="listWebhooks", auth=MANAGE, errors=(503,))
async def list_webhooks(request: web.Request) -> WebhookList:
    """List webhook endpoints"""
    endpoints = await _dispatcher(request).list_endpoints()
    return WebhookList(items=Webhook.all_of(e.to_json() for e in endpoints))


@routes.delete(
    "/api/v1/webhooks/{webhook_id}", op="deleteWebhook", auth=MANAGE, status=204, answer="Deleted.", errors=(503,)
)
async def delete_webhook(request: web.Request, *, path_params: WebhookPath) -> None:
    """Delete a webhook endpoint

    Its pending deliveries fail; its delivery history stays.
    """
    principal = caller(request)
    endpoint = await _endpoint(request, path_params.webhook_id)
    if not await _dispatcher(request).delete_endpoint(endpoint.id):
        raise ApiError(404, "not_found", "no such webhook")  # deleted by someone else meanwhile
    await request.app[STORE].audit(
        principal.user_id, "webhook.delete", str(endpoint.id), {"url": endpoint.url, "by": principal.label}
    )


@routes.get("/api/v1/webhooks/{webhook_id}/deliveries", op="listDeliveries", auth=MANAGE, errors=(503,))
async def list_deliveries(request: web.Request, *, path_params: WebhookPath, query: DeliveriesQuery) -> DeliveryList:
    """An endpoint's deliveries

    Newest first.
    """
    endpoint = await _endpoint(request, path_params.webhook_id)
    deliveries = await _dispatcher(request).list_deliveries(endpoint.id, query.limit)
    return DeliveryList(items=Delivery.all_of(deliveries))


@routes.post(
    "/api/v1/webhooks/{webhook_id}/test",
    op="testWebhook",
    auth=MANAGE,
    answer="The test delivery after its first attempt.",
    errors=(503,),
)
async def test_webhook(request: web.Request, *, path_params: WebhookPath) -> WebhookTestResult:
    """Send a test event to an endpoint

    A signed webhook.test event goes to this endpoint alone, through the same queue, signing and retries as
    every event; the answer waits for the first attempt (up to 15 s) and says how it went.
    """
    principal = caller(request)
    dispatcher = _dispatcher(request)
    delivery_id = await dispatcher.send_test(path_params.webhook_id, principal.label)
    if delivery_id is None:
        raise ApiError(404, "not_found", "no such webhook")
    await request.app[STORE].audit(
        principal.user_id, "webhook.test", str(path_params.webhook_id), {"delivery": delivery_id, "by": principal.label}
    )
    deadline = time.monotonic() + TEST_WAIT_S
    delivery: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        delivery = await dispatcher.get_delivery(delivery_id)
        if delivery is None or delivery["attempts"] > 0 or delivery["state"] != "pending":
            break
        await asyncio.sleep(0.1)
    if delivery is None:
        raise ApiError(404, "not_found", "no such webhook")
    return WebhookTestResult(
        delivery_id=delivery_id,
        state=delivery["state"],
        attempts=delivery["attempts"],
        last_status=delivery["last_status"],
        last_error=delivery["last_error"],
    )


def setup_routes(app: web.Application) -> None:
    routes.setup(app)
