"""Invite links: made for an identified customer, read when opened, claimed once, revocable.

Only the code's SHA-256 is stored, so a stolen database opens no links.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from .. import tokens
from . import schema
from .base import Repository, dump_json, from_row, load_json
from .records import Invite


class InviteRepository(Repository):
    async def create_invite(
        self,
        *,
        customer_name: str | None,
        reason: str | None,
        created_by: int | None,
        ttl_s: float,
        customer_ref: str | None = None,
        identity: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        language: str | None = None,
        priority: int | None = None,
    ) -> tuple[str, float]:
        """A new invite: (code, expires_at)."""
        code = tokens.new_secret(16)
        t = schema.now()
        await self._write(
            insert(schema.invites).values(
                code_hash=tokens.digest(code),
                customer_name=customer_name,
                reason=reason,
                customer_ref=customer_ref,
                identity=dump_json(identity),
                context=dump_json(context),
                language=language,
                priority=priority,
                created_by=created_by,
                created_at=t,
                expires_at=t + ttl_s,
            )
        )
        return code, t + ttl_s

    async def get_invite(self, code: str) -> Invite | None:
        """The invite for this code, unless it expired (a claimed or revoked one is returned: the caller says so)."""
        row = await self._first(select(schema.invites).where(schema.invites.c.code_hash == tokens.digest(code)))
        if row is None or row["expires_at"] < schema.now():
            return None
        return from_row(Invite, row, identity=load_json(row["identity"]), context=load_json(row["context"]))

    async def link_invite(self, code: str, session_id: str) -> None:
        table = schema.invites
        await self._write(update(table).where(table.c.code_hash == tokens.digest(code)).values(session_id=session_id))

    async def claim_invite(self, code: str) -> bool:
        """Take the invite for one call; True for exactly one caller however many race (one conditional UPDATE)."""
        table, t = schema.invites, schema.now()
        result = await self._write(
            update(table)
            .where(
                table.c.code_hash == tokens.digest(code),
                table.c.claimed_at.is_(None),
                table.c.revoked_at.is_(None),
                table.c.expires_at >= t,
            )
            .values(claimed_at=t)
        )
        return result.rowcount == 1

    async def release_invite(self, code: str) -> None:
        """Give a claim back when its call could not start (every line busy ...): the link is not used up."""
        table = schema.invites
        await self._write(
            update(table)
            .where(table.c.code_hash == tokens.digest(code), table.c.session_id.is_(None))
            .values(claimed_at=None)
        )

    async def revoke_invite(self, invite_id: str) -> bool:
        """Revoke by public id; True if the invite exists (revoking twice is fine)."""
        table = schema.invites
        async with self.engine.begin() as conn:
            await conn.execute(
                update(table)
                .where(table.c.id == invite_id, table.c.revoked_at.is_(None))
                .values(revoked_at=schema.now())
            )
            found = (await conn.execute(select(table.c.id).where(table.c.id == invite_id))).first()
        return found is not None
