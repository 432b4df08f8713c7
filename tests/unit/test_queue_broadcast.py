"""QueueBroadcast's send: one delta, encoded once, to every rep's socket; a waiting customer's place and estimate
with the free reps counted once a send (server/calls/broadcast.py)."""

from __future__ import annotations

import time
from typing import Any, cast

import msgspec

from server.calls.broadcast import QueueBroadcast
from server.calls.payloads import QueueDelta, QueuePosition, ServerMessage
from server.calls.state import LiveSession, RepState, Shared
from server.calls.waits import WaitEstimates
from server.config import Settings
from server.storage.records import SessionRecord, User


class Socket:
    """A participant's socket that keeps what it was given, and how."""

    def __init__(self, role: str) -> None:
        self.role: str | None = role
        self.user: User | None = None
        self.session_id: str | None = None
        self.login_id: str | None = None
        self.sent: list[ServerMessage] = []
        self.frames: list[tuple[ServerMessage, bytes]] = []

    def send(self, message: ServerMessage) -> None:
        self.sent.append(message)

    def send_encoded(self, message: ServerMessage, frame: bytes) -> None:
        self.frames.append((message, frame))

    def close(self, code: int, reason: str = "") -> None:
        pass


def waiting(n: int, now: float) -> LiveSession:
    record = SessionRecord(
        id=f"s{n}",
        state="waiting",
        reason="order",
        customer_name=f"C{n}",
        device=None,
        token_expires_at=now + 60,
        priority=0,
        rep_id=None,
        created_at=now + n,
        queued_at=now + n,
        answered_at=None,
        ended_at=None,
        ended_by=None,
        end_reason=None,
        language=None,
    )
    live = LiveSession(record)
    live.conns["customer"] = cast(Any, Socket("customer"))
    return live


def centre(calls: int, reps: int, *, available: int = 0) -> tuple[Shared, QueueBroadcast]:
    now = time.time()
    sessions = {live.id: live for live in (waiting(n, now) for n in range(calls))}
    states = {}
    for n in range(reps):
        user = User(id=n + 1, username=f"rep{n}", display_name=f"Rep {n}", role="rep", active=True)
        state = RepState(user, status="available" if n < available else "away")
        state.conns.add(cast(Any, Socket("rep")))
        states[user.id] = state
    shared = Shared(
        store=cast(Any, None),
        centre=cast(Any, type("Centre", (), {"current": Settings()})()),
        metrics=cast(Any, None),
        sessions=sessions,
        reps=states,
        changed=lambda: None,
        emit=cast(Any, None),
        finish=cast(Any, None),
    )
    return shared, QueueBroadcast(shared, WaitEstimates(), lambda: None)


def sockets(shared: Shared) -> list[Socket]:
    return [cast(Socket, conn) for rep in shared.reps.values() for conn in rep.conns]


async def test_a_join_is_one_delta_encoded_once_for_every_rep() -> None:
    shared, queue = centre(calls=5, reps=4)
    queue.snapshot()
    for socket in sockets(shared):
        socket.frames.clear()  # the first copy's version went out
    joined = waiting(5, time.time())
    shared.sessions[joined.id] = joined
    queue.changed()
    frames = [s.frames for s in sockets(shared)]
    assert all(len(f) == 1 for f in frames), frames
    messages = {id(f[0][0]) for f in frames}
    encoded = {id(f[0][1]) for f in frames}
    assert len(messages) == 1 and len(encoded) == 1, "one delta, one encoding, the same bytes to every rep"
    delta, frame = frames[0][0]
    assert isinstance(delta, QueueDelta)
    assert frame == msgspec.json.encode(delta)
    assert [u.item.session_id for u in delta.upserts] == ["s5"] and delta.upserts[0].index == 5
    assert all(not s.sent for s in sockets(shared)), "nothing encoded a socket at a time"


async def test_customers_hear_their_place_and_the_estimate_for_the_free_reps() -> None:
    shared, queue = centre(calls=3, reps=4, available=2)
    queue.changed()
    told = [cast(Socket, shared.sessions[f"s{n}"].conns["customer"]).sent for n in range(3)]
    assert [[type(m) for m in t] for t in told] == [[QueuePosition]] * 3
    places = [cast(QueuePosition, t[0]) for t in told]
    assert [p.position for p in places] == [1, 2, 3]
    assert [p.estimated_wait_s for p in places] == [queue.waits.estimate(k, "order", 2) for k in (1, 2, 3)]
