"""The queue's deltas (server/calls/queue_feed.py): any change of the queue turns into a delta that, applied to
the copy before it, gives the new queue exactly; a delta that does not follow the copy's version is refused."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from server.calls.payloads import QueueItem, RepEntry
from server.calls.queue_feed import QueueFeed, VersionGap, apply, diff, longest_increasing


def item(n: int, *, ringing: bool = False, waited_s: int = 0) -> QueueItem:
    return QueueItem(
        session_id=f"s{n}",
        customer_name=f"C{n}",
        reason="order",
        device=None,
        priority=0,
        language=None,
        identified=False,
        ringing=ringing,
        queued_at="2026-12-06T10:00:00.000Z",
        waited_s=waited_s,
        connected=True,
    )


def wire(message: Any) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(message))
    return result


REPS = [RepEntry(id=1, display_name="Rep", status="available")]


def test_longest_increasing_run() -> None:
    assert longest_increasing([]) == set()
    assert longest_increasing([3, 1, 2, 5, 4]) in ({1, 2, 5}, {1, 2, 4})
    assert longest_increasing([5, 4, 3]) in ({5}, {4}, {3})


def test_a_join_at_the_end_sends_one_item_not_the_queue() -> None:
    feed = QueueFeed()
    feed.update([item(i) for i in range(900)], 3, REPS)
    delta = feed.update([item(i) for i in range(901)], 3, REPS)
    assert delta is not None
    assert (delta.version, delta.removed, [u.index for u in delta.upserts]) == (2, [], [900])
    assert delta.reps is msgspec.UNSET and delta.available_reps is msgspec.UNSET


def test_waited_s_alone_is_no_change_and_an_empty_change_sends_nothing() -> None:
    feed = QueueFeed()
    feed.update([item(1), item(2)], 1, REPS)
    assert feed.update([item(1, waited_s=9), item(2, waited_s=9)], 1, REPS) is None
    assert feed.version == 1


def test_a_changed_item_and_a_moved_one_are_upserts() -> None:
    removed, upserts = diff([item(1), item(2), item(3)], [item(3), item(1, ringing=True), item(2)])
    assert removed == []
    assert {u.item.session_id for u in upserts} >= {"s1"}


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_replay_exactly(seed: int) -> None:
    rng = random.Random(seed)
    feed = QueueFeed()
    copy = apply(None, wire(feed.snapshot()))
    queue = [item(i) for i in range(rng.randrange(0, 30))]
    fresh = 1000
    for _ in range(30):
        queue = [q for q in queue if rng.random() > 0.15]  # some leave
        for _ in range(rng.randrange(0, 4)):  # some join, anywhere (priorities)
            queue.insert(rng.randrange(0, len(queue) + 1), item(fresh))
            fresh += 1
        if len(queue) > 2 and rng.random() < 0.5:  # one moves
            queue.insert(rng.randrange(0, len(queue)), queue.pop(rng.randrange(0, len(queue))))
        queue = [msgspec.structs.replace(q, ringing=rng.random() < 0.1) for q in queue]
        reps = REPS if rng.random() < 0.5 else []
        delta = feed.update(list(queue), len(reps), reps)
        if delta is not None:
            copy = apply(copy, wire(delta))
        assert [i["session_id"] for i in copy["items"]] == [q.session_id for q in queue]
        assert [i["ringing"] for i in copy["items"]] == [q.ringing for q in queue]
        assert (copy["version"], copy["available_reps"], len(copy["reps"])) == (feed.version, len(reps), len(reps))


def test_hostile_versions_are_refused_for_a_resync() -> None:
    feed = QueueFeed()
    copy = apply(None, wire(feed.snapshot()))
    first = wire(feed.update([item(1)], 1, REPS))
    second = wire(feed.update([item(1), item(2)], 1, REPS))
    with pytest.raises(VersionGap):  # a gap: version 2 on a copy at 0
        apply(copy, second)
    copy = apply(copy, first)
    with pytest.raises(VersionGap):  # seen already
        apply(copy, first)
    with pytest.raises(VersionGap):  # a delta before any snapshot
        apply(None, first)
    with pytest.raises(VersionGap):  # an index past the end
        apply(copy, {**second, "upserts": [{"index": 5, "item": wire(item(2))}]})
    # A resync (a snapshot) puts the copy right whatever came before.
    copy = apply({"version": 99, "items": [], "available_reps": 0, "reps": []}, wire(feed.snapshot()))
    assert [i["session_id"] for i in copy["items"]] == ["s1", "s2"] and copy["version"] == 2
    with pytest.raises(ValueError):
        diff([], [item(1), item(1)])
