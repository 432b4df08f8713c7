"""Outgoing webhooks: signed POSTs of call events to other systems, retried with backoff.

Everything goes through the database first: :meth:`WebhookDispatcher.emit`
stores one ``webhook_deliveries`` row per subscribed endpoint
(:class:`server.storage.webhooks.WebhookStore`), each with a ``webhook`` job,
and every node's worker claims the jobs that are due (server/storage/jobs.py),
so each attempt is made by one node. A crash or restart loses nothing; at worst
a delivery that was in flight is sent again (receivers dedupe on the event id
or the ``Rapport-Delivery`` header).

Each POST carries ``Rapport-Signature: t=<unix seconds>,v1=<hex>``, where the
hex is HMAC-SHA256 of ``f"{t}.{body}"`` keyed with the endpoint's secret.
Receivers check it with :func:`server.webhooks.signing.verify`.

Webhooks never reach into the server's own network (SSRF): loopback, private,
link-local, multicast, unspecified, reserved and cloud metadata addresses are
refused when an endpoint names one literally, and again at connect time on the
address a name resolved to, so a name that later resolves elsewhere (DNS
rebinding) is refused too. Hosts in ``webhook_allowed_hosts`` are exempt.
A failed delivery records a class of error ("timeout", "http 500" ...), never
what the remote said.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from ..jobs import JobWorker, default_node_name
from ..storage import schema
from ..storage.jobs import Job, JobStore
from ..storage.records import iso
from ..storage.schema import Engine
from ..storage.webhooks import WEBHOOK_JOB, DueDelivery, Endpoint, WebhookStore
from .guard import BlockedAddress, BlockedUrl, GuardedResolver, guarded_socket, host_blocked_reason
from .signing import SIGNATURE_HEADER, new_event_id, new_secret, sign

log = logging.getLogger(__name__)

EVENTS = (
    "session.created",
    "session.answered",
    "session.ended",
    "recording.ready",
    "emotion.flag",
    "callback.requested",
    "callback.started",
)
# Sent to one endpoint when an admin presses "test delivery" (POST /api/v1/webhooks/{id}/test); never subscribed to.
TEST_EVENT = "webhook.test"
DEFAULT_BACKOFF_S: tuple[float, ...] = (10, 30, 120, 600, 3600, 21600)
USER_AGENT = "Rapport-Webhooks/1"
URL_MAX = 500
DESCRIPTION_MAX = 200
ERROR_MAX = 300
BLOCKED = "blocked address"


def error_class(exc: BaseException) -> str:
    """What ``last_error`` says about a failed attempt: a class of error, never the remote's own words."""
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes, bounded
        if seen is None:
            break
        if isinstance(seen, BlockedAddress) or isinstance(getattr(seen, "os_error", None), BlockedAddress):
            return BLOCKED
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "tls error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | ConnectionResetError):
        return "connection closed"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid response"
    return "request failed"


# validation


def validate_url(url: object, allowed_hosts: Collection[str] = ()) -> str:
    """The URL if it may receive webhooks; ``ValueError`` with a readable reason otherwise.

    A host that is a literal internal address (or localhost) is refused unless it is in ``allowed_hosts``;
    names are checked again on the addresses they resolve to, when each delivery connects.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("url: required, a string")
    url = url.strip()
    if len(url) > URL_MAX:
        raise ValueError(f"url: at most {URL_MAX} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("url: no spaces or control characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _port = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise ValueError("url: not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("url: must start with http:// or https://")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ValueError("url: must not contain credentials (user:password@)")
    if not hostname:
        raise ValueError("url: has no host")
    if hostname.lower() not in {h.lower() for h in allowed_hosts}:
        reason = host_blocked_reason(hostname)
        if reason is not None:
            raise BlockedUrl(
                f"url: {hostname} is a {reason} address; webhooks go to public addresses only "
                "(an operator may allow an internal host with the webhook_allowed_hosts setting)"
            )
    return url


def validate_events(value: object) -> tuple[str, ...]:
    """The subscribed events, deduplicated in order; ``ValueError`` with a readable reason otherwise."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"events: a non-empty list of {', '.join(EVENTS)}")
    events: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in EVENTS:
            shown = item if isinstance(item, str) and len(item) <= 40 else "?"
            raise ValueError(f"events: unknown event {shown!r}; use {', '.join(EVENTS)}")
        if item not in events:
            events.append(item)
    return tuple(events)


# one attempt


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None
    permanent: bool = False


# the dispatcher


class WebhookDispatcher:
    """Stores webhook endpoints and deliveries, and sends due deliveries in the background.

    ``backoff_s[i]`` is the wait after the (i+1)-th failed attempt; after
    ``len(backoff_s) + 1`` failed attempts a delivery is ``failed``.
    ``allowed_hosts``: host names (as in the URL) that may be internal addresses; every other host is
    refused when it is, or resolves to, an internal address. ``resolver``: how names are looked up
    (aiohttp's default resolver when None); the address policy applies to whatever it answers.
    ``node``: this node's name as the claimer of delivery jobs (see :class:`server.recording.composer.Composer`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        timeout_s: float = 10.0,
        backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S,
        allowed_hosts: Collection[str] = (),
        resolver: AbstractResolver | None = None,
        concurrency: int = 4,
        poll_s: float = 5.0,
        node: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency: at least 1")
        self.store = WebhookStore(engine)
        self.jobs = JobStore(engine)
        self.node = node
        self.timeout_s = timeout_s
        self.backoff_s = tuple(backoff_s)
        self.allowed_hosts = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self.resolver = resolver
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.worker = JobWorker(
            self.jobs,
            WEBHOOK_JOB,
            self._run_job,
            node=node or default_node_name(),
            concurrency=concurrency,
            poll_s=poll_s,
            name="webhooks",
        )
        self._started = False
        self._http: aiohttp.ClientSession | None = None
        # For allowed_hosts only: the same client without the address policy.
        self._http_allowed: aiohttp.ClientSession | None = None
        self._own_resolver: AbstractResolver | None = None
        # Delivery id -> endpoint id of the deliveries being sent here, to abandon them when their endpoint goes.
        self._sending: dict[int, int] = {}

    # lifecycle

    async def start(self) -> None:
        """Start sending; deliveries left pending by an earlier run are picked up."""
        if self._started:
            return
        self._started = True
        if self.node is not None:
            await self.jobs.release_claims_of(self.node, WEBHOOK_JOB)
        resolver = self.resolver
        if resolver is None:
            resolver = self._own_resolver = aiohttp.DefaultResolver()
        self._http = self._client(
            aiohttp.TCPConnector(
                limit=self.concurrency, resolver=GuardedResolver(resolver), socket_factory=guarded_socket
            )
        )
        self._http_allowed = self._client(aiohttp.TCPConnector(limit=self.concurrency, resolver=resolver))
        self.worker.start()

    def _client(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        # trust_env stays off: an HTTP(S)_PROXY in the environment would bypass the address policy.
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        """Stop sending. Deliveries in flight stay ``pending``: sent after the next start, or by another node."""
        await self.worker.aclose()
        self._started = False
        for http in (self._http, self._http_allowed):
            if http is not None:
                await http.close()
        self._http = self._http_allowed = None
        if self._own_resolver is not None:
            resolver, self._own_resolver = self._own_resolver, None
            await resolver.close()

    # endpoints

    def check_url(self, url: object) -> str:
        return validate_url(url, self.allowed_hosts)

    async def create_endpoint(
        self, url: str, events: tuple[str, ...], description: str | None = None
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (shown to the caller once)."""
        url = self.check_url(url)
        events = validate_events(list(events))
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise ValueError(f"description: at most {DESCRIPTION_MAX} characters")
        secret = new_secret()
        return await self.store.create_endpoint(url, secret, events, description), secret

    async def list_endpoints(self) -> list[Endpoint]:
        """The live endpoints (deleted ones are kept for their delivery history, but not listed)."""
        return await self.store.list_endpoints()

    async def get_endpoint(self, endpoint_id: int) -> Endpoint | None:
        return await self.store.get_endpoint(endpoint_id)

    async def delete_endpoint(self, endpoint_id: int) -> bool:
        """Stop sending to this endpoint: its pending deliveries fail, its secret is forgotten."""
        if not await self.store.deactivate_endpoint(endpoint_id):
            return False
        # A POST in flight to it here is abandoned (its row already says "endpoint deleted"); one in flight on
        # another node finishes, and its outcome is not recorded over that.
        self.worker.cancel_where(lambda job: self._sending.get(int(job.key)) != endpoint_id)
        return True

    async def list_deliveries(self, endpoint_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The endpoint's deliveries, newest first."""
        return [d.to_json() for d in await self.store.list_deliveries(endpoint_id, limit)]

    # events

    async def emit(self, event: str, data: dict[str, Any]) -> int:
        """Queue ``event`` for every live endpoint subscribed to it; returns how many deliveries were stored.

        Never raises for database or serialisation trouble (it is logged and 0 is
        returned); an event name outside :data:`EVENTS` is a programming error
        (``ValueError``).
        """
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        t = schema.now()
        event_id = new_event_id()
        try:
            body = json.dumps(
                {"id": event_id, "type": event, "created_at": iso(t), "data": data},
                separators=(",", ":"),
                default=str,
            )
        except (TypeError, ValueError, RecursionError):
            log.exception("webhook event %s: data is not JSON, not sent", event)
            return 0
        try:
            queued = await self.store.queue_event(event, event_id, body, t)
        except Exception:
            log.exception("could not queue webhook event %s", event)
            return 0
        if queued:
            self.worker.wake()
        return queued

    async def send_test(self, endpoint_id: int, by: str) -> int | None:
        """Queue a signed ``webhook.test`` event to this endpoint alone (whatever it subscribed to), through the
        same queue, jobs and signing as every event; the delivery's id (None: no such live endpoint)."""
        t = schema.now()
        event_id = new_event_id()
        body = json.dumps(
            {"id": event_id, "type": TEST_EVENT, "created_at": iso(t), "data": {"test": True, "by": by}},
            separators=(",", ":"),
        )
        delivery_id = await self.store.queue_test(endpoint_id, TEST_EVENT, event_id, body, t)
        if delivery_id is not None:
            self.worker.wake()
        return delivery_id

    async def get_delivery(self, delivery_id: int) -> dict[str, Any] | None:
        delivery = await self.store.get_delivery(delivery_id)
        return delivery.to_json() if delivery is not None else None

    # the worker

    async def _run_job(self, job: Job) -> float | None:
        """One attempt of the job's delivery, if it is still pending and due; when to try again, if ever.

        Should recording the outcome fail, the job fails and is retried after the worker's backoff: the row
        is still pending with its attempt count, and the attempt is made again (at least once, as before).
        """
        found = await self.store.pending_delivery(int(job.key))
        if found is None:
            return None  # delivered, failed for good, or its endpoint was deleted
        due, due_at = found
        if due_at > schema.now():
            return due_at  # an earlier claim recorded a failed attempt, then lost its job before rescheduling it
        self._sending[due.id] = due.endpoint_id
        try:
            return await self._record(due, await self._post(due))
        finally:
            self._sending.pop(due.id, None)

    async def _post(self, due: DueDelivery) -> _Outcome:
        """One attempt."""
        try:
            validate_url(due.url, self.allowed_hosts)
            hostname = (urlsplit(due.url).hostname or "").rstrip(".")
        except ValueError as exc:
            # The endpoint was stored before this check (or the settings changed): retrying cannot help.
            log.warning("webhook delivery %d: %s", due.id, exc)
            return _Outcome(None, BLOCKED if isinstance(exc, BlockedUrl) else "invalid url", permanent=True)
        http = self._http_allowed if hostname in self.allowed_hosts else self._http
        if http is None:
            return _Outcome(None, "dispatcher closed")
        body = due.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Rapport-Event": due.event,
            "Rapport-Delivery": str(due.id),
            SIGNATURE_HEADER: sign(due.secret, int(time.time()), body),
        }
        try:
            async with http.post(due.url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
            error = error_class(exc)
            # The detail goes to the server's log for the operator, never into the API's last_error.
            log.info("webhook delivery %d: %s (%s)", due.id, error, type(exc).__name__)
            return _Outcome(None, error, permanent=error == BLOCKED)
        if 200 <= status < 300:
            return _Outcome(status, None)
        if 300 <= status < 400:
            return _Outcome(status, f"http {status} (redirects are not followed)")
        return _Outcome(status, f"http {status}")

    async def _record(self, due: DueDelivery, outcome: _Outcome) -> float | None:
        """Write the attempt's outcome; when the next attempt is due (None: delivered, or given up)."""
        t = schema.now()
        attempts = due.attempts + 1
        status, error = outcome.status, outcome.error
        if error is None:
            await self.store.mark_delivered(due.id, attempts=attempts, status=status, at=t)
            log.info("webhook delivery %d (%s) delivered after %d attempt(s)", due.id, due.event, attempts)
            return None
        last = outcome.permanent or attempts > len(self.backoff_s)
        log.warning(
            "webhook delivery %d (%s) to endpoint %d, attempt %d: %s%s",
            due.id,
            due.event,
            due.endpoint_id,
            attempts,
            error,
            " (giving up)" if last else "",
        )
        retry_at = None if last else t + float(self.backoff_s[attempts - 1])
        await self.store.mark_attempt_failed(
            due.id, attempts=attempts, status=status, error=error[:ERROR_MAX], retry_at=retry_at
        )
        return retry_at


WEBHOOKS = web.AppKey("webhooks", WebhookDispatcher)
