"""Where a call's live state lives: the waiting or active session, the rep at their desk, the ringing offer.

The database holds the record; these hold what only this process knows (sockets, media, timers).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Settings
from ..media.call import CallMedia
from ..media.pool import RemoteCallMedia, RemoteRecording
from ..metrics import Metrics
from ..recording.recorder import CallRecording
from ..storage.records import CustomerVisit, SessionRecord, User
from ..storage.store import Store
from .centre_settings import CentreSettings
from .cues import CueRelay
from .participant import Participant, TokenBucket
from .payloads import ServerMessage


@dataclass
class Offer:
    """A waiting call ringing at one rep until they answer, decline, or it rings out."""

    rep_id: int
    timer: asyncio.Task[None]
    transfer: bool = False


@dataclass
class Assist:
    """A supervisor in a call: how they take part, and since when."""

    supervisor: User
    conn: Participant | None
    mode: str
    since: float = field(default_factory=time.time)
    # They took the call over: the rep left, and the call is theirs to end.
    handler: bool = False


@dataclass
class LiveSession:
    record: SessionRecord
    conns: dict[str, Participant | None] = field(default_factory=lambda: {"customer": None, "rep": None})
    rep: User | None = None
    media: CallMedia | RemoteCallMedia | None = None
    grace: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # When each running grace ends (epoch seconds).
    grace_until: dict[str, float] = field(default_factory=dict)
    media_flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    cues: CueRelay | None = None
    recording: CallRecording | RemoteRecording | None = None
    recording_note: str | None = None
    # Came through a signed invite: the identity is the calling system's, not typed by the customer.
    identified: bool = False
    history: list[CustomerVisit] = field(default_factory=list)
    offer: Offer | None = None
    # Reps who said no to this call: it is not offered to them again.
    declined: set[int] = field(default_factory=set)
    # The rep who started the callback this call is: it rings at them first, when they are free.
    preferred_rep: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The client address that queued the call (None after a restart): caps waiting calls per address.
    address: str | None = None
    # Ends the call when it has waited ``max_wait_s``.
    wait_limit: asyncio.Task[None] | None = None
    # Chat lines stored so far (None until counted): the customer's lines are numbered by it.
    chat_count: int | None = None
    chat_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    chat_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    # When each participant's recent offers came (monotonic), for ``offers_per_minute``.
    offer_times: dict[str, deque[float]] = field(default_factory=dict)
    # A supervisor listening, whispering or in the call; when the rep asked for help (epoch seconds).
    assist: Assist | None = None
    help_since: float | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state

    def send_to_customer(self, message: ServerMessage) -> None:
        """Every customer-bound message passes here, built by a ``views.customer_*`` function."""
        conn = self.conns.get("customer")
        if conn is not None:
            conn.send(message)

    def send_to_rep(self, messages: Sequence[ServerMessage]) -> None:
        conn = self.conns.get("rep")
        if conn is not None:
            for message in messages:
                conn.send(message)


@dataclass
class RepState:
    user: User
    status: str = "away"
    conns: set[Participant] = field(default_factory=set)
    session_id: str | None = None
    idle_since: float = field(default_factory=time.monotonic)
    # The call waiting for this rep's disposition: no new call until it is saved.
    wrap_up: str | None = None
    # Routing: reasons and languages this rep takes; empty means any.
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    offer: str | None = None


@dataclass
class LiveView:
    """What a cluster's new leader reads back from Redis to go on where the last one stopped."""

    # "<session id>:<role>" -> when that participant's reconnect grace ends (epoch seconds).
    grace_until: dict[str, float] = field(default_factory=dict)
    rep_status: dict[int, str] = field(default_factory=dict)

    def grace_left(self, session_id: str, role: str) -> float | None:
        until = self.grace_until.get(f"{session_id}:{role}")
        return None if until is None else until - time.time()


class Finish(Protocol):
    """Ends a call for good (``Teardown.finish``): what a timer or a lost worker calls."""

    def __call__(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Shared:
    """What every part of the call centre works over: its services, the live calls and reps, and its callbacks.

    ``CallCenter`` builds one and hands it to each part; the callbacks point back at the façade, which
    passes them on to the part that does the work.
    """

    store: Store
    # The centre's settings as they are now (an admin may change some on /admin): read ``settings`` each time.
    centre: CentreSettings
    metrics: Metrics
    sessions: dict[str, LiveSession]
    reps: dict[int, RepState]
    # The queue changed: ring at once, then tell reps and waiting customers (coalesced).
    changed: Callable[[], None]
    # An event for listeners such as webhooks ("session.ended", "emotion.flag", ...).
    emit: Callable[[str, dict[str, Any]], Awaitable[None]]
    finish: Finish

    @property
    def settings(self) -> Settings:
        return self.centre.current
