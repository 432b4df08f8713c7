"""API keys for other systems (a CRM, a device fleet): hashed, scoped, revocable.

A key looks like ``rk_<43 url-safe characters>`` and is shown once when it is
created; the database keeps its SHA-256 and a short prefix for recognising it
in lists. Requests send it as ``Authorization: Bearer rk_...``. Staff logins
may call the same routes, so one place (:func:`require_principal`) decides who
is asking. The keys themselves are stored by :mod:`server.storage.api_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..storage.api_keys import API_KEYS, ApiKey
from ..storage.records import User
from .security import ApiError, require_staff

SCOPES = ("invites:write", "sessions:read", "webhooks:manage")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff login or an API key."""

    user: User | None = None
    key: ApiKey | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.username
        return f"key:{self.key.name}" if self.key else "?"


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes: one or more of {', '.join(SCOPES)}")
    return scopes


async def require_principal(request: web.Request, *, scope: str, roles: tuple[str, ...]) -> Principal:
    """An API key with ``scope`` (Authorization: Bearer), or a staff login with one of ``roles``."""
    header = request.headers.get("Authorization")
    if header is None:
        user, _csrf, _login = await require_staff(request, roles)
        return Principal(user=user)
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "not_authenticated", "use Authorization: Bearer <API key>")
    key = await request.app[API_KEYS].authenticate(secret.strip())
    if key is None:
        raise ApiError(401, "not_authenticated", "unknown or revoked API key")
    if scope not in key.scopes:
        raise ApiError(403, "forbidden", f"this API key lacks the {scope} scope")
    return Principal(key=key)
