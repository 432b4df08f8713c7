"""A callback's call rings first at the rep who started it, ahead of calls that waited longer."""

from __future__ import annotations

from tests.unit.test_routing_rules import call, pairs, rep


def test_a_callback_rings_at_the_rep_who_started_it() -> None:
    early = call("s1", queued_at=1.0)
    callback = call("s2", queued_at=5.0, reason="order")
    callback.preferred_rep = 2
    # Rep 1 has been idle longest and rep 2 takes no "order" calls: the callback still goes to rep 2.
    assert pairs([early, callback], [rep(1, idle_since=0.0), rep(2, idle_since=9.0, skills={"complaint"})]) == [
        ("s2", 2),
        ("s1", 1),
    ]


def test_when_that_rep_is_busy_or_declined_it_goes_to_anyone() -> None:
    callback = call("s2", queued_at=5.0)
    callback.preferred_rep = 2
    assert pairs([callback], [rep(1), rep(2, status="away")]) == [("s2", 1)]
    callback.declined.add(2)
    assert pairs([callback], [rep(1, idle_since=5.0), rep(2)]) == [("s2", 1)]
