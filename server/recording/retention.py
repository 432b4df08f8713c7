"""What happens to call data over time: retention, legal hold and erasure.

Retention deletes recording files (and the photos, files and snapshots sent in the call) past their time;
erasure removes everything personal about a session (media, chat, emotion timeline, notes, reviews) on
request. Legal hold stops both. The session row itself stays, stripped, so
volumes and waits in reports still add up. Every deletion goes to the audit log.

The retention sweep is one recurring job (``retention``/``sweep``, server/storage/jobs.py): every node runs
:func:`retention_loop`, and the node that claims the job sweeps and queues it for the next turn, so two nodes
never delete at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..jobs import LEASE_S, JobWorker, default_node_name
from ..storage import schema
from ..storage.jobs import Job, JobStore
from ..storage.sessions import OPEN_STATES
from ..storage.store import Store

log = logging.getLogger(__name__)

DAY_S = 86_400.0
KEEP_STATES = ("recording", "pending", "composing", "deleted")
RETENTION_JOB = "retention"
SWEEP_KEY = "sweep"


class ErasureRefused(Exception):
    """The session is live or on legal hold."""


@dataclass(frozen=True)
class ErasureReport:
    session_id: str
    counts: dict[str, int]


def session_folder(root: Path, session_id: str) -> Path | None:
    """The session's recordings folder, or None if the id would lead outside ``root``."""
    base = root.resolve()
    folder = (base / session_id).resolve()
    return folder if folder.parent == base else None


async def apply_retention(store: Store, root: Path, *, retention_days: int, now: float | None = None) -> int:
    """Delete recording files of sessions that ended more than ``retention_days`` ago; returns how many."""
    if retention_days <= 0:
        return 0
    cutoff = (now if now is not None else schema.now()) - retention_days * DAY_S
    rows = await store.expired_recordings(ended_before=cutoff, keep_states=KEEP_STATES)
    base = await asyncio.to_thread(root.resolve)
    for row in rows:
        path = (base / row.path).resolve()
        if path.is_relative_to(base):
            await asyncio.to_thread(path.unlink, missing_ok=True)
        await store.update_recording(row.id, state="deleted", size=0, progress=None)
        await store.audit(None, "retention.delete", str(row.id), {"session_id": row.session_id})
    if rows:
        log.info("retention: deleted %d recording file(s) older than %d days", len(rows), retention_days)
    return len(rows) + await expire_session_files(store, base, cutoff)


async def expire_session_files(store: Store, base: Path, cutoff: float) -> int:
    """Photos, files and snapshots of calls that ended before ``cutoff`` (not on legal hold): bytes and rows."""
    files = await store.expired_files(ended_before=cutoff)
    for file in files:
        path = (base / file.path).resolve()
        if path.is_relative_to(base):
            await asyncio.to_thread(path.unlink, missing_ok=True)
        await store.delete_file(file.id)
        await store.audit(None, "retention.delete_file", file.id, {"session_id": file.session_id})
    if files:
        log.info("retention: deleted %d chat file(s) and snapshot(s)", len(files))
    return len(files)


async def set_legal_hold(store: Store, session_id: str, *, hold: bool, note: str | None, user_id: int) -> None:
    await store.set_legal_hold(session_id, hold=hold, note=note)
    await store.audit(user_id, "session.legal_hold", session_id, {"hold": hold, "note": note})


async def erase_session(store: Store, root: Path, session_id: str, *, user_id: int | None) -> ErasureReport:
    """Remove the session's media, chat, emotion timeline, notes and reviews."""
    record = await store.get_session(session_id)
    if record is None:
        raise KeyError(session_id)
    if record.state in OPEN_STATES:
        raise ErasureRefused("the call is still live")
    if record.legal_hold:
        raise ErasureRefused("the session is on legal hold")
    folder = session_folder(root, session_id)
    files = 0
    if folder is not None and folder.is_dir():
        files = sum(1 for p in folder.iterdir() if p.is_file())
        await asyncio.to_thread(shutil.rmtree, folder, True)
    counts: dict[str, Any] = {"files": files, **await store.erase_session_rows(session_id)}
    await store.audit(user_id, "session.erase", session_id, counts)
    log.info("erased session %s: %s", session_id, counts)
    return ErasureReport(session_id, counts)


async def sessions_of_customer(store: Store, customer_ref: str) -> list[str]:
    return await store.session_ids_of_customer(customer_ref)


async def forget_callbacks(store: Store, *, retention_days: int, now: float | None = None) -> int:
    """Blank the contact of callbacks closed, or asked for, more than ``retention_days`` ago; how many."""
    if retention_days <= 0:
        return 0
    cutoff = (now if now is not None else schema.now()) - retention_days * DAY_S
    count = await store.forget_callback_contacts(before=cutoff)
    if count:
        await store.audit(None, "retention.callbacks", "callbacks", {"count": count})
    return count


async def retention_loop(
    store: Store, root: Path, *, retention_days: int, every_s: float, node: str | None = None, poll_s: float = 60.0
) -> None:
    """Sweep every ``every_s`` (and when a node starts), on whichever node claims the sweep; runs until cancelled.

    ``node``: this node's name as the claimer (see :class:`server.recording.composer.Composer`).
    """
    jobs = JobStore(store.engine)

    async def sweep(_job: Job) -> float:
        try:
            await apply_retention(store, root, retention_days=retention_days)
            await forget_callbacks(store, retention_days=retention_days)
        except Exception:
            log.exception("retention pass failed; trying again later")
        return schema.now() + every_s

    worker = JobWorker(jobs, RETENTION_JOB, sweep, node=node or default_node_name(), poll_s=min(poll_s, LEASE_S))
    try:
        if node is not None:
            with contextlib.suppress(Exception):  # its lease runs out anyway
                await jobs.release_claims_of(node, RETENTION_JOB)
        # A node that starts sweeps now, as one box always did; the job then comes back every ``every_s``.
        while True:
            try:
                await jobs.enqueue(RETENTION_JOB, SWEEP_KEY, rerun=False)
                break
            except Exception:
                log.exception("could not queue the retention sweep; trying again later")
                await asyncio.sleep(poll_s)
        worker.start()
        await asyncio.Event().wait()
    finally:
        await worker.aclose()
