"""QA review data: the session list with its filters, scorecards (versioned rubrics) and reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import and_, exists, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ColumnElement

from . import schema
from .store import iso

CRITERION_TYPES = ("scale", "yesno")
DEFAULT_CRITERIA: tuple[dict[str, str], ...] = (
    {"id": "greeting", "label": "Greets the customer and introduces themself", "type": "scale"},
    {"id": "understanding", "label": "Finds out what the customer needs", "type": "scale"},
    {"id": "clarity", "label": "Explains clearly, without jargon", "type": "scale"},
    {"id": "courtesy", "label": "Courteous and patient throughout", "type": "scale"},
    {"id": "process", "label": "Follows the process (identity, notes, disposition)", "type": "yesno"},
    {"id": "resolved", "label": "The customer's issue is resolved or has a clear next step", "type": "yesno"},
)
CLOSED_STATES = ("ended", "abandoned", "interrupted")


@dataclass(frozen=True)
class SessionFilter:
    """The QA list's filters; None means "any"."""

    from_ts: float | None = None
    to_ts: float | None = None
    rep_id: int | None = None
    reason: str | None = None
    outcome: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    min_frustration: float | None = None
    flagged: bool | None = None
    qa_status: str | None = None
    limit: int = 100


def score_answers(criteria: list[dict[str, Any]], answers: dict[str, Any]) -> float:
    """Share of available points: a scale answer counts (n-1)/4, yes counts 1."""
    points = 0.0
    for criterion in criteria:
        value = answers[criterion["id"]]
        points += (value - 1) / 4 if criterion["type"] == "scale" else float(bool(value))
    return round(points / len(criteria), 4) if criteria else 0.0


def validate_criteria(value: Any) -> list[dict[str, str]]:
    """A rubric from an admin: 1–30 criteria, each with a slug id, a label and a type."""
    if not isinstance(value, list) or not 1 <= len(value) <= 30:
        raise ValueError("criteria: a list of 1 to 30 criteria")
    seen: set[str] = set()
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError("criteria: each criterion is an object")
        cid, label, kind = item.get("id"), item.get("label"), item.get("type")
        if not isinstance(cid, str) or not cid or len(cid) > 40 or not cid.replace("_", "").isalnum():
            raise ValueError("criteria: id is a short slug (letters, digits, _)")
        if cid in seen:
            raise ValueError(f"criteria: id {cid!r} appears twice")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            raise ValueError("criteria: label is 1 to 200 characters")
        if kind not in CRITERION_TYPES:
            raise ValueError("criteria: type is scale or yesno")
        seen.add(cid)
        out.append({"id": cid, "label": label.strip(), "type": kind})
    return out


def validate_answers(criteria: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    if not isinstance(answers, dict):
        raise ValueError("answers: an object of criterion id to answer")
    ids = {c["id"] for c in criteria}
    unknown = set(answers) - ids
    if unknown:
        raise ValueError(f"answers: unknown criteria {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for criterion in criteria:
        value = answers.get(criterion["id"])
        if criterion["type"] == "scale":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                raise ValueError(f"answers.{criterion['id']}: 1 to 5")
        elif not isinstance(value, bool):
            raise ValueError(f"answers.{criterion['id']}: true or false")
        out[criterion["id"]] = value
    return out


class ReviewStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # scorecards

    async def ensure_scorecard(self) -> None:
        if await self.current_scorecard() is None:
            await self.create_scorecard(list(DEFAULT_CRITERIA), created_by=None)

    async def create_scorecard(self, criteria: list[dict[str, str]], *, created_by: int | None) -> dict[str, Any]:
        t = schema.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.scorecards).values(criteria=json.dumps(criteria), created_at=t, created_by=created_by)
            )
            pk = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
        return {"id": pk, "criteria": criteria, "created_at": iso(t), "created_by": created_by}

    async def current_scorecard(self) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(schema.scorecards).order_by(schema.scorecards.c.id.desc()).limit(1))
            ).first()
        return _scorecard(row._mapping) if row else None

    async def get_scorecard(self, scorecard_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(schema.scorecards).where(schema.scorecards.c.id == scorecard_id))).first()
        return _scorecard(row._mapping) if row else None

    # reviews

    async def add_review(
        self,
        session_id: str,
        *,
        reviewer_id: int,
        scorecard_id: int,
        answers: dict[str, Any],
        comments: str | None,
        score: float,
    ) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.qa_reviews).values(
                    session_id=session_id,
                    reviewer_id=reviewer_id,
                    scorecard_id=scorecard_id,
                    answers=json.dumps(answers),
                    comments=comments,
                    score=score,
                    created_at=schema.now(),
                )
            )
            return int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0

    async def list_reviews(self, session_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Reviews per session, oldest first, with the reviewer's name."""
        if not session_ids:
            return {}
        query = (
            select(schema.qa_reviews, schema.users.c.display_name)
            .join(schema.users, schema.users.c.id == schema.qa_reviews.c.reviewer_id)
            .where(schema.qa_reviews.c.session_id.in_(session_ids))
            .order_by(schema.qa_reviews.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["session_id"], []).append(
                {
                    "id": r["id"],
                    "reviewer": {"id": r["reviewer_id"], "display_name": r["display_name"]},
                    "scorecard_id": r["scorecard_id"],
                    "answers": json.loads(r["answers"]),
                    "comments": r["comments"],
                    "score": r["score"],
                    "created_at": iso(r["created_at"]),
                }
            )
        return out

    # the session list

    async def list_sessions(self, f: SessionFilter) -> list[dict[str, Any]]:
        s = schema.support_sessions
        rep = schema.users.alias("rep")
        reviewed = exists().where(schema.qa_reviews.c.session_id == s.c.id)
        recorded = exists().where(
            and_(schema.recordings.c.session_id == s.c.id, schema.recordings.c.participant != "both")
        )
        duration = s.c.ended_at - s.c.answered_at
        conditions: list[ColumnElement[bool]] = [s.c.state.in_(CLOSED_STATES), s.c.erased_at.is_(None)]
        if f.from_ts is not None:
            conditions.append(s.c.created_at >= f.from_ts)
        if f.to_ts is not None:
            conditions.append(s.c.created_at < f.to_ts)
        if f.rep_id is not None:
            conditions.append(s.c.rep_id == f.rep_id)
        if f.reason is not None:
            conditions.append(s.c.reason == f.reason)
        if f.outcome is not None:
            conditions.append((s.c.disposition == f.outcome) | (s.c.state == f.outcome))
        if f.min_duration_s is not None:
            conditions.append(duration >= f.min_duration_s)
        if f.max_duration_s is not None:
            conditions.append(duration <= f.max_duration_s)
        if f.min_frustration is not None:
            conditions.append(s.c.peak_frustration >= f.min_frustration)
        if f.flagged is True:
            conditions.append(s.c.flag_count > 0)
        elif f.flagged is False:
            conditions.append(func.coalesce(s.c.flag_count, 0) == 0)
        if f.qa_status == "scored":
            conditions.append(reviewed)
        elif f.qa_status == "unscored":
            conditions.append(~reviewed)
        query = (
            select(s, rep.c.display_name.label("rep_name"), recorded.label("recorded"), reviewed.label("reviewed"))
            .outerjoin(rep, rep.c.id == s.c.rep_id)
            .where(*conditions)
            .order_by(s.c.created_at.desc())
            .limit(f.limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        latest = {sid: reviews[-1] for sid, reviews in (await self.list_reviews([r["id"] for r in rows])).items()}
        return [_qa_row(r, latest.get(r["id"])) for r in rows]

    async def staff_with_calls(self) -> list[dict[str, Any]]:
        query = (
            select(schema.users.c.id, schema.users.c.display_name)
            .where(exists().where(schema.support_sessions.c.rep_id == schema.users.c.id))
            .order_by(schema.users.c.display_name)
        )
        async with self.engine.connect() as conn:
            return [{"id": r.id, "display_name": r.display_name} for r in await conn.execute(query)]


REVIEWS = web.AppKey("reviews", ReviewStore)


def _scorecard(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "criteria": json.loads(row["criteria"]),
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by"],
    }


def _qa_row(r: Any, review: dict[str, Any] | None) -> dict[str, Any]:
    duration = r["ended_at"] - r["answered_at"] if r["ended_at"] and r["answered_at"] else None
    return {
        "session_id": r["id"],
        "created_at": iso(r["created_at"]),
        "answered_at": iso(r["answered_at"]),
        "ended_at": iso(r["ended_at"]),
        "duration_s": round(duration) if duration is not None else None,
        "reason": r["reason"],
        "customer_name": r["customer_name"],
        "state": r["state"],
        "rep": {"id": r["rep_id"], "display_name": r["rep_name"]} if r["rep_id"] else None,
        "disposition": r["disposition"],
        "notes": r["notes"],
        "peak_frustration": r["peak_frustration"],
        "flag_count": r["flag_count"] or 0,
        "recorded": bool(r["recorded"]),
        "qa_status": "scored" if r["reviewed"] else "unscored",
        "score": review["score"] if review else None,
        "review": review,
    }
