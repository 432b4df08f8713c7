"""Recording rows: one per recorded track, and one per session for the composed QA file (participant ``both``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from . import schema
from .base import Repository
from .records import Recording

UPDATABLE = frozenset({"state", "epoch", "progress", "error", "size", "sha256", "ended_at"})


class RecordingRepository(Repository):
    async def add_recording(
        self, session_id: str, participant: str, kind: str, path: str, *, state: str = "recording"
    ) -> int:
        return await self._insert(
            schema.recordings,
            session_id=session_id,
            participant=participant,
            kind=kind,
            path=path,
            state=state,
            started_at=schema.now(),
        )

    async def finish_recording(
        self, recording_id: int, *, state: str, size: int, sha256: str, error: str | None = None
    ) -> None:
        await self.update_recording(
            recording_id, state=state, size=size, sha256=sha256, ended_at=schema.now(), error=error
        )

    async def update_recording(self, recording_id: int, **values: Any) -> None:
        if not values or set(values) - UPDATABLE:
            raise ValueError(f"update_recording: only {', '.join(sorted(UPDATABLE))}")
        r = schema.recordings
        await self._write(update(r).where(r.c.id == recording_id).values(**values))

    async def recordings_in_state(self, state: str) -> list[Recording]:
        r = schema.recordings
        return await self._records(Recording, select(r).where(r.c.state == state))

    async def list_recordings(self, session_id: str) -> list[Recording]:
        r = schema.recordings
        return await self._records(Recording, select(r).where(r.c.session_id == session_id).order_by(r.c.id))

    async def get_recording(self, recording_id: int) -> Recording | None:
        r = schema.recordings
        return await self._record(Recording, select(r).where(r.c.id == recording_id))
