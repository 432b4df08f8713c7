"""The centre settings an admin changed on /admin, as stored: one row per section over the configured defaults.

What a section may hold, and how it applies to calls, is :mod:`server.calls.centre_settings`'s business; here a
section's value is JSON text with a version that every save bumps (front doors of a cluster poll the versions).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update

from . import schema
from .base import Repository


class CentreSettingsRepository(Repository):
    async def centre_overrides(self) -> dict[str, tuple[int, Any]]:
        """Every stored section: ``{section: (version, value)}``."""
        table = schema.centre_settings
        rows = await self._all(select(table.c.section, table.c.version, table.c.value))
        return {r["section"]: (int(r["version"]), json.loads(r["value"])) for r in rows}

    async def centre_versions(self) -> dict[str, int]:
        """``{section: version}``: what a poll compares (cheap; no values)."""
        table = schema.centre_settings
        return {r["section"]: int(r["version"]) for r in await self._all(select(table.c.section, table.c.version))}

    async def save_centre_section(self, section: str, value: Any, user_id: int | None) -> int:
        """Store a section's override (replacing the one before); its new version."""
        table = schema.centre_settings
        text, t = json.dumps(value, ensure_ascii=False), schema.now()
        async with self.engine.begin() as conn:
            version = (
                await conn.execute(select(table.c.version).where(table.c.section == section))
            ).scalar_one_or_none()
            if version is None:
                await conn.execute(
                    insert(table).values(section=section, value=text, version=1, updated_at=t, updated_by=user_id)
                )
                return 1
            await conn.execute(
                update(table)
                .where(table.c.section == section)
                .values(value=text, version=version + 1, updated_at=t, updated_by=user_id)
            )
            return int(version) + 1

    async def reset_centre_section(self, section: str) -> bool:
        """Back to the configured default; whether there was an override."""
        table = schema.centre_settings
        result = await self._write(delete(table).where(table.c.section == section))
        return bool(result.rowcount)
