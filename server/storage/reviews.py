"""QA review data: the session list with its filters, scorecards (versioned rubrics) and reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.sql import ColumnElement

from . import schema
from .base import Repository, from_row
from .records import api_fields, iso


@dataclass(frozen=True, slots=True)
class Scorecard:
    """One version of the rubric; editing it adds a version, so a review keeps the rubric it was scored on."""

    id: int
    criteria: list[dict[str, str]]
    created_at: float
    created_by: int | None

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id criteria created_at created_by")


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    session_id: str
    reviewer_id: int
    reviewer_name: str
    scorecard_id: int
    answers: dict[str, Any]
    comments: str | None
    score: float
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reviewer": {"id": self.reviewer_id, "display_name": self.reviewer_name},
            **api_fields(self, "scorecard_id answers comments score created_at"),
        }


@dataclass(frozen=True, slots=True)
class QaSession:
    """A closed session as the QA list shows it, with its latest review."""

    session_id: str
    created_at: float
    answered_at: float | None
    ended_at: float | None
    reason: str | None
    customer_name: str | None
    state: str
    rep_id: int | None
    rep_name: str | None
    disposition: str | None
    notes: str | None
    peak_frustration: float | None
    flag_count: int
    recorded: bool
    reviewed: bool
    review: Review | None

    @property
    def duration_s(self) -> int | None:
        """Answered to ended, in whole seconds; None for a call that was never answered."""
        if not self.ended_at or not self.answered_at:
            return None
        return round(self.ended_at - self.answered_at)

    @property
    def qa_status(self) -> str:
        return "scored" if self.reviewed else "unscored"

    @property
    def score(self) -> float | None:
        return self.review.score if self.review else None

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "created_at": iso(self.created_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "duration_s": self.duration_s,
            "reason": self.reason,
            "customer_name": self.customer_name,
            "state": self.state,
            "rep": {"id": self.rep_id, "display_name": self.rep_name} if self.rep_id else None,
            "disposition": self.disposition,
            "notes": self.notes,
            "peak_frustration": self.peak_frustration,
            "flag_count": self.flag_count,
            "recorded": self.recorded,
            "qa_status": self.qa_status,
            "score": self.score,
            "review": self.review.to_json() if self.review else None,
        }


@dataclass(frozen=True, slots=True)
class StaffName:
    """A rep who has taken calls, for the QA list's filter."""

    id: int
    display_name: str

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id display_name")


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


class ReviewStore(Repository):
    # scorecards

    async def ensure_scorecard(self) -> None:
        if await self.current_scorecard() is None:
            await self.create_scorecard(list(DEFAULT_CRITERIA), created_by=None)

    async def create_scorecard(self, criteria: list[dict[str, str]], *, created_by: int | None) -> Scorecard:
        t = schema.now()
        pk = await self._insert(schema.scorecards, criteria=json.dumps(criteria), created_at=t, created_by=created_by)
        return Scorecard(pk, criteria, t, created_by)

    async def current_scorecard(self) -> Scorecard | None:
        row = await self._first(select(schema.scorecards).order_by(schema.scorecards.c.id.desc()).limit(1))
        return _scorecard(row) if row else None

    async def get_scorecard(self, scorecard_id: int) -> Scorecard | None:
        row = await self._first(select(schema.scorecards).where(schema.scorecards.c.id == scorecard_id))
        return _scorecard(row) if row else None

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
        return await self._insert(
            schema.qa_reviews,
            session_id=session_id,
            reviewer_id=reviewer_id,
            scorecard_id=scorecard_id,
            answers=json.dumps(answers),
            comments=comments,
            score=score,
            created_at=schema.now(),
        )

    async def list_reviews(self, session_ids: list[str]) -> dict[str, list[Review]]:
        """Reviews per session, oldest first, with the reviewer's name."""
        if not session_ids:
            return {}
        reviews, users = schema.qa_reviews, schema.users
        query = (
            select(reviews, users.c.display_name.label("reviewer_name"))
            .join(users, users.c.id == reviews.c.reviewer_id)
            .where(reviews.c.session_id.in_(session_ids))
            .order_by(reviews.c.id)
        )
        out: dict[str, list[Review]] = {}
        for r in await self._all(query):
            out.setdefault(r["session_id"], []).append(from_row(Review, r, answers=json.loads(r["answers"])))
        return out

    # the session list

    async def list_sessions(self, f: SessionFilter) -> list[QaSession]:
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
        rows = await self._all(query)
        latest = {sid: reviews[-1] for sid, reviews in (await self.list_reviews([r["id"] for r in rows])).items()}
        return [_qa_session(r, latest.get(r["id"])) for r in rows]

    async def staff_with_calls(self) -> list[StaffName]:
        users = schema.users
        query = (
            select(users.c.id, users.c.display_name)
            .where(exists().where(schema.support_sessions.c.rep_id == users.c.id))
            .order_by(users.c.display_name)
        )
        return await self._records(StaffName, query)


REVIEWS = web.AppKey("reviews", ReviewStore)


def _scorecard(row: RowMapping) -> Scorecard:
    return from_row(Scorecard, row, criteria=json.loads(row["criteria"]))


def _qa_session(row: RowMapping, review: Review | None) -> QaSession:
    return from_row(
        QaSession,
        row,
        session_id=row["id"],
        flag_count=row["flag_count"] or 0,
        recorded=bool(row["recorded"]),
        reviewed=bool(row["reviewed"]),
        review=review,
    )
