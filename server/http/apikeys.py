"""API keys for other systems (a CRM, a device fleet): hashed, scoped, revocable.

A key looks like ``rk_<43 url-safe characters>`` and is shown once when it is
created; the database keeps its SHA-256 and a short prefix for recognising it
in lists. Requests send it as ``Authorization: Bearer rk_...``. Staff logins
may call the same routes, so one place (:func:`require_principal`) decides who
is asking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import tokens
from ..storage import schema
from ..storage.store import User, iso
from .security import ApiError, require_staff

SCOPES = ("invites:write", "sessions:read", "webhooks:manage")
KEY_PREFIX = "rk_"
LAST_USED_WRITE_S = 60.0


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None
    last_used_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


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


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(json.loads(row["scopes"])),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


class ApiKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str, scopes: tuple[str, ...]) -> tuple[ApiKey, str]:
        secret = KEY_PREFIX + tokens.new_secret()
        t = schema.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.api_keys).values(
                    name=name,
                    prefix=secret[:10],
                    key_hash=tokens.digest(secret),
                    scopes=json.dumps(list(scopes)),
                    created_at=t,
                )
            )
            pk = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
        return ApiKey(pk, name, secret[:10], scopes, t, None, None), secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key for this secret, or None (unknown or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(schema.api_keys).where(schema.api_keys.c.key_hash == tokens.digest(secret))))
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            return None
        key = _key(row)
        t = schema.now()
        if key.last_used_at is None or t - key.last_used_at > LAST_USED_WRITE_S:
            async with self.engine.begin() as conn:
                await conn.execute(update(schema.api_keys).where(schema.api_keys.c.id == key.id).values(last_used_at=t))
        return key

    async def revoke(self, key_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.api_keys)
                .where(schema.api_keys.c.id == key_id, schema.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=schema.now())
            )
        return result.rowcount == 1

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(schema.api_keys).order_by(schema.api_keys.c.id))).mappings().all()
        return [_key(r) for r in rows]


async def require_principal(request: web.Request, *, scope: str, roles: tuple[str, ...]) -> Principal:
    """An API key with ``scope`` (Authorization: Bearer), or a staff login with one of ``roles``."""
    from ..keys import API_KEYS  # late: keys imports modules that import this one

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
