"""The jobs queue: background work any node may run, claimed so that one node at a time runs each job.

A job is one row per kind and key: ``compose``/<session id>, ``webhook``/<delivery id>, ``retention``/``sweep``.
It is ``queued`` (due at ``run_at``), ``running`` (claimed by one node until ``lease_until``), ``done``, or
``failed`` after its last attempt. How a claim is made depends on the database:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` picks due rows and locks them in one transaction, which then
  marks them running. Claimers racing for the same rows never wait on each other: each skips the rows another
  has locked and takes the next ones.
* SQLite: the database runs one writer at a time, so a conditional ``UPDATE … WHERE`` (still queued and due, or
  its lease ran out) is the claim; the row it returns (none for the losers) says who won.

A claim lasts ``lease_s`` and its runner renews it while the job runs; a node that dies stops renewing and
another node claims the job once the lease has run out. Every later write of a claim (renew, complete, fail,
release) names the claim (claimer and attempt number) and changes nothing once the job is someone else's, so a
node that lost its lease cannot overwrite the next claimer's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .base import Repository, from_row

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ERROR_MAX = 300


@dataclass(frozen=True, slots=True)
class Job:
    """One claim of a job (or its row as read): ``attempts`` counts claims, and with ``claimed_by`` names this one."""

    id: int
    kind: str
    key: str
    state: str
    attempts: int
    run_at: float
    claimed_by: str | None
    lease_until: float | None
    last_error: str | None


def _job(row: Any) -> Job:
    return from_row(Job, row)


class JobStore(Repository):
    async def enqueue(self, kind: str, key: str, *, run_at: float | None = None, rerun: bool = True) -> int:
        """Make sure the job runs at ``run_at`` (now) or earlier; its id.

        Idempotent per kind and key: a queued job stays queued (at the earlier of the two times); a finished one
        is queued again; a running one runs once more after this run ends, unless ``rerun`` is False.
        """
        j = schema.jobs
        t = schema.now()
        at = t if run_at is None else run_at
        this = and_(j.c.kind == kind, j.c.key == key)
        async with self.engine.begin() as conn:
            await conn.execute(_insert_if_absent(conn, kind=kind, key=key, at=at, t=t))
            await conn.execute(
                update(j)
                .where(this, j.c.state.in_((DONE, FAILED)))
                .values(state=QUEUED, attempts=0, run_at=at, lease_until=None, again=False, finished_at=None)
            )
            await conn.execute(update(j).where(this, j.c.state == QUEUED, j.c.run_at > at).values(run_at=at))
            if rerun:
                await conn.execute(update(j).where(this, j.c.state == RUNNING).values(again=True))
            return int((await conn.execute(select(j.c.id).where(this))).scalar_one())

    async def claim(
        self, kind: str, node: str, *, lease_s: float, limit: int = 1, now: float | None = None
    ) -> list[Job]:
        """Up to ``limit`` due jobs of ``kind``, now running under ``node``'s lease; never one another claim holds."""
        if limit < 1:
            return []
        j = schema.jobs
        t = schema.now() if now is None else now
        due = select(j.c.id).where(_claimable(kind, t)).order_by(j.c.run_at, j.c.id).limit(limit)
        claimed = {
            "state": RUNNING,
            "claimed_by": node,
            "lease_until": t + lease_s,
            "attempts": j.c.attempts + 1,
            "again": False,
        }
        if self.engine.dialect.name == "postgresql":
            async with self.engine.begin() as conn:
                ids = (await conn.execute(due.with_for_update(skip_locked=True))).scalars().all()
                if not ids:
                    return []
                statement = update(j).where(j.c.id.in_(ids)).values(**claimed).returning(*j.c)
                rows = (await conn.execute(statement)).mappings().all()
            return sorted((_job(r) for r in rows), key=lambda job: (job.run_at, job.id))
        # SQLite: a candidate is only a candidate; the conditional UPDATE is the claim (one writer at a time).
        async with self.engine.connect() as conn:
            candidates = (await conn.execute(due)).scalars().all()
        won: list[Job] = []
        for job_id in candidates:
            statement = update(j).where(j.c.id == job_id, _claimable(kind, t)).values(**claimed).returning(*j.c)
            async with self.engine.begin() as conn:
                row = (await conn.execute(statement)).mappings().first()
            if row is not None:
                won.append(_job(row))
        return won

    async def renew(self, job: Job, *, lease_s: float) -> float | None:
        """Extend the claim's lease; the new deadline, or None when the job is no longer this claim's."""
        until = schema.now() + lease_s
        result = await self._write(update(schema.jobs).where(_mine(job)).values(lease_until=until))
        return until if result.rowcount == 1 else None

    async def complete(self, job: Job, *, run_again_at: float | None = None) -> bool:
        """The claim's run succeeded: done, or queued for ``run_again_at`` (a recurring job); False if not ours."""
        j = schema.jobs
        t = schema.now()
        async with self.engine.begin() as conn:
            # Enqueued again while it ran: its inputs may have changed after this run read them.
            again = await conn.execute(
                update(j).where(_mine(job), j.c.again.is_(True)).values(state=QUEUED, run_at=t, again=False)
            )
            if again.rowcount == 1:
                return True
            if run_again_at is not None:
                values: dict[str, Any] = {"state": QUEUED, "run_at": run_again_at, "attempts": 0, "last_error": None}
            else:
                values = {"state": DONE, "finished_at": t, "last_error": None}
            result = await conn.execute(update(j).where(_mine(job)).values(lease_until=None, **values))
        return result.rowcount == 1

    async def fail(self, job: Job, error: str, *, retry_at: float | None) -> bool:
        """The claim's run failed: queued again at ``retry_at``, or failed for good when it is None."""
        t = schema.now()
        values: dict[str, Any] = (
            {"state": FAILED, "finished_at": t} if retry_at is None else {"state": QUEUED, "run_at": retry_at}
        )
        statement = (
            update(schema.jobs).where(_mine(job)).values(last_error=error[:ERROR_MAX], lease_until=None, **values)
        )
        return (await self._write(statement)).rowcount == 1

    async def release(self, job: Job) -> bool:
        """Give the claim up unfinished (the node is stopping): queued now, for any node."""
        statement = update(schema.jobs).where(_mine(job)).values(state=QUEUED, run_at=schema.now(), lease_until=None)
        return (await self._write(statement)).rowcount == 1

    async def release_claims_of(self, node: str, kind: str) -> int:
        """Queue again every job of ``kind`` that ``node`` was running: it restarted, so those runs are gone.
        By kind, because each kind's worker starts on its own: one must not take back another's live claims."""
        j = schema.jobs
        statement = (
            update(j)
            .where(j.c.state == RUNNING, j.c.claimed_by == node, j.c.kind == kind)
            .values(state=QUEUED, run_at=schema.now(), lease_until=None)
        )
        return (await self._write(statement)).rowcount

    async def next_run_at(self, kind: str) -> float | None:
        """When a job of ``kind`` is next claimable (a queued one's time, a running one's lease); None: no such job."""
        j = schema.jobs
        when = case((j.c.state == QUEUED, j.c.run_at), else_=j.c.lease_until)
        value = await self._scalar(select(func.min(when)).where(j.c.kind == kind, j.c.state.in_((QUEUED, RUNNING))))
        return float(value) if value is not None else None

    async def get_job(self, kind: str, key: str) -> Job | None:
        j = schema.jobs
        return await self._record(Job, select(j).where(j.c.kind == kind, j.c.key == key))

    async def list_jobs(self, kind: str) -> list[Job]:
        j = schema.jobs
        return await self._records(Job, select(j).where(j.c.kind == kind).order_by(j.c.id))


def _claimable(kind: str, t: float) -> ColumnElement[bool]:
    """Due and unclaimed, or claimed by a node whose lease ran out (it died, or lost the database)."""
    j = schema.jobs
    return and_(
        j.c.kind == kind,
        or_(and_(j.c.state == QUEUED, j.c.run_at <= t), and_(j.c.state == RUNNING, j.c.lease_until < t)),
    )


def _mine(job: Job) -> ColumnElement[bool]:
    """The row while it is still this claim's: running, by the same claimer, at the same attempt."""
    j = schema.jobs
    return and_(j.c.id == job.id, j.c.state == RUNNING, j.c.claimed_by == job.claimed_by, j.c.attempts == job.attempts)


def _new_job(kind: str, key: str, *, at: float, t: float) -> dict[str, Any]:
    return {"kind": kind, "key": key, "state": QUEUED, "attempts": 0, "run_at": at, "again": False, "created_at": t}


def _insert_if_absent(conn: AsyncConnection, *, kind: str, key: str, at: float, t: float) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(schema.jobs).values(**_new_job(kind, key, at=at, t=t))
    return statement.on_conflict_do_nothing(index_elements=["kind", "key"])


async def add_jobs(conn: AsyncConnection, kind: str, keys: list[str], *, run_at: float) -> None:
    """New jobs queued at ``run_at``, in the caller's transaction (with the rows they work on); keys are new."""
    if keys:
        t = schema.now()
        await conn.execute(insert(schema.jobs), [_new_job(kind, key, at=run_at, t=t) for key in keys])
