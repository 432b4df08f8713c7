"""An invite link's single use and its revocation (creating and reading invites is still in :class:`Store`)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import tokens
from . import schema


async def claim_invite(engine: AsyncEngine, code: str) -> bool:
    """Take the invite for one call; True for exactly one caller however many race (one conditional UPDATE)."""
    table, t = schema.invites, schema.now()
    async with engine.begin() as conn:
        result = await conn.execute(
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


async def release_invite(engine: AsyncEngine, code: str) -> None:
    """Give a claim back when its call could not start (every line busy ...): the link is not used up."""
    table = schema.invites
    async with engine.begin() as conn:
        await conn.execute(
            update(table)
            .where(table.c.code_hash == tokens.digest(code), table.c.session_id.is_(None))
            .values(claimed_at=None)
        )


async def revoke_invite(engine: AsyncEngine, invite_id: str) -> bool:
    """Revoke by public id; True if the invite exists (revoking twice is fine)."""
    table = schema.invites
    async with engine.begin() as conn:
        await conn.execute(
            update(table).where(table.c.id == invite_id, table.c.revoked_at.is_(None)).values(revoked_at=schema.now())
        )
        found = (await conn.execute(select(table.c.id).where(table.c.id == invite_id))).first()
    return found is not None
