"""The routing rules alone: who may ring, who takes which call, the queue's order and who rings next.

``server.calls.routing`` is pure, so every case is built from plain live state: no server, no sockets, no loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.calls import routing
from server.calls.state import LiveSession, Offer, RepState
from server.storage.records import SessionRecord, User

REASONS = ["order", "complaint", "other"]
LANGS = ["en", "nl", "cs"]


class Socket:
    """A connected participant as the call centre sees one; routing only asks whether there is one."""

    def __init__(self) -> None:
        self.role: str | None = None
        self.user: User | None = None
        self.session_id: str | None = None
        self.login_id: str | None = None

    def send(self, message: Any) -> None:
        pass

    def close(self, code: int, reason: str = "") -> None:
        pass


def call(
    session_id: str,
    *,
    priority: int = 0,
    queued_at: float = 0.0,
    reason: str | None = None,
    language: str | None = None,
    state: str = "waiting",
    connected: bool = True,
) -> LiveSession:
    record = SessionRecord(
        id=session_id,
        state=state,
        reason=reason,
        customer_name=None,
        device=None,
        token_expires_at=0.0,
        priority=priority,
        rep_id=None,
        created_at=queued_at,
        queued_at=queued_at,
        answered_at=None,
        ended_at=None,
        ended_by=None,
        end_reason=None,
        language=language,
    )
    live = LiveSession(record)
    if connected:
        live.conns["customer"] = Socket()
    return live


def rep(
    rep_id: int,
    *,
    idle_since: float = 0.0,
    skills: set[str] | None = None,
    languages: set[str] | None = None,
    status: str = "available",
    connected: bool = True,
) -> RepState:
    state = RepState(
        User(rep_id, f"rep{rep_id}", f"Rep {rep_id}", "rep", True),
        status=status,
        idle_since=idle_since,
        skills=frozenset(skills or ()),
        languages=frozenset(languages or ()),
    )
    if connected:
        state.conns.add(Socket())
    return state


def ringing(live: LiveSession, rep_id: int) -> None:
    # Routing never touches the timer, only whether an offer is out.
    live.offer = Offer(rep_id, cast(asyncio.Task[None], object()))


def pairs(waiting: list[LiveSession], reps: list[RepState]) -> list[tuple[str, int]]:
    ordered = routing.waiting_order(waiting)
    return [(live.id, r.user.id) for live, r in routing.next_offers(ordered, reps)]


# who may ring


def test_an_available_connected_free_rep_may_ring() -> None:
    assert routing.can_ring(rep(1))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "away"},
        {"status": "busy"},
        {"status": "wrap_up"},
        {"conns": set()},
        {"session_id": "s_in_call"},
        {"wrap_up": "s_needs_disposition"},
        {"offer": "s_ringing_already"},
    ],
)
def test_a_rep_who_is_away_offline_in_a_call_wrapping_up_or_ringing_may_not_ring(change: dict[str, Any]) -> None:
    r = rep(1)
    for name, value in change.items():
        setattr(r, name, value)
    assert not routing.can_ring(r)


# which calls a rep takes


def test_a_rep_without_skills_or_languages_takes_any_call() -> None:
    assert routing.matches(rep(1), call("s", reason="complaint", language="cs").record)


def test_a_call_without_reason_or_language_goes_to_a_specialist_too() -> None:
    assert routing.matches(rep(1, skills={"order"}, languages={"nl"}), call("s").record)


def test_a_skill_mismatch_is_no_match_even_when_the_language_fits() -> None:
    assert not routing.matches(
        rep(1, skills={"order"}, languages={"en"}), call("s", reason="complaint", language="en").record
    )


def test_a_language_mismatch_is_no_match_even_when_the_skill_fits() -> None:
    assert not routing.matches(
        rep(1, skills={"order"}, languages={"nl"}), call("s", reason="order", language="en").record
    )


# the queue's order


def test_the_queue_is_priority_first_then_the_longest_waiting() -> None:
    calls = [call("late", queued_at=30.0), call("early", queued_at=10.0), call("urgent", priority=5, queued_at=50.0)]
    assert [live.id for live in routing.waiting_order(calls)] == ["urgent", "early", "late"]


def test_only_waiting_calls_are_in_the_queue() -> None:
    calls = [call("live", state="active"), call("gone", state="abandoned"), call("waits")]
    assert [live.id for live in routing.waiting_order(calls)] == ["waits"]


def test_calls_that_tie_on_priority_and_time_keep_their_arrival_order() -> None:
    calls = [call(f"s{i}", priority=1, queued_at=7.0) for i in (3, 1, 2)]
    assert [live.id for live in routing.waiting_order(calls)] == ["s3", "s1", "s2"]


def test_positions_count_from_one_in_queue_order() -> None:
    ordered = routing.waiting_order([call("b", queued_at=2.0), call("a", queued_at=1.0)])
    assert routing.positions(ordered) == {"a": 1, "b": 2}
    assert routing.positions([]) == {}


def test_only_available_connected_reps_count_as_available() -> None:
    reps = [rep(1), rep(2, status="away"), rep(3, connected=False), rep(4, status="busy"), rep(5)]
    assert routing.available_reps(reps) == 2
    assert routing.available_reps([]) == 0


# who rings next


def test_nothing_rings_without_reps_or_without_calls() -> None:
    assert pairs([call("s")], []) == []
    assert pairs([], [rep(1)]) == []


def test_nothing_rings_when_every_rep_is_busy() -> None:
    in_call, wrapping, ringing_rep, away = rep(1), rep(2), rep(3), rep(4, status="away")
    in_call.session_id = "s_other"
    wrapping.wrap_up = "s_done"
    ringing_rep.offer = "s_elsewhere"
    assert pairs([call("s")], [in_call, wrapping, ringing_rep, away, rep(5, connected=False)]) == []


def test_a_call_no_free_rep_matches_waits_and_does_not_block_the_next_one() -> None:
    calls = [call("complaint", reason="complaint", queued_at=1.0), call("order", reason="order", queued_at=2.0)]
    assert pairs(calls, [rep(1, skills={"order"})]) == [("order", 1)]


def test_a_call_in_a_language_no_free_rep_speaks_waits() -> None:
    assert pairs([call("s", language="cs")], [rep(1, languages={"en"}), rep(2, languages={"nl"})]) == []


def test_the_longest_idle_matching_rep_rings() -> None:
    reps = [rep(1, idle_since=30.0), rep(2, idle_since=10.0), rep(3, idle_since=5.0, skills={"other"})]
    assert pairs([call("s", reason="order")], reps) == [("s", 2)]


def test_reps_idle_equally_long_go_in_the_order_they_came() -> None:
    assert pairs([call("s")], [rep(7, idle_since=4.0), rep(3, idle_since=4.0)]) == [("s", 7)]


def test_each_rep_rings_for_one_call_and_the_queue_order_decides_who_gets_whom() -> None:
    calls = [call("second", queued_at=2.0), call("first", queued_at=1.0), call("third", queued_at=3.0)]
    reps = [rep(1, idle_since=20.0), rep(2, idle_since=10.0)]
    assert pairs(calls, reps) == [("first", 2), ("second", 1)]


def test_a_priority_call_rings_before_an_earlier_normal_one() -> None:
    calls = [call("normal", queued_at=1.0), call("urgent", priority=1, queued_at=9.0)]
    assert pairs(calls, [rep(1)]) == [("urgent", 1)]


def test_a_rep_who_declined_a_call_is_not_offered_it_again() -> None:
    live = call("s")
    live.declined.add(1)
    assert pairs([live], [rep(1, idle_since=0.0), rep(2, idle_since=50.0)]) == [("s", 2)]
    assert pairs([live], [rep(1)]) == []


def test_a_call_already_ringing_or_without_its_customer_does_not_ring_again() -> None:
    rung, absent = call("rung", queued_at=1.0), call("absent", queued_at=2.0, connected=False)
    ringing(rung, 9)
    assert pairs([rung, absent, call("next", queued_at=3.0)], [rep(1)]) == [("next", 1)]


def test_choosing_who_rings_changes_nothing() -> None:
    live, r = call("s"), rep(1)
    assert pairs([live], [r]) == [("s", 1)]
    assert live.offer is None and r.offer is None and routing.can_ring(r)


@given(
    calls=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 5),
            st.none() | st.sampled_from(REASONS),
            st.none() | st.sampled_from(LANGS),
            st.booleans(),
        ),
        max_size=8,
    ),
    reps=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.frozensets(st.sampled_from(REASONS)),
            st.frozensets(st.sampled_from(LANGS)),
            st.sampled_from(["available", "away"]),
        ),
        max_size=6,
    ),
    declined=st.sets(st.tuples(st.integers(0, 7), st.integers(0, 5))),
)
def test_every_offer_pairs_a_free_matching_rep_with_one_waiting_call_once(
    calls: list[tuple[int, int, str | None, str | None, bool]],
    reps: list[tuple[int, frozenset[str], frozenset[str], str]],
    declined: set[tuple[int, int]],
) -> None:
    lives = [
        call(f"s{i}", priority=p, queued_at=float(q), reason=reason, language=lang, connected=connected)
        for i, (p, q, reason, lang, connected) in enumerate(calls)
    ]
    for i, rep_id in declined:
        if i < len(lives):
            lives[i].declined.add(rep_id)
    states = [
        rep(i, idle_since=float(idle), skills=set(skills), languages=set(langs), status=status)
        for i, (idle, skills, langs, status) in enumerate(reps)
    ]
    offers = routing.next_offers(routing.waiting_order(lives), states)
    assert len({live.id for live, _ in offers}) == len(offers)
    assert len({r.user.id for _, r in offers}) == len(offers)
    for live, r in offers:
        assert routing.can_ring(r) and routing.matches(r, live.record) and r.user.id not in live.declined
        assert live.conns["customer"] is not None
        # Nobody idle longer who could have taken this call was left free.
        taken = {other.user.id for _, other in offers}
        for other in states:
            if other.user.id not in taken and routing.can_ring(other) and other.user.id not in live.declined:
                assert not (routing.matches(other, live.record) and other.idle_since < r.idle_since)
    # A call left waiting had no free, matching, willing rep.
    offered = {live.id for live, _ in offers}
    free_left = [r for r in states if routing.can_ring(r) and r.user.id not in {o.user.id for _, o in offers}]
    for live in routing.waiting_order(lives):
        if live.id not in offered and live.conns["customer"] is not None:
            assert not [r for r in free_left if r.user.id not in live.declined and routing.matches(r, live.record)]
