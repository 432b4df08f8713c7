"""API keys for other systems, as stored: only the SHA-256 of a key and a short prefix for lists.

Which key may do what (scopes, who is asking) is decided in :mod:`server.http.apikeys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from .. import tokens
from . import schema
from .base import Repository, from_row
from .records import api_fields


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None
    last_used_at: float | None

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id name prefix scopes created_at revoked_at last_used_at")


KEY_PREFIX = "rk_"
LAST_USED_WRITE_S = 60.0


def _key(row: RowMapping) -> ApiKey:
    return from_row(ApiKey, row, scopes=tuple(json.loads(row["scopes"])))


class ApiKeyStore(Repository):
    async def create(self, name: str, scopes: tuple[str, ...]) -> tuple[ApiKey, str]:
        """A new key and its secret (``rk_...``), which is shown once and never stored."""
        secret = KEY_PREFIX + tokens.new_secret()
        t = schema.now()
        pk = await self._insert(
            schema.api_keys,
            name=name,
            prefix=secret[:10],
            key_hash=tokens.digest(secret),
            scopes=json.dumps(list(scopes)),
            created_at=t,
        )
        return ApiKey(pk, name, secret[:10], scopes, t, None, None), secret

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The live key for this secret, or None (unknown or revoked)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
            return None
        keys = schema.api_keys
        row = await self._first(select(keys).where(keys.c.key_hash == tokens.digest(secret)))
        if row is None or row["revoked_at"] is not None:
            return None
        key = _key(row)
        t = schema.now()
        # last_used_at is for lists, so one write a minute per key is plenty.
        if key.last_used_at is None or t - key.last_used_at > LAST_USED_WRITE_S:
            await self._write(update(keys).where(keys.c.id == key.id).values(last_used_at=t))
        return key

    async def revoke(self, key_id: int) -> bool:
        keys = schema.api_keys
        result = await self._write(
            update(keys).where(keys.c.id == key_id, keys.c.revoked_at.is_(None)).values(revoked_at=schema.now())
        )
        return result.rowcount == 1

    async def list(self) -> list[ApiKey]:
        return [_key(r) for r in await self._all(select(schema.api_keys).order_by(schema.api_keys.c.id))]


API_KEYS = web.AppKey("api_keys", ApiKeyStore)
