"""Jobs across nodes (issue 12): three nodes on one PostgreSQL race for a composition and webhook deliveries, and
each is done exactly once, with no job left claimed.

The nodes are real ``rapport serve`` processes, each on its own loopback address, sharing the database and one
recordings folder (as they would share an NFS mount). The work is queued before they start, due far ahead; once
all three run, it is made due a few seconds on, longer than their poll interval, so every node has seen it by
then and wakes for it at the same moment: a race between nodes, not a queue worked by whichever polled first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from server.jobs import POLL_S
from server.recording.composer import COMPOSE_JOB, Composer, composed_path
from server.storage import schema
from server.storage.jobs import DONE, JobStore
from server.storage.migrations import migrate
from server.storage.records import NewCall
from server.storage.store import Store
from server.storage.webhooks import WEBHOOK_JOB
from server.webhooks.dispatcher import WebhookDispatcher
from server.webhooks.signing import verify
from tests.support.postgres import PostgresCluster
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.webrtc]  # needs the private network namespace: the nodes bind 127.0.0.11-13

NODES = {"jobs-a": "127.0.0.11", "jobs-b": "127.0.0.12", "jobs-c": "127.0.0.13"}
EVENTS = 12
RACE_IN_S = POLL_S + 1.0
DONE_WITHIN_S = 120.0


class Receiver:
    """A webhook receiver on loopback that keeps every request it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, object], bool]] = []
        self.secret = ""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((json.loads(body), verify(self.secret, request.headers.get("Rapport-Signature"), body)))
        return web.Response(status=204)

    def ids_of(self, event: str) -> list[str]:
        return [str(payload["id"]) for payload, _signed in self.received if payload["type"] == event]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.server.start_server()
    yield made
    await made.server.close()


def write_tone(path: Path, seconds: float = 2.0) -> None:
    """An Opus track like the recorder's (Matroska, 48 kHz stereo, 20 ms frames): the call's one recording."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout = "stereo"
        for i in range(round(seconds * 50)):
            t = (np.arange(960) + i * 960) / 48_000
            mono = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[None, :], format="s16", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48_000, i * 960, Fraction(1, 48_000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def test_three_nodes_compose_once_and_deliver_each_webhook_once(
    postgres: PostgresCluster, receiver: Receiver, tmp_path: Path
) -> None:
    database_url = postgres.create_database()
    recordings = tmp_path / "recordings"
    engine = schema.create_engine(database_url)
    try:
        # Migrated once here: the nodes then start on a database that is up to date.
        await migrate(engine)
        store, jobs = Store(engine), JobStore(engine)

        # A finished call with one recorded track, and its QA file queued (as the call centre queues it).
        session, _token = await store.create_session(NewCall(reason="other", customer_name="Ada"), token_ttl_s=60)
        await store.finish_session(session.id, state="ended", ended_by="rep", reason="resolved")
        (recordings / session.id).mkdir(parents=True)
        write_tone(recordings / session.id / "customer-audio.mka")
        await store.add_recording(session.id, "customer", "audio", f"{session.id}/customer-audio.mka", state="complete")
        assert await Composer(store, recordings).enqueue(session.id) is not None  # never started: it only queues

        # Webhook deliveries to a receiver on loopback, queued the way every node queues them.
        dispatcher = WebhookDispatcher(engine, allowed_hosts=("127.0.0.1",))  # never started either
        endpoint, receiver.secret = await dispatcher.create_endpoint(
            str(receiver.server.make_url("/hook")), ("session.ended", "recording.ready")
        )
        for n in range(EVENTS):
            assert await dispatcher.emit("session.ended", {"session": {"session_id": session.id}, "n": n}) == 1
        emitted = [d["event_id"] for d in await dispatcher.list_deliveries(endpoint.id, EVENTS)]

        async with engine.begin() as conn:
            await conn.execute(update(schema.jobs).values(run_at=schema.now() + 3600))
        env = {
            "RAPPORT_DATABASE_URL": database_url,
            "RAPPORT_RECORDINGS_DIR": str(recordings),
            "RAPPORT_COMPOSE_RECORDINGS": "true",
            "RAPPORT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "RAPPORT_EMOTION_CUES": "false",
            "RAPPORT_MEDIA_WORKERS": "0",
        }
        nodes = []
        for name, host in NODES.items():
            (tmp_path / name).mkdir()
            nodes.append(ServeProcess(tmp_path / name, env={**env, "RAPPORT_NODE_ID": name}, host=host))
        try:
            await asyncio.gather(*(node.start() for node in nodes))
            # Due together, after every node's next poll: all three wake for the same jobs at the same moment.
            async with engine.begin() as conn:
                await conn.execute(update(schema.jobs).values(run_at=schema.now() + RACE_IN_S))

            deadline = time.monotonic() + RACE_IN_S + DONE_WITHIN_S
            while time.monotonic() < deadline:
                states = {job.state for kind in (COMPOSE_JOB, WEBHOOK_JOB) for job in await jobs.list_jobs(kind)}
                if states == {DONE} and receiver.ids_of("recording.ready"):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(2.0)  # long enough for a second copy of anything to arrive
        finally:
            for node in nodes:
                node.stop()
        logs = "\n".join(node.log for node in nodes)

        # Each delivery reached the receiver exactly once, signed.
        assert all(signed for _payload, signed in receiver.received)
        sent = Counter(receiver.ids_of("session.ended"))
        assert {event_id: n for event_id, n in sent.items() if n != 1} == {}, "delivered more than once"
        assert sorted(sent) == sorted(emitted)
        [ready] = [payload for payload, _signed in receiver.received if payload["type"] == "recording.ready"]

        # The QA file was composed once, by one node, and is complete in the shared folder.
        compose = await jobs.list_jobs(COMPOSE_JOB)
        assert [(job.state, job.attempts) for job in compose] == [(DONE, 1)]
        assert logs.count(f"QA file of {session.id} ready") == 1, logs
        [composed] = [r for r in await store.list_recordings(session.id) if r.participant == "both"]
        assert composed.state == "complete" and ready["data"]["recording_id"] == composed.id  # type: ignore[index]
        assert (recordings / composed_path(session.id)).stat().st_size == composed.size

        # Every job ran once and none is left claimed; the nodes did compete for them.
        webhook_jobs = await jobs.list_jobs(WEBHOOK_JOB)
        assert len(webhook_jobs) == EVENTS + 1
        assert {(job.state, job.attempts) for job in webhook_jobs} == {(DONE, 1)}
        claimers = Counter(job.claimed_by for job in webhook_jobs + compose)
        assert len(claimers) >= 2, f"one node ran everything: no race happened ({claimers})"
        deliveries = await dispatcher.list_deliveries(endpoint.id, EVENTS + 1)
        assert {(d["state"], d["attempts"]) for d in deliveries} == {("delivered", 1)}
    finally:
        await engine.dispose()
