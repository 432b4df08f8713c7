"""Job claims on SQLite and PostgreSQL: racing nodes each get different jobs, leases run out, finished jobs stay so.

Each "node" here is its own engine (its own connections), as separate processes would have.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from server.jobs import JobWorker
from server.storage import schema
from server.storage.jobs import DONE, FAILED, QUEUED, RUNNING, Job, JobStore
from server.storage.migrations import migrate
from server.storage.schema import Engine

NODES = 4
JOBS = 60
KIND = "test"


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[Engine]]:
    made = [schema.create_engine(database_url) for _ in range(NODES)]
    try:
        await migrate(made[0])
        yield made
    finally:
        for engine in made:
            await engine.dispose()


@pytest.fixture
def stores(engines: list[Engine]) -> list[JobStore]:
    return [JobStore(engine) for engine in engines]


async def test_racing_nodes_claim_every_job_exactly_once(stores: list[JobStore]) -> None:
    ids = [await stores[0].enqueue(KIND, f"k{i}") for i in range(JOBS)]
    assert len(set(ids)) == JOBS
    start = asyncio.Event()

    async def node(store: JobStore, name: str) -> list[int]:
        taken: list[int] = []
        await start.wait()
        while True:
            jobs = await store.claim(KIND, name, lease_s=60, limit=3)
            if not jobs:
                return taken
            assert all(job.claimed_by == name and job.state == RUNNING for job in jobs)
            taken += [job.id for job in jobs]

    racers = [asyncio.create_task(node(store, f"node-{n}")) for n, store in enumerate(stores)]
    start.set()
    claims = [job_id for taken in await asyncio.gather(*racers) for job_id in taken]
    doubles = {job_id: n for job_id, n in Counter(claims).items() if n > 1}
    assert doubles == {}, f"claimed more than once: {doubles}"
    assert sorted(claims) == sorted(ids)
    rows = await stores[0].list_jobs(KIND)
    assert {row.attempts for row in rows} == {1} and {row.state for row in rows} == {RUNNING}


async def test_a_lease_that_ran_out_is_claimed_again_and_the_late_claimer_changes_nothing(
    stores: list[JobStore],
) -> None:
    a, b, c = stores[:3]
    await a.enqueue(KIND, "one")
    t = schema.now()
    [first] = await a.claim(KIND, "a", lease_s=30, now=t)
    assert await b.claim(KIND, "b", lease_s=30, now=t + 29) == []  # held
    [second] = await b.claim(KIND, "b", lease_s=30, now=t + 31)  # node a died: its lease ran out
    assert (second.id, second.claimed_by, second.attempts) == (first.id, "b", 2)

    # Node a comes back late: nothing it writes counts any more.
    assert await a.renew(first, lease_s=30) is None
    assert not await a.complete(first)
    assert not await a.fail(first, "late", retry_at=None)
    assert not await a.release(first)
    assert (await b.get_job(KIND, "one")) == second

    assert await b.complete(second)
    done = await c.get_job(KIND, "one")
    assert done is not None and done.state == DONE
    # A finished job is never claimed again, however late.
    assert await c.claim(KIND, "c", lease_s=30, now=t + 10_000) == []


async def test_a_failed_run_waits_for_its_retry_and_the_last_failure_is_final(stores: list[JobStore]) -> None:
    store = stores[0]
    await store.enqueue(KIND, "flaky")
    t = schema.now()
    [job] = await store.claim(KIND, "a", lease_s=30, now=t)
    assert await store.fail(job, "boom", retry_at=t + 10)
    assert await store.claim(KIND, "a", lease_s=30, now=t + 9) == []
    [again] = await store.claim(KIND, "a", lease_s=30, now=t + 11)
    assert again.attempts == 2 and again.last_error == "boom"
    assert await store.fail(again, "boom again", retry_at=None)
    failed = await store.get_job(KIND, "flaky")
    assert failed is not None and failed.state == FAILED
    assert await store.claim(KIND, "a", lease_s=30, now=t + 10_000) == []


async def test_enqueue_is_idempotent_per_kind_and_key(stores: list[JobStore]) -> None:
    store = stores[0]
    t = schema.now()
    first = await store.enqueue(KIND, "s1", run_at=t + 60)
    assert await store.enqueue(KIND, "s1", run_at=t + 5) == first  # the earlier time wins
    assert await store.enqueue("other", "s1") != first  # another kind is another job
    assert len(await store.list_jobs(KIND)) == 1
    [job] = await store.claim(KIND, "a", lease_s=30, now=t + 6)

    # Enqueued while running: once more after this run (unless the caller says a running job will do).
    await store.enqueue(KIND, "s1", rerun=False)
    assert await store.complete(job)
    assert (await store.get_job(KIND, "s1")).state == DONE  # type: ignore[union-attr]
    await store.enqueue(KIND, "s1")  # finished: queued again
    [job] = await store.claim(KIND, "a", lease_s=30)
    assert job.attempts == 1
    await store.enqueue(KIND, "s1")
    assert await store.complete(job)
    again = await store.get_job(KIND, "s1")
    assert again is not None and again.state == QUEUED
    assert len(await store.claim(KIND, "a", lease_s=30)) == 1


async def test_a_recurring_job_comes_back_at_its_next_turn(stores: list[JobStore]) -> None:
    store = stores[0]
    await store.enqueue(KIND, "sweep")
    [job] = await store.claim(KIND, "a", lease_s=30)
    t = schema.now()
    assert await store.complete(job, run_again_at=t + 100)
    assert await store.claim(KIND, "b", lease_s=30, now=t + 99) == []
    assert await store.next_run_at(KIND) == pytest.approx(t + 100)
    assert len(await store.claim(KIND, "b", lease_s=30, now=t + 101)) == 1


async def test_a_run_longer_than_its_lease_keeps_its_claim(stores: list[JobStore]) -> None:
    owner, rival = stores[:2]
    await owner.enqueue(KIND, "long")
    ran: list[str] = []
    finished = asyncio.Event()

    async def run(job: Job) -> None:
        ran.append(job.claimed_by or "")
        await asyncio.sleep(1.5)  # five leases long
        finished.set()

    worker = JobWorker(owner, KIND, run, node="owner", lease_s=0.3, poll_s=0.1)
    worker.start()
    try:
        stolen: list[Job] = []
        while not finished.is_set():
            stolen += await rival.claim(KIND, "rival", lease_s=0.3)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await worker.aclose()
    assert stolen == [] and ran == ["owner"]
    done = await rival.get_job(KIND, "long")
    assert done is not None and done.state == DONE and done.attempts == 1


async def test_a_restarted_node_takes_back_only_its_own_claims_of_one_kind(stores: list[JobStore]) -> None:
    # Each kind's worker starts on its own: the composer's start must not requeue a webhook in flight.
    store = stores[0]
    await store.enqueue("compose", "s1")
    await store.enqueue("webhook", "d1")
    await store.enqueue("compose", "s2")
    [compose] = await store.claim("compose", "node-a", lease_s=60)
    [webhook] = await store.claim("webhook", "node-a", lease_s=60)
    [other] = await stores[1].claim("compose", "node-b", lease_s=60)

    assert await store.release_claims_of("node-a", "compose") == 1

    states = {(job.kind, job.key): job.state for kind in ("compose", "webhook") for job in await store.list_jobs(kind)}
    assert states == {
        ("compose", compose.key): QUEUED,
        ("webhook", webhook.key): RUNNING,
        ("compose", other.key): RUNNING,
    }
