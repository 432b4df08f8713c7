"""Staff login cookies, CSRF, Origin checks, security headers, JSON errors, and who the client is behind a proxy."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web, web_log
from aiohttp.http_exceptions import HttpProcessingError

from .. import tokens
from ..config import SETTINGS, Settings
from ..storage.health import database_unreachable
from ..storage.records import User
from ..storage.store import STORE

log = logging.getLogger(__name__)

COOKIE = "rapport_session"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_TTL_S = 12 * 3600
MAX_BODY_BYTES = 64 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HSTS = "max-age=31536000; includeSubDomains"
# X-Forwarded-For entries looked at, from the right: a longer chain is a client padding the header.
MAX_FORWARDED_HOPS = 16

Login = tuple[User, str, str]
_LOGIN_CACHE = web.RequestKey("rapport_login", object)

# connect-src 'self' covers the page's own ws:/wss: origin (CSP Level 3; tests/browser/test_browser.py runs under it).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


class ApiError(web.HTTPException):
    """An HTTP error with the API's JSON body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": {"code": code, "message": message}}),
            content_type="application/json",
            headers=headers,
        )


# who the client is: the peer, or behind a trusted proxy, the address the proxy names

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_CLIENT = web.RequestKey("rapport_client", str)


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``trusted_proxies`` as networks; ``ValueError`` naming the entry that is not an address or CIDR."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or a CIDR network") from None
    return tuple(networks)


def parse_ip(text: str | None) -> IPAddress | None:
    """An address from a peer or an X-Forwarded-For entry (``[v6]``, ``v4:port`` and IPv4-mapped v6 unwrapped)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # v4:port, as some proxies write it
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPAddress | None, networks: tuple[IPNetwork, ...]) -> bool:
    return ip is not None and any(ip in network for network in networks)


def _settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def _from_trusted_proxy(request: web.Request) -> bool:
    networks = trusted_networks(_settings(request).trusted_proxies)
    return bool(networks) and _trusted(parse_ip(request.remote), networks)


def client_address(request: web.Request) -> str:
    """The address limits are keyed on: the peer, or, when the peer is one of ``trusted_proxies``, the right-most
    X-Forwarded-For entry that is not a trusted proxy (everything left of it may be the client's own invention)."""
    if _CLIENT in request:
        return request[_CLIENT]
    address = request.remote or "?"
    if _from_trusted_proxy(request):
        networks = trusted_networks(_settings(request).trusted_proxies)
        hops = [hop for value in request.headers.getall("X-Forwarded-For", ()) for hop in value.split(",")]
        for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
            ip = parse_ip(hop)
            if ip is None:
                break  # junk: believe nothing to the left of it
            address = str(ip)
            if not _trusted(ip, networks):
                break
    request[_CLIENT] = address
    return address


def original_scheme(request: web.Request) -> str:
    """``https`` or ``http`` as the browser used it: X-Forwarded-Proto from a trusted proxy, else our own."""
    if _from_trusted_proxy(request):
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
    return request.scheme


def is_loopback(address: str | None) -> bool:
    ip = parse_ip(address)
    return ip is not None and ip.is_loopback


# access log: invite tokens replaced by a hash prefix

# Where an invite token appears in a request line (or a Referer): /join/T, /api/v1/invites/T/redeem|qr.png, ?invite=T.
_TOKEN_IN_URL = (
    re.compile(r"(/join/)([^/?&#\s\"]+)()"),
    re.compile(r"(/api/v1/invites/)([^/?&#\s\"]+)(/(?:redeem|qr\.png))"),
    re.compile(r"([?&]invite=)([^&#\s\"]+)()"),
)


def token_fingerprint(token: str) -> str:
    """What logs show instead of an invite token: the first 12 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def redact_tokens(text: str) -> str:
    for pattern in _TOKEN_IN_URL:
        text = pattern.sub(lambda m: m[1] + token_fingerprint(unquote(m[2])) + m[3], text)
    return text


class AccessLogger(web_log.AccessLogger):
    """aiohttp's access log, but an invite link's token shows as its hash prefix (:func:`token_fingerprint`).

    Pass it as ``access_log_class`` wherever the app is served (``rapport serve`` and the tests do).
    """

    def _format_line(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [
            (key, redact_tokens(value) if isinstance(value, str) else value)
            for key, value in super()._format_line(request, response, time)
        ]


async def current_login(request: web.Request) -> Login | None:
    if _LOGIN_CACHE in request:
        cached = request[_LOGIN_CACHE]
        return cached  # type: ignore[return-value]
    cookie = request.cookies.get(COOKIE)
    login = await request.app[STORE].get_login(cookie) if cookie and len(cookie) < 128 else None
    request[_LOGIN_CACHE] = login
    return login


async def require_staff(request: web.Request, roles: tuple[str, ...] | None = None) -> Login:
    login = await current_login(request)
    if login is None:
        raise ApiError(401, "not_authenticated", "log in first")
    if roles is not None and login[0].role not in roles:
        raise ApiError(403, "forbidden", "your role may not do this")
    return login


def _same_host(origin: str, request: web.Request) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == (request.host or "").lower()


def origin_allowed(request: web.Request, settings: Settings) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: nothing to protect against
    if origin in settings.allowed_origins or _same_host(origin, request):
        return True
    if settings.public_url and origin.rstrip("/") == settings.public_url.rstrip("/"):
        return True
    return False


def set_login_cookie(response: web.StreamResponse, value: str, settings: Settings) -> None:
    # Secure is also added by the middleware whenever the browser came over HTTPS (via a trusted proxy too).
    response.set_cookie(
        COOKIE,
        value,
        max_age=LOGIN_TTL_S,
        httponly=True,
        secure=settings.https,
        samesite="Strict",
        path="/",
    )


async def read_body(request: web.Request) -> bytes:
    """The raw body, at most MAX_BODY_BYTES (413 past it), within ``body_timeout_s``; 400 when it breaks off."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    raw = bytearray()
    timeout = _settings(request).body_timeout_s
    try:
        async with asyncio.timeout(timeout):
            # content.read(n) returns what has arrived so far: a body in several packets needs several reads.
            while len(raw) <= MAX_BODY_BYTES:
                chunk = await request.content.read(MAX_BODY_BYTES + 1 - len(raw))
                if not chunk:
                    break
                raw += chunk
    except TimeoutError:
        # aiohttp itself waits for ever, also after a broken chunk that it only reports once the handler is done.
        raise ApiError(400, "bad_request", f"the request body did not arrive within {timeout:g} s") from None
    except (ConnectionResetError, HttpProcessingError, web.RequestPayloadError):
        # The client went away mid-body, or its body broke its own framing or encoding (a bad chunk, a short
        # Content-Length, "Content-Encoding: gzip" on bytes that are not).
        raise ApiError(400, "bad_request", "the request body could not be read to its end") from None
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    return bytes(raw)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _harden(request: web.Request, response: web.StreamResponse, is_api: bool) -> None:
    """Security headers for every answer, errors included; Secure cookies and HSTS when the browser used HTTPS."""
    if response.prepared:
        return
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self)")
    if not is_api:
        # Pages are FileResponses whose content type is only known later: set it for all of them.
        response.headers.setdefault("Content-Security-Policy", CSP)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if original_scheme(request) == "https":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
        for morsel in response.cookies.values():
            morsel["secure"] = True


def security_middleware(settings: Settings) -> Any:
    trusted_networks(settings.trusted_proxies)  # a bad entry stops the server at start, with its name

    async def checked(request: web.Request, handler: Handler, is_api: bool) -> web.StreamResponse:
        try:
            if request.method in UNSAFE_METHODS:
                if not origin_allowed(request, settings):
                    raise ApiError(403, "bad_origin", "request from a foreign origin")
                login = await current_login(request)
                if login is not None and is_api and request.path != "/api/v1/auth/login":
                    sent = request.headers.get(CSRF_HEADER, "")
                    if not tokens.same(sent, login[1]):
                        raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
            return await handler(request)
        except ApiError:
            raise
        except web.HTTPException as exc:
            if not is_api or exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
            raise ApiError(exc.status, code, exc.reason) from None
        except Exception as exc:
            if not is_api:
                raise
            if database_unreachable(exc):
                # An outage, not a bug: one line, and an answer the client can act on (haproxy sees /healthz).
                log.warning("database unreachable on %s %s: %s", request.method, request.path, exc.__class__.__name__)
                raise ApiError(
                    503, "unavailable", "the database is unavailable; try again shortly", {"Retry-After": "5"}
                ) from None
            ref = uuid.uuid4().hex[:12]
            log.exception("internal error %s on %s %s", ref, request.method, request.path)
            raise ApiError(500, "internal", f"internal error, reference {ref}") from None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        is_api = request.path.startswith("/api/")
        try:
            response = await checked(request, handler, is_api)
        except web.HTTPException as exc:
            _harden(request, exc, is_api)
            raise
        _harden(request, response, is_api)
        return response

    return middleware
