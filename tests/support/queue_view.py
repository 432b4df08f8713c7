"""A rep's copy of the queue, as the console keeps it: the last ``queue.snapshot`` with the ``queue.delta``s after
it applied (server.calls.queue_feed.apply, which console.js mirrors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.calls.queue_feed import apply
from tests.support.clients import SignalingClient

QUEUE_TYPES = ("queue.snapshot", "queue.delta")


def queue_state(inbox: list[dict[str, Any]], upto: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The copy after every queue message in ``inbox`` (up to and including ``upto``); None before a snapshot."""
    state = None
    for message in inbox:
        if message.get("type") == "queue.delta" and state is None:
            continue  # as the console: before the first snapshot (which may follow a delta at hello) there is no copy
        if message.get("type") in QUEUE_TYPES:
            state = apply(state, message)
        if message is upto:
            break
    return state


def queue_messages(inbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in inbox if m.get("type") in QUEUE_TYPES]


async def wait_queue(
    client: SignalingClient,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    after: int = 0,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The rep's copy of the queue once a queue message from index ``after`` on makes ``predicate`` true."""

    def matches(message: dict[str, Any]) -> bool:
        if message.get("type") not in QUEUE_TYPES:
            return False
        state = queue_state(client.inbox, upto=message)
        return state is not None and predicate(state)

    message = await client.wait_for(matches, timeout, after=after)
    state = queue_state(client.inbox, upto=message)
    assert state is not None
    return state
