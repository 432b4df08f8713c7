"""One customer's join while 900 wait and 100 reps hold the queue, profiled in process (no sockets, no store).

What ``CallCenter.create_call`` and ``customer_hello`` do to the queue, with the real ``QueueBroadcast``,
``Ringing.offer_calls`` and ``Connection.send`` (sockets whose writers never run: their frames stay queued):
``queue.new`` to every rep, a change sent at once, then the hello's change (the customer now ``connected``)
sent at the end of the coalescing interval. ``--profile`` prints cProfile's top entries over the joins.

    .venv/bin/python bench/queue_join_profile.py --waiting 900 --reps 100 --joins 50 --profile

The time per join is wall time on this box (a loaded box inflates it); compare before and after on the same box.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.calls import views  # noqa: E402
from server.calls.broadcast import QueueBroadcast  # noqa: E402
from server.calls.ringing import Ringing  # noqa: E402
from server.calls.state import LiveSession, RepState, Shared  # noqa: E402
from server.calls.waits import WaitEstimates  # noqa: E402
from server.config import Settings  # noqa: E402
from server.signalling.connection import Connection  # noqa: E402
from server.storage.records import SessionRecord, User  # noqa: E402


def socket(role: str) -> Connection:
    conn = Connection(cast(Any, None), max_pending=1_000_000, remote="127.0.0.1")
    conn.role = role
    return conn


def session(n: int, now: float) -> LiveSession:
    record = SessionRecord(
        id=f"s{n:05d}",
        state="waiting",
        reason="order" if n % 3 else "complaint",
        customer_name=f"Customer {n}",
        device="desktop",
        token_expires_at=now + 3600,
        priority=0,
        rep_id=None,
        created_at=now - 900 + n,
        queued_at=now - 900 + n,
        answered_at=None,
        ended_at=None,
        ended_by=None,
        end_reason=None,
        language="en",
    )
    return LiveSession(record, identified=False)


class Harness:
    def __init__(self, waiting: int, reps: int) -> None:
        self.now = time.time()
        sessions: dict[str, LiveSession] = {}
        for n in range(waiting):
            live = session(n, self.now)
            live.conns["customer"] = socket("customer")
            sessions[live.id] = live
        rep_states: dict[int, RepState] = {}
        for n in range(reps):
            user = User(id=n + 1, username=f"rep{n}", display_name=f"Rep {n}", role="rep", active=True)
            rep = RepState(user, status="away")
            rep.conns.add(socket("rep"))
            rep_states[user.id] = rep
        self.shared = Shared(
            store=cast(Any, None),
            centre=cast(Any, type("Centre", (), {"current": Settings()})()),
            metrics=cast(Any, None),
            sessions=sessions,
            reps=rep_states,
            changed=lambda: None,
            emit=cast(Any, None),
            finish=cast(Any, None),
        )
        ringing = Ringing(self.shared, grace=cast(Any, None), wait_limits=cast(Any, None), set_status=lambda *a: None)
        self.queue = QueueBroadcast(self.shared, WaitEstimates(), ringing.offer_calls)
        self.queue.snapshot()  # the reps' copies: version 1
        self.joined = waiting

    def join(self) -> None:
        """A POST /api/v1/calls, then the customer's hello (as ``CallCenter`` does them)."""
        live = session(self.joined, self.now)
        self.joined += 1
        self.shared.sessions[live.id] = live
        new_item = views.queue_item(live)
        for rep in self.shared.reps.values():
            for conn in rep.conns:
                conn.send(views.queue_new(new_item))
        self.queue._sent_at = float("-inf")  # the last send was long ago: this one goes at once
        self.queue.changed()
        live.conns["customer"] = socket("customer")
        self.queue.send_position(live, len(self.queue.waiting()))
        self.queue.changed()  # within the interval: folded into the send at its end
        if self.queue._flush is not None:
            self.queue._flush.cancel()
            self.queue._flush_due()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=900)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--joins", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    parser.add_argument("--top", type=int, default=18)
    opts = parser.parse_args(argv)
    harness = Harness(opts.waiting, opts.reps)
    harness.join()  # warm up
    times: list[float] = []
    profile = cProfile.Profile()
    for _ in range(opts.joins):
        t0 = time.process_time()
        if opts.profile:
            profile.enable()
        harness.join()
        if opts.profile:
            profile.disable()
        times.append(1000 * (time.process_time() - t0))
    queued = sum(c._queue.qsize() for r in harness.shared.reps.values() for c in r.conns)
    clock = "process time, profiled" if opts.profile else "process time"
    print(
        f"{opts.waiting} waiting, {opts.reps} reps, {opts.joins} joins: CPU per join median "
        f"{statistics.median(times):.2f} ms, min {min(times):.2f} ms ({clock}); frames queued to reps {queued}"
    )
    if opts.profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(opts.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
