"""The queue as reps hold it: a version, a full copy on connect, and deltas after that.

``QueueFeed`` keeps the last queue it sent and turns each new one into a ``queue.delta``: the calls that left,
and the calls that joined, changed or moved with their new places, so a join while 900 wait costs each rep one
item, not 900. ``apply`` is the reference for a client's side (web_client/js/console.js does the same): a delta
applies only to the version before it; anything else is a ``VersionGap``, and the client asks for ``queue.resync``.

How a delta is made: the calls still waiting and unchanged (``waited_s`` aside, which a client counts on from
``queued_at``) that keep their relative order are left where they are: the longest run of them in increasing new
place (a longest increasing subsequence). Every other call in the new queue is an upsert with its index; taking the
removed and upserted calls out and inserting the upserts in ascending index gives the new queue exactly.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

import msgspec

from .payloads import QueueDelta, QueueItem, QueuePlace, QueueSnapshot, RepEntry


def _same(a: QueueItem, b: QueueItem) -> bool:
    """Equal but for ``waited_s`` (which grows every second)."""
    return msgspec.structs.replace(a, waited_s=b.waited_s) == b


def longest_increasing(values: Sequence[int]) -> set[int]:
    """The values of one longest strictly increasing subsequence (O(n log n))."""
    tails: list[int] = []  # tails[k]: index into values of the smallest tail of a run of length k + 1
    tail_values: list[int] = []
    back: list[int] = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tail_values, value)
        back[i] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(i)
            tail_values.append(value)
        else:
            tails[k], tail_values[k] = i, value
    kept: set[int] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        kept.add(values[i])
        i = back[i]
    return kept


def diff(old: Sequence[QueueItem], new: Sequence[QueueItem]) -> tuple[list[str], list[QueuePlace]]:
    """(removed session ids, upserts) that turn ``old`` into ``new`` (see the module)."""
    place = {item.session_id: k for k, item in enumerate(new)}
    if len(place) != len(new):
        raise ValueError("a session id twice in the queue")
    removed = [item.session_id for item in old if item.session_id not in place]
    # Places in the new queue of the calls still there and unchanged, in their old order.
    unchanged = [place[item.session_id] for item in old if item.session_id in place]
    unchanged = [
        k for k, item in zip(unchanged, (i for i in old if i.session_id in place), strict=True) if _same(item, new[k])
    ]
    # A join or a leave keeps the rest in order: then all of them stay (the longest run is the whole list).
    in_order = all(a < b for a, b in itertools.pairwise(unchanged))
    kept = set(unchanged) if in_order else longest_increasing(unchanged)
    return removed, [QueuePlace(index=k, item=item) for k, item in enumerate(new) if k not in kept]


class QueueFeed:
    """The last queue sent to reps and its version; ``update`` makes the delta to the next one."""

    def __init__(self) -> None:
        self.version = 0
        self.items: list[QueueItem] = []
        self.available_reps = 0
        self.reps: list[RepEntry] = []

    def snapshot(self) -> QueueSnapshot:
        return QueueSnapshot(
            version=self.version, items=list(self.items), available_reps=self.available_reps, reps=list(self.reps)
        )

    def update(self, items: list[QueueItem], available_reps: int, reps: list[RepEntry]) -> QueueDelta | None:
        """The delta from the last version to this queue, or None when nothing a rep sees changed."""
        removed, upserts = diff(self.items, items)
        delta = QueueDelta(version=self.version + 1, removed=removed, upserts=upserts)
        if available_reps != self.available_reps:
            delta.available_reps = available_reps
        if reps != self.reps:
            delta.reps = reps
        self.items, self.available_reps, self.reps = items, available_reps, reps
        if not (removed or upserts) and delta.available_reps is msgspec.UNSET and delta.reps is msgspec.UNSET:
            return None
        self.version += 1
        return delta


class VersionGap(ValueError):
    """A delta that does not follow the copy's version: the copy is stale, ask for ``queue.resync``."""


def apply(state: dict[str, Any] | None, message: dict[str, Any]) -> dict[str, Any]:
    """A client's copy of the queue after ``message`` (a ``queue.snapshot`` or ``queue.delta`` as JSON)."""
    if message["type"] == "queue.snapshot":
        return {k: message[k] for k in ("version", "items", "available_reps", "reps")}
    if message["type"] != "queue.delta":
        raise ValueError(f"not a queue message: {message['type']!r}")
    if state is None or message["version"] != state["version"] + 1:
        have = None if state is None else state["version"]
        raise VersionGap(f"delta {message['version']} does not follow version {have}")
    gone = set(message["removed"]) | {u["item"]["session_id"] for u in message["upserts"]}
    items = [item for item in state["items"] if item["session_id"] not in gone]
    for upsert in sorted(message["upserts"], key=lambda u: u["index"]):
        if not 0 <= upsert["index"] <= len(items):
            raise VersionGap(f"upsert at {upsert['index']} in a queue of {len(items)}")
        items.insert(upsert["index"], upsert["item"])
    return {
        "version": message["version"],
        "items": items,
        "available_reps": message.get("available_reps", state["available_reps"]),
        "reps": message.get("reps", state["reps"]),
    }
