"""Staff login cookies, CSRF, Origin checks, security headers, and JSON errors."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import tokens
from .config import Settings
from .store import User

log = logging.getLogger(__name__)

COOKIE = "rapport_session"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_TTL_S = 12 * 3600
MAX_BODY_BYTES = 64 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Login = tuple[User, str, str]
_LOGIN_CACHE = web.RequestKey("rapport_login", object)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
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


async def current_login(request: web.Request) -> Login | None:
    if _LOGIN_CACHE in request:
        cached = request[_LOGIN_CACHE]
        return cached  # type: ignore[return-value]
    from .keys import STORE  # late: keys imports modules that import this one

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
    response.set_cookie(
        COOKIE,
        value,
        max_age=LOGIN_TTL_S,
        httponly=True,
        secure=settings.https,
        samesite="Strict",
        path="/",
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return body


def optional_str(body: dict[str, Any], name: str, max_len: int) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{name}: must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise ApiError(400, "bad_request", f"{name}: at most {max_len} characters")
    return value or None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def security_middleware(settings: Settings) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        is_api = request.path.startswith("/api/")
        try:
            if request.method in UNSAFE_METHODS:
                if not origin_allowed(request, settings):
                    raise ApiError(403, "bad_origin", "request from a foreign origin")
                login = await current_login(request)
                if login is not None and is_api and request.path != "/api/v1/auth/login":
                    sent = request.headers.get(CSRF_HEADER, "")
                    if not tokens.same(sent, login[1]):
                        raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
            response = await handler(request)
        except ApiError:
            raise
        except web.HTTPException as exc:
            if not is_api or exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
            raise ApiError(exc.status, code, exc.reason) from None
        except Exception:
            if not is_api:
                raise
            ref = uuid.uuid4().hex[:12]
            log.exception("internal error %s on %s %s", ref, request.method, request.path)
            raise ApiError(500, "internal", f"internal error, reference {ref}") from None
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self)")
            if not is_api:
                # Pages are FileResponses whose content type is only known later: set it for all of them.
                response.headers.setdefault("Content-Security-Policy", CSP)
            if not request.path.startswith("/static/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware
