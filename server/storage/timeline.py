"""The customer's per-second emotion timeline, and its summary on the session (what QA filters on)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from . import schema
from .base import Repository
from .records import TimelineSecond


class TimelineRepository(Repository):
    async def add_timeline(self, session_id: str, rows: list[dict[str, Any]]) -> None:
        """Store per-second emotion rows; a second seen again (after a reconnect) is replaced."""
        if not rows:
            return
        timeline = schema.emotion_timeline
        async with self.engine.begin() as conn:
            seconds = [r["second"] for r in rows]
            await conn.execute(
                delete(timeline).where(timeline.c.session_id == session_id, timeline.c.second.in_(seconds))
            )
            await conn.execute(insert(timeline), [{"session_id": session_id, **r} for r in rows])

    async def list_timeline(self, session_id: str) -> list[TimelineSecond]:
        timeline = schema.emotion_timeline
        query = select(timeline).where(timeline.c.session_id == session_id).order_by(timeline.c.second)
        return await self._records(TimelineSecond, query)

    async def summarize_emotion(self, session_id: str) -> tuple[float | None, int]:
        """Store the customer's peak frustration and number of flag episodes on the session."""
        rows = await self.list_timeline(session_id)
        peak = max((r.max_frustration for r in rows if r.max_frustration is not None), default=None)
        episodes = sum(1 for i, r in enumerate(rows) if r.flag and (i == 0 or not rows[i - 1].flag))
        s = schema.support_sessions
        await self._write(update(s).where(s.c.id == session_id).values(peak_frustration=peak, flag_count=episodes))
        return peak, episodes
