"""The background job that turns a call's per-track recordings into one QA file.

Composition decodes and re-encodes a whole call, so it runs in a separate,
niced process (``python -m server.recording.compose``): it never competes with live
media on the event loop, and a crash in a decoder costs one file, not the
server. The file is a row in ``recordings`` (participant ``both``, kind
``composed``, its state and progress shown to QA), and the work to make it is a
``compose`` job keyed by the session (server/storage/jobs.py): whichever node
claims the job composes, exactly one at a time, and a job whose node died is
claimed again by another once its lease runs out.

A supervisor's voice is mixed in only while they were in the call openly: the barge-in periods, read from the
session's events (``barge_windows``). A whisper stays in the supervisor's own track (see compose.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from ..jobs import JobWorker, default_node_name
from ..storage.jobs import Job, JobStore
from ..storage.records import Recording, SessionEvent
from ..storage.store import Store
from .recorder import file_digest

log = logging.getLogger(__name__)

COMPOSED_PARTICIPANT = "both"
COMPOSED_KIND = "composed"
PLAYABLE_STATES = ("complete", "truncated", "recovered")
# The QA file still to be made: queued, or being made by a node that may have died since.
TO_COMPOSE = ("pending", "composing")
COMPOSE_JOB = "compose"
PROGRESS_WRITE_S = 1.0
NICE = 10
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The session events (server/calls/assist.py) that open and close a barge-in.
BARGE_STARTS = frozenset({"assist.barge", "assist.take_over"})
BARGE_STOPS = frozenset({"assist.listen", "assist.whisper", "assist.left"})
# Each barge-in is cut this much short at both ends: the events are written just after the media's gate moved,
# and a track's start time is known to a few packets. Better a word of the barge-in lost than one of a whisper
# heard.
BARGE_GUARD_S = 0.1


def composed_path(session_id: str) -> str:
    return f"{session_id}/composed.webm"


def track_offsets(rows: list[Recording]) -> tuple[float | None, dict[int, float]]:
    """Each track's start relative to the earliest one: (epoch of second 0, {recording id: offset})."""
    epochs = {r.id: r.epoch for r in rows if r.epoch is not None}
    if not epochs:
        return None, {r.id: 0.0 for r in rows}
    t0 = min(epochs.values())
    return t0, {r.id: (epochs[r.id] - t0) if r.id in epochs else 0.0 for r in rows}


def barge_windows(events: Iterable[SessionEvent], t0: float) -> list[tuple[float, float | None]]:
    """When the supervisor was in the call openly, in seconds from ``t0`` (end None: until the call ended)."""
    windows: list[tuple[float, float | None]] = []
    since: float | None = None
    for event in events:
        if event.kind in BARGE_STARTS and since is None:
            since = event.at
        elif event.kind in BARGE_STOPS and since is not None:
            windows.append((since - t0 + BARGE_GUARD_S, event.at - t0 - BARGE_GUARD_S))
            since = None
    if since is not None:
        windows.append((since - t0 + BARGE_GUARD_S, None))
    return [(max(0.0, a), b) for a, b in windows if b is None or b > a]


def barge_args(windows: list[tuple[float, float | None]]) -> list[str]:
    return [f"--barge={a:.3f}:{'' if b is None else f'{b:.3f}'}" for a, b in windows]


class Composer:
    """Enqueues composition jobs, and claims and works them one at a time (each in a subprocess) on this node.

    ``node``: this node's name in the cluster, as the claimer of its jobs. Given, the jobs a previous run under
    that name left claimed are queued again at start (it restarted: those runs are gone); otherwise they come
    back when their lease runs out.
    """

    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        enabled: bool = True,
        on_event: Callable[[str, dict[str, Any]], Awaitable[object]] | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.on_event = on_event
        self.root = root
        self.enabled = enabled
        self.node = node
        self.jobs = JobStore(store.engine)
        self.worker = JobWorker(
            self.jobs, COMPOSE_JOB, self._run_job, node=node or default_node_name(), name="composer"
        )
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if not self.enabled:
            return
        if self.node is not None:
            await self.jobs.release_claims_of(self.node, COMPOSE_JOB)
        # A file still to make needs its job: queued before jobs existed, or its job was lost.
        for state in TO_COMPOSE:
            for row in await self.store.recordings_in_state(state):
                if row.participant == COMPOSED_PARTICIPANT:
                    await self.jobs.enqueue(COMPOSE_JOB, row.session_id, rerun=False)
        self.worker.start()

    async def aclose(self) -> None:
        self._kill()
        await self.worker.aclose()

    def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def enqueue(self, session_id: str) -> int | None:
        """Queue (or re-queue) the session's QA file; None when nothing was recorded."""
        if not self.enabled:
            return None
        rows = await self.store.list_recordings(session_id)
        tracks = [r for r in rows if r.participant != COMPOSED_PARTICIPANT and r.state in PLAYABLE_STATES]
        if not tracks:
            return None
        existing = next((r for r in rows if r.participant == COMPOSED_PARTICIPANT), None)
        if existing is not None:
            if existing.state in TO_COMPOSE:
                return existing.id
            await self.store.update_recording(existing.id, state="pending", progress=0.0, error=None)
            recording_id = existing.id
        else:
            recording_id = await self.store.add_recording(
                session_id, COMPOSED_PARTICIPANT, COMPOSED_KIND, composed_path(session_id), state="pending"
            )
        await self.jobs.enqueue(COMPOSE_JOB, session_id)
        self.worker.wake()
        return recording_id

    async def _run_job(self, job: Job) -> None:
        """Compose the session's QA file if it is still to be made (else it was made, failed, or was erased)."""
        rows = await self.store.list_recordings(job.key)
        row = next((r for r in rows if r.participant == COMPOSED_PARTICIPANT and r.state in TO_COMPOSE), None)
        if row is None:
            return None
        try:
            await self._compose(row)
        except asyncio.CancelledError:
            self._kill()  # this node stops, or lost the claim: the next claimer starts from scratch
            raise
        except Exception as exc:
            # A broken recording fails the same way on every node: the file is marked failed, not retried.
            log.exception("composing the QA file of %s failed", row.session_id)
            await self.store.update_recording(row.id, state="failed", error=str(exc)[:200])
        return None

    async def _compose(self, row: Recording) -> None:
        session_id = row.session_id
        tracks = [
            r
            for r in await self.store.list_recordings(session_id)
            if r.participant != COMPOSED_PARTICIPANT and r.state in PLAYABLE_STATES
        ]
        t0, offsets = track_offsets(tracks)
        args = [sys.executable, "-m", "server.recording.compose", "--output", str(self.root / row.path)]
        for track in tracks:
            flag = f"--{track.participant}-{track.kind}"
            args += [flag, str(self.root / track.path), f"{flag}-offset", f"{offsets[track.id]:.3f}"]
        if t0 is not None and any(track.participant == "supervisor" for track in tracks):
            args += barge_args(barge_windows(await self.store.list_events(session_id), t0))
        await self.store.update_recording(row.id, state="composing", progress=0.0, epoch=t0)
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            preexec_fn=lambda: os.nice(NICE),
        )
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        last_write = 0.0
        outcome: dict[str, Any] = {}
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message and time.monotonic() - last_write >= PROGRESS_WRITE_S:
                last_write = time.monotonic()
                await self.store.update_recording(row.id, progress=float(message["progress"]))
            elif "done" in message or "error" in message:
                outcome = message
        stderr = (await process.stderr.read()).decode(errors="replace")
        code = await process.wait()
        self._process = None
        if code != 0 or "done" not in outcome:
            error = outcome.get("error") or stderr.strip().splitlines()[-1:] or [f"exit code {code}"]
            message = error if isinstance(error, str) else error[0]
            await self.store.update_recording(row.id, state="failed", error=message[:200])
            log.warning("QA file of %s failed: %s", session_id, message)
            return
        size, sha = await asyncio.to_thread(file_digest, self.root / row.path)
        # Progress first: whoever sees the file complete sees it at 1.0.
        await self.store.update_recording(row.id, progress=1.0)
        await self.store.finish_recording(row.id, state="complete", size=size, sha256=sha)
        if self.on_event is not None:
            ready = await self.store.get_recording(row.id)
            await self.on_event(
                "recording.ready",
                {"session_id": session_id, "recording_id": row.id, "size": size, "sha256": sha, "state": "complete"}
                | ({"ended_at": ready.ended_at} if ready else {}),
            )
        log.info(
            "QA file of %s ready: %.0f s of call composed in %.1f s",
            session_id,
            float(outcome.get("duration_s", 0.0)),
            time.monotonic() - started,
        )


COMPOSER = web.AppKey("composer", Composer)
