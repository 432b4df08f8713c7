"""HTTP routes for webhook endpoints and their deliveries (see docs/api.md, "Webhooks")."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ...storage.store import STORE
from ...storage.webhooks import Endpoint
from ...webhooks.dispatcher import DESCRIPTION_MAX, WEBHOOKS, WebhookDispatcher, validate_events
from ..apikeys import Principal, require_principal
from ..security import ApiError, optional_str, read_json

SCOPE = "webhooks:manage"
ROLES = ("admin",)
LIMIT_DEFAULT = 100
LIMIT_MAX = 500
_ID = re.compile(r"[0-9]{1,18}")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _principal(request: web.Request) -> Principal:
    return await require_principal(request, scope=SCOPE, roles=ROLES)


def _dispatcher(request: web.Request) -> WebhookDispatcher:
    dispatcher = request.app.get(WEBHOOKS)
    if dispatcher is None:
        raise ApiError(503, "unavailable", "webhooks are not running on this server")
    return dispatcher


async def _endpoint(request: web.Request) -> Endpoint:
    raw = request.match_info["webhook_id"]
    endpoint = await _dispatcher(request).get_endpoint(int(raw)) if _ID.fullmatch(raw) else None
    if endpoint is None:
        raise ApiError(404, "not_found", "no such webhook")
    return endpoint


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None or raw == "":
        return LIMIT_DEFAULT
    if not _ID.fullmatch(raw) or not 1 <= int(raw) <= LIMIT_MAX:
        raise ApiError(400, "bad_request", f"limit: a whole number from 1 to {LIMIT_MAX}")
    return int(raw)


async def create_webhook(request: web.Request) -> web.Response:
    principal = await _principal(request)
    dispatcher = _dispatcher(request)
    body = await read_json(request)
    try:
        url = dispatcher.check_url(body.get("url"))
        events = validate_events(body.get("events"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    description = optional_str(body, "description", DESCRIPTION_MAX)
    endpoint, secret = await dispatcher.create_endpoint(url, events, description)
    await request.app[STORE].audit(
        principal.user_id,
        "webhook.create",
        str(endpoint.id),
        {"url": endpoint.url, "events": list(endpoint.events), "by": principal.label},
    )
    return _json({**endpoint.to_json(), "secret": secret}, 201)


async def list_webhooks(request: web.Request) -> web.Response:
    await _principal(request)
    endpoints = await _dispatcher(request).list_endpoints()
    return _json({"items": [e.to_json() for e in endpoints]})


async def delete_webhook(request: web.Request) -> web.Response:
    principal = await _principal(request)
    endpoint = await _endpoint(request)
    if not await _dispatcher(request).delete_endpoint(endpoint.id):
        raise ApiError(404, "not_found", "no such webhook")  # deleted by someone else meanwhile
    await request.app[STORE].audit(
        principal.user_id, "webhook.delete", str(endpoint.id), {"url": endpoint.url, "by": principal.label}
    )
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    await _principal(request)
    limit = _limit(request)
    endpoint = await _endpoint(request)
    return _json({"items": await _dispatcher(request).list_deliveries(endpoint.id, limit)})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/webhooks", create_webhook)
    app.router.add_get("/api/v1/webhooks", list_webhooks)
    app.router.add_delete("/api/v1/webhooks/{webhook_id}", delete_webhook)
    app.router.add_get("/api/v1/webhooks/{webhook_id}/deliveries", list_deliveries)
