"""The runner of one kind of job on this node: claims due jobs from the database and runs them.

Every node (front door, or the one box) runs a :class:`JobWorker` per kind: composition, webhook delivery,
retention. They compete through :class:`server.storage.jobs.JobStore` claims, so each job runs on one node at a
time wherever it was enqueued. While a job runs its lease is renewed; if the renewal finds the job is no longer
this claim's (the lease ran out and another node took it), or cannot reach the database before the lease ends,
the run is cancelled rather than carried on beside the new claimer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from .storage import schema
from .storage.jobs import Job, JobStore

log = logging.getLogger(__name__)

LEASE_S = 30.0
POLL_S = 5.0
BACKOFF_S: tuple[float, ...] = (5, 30, 120, 600)
MAX_ATTEMPTS = 5
RELEASE_TIMEOUT_S = 2.0

# What a run returns: None when the job is done, or when to run it again (a retry that is not a failure, or
# the next turn of a recurring job).
RunJob = Callable[[Job], Coroutine[Any, Any, float | None]]


@functools.cache
def default_node_name() -> str:
    """This process's claimer name when the server does not give one: unique per process on a host."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobWorker:
    """Claims due jobs of ``kind`` and runs up to ``concurrency`` of them at once with ``run``.

    A run that raises is retried after ``backoff_s`` (the last step repeats), up to ``max_attempts`` claims;
    a job claimed that often (say it keeps killing the nodes that run it) fails without running again.
    """

    def __init__(
        self,
        jobs: JobStore,
        kind: str,
        run: RunJob,
        *,
        node: str,
        concurrency: int = 1,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        max_attempts: int = MAX_ATTEMPTS,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency: at least 1")
        self.jobs = jobs
        self.kind = kind
        self.run = run
        self.node = node
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.backoff_s = backoff_s
        self.max_attempts = max_attempts
        self.name = name or f"jobs-{kind}"  # the claim loop's task name
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[int, tuple[Job, asyncio.Task[None]]] = {}
        self._withdrawn: set[int] = set()

    @property
    def running(self) -> list[Job]:
        return [job for job, _task in self._running.values()]

    def start(self) -> None:
        if self._loop is None:
            self._wake.set()
            self._loop = asyncio.create_task(self._claim_loop(), name=self.name)

    def wake(self) -> None:
        """Look for due jobs now (one was just enqueued here) rather than at the next poll."""
        self._wake.set()

    def cancel_where(self, keep_running: Callable[[Job], bool]) -> None:
        """Cancel the runs whose job fails ``keep_running`` (their job was withdrawn); they finish as done."""
        for job, task in list(self._running.values()):
            if not keep_running(job):
                self._withdrawn.add(job.id)
                task.cancel()

    async def aclose(self) -> None:
        """Stop claiming; runs in progress are cancelled and their jobs queued again for any node."""
        loop, self._loop = self._loop, None
        runs = list(self._running.values())
        tasks = [t for t in (loop, *(task for _job, task in runs)) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()
        for job, _task in runs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.jobs.release(job), RELEASE_TIMEOUT_S)

    # the loop

    async def _claim_loop(self) -> None:
        while True:
            self._wake.clear()
            next_at: float | None = None
            try:
                free = self.concurrency - len(self._running)
                for job in await self.jobs.claim(self.kind, self.node, lease_s=self.lease_s, limit=free):
                    self._begin(job)
                if len(self._running) < self.concurrency:
                    next_at = await self.jobs.next_run_at(self.kind)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s jobs: could not claim; trying again later", self.kind)
            delay = self.poll_s if next_at is None else min(max(next_at - schema.now(), 0.0), self.poll_s)
            # Woken early by an enqueue here or a finished run; never spins faster than every 50 ms. Not
            # wait_for: on 3.11 it can swallow the cancel that aclose sends if the wake-up lands at the same time
            # (a run that aclose cancelled sets it), and aclose would then wait on this loop for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.05)):
                    await self._wake.wait()

    def _begin(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{self.kind}-{job.key}")
        self._running[job.id] = (job, task)
        task.add_done_callback(functools.partial(self._finished, job.id))

    def _finished(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._withdrawn.discard(job_id)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # The outcome could not be written (the database is away): the lease runs out and the job comes back.
            log.error("%s job %d: could not record how it ended", self.kind, job_id, exc_info=task.exception())

    async def _run(self, job: Job) -> None:
        if job.attempts > self.max_attempts:
            log.error("%s job %s: claimed %d times without finishing; giving up", self.kind, job.key, job.attempts)
            await self.jobs.fail(job, "too many attempts", retry_at=None)
            return
        work = asyncio.create_task(self.run(job), name=f"run-{self.kind}-{job.key}")
        lease = asyncio.create_task(self._keep_lease(job, work), name=f"lease-{self.kind}-{job.key}")
        try:
            again_at = await work
        except asyncio.CancelledError:
            work.cancel()
            current = asyncio.current_task()
            if job.id in self._withdrawn and current is not None:
                current.uncancel()
                await self.jobs.complete(job)  # withdrawn here (cancel_where): nothing left to do
                return
            if current is not None and current.cancelling():
                raise  # this node is stopping: aclose releases the job
            return  # the claim was lost: the job is the new claimer's now
        except Exception as exc:
            last = job.attempts >= self.max_attempts
            retry_at = None if last else schema.now() + self.backoff_s[min(job.attempts, len(self.backoff_s)) - 1]
            log.exception("%s job %s failed (attempt %d)%s", self.kind, job.key, job.attempts, " for good" * last)
            await self.jobs.fail(job, f"{type(exc).__name__}: {exc}", retry_at=retry_at)
        else:
            if not await self.jobs.complete(job, run_again_at=again_at):
                log.warning("%s job %s finished after its claim had passed to another node", self.kind, job.key)
        finally:
            lease.cancel()

    async def _keep_lease(self, job: Job, work: asyncio.Task[float | None]) -> None:
        """Renew the claim every third of the lease; cancel ``work`` once the claim is lost or about to lapse."""
        held_until = job.lease_until or schema.now() + self.lease_s
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                renewed = await self.jobs.renew(job, lease_s=self.lease_s)
            except Exception:
                log.warning("%s job %s: could not renew its lease", self.kind, job.key, exc_info=True)
                if schema.now() < held_until - self.lease_s / 3:
                    continue
                renewed = None
            if renewed is None:
                log.warning("%s job %s: its claim is lost; stopping this run", self.kind, job.key)
                work.cancel(msg="claim lost")
                return
            held_until = renewed
