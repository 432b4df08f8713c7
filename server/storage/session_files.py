"""A call's photos, files and snapshots: their rows (the bytes are under the recordings folder, by id only)."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import delete, func, insert, select

from . import schema
from .base import Repository
from .records import SessionFile


class SessionFileRepository(Repository):
    async def add_file(self, file: SessionFile) -> None:
        await self._write(insert(schema.session_files).values(**asdict(file)))

    async def get_file(self, file_id: str) -> SessionFile | None:
        f = schema.session_files
        return await self._record(SessionFile, select(f).where(f.c.id == file_id))

    async def list_files(self, session_id: str) -> list[SessionFile]:
        f = schema.session_files
        query = select(f).where(f.c.session_id == session_id).order_by(f.c.created_at, f.c.id)
        return await self._records(SessionFile, query)

    async def count_files(self, session_id: str) -> int:
        f = schema.session_files
        return int(await self._scalar(select(func.count()).select_from(f).where(f.c.session_id == session_id)) or 0)

    async def delete_file(self, file_id: str) -> None:
        f = schema.session_files
        await self._write(delete(f).where(f.c.id == file_id))

    async def expired_files(self, *, ended_before: float) -> list[SessionFile]:
        """Files of sessions that ended before ``ended_before`` and are not on legal hold (retention)."""
        f, s = schema.session_files, schema.support_sessions
        query = (
            select(f)
            .join(s, s.c.id == f.c.session_id)
            .where(s.c.ended_at < ended_before, s.c.legal_hold.is_(False))
            .order_by(f.c.created_at)
        )
        return await self._records(SessionFile, query)
