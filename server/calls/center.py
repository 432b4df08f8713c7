"""CallCenter: the live queue, reps, and the life of each support session.

The database is the source of truth for session state; this module keeps the
live parts (sockets, media, timers) and tells everyone what changed.

Over 500 lines because queue order, matching, ringing, transfer, waits, reconnect grace, media start and
teardown are still one class; issue 11 splits it behind a façade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from emotion import EmotionService

from ..config import Settings
from ..media.call import CallMedia, MediaClosed, other
from ..media.peers import BadOffer
from ..media.pool import MediaWorkerPool, RemoteCallMedia, RemoteRecording, WorkerGone
from ..metrics import Metrics
from ..recording.recorder import CallRecording, free_mb, reconcile
from ..storage.store import SessionRecord, Store, User
from . import views
from .cues import OFF_BY_CUSTOMER, CallCues, EventSink, unavailable_status
from .errors import ProtocolError
from .participant import Participant, TokenBucket

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 60.0
FULL_MESSAGE = "All lines are busy right now. Please try again in a few minutes."
# Calls one core carries at 30 fps, measured with bench/calls/ (README): the default capacity model.
CALLS_PER_CORE = {"forward": 3, "transcode": 1}


class AtCapacity(Exception):
    """The server carries as many calls as it can; new ones are refused, not degraded."""


class QueueFull(AtCapacity):
    """As many customers wait as the server keeps waiting (``max_waiting_calls``)."""


class TooManyWaiting(Exception):
    """This client address already has ``max_waiting_per_address`` calls waiting."""


QUEUE_FULL_MESSAGE = "Too many people are waiting right now. Please try again in a few minutes."
TOO_MANY_WAITING_MESSAGE = "Calls from this address are already waiting. Use the page where you started one."

QUEUE_TICK_S = 10.0


@dataclass
class Offer:
    """A waiting call ringing at one rep until they answer, decline, or it rings out."""

    rep_id: int
    timer: asyncio.Task[None]
    transfer: bool = False


@dataclass
class LiveSession:
    record: SessionRecord
    conns: dict[str, Participant | None] = field(default_factory=lambda: {"customer": None, "rep": None})
    rep: User | None = None
    media: CallMedia | RemoteCallMedia | None = None
    grace: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    media_flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    cues: CallCues | None = None
    recording: CallRecording | RemoteRecording | None = None
    recording_note: str | None = None
    # Came through a signed invite: the identity is the calling system's, not typed by the customer.
    identified: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    offer: Offer | None = None
    # Reps who said no to this call: it is not offered to them again.
    declined: set[int] = field(default_factory=set)
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

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state


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


class CallCenter:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        emotion: EmotionService | None = None,
        emotion_unavailable: str = "emotion cues are turned off on this server",
        on_recorded: Callable[[str], Awaitable[object]] | None = None,
        on_event: EventSink | None = None,
        metrics: Metrics | None = None,
        pool: MediaWorkerPool | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.metrics = metrics or Metrics()
        self.metrics.watch(self, settings.media_path)
        self.on_recorded = on_recorded
        self.on_event = on_event
        self.settings = settings
        self.emotion = emotion
        self.emotion_unavailable = emotion_unavailable
        self.sessions: dict[str, LiveSession] = {}
        self.reps: dict[int, RepState] = {}
        self._wait_ewma: float | None = None
        self._wait_by_reason: dict[str, float] = {}
        self._tick: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self._closing = False
        # Calls being created (between the cap check and the queue), in all and per address.
        self._joining: dict[str, int] = {}
        self._joining_total = 0
        # The coalesced queue broadcast: when it last went out, and the one waiting to go.
        self._queue_sent_at = float("-inf")
        self._queue_flush: asyncio.TimerHandle | None = None

    # lifecycle

    async def start(self) -> list[str]:
        interrupted = await self.store.interrupt_active_sessions()
        await reconcile(self.store, self.settings.recordings_path)
        if interrupted:
            log.warning("marked %d call(s) interrupted by the last shutdown", len(interrupted))
        waits = await self.store.recent_waits()
        for reason, wait in reversed(waits):
            self._observe_wait(wait, reason)
        for record in await self.store.waiting_sessions():
            live = LiveSession(record)
            self.sessions[record.id] = live
            # Waiting customers keep their place if they come back in time.
            self._start_grace(live, "customer")
            self._start_wait_limit(live, record.queued_at + self.settings.max_wait_s - time.time())
        self._tick = asyncio.create_task(self._queue_ticker(), name="queue-ticker")
        return interrupted

    async def aclose(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=10)
        self._closing = True
        if self._queue_flush is not None:
            self._queue_flush.cancel()
            self._queue_flush = None
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        # All calls at once: a vanished client's pc.close() can take its full 5 s timeout.
        await asyncio.gather(*(self._shut(live) for live in list(self.sessions.values())), return_exceptions=True)
        self.sessions.clear()

    async def _shut(self, live: LiveSession) -> None:
        for task in live.grace.values():
            task.cancel()
        self._cancel_wait_limit(live)
        if live.state == "active":
            await self.store.finish_session(live.id, state="interrupted", ended_by="system", reason="server_shutdown")
        if live.cues is not None:
            await live.cues.aclose()
        if live.recording is not None:
            await live.recording.stop()
        if live.media is not None:
            await live.media.aclose()

    # customers

    async def create_call(
        self,
        *,
        reason: str | None,
        customer_name: str | None,
        device: str | None,
        priority: int = 0,
        emotion_consent: bool | None = None,
        recording_consent: bool | None = None,
        customer_ref: str | None = None,
        language: str | None = None,
        contact: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        identified: bool = False,
        address: str | None = None,
    ) -> tuple[SessionRecord, str]:
        if self.is_full():
            self.metrics.refused("customer")
            raise AtCapacity(FULL_MESSAGE)
        self._check_waiting_caps(address)
        # Counted from here until the call is in the queue, so a burst cannot slip past the caps.
        self._joining_total += 1
        if address is not None:
            self._joining[address] = self._joining.get(address, 0) + 1
        try:
            return await self._queue_call(
                reason=reason,
                customer_name=customer_name,
                device=device,
                priority=priority,
                emotion_consent=emotion_consent,
                recording_consent=recording_consent,
                customer_ref=customer_ref,
                language=language,
                contact=contact,
                context=context,
                identified=identified,
                address=address,
            )
        finally:
            self._joining_total -= 1
            if address is not None:
                left = self._joining.pop(address) - 1
                if left:
                    self._joining[address] = left

    def _check_waiting_caps(self, address: str | None) -> None:
        """Anonymous load: a bounded queue, and a bounded share of it for one address."""
        waiting = [s for s in self.sessions.values() if s.state == "waiting"]
        total_cap = self.settings.max_waiting_calls
        if total_cap > 0 and len(waiting) + self._joining_total >= total_cap:
            self.metrics.refused("customer")
            raise QueueFull(QUEUE_FULL_MESSAGE)
        per_address = self.settings.max_waiting_per_address
        if per_address > 0 and address is not None:
            mine = sum(1 for s in waiting if s.address == address) + self._joining.get(address, 0)
            if mine >= per_address:
                raise TooManyWaiting(TOO_MANY_WAITING_MESSAGE)

    async def _queue_call(
        self,
        *,
        reason: str | None,
        customer_name: str | None,
        device: str | None,
        priority: int,
        emotion_consent: bool | None,
        recording_consent: bool | None,
        customer_ref: str | None,
        language: str | None,
        contact: dict[str, Any] | None,
        context: dict[str, Any] | None,
        identified: bool,
        address: str | None,
    ) -> tuple[SessionRecord, str]:
        if emotion_consent is None:
            emotion_consent = self.settings.emotion_default_consent
        policy = self.settings.recording_policy
        recording_consent = {"always": True, "never": None}.get(policy, bool(recording_consent))
        record, token = await self.store.create_session(
            reason=reason,
            customer_name=customer_name,
            device=device,
            token_ttl_s=self.settings.session_token_ttl_s,
            priority=priority,
            emotion_consent=emotion_consent,
            recording_consent=recording_consent,
            customer_ref=customer_ref,
            language=language,
            contact=contact,
            context=context,
        )
        live = LiveSession(record, identified=identified, address=address, chat_count=0)
        await self._emit("session.created", {"session": record.to_json()})
        self.sessions[record.id] = live
        # The customer has the grace period to open the socket, like a reconnect.
        self._start_grace(live, "customer")
        self._start_wait_limit(live, self.settings.max_wait_s)
        new_item = self._queue_item(live)
        for rep in self.reps.values():
            for conn in rep.conns:
                conn.send({"type": "queue.new", "item": new_item})
        self.broadcast_queue()
        return record, token

    async def customer_hello(self, conn: Participant, token: str) -> dict[str, Any]:
        record = await self.store.session_for_token(token)
        if record is None or record.token_expires_at < time.time() or record.id not in self.sessions:
            raise ProtocolError("token_invalid", "this call link is no longer valid")
        live = self.sessions[record.id]
        previous = live.conns.get("customer")
        if previous is not None and previous is not conn:
            previous.send(views.bye("replaced"))
            previous.close(4002, "replaced by a newer connection")
        conn.role = "customer"
        conn.session_id = live.id
        live.conns["customer"] = conn
        self._cancel_grace(live, "customer")
        records = await self.store.list_chat(live.id)
        welcome = views.customer_welcome(live, chat=views.customer_chat(records), ice_servers=self._ice_servers())
        conn.send(welcome)
        if live.state == "waiting":
            # Their own place at once; everyone else's picture may wait for the next coalesced send.
            position = self._positions().get(live.id)
            if position is not None:
                self._send_position(live, position)
            self.broadcast_queue()
        else:
            self._notify_peer_presence(live, "customer")
        return welcome

    def _ice_servers(self) -> list[dict[str, Any]]:
        return [s.to_browser() for s in self.settings.ice_servers]

    # reps

    async def rep_hello(self, conn: Participant, user: User) -> None:
        if user.role != "rep":
            # Other staff work over HTTP; treating them as reps would queue calls at a QA login.
            raise ProtocolError("forbidden", f"only reps take calls; this login is a {user.role} login")
        rep = self.reps.setdefault(user.id, RepState(user))
        rep.user = user
        rep.skills, rep.languages = await self.store.get_routing(user.id)
        rep.conns.add(conn)
        conn.role = "rep"
        call = None
        if rep.session_id and rep.session_id in self.sessions:
            live = self.sessions[rep.session_id]
            previous = live.conns.get("rep")
            if previous is not None and previous is not conn:
                previous.send(views.bye("replaced"))
                previous.close(4002, "replaced by a newer connection")
            live.conns["rep"] = conn
            self._cancel_grace(live, "rep")
            call = views.rep_accepted(live)
            call["chat"] = [c.to_json() for c in await self.store.list_chat(live.id)]
        conn.send(
            views.rep_welcome(user, status=rep.status, call=call, wrap_up=rep.wrap_up, ice_servers=self._ice_servers())
        )
        conn.send(self._queue_snapshot())
        if call is not None:
            live = self.sessions[rep.session_id or ""]
            for message in self._cue_state(live):
                conn.send(message)
            self._notify_peer_presence(live, "rep")

    def set_rep_status(self, conn: Participant, status: str) -> None:
        rep = self._rep(conn)
        if status == "available" and rep.session_id is not None:
            raise ProtocolError("not_available", "finish the current call first")
        if status == "available" and rep.wrap_up is not None:
            raise ProtocolError("wrap_up_required", "save the last call's disposition first")
        if status != "available" and rep.offer is not None:
            self._cancel_offer(self.sessions.get(rep.offer), "rep_away")
        self._set_status(rep, status)

    def _set_status(self, rep: RepState, status: str) -> None:
        if rep.status != status:
            rep.status = status
            rep.idle_since = time.monotonic()
        for c in rep.conns:
            c.send({"type": "rep.status", "status": rep.status})
        self.broadcast_queue()

    def wrapped_up(self, rep_id: int, session_id: str) -> None:
        """The rep saved the disposition: they are ready for the next call."""
        rep = self.reps.get(rep_id)
        if rep is None or rep.wrap_up != session_id:
            return
        rep.wrap_up = None
        self._set_status(rep, "available" if rep.conns else "away")

    async def accept(self, conn: Participant, session_id: str) -> None:
        rep = self._rep(conn)
        if rep.session_id is not None:
            raise ProtocolError("not_available", "you are already in a call")
        if rep.wrap_up is not None:
            raise ProtocolError("wrap_up_required", "save the last call's disposition first")
        live = self.sessions.get(session_id)
        if live is None:
            raise ProtocolError("session_not_found", "no such waiting call")
        if live.state != "waiting":
            raise ProtocolError("already_taken", "another rep took this call")
        if live.media is None and self.active_calls() >= self.capacity:
            self.metrics.refused("accept")
            raise ProtocolError("at_capacity", FULL_MESSAGE)
        claimed = await self.store.claim_session(session_id, rep.user.id)
        if claimed is None:
            raise ProtocolError("already_taken", "another rep took this call")
        if live.offer is not None:
            self._cancel_offer(live, "accepted" if live.offer.rep_id == rep.user.id else "taken")
        if rep.offer is not None:
            self._cancel_offer(self.sessions.get(rep.offer), "taken")
        self._cancel_wait_limit(live)
        # A second rep may have claimed between our checks; the DB decided, so follow it.
        live.record = claimed
        live.rep = rep.user
        live.conns["rep"] = conn
        rep.session_id = live.id
        rep.status = "busy"
        for c in rep.conns:
            c.send({"type": "rep.status", "status": "busy"})
        self._observe_wait(claimed.answered_at - claimed.queued_at if claimed.answered_at else 0.0, claimed.reason)
        if claimed.customer_ref:
            live.history = await self.store.customer_history(claimed.customer_ref, exclude=live.id)
        await self._emit(
            "session.answered",
            {"session": claimed.to_json(), "rep": {"id": rep.user.id, "display_name": rep.user.display_name}},
        )
        if live.media is None:
            live.media = await self._open_media(live)
            self.metrics.calls_answered.inc()
        self._start_cues(live)
        if live.recording is None:
            await self._start_recording(live)
        accepted = views.rep_accepted(live)
        # What the customer typed while waiting is the first thing the rep should read.
        accepted["chat"] = [c.to_json() for c in await self.store.list_chat(live.id)]
        self._send_to_customer(live, views.customer_accepted(live))
        for c in rep.conns:
            c.send(accepted)
        if live.cues is None:
            # Tell the rep at once why there are no cues (customer's choice, or none on this server).
            self._send_to_rep(live, self._cue_state(live))
        if live.conns.get("customer") is None:
            self._notify_peer_presence(live, "customer")
        self.broadcast_queue()

    # both sides

    def _session_of(self, conn: Participant, session_id: str | None) -> tuple[LiveSession, str]:
        if conn.role == "customer":
            live = self.sessions.get(conn.session_id or "")
            if live is None or (session_id is not None and session_id != live.id):
                raise ProtocolError("session_not_found", "no such session")
            return live, "customer"
        rep = self._rep(conn)
        if rep.session_id is None:
            if session_id is not None:
                raise ProtocolError("session_not_found", "no such session")
            raise ProtocolError("not_in_call", "you are not in a call")
        if session_id is not None and session_id != rep.session_id:
            raise ProtocolError("session_not_found", "no such session")
        live = self.sessions.get(rep.session_id)
        if live is None:
            raise ProtocolError("not_in_call", "you are not in a call")
        return live, "rep"

    async def _open_media(self, live: LiveSession) -> CallMedia | RemoteCallMedia:
        """The call's media: in a worker process when there are workers, else in this process."""

        async def changed(role: str, state: str) -> None:
            await self._media_state_changed(live, role, state)

        forward = self.settings.media_path == "forward"
        if self.pool is not None:
            try:
                return await self.pool.open(
                    live.id,
                    self.settings.ice_servers,
                    on_media_state=changed,
                    stall_after_s=self.settings.media_stall_s,
                    forward=forward,
                )
            except (MediaClosed, WorkerGone, TimeoutError):
                log.error("no media worker could take %s; carrying it in the front door", live.id)
        return CallMedia(
            live.id,
            self.settings.ice_servers,
            on_media_state=changed,
            stall_after_s=self.settings.media_stall_s,
            forward=forward,
            transit=self.metrics.transit,
        )

    async def media_lost(self, session_ids: list[str]) -> None:
        """A media worker died: end exactly its calls, cleanly, and say why."""
        for session_id in session_ids:
            live = self.sessions.get(session_id)
            if live is not None and live.state == "active":
                log.warning("ending %s: its media worker stopped", session_id)
                await self._finish(live, state="ended", ended_by="system", reason="media_failed")
            # The worker died mid-file: what it wrote plays up to then.
            await reconcile(self.store, self.settings.recordings_path, session_id)

    def claim_negotiation(
        self, conn: Participant, session_id: str | None, sdp: str
    ) -> tuple[CallMedia | RemoteCallMedia, str]:
        """Reserve the participant's media for one offer; a second one meanwhile is refused."""
        live, role = self._session_of(conn, session_id)
        if live.state != "active" or live.media is None:
            raise ProtocolError("not_in_call", "media starts once a rep has accepted the call")
        self._limit_offers(live, role)
        # aiortc sends connectivity checks to every address an offer lists: bound how many.
        candidates = sum(1 for line in sdp.splitlines() if line.lstrip().startswith("a=candidate"))
        cap = self.settings.max_offer_candidates
        if cap > 0 and candidates > cap:
            raise ProtocolError("bad_sdp", f"the offer lists {candidates} ICE candidates; at most {cap} are accepted")
        if live.media.is_negotiating(role):
            raise ProtocolError("negotiation_in_progress", "the previous offer is still being answered")
        live.media.begin_negotiation(role)
        return live.media, role

    def _limit_offers(self, live: LiveSession, role: str) -> None:
        """At most ``offers_per_minute`` offers per participant: each one builds a peer connection."""
        cap = self.settings.offers_per_minute
        if cap <= 0:
            return
        now = time.monotonic()
        recent = live.offer_times.setdefault(role, deque())
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= cap:
            wait = int(recent[0] + 60.0 - now) + 1
            raise ProtocolError("rate_limited", f"at most {cap} offers a minute; try again in {wait} s")
        recent.append(now)

    async def answer_offer(self, media: CallMedia | RemoteCallMedia, role: str, sdp: str) -> str:
        try:
            return await media.answer(role, sdp)
        except BadOffer as exc:
            raise ProtocolError("bad_sdp", str(exc)) from None
        except MediaClosed:
            raise ProtocolError("not_in_call", "the call ended during negotiation") from None

    async def chat(self, conn: Participant, text: str, session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        if role == "customer":
            name = live.record.customer_name or "Customer"
        else:
            name = conn.user.display_name if conn.user else "Rep"
        bucket = live.chat_buckets.get(role)
        if bucket is None:
            rate = self.settings.chat_per_minute / 60.0
            bucket = live.chat_buckets[role] = TokenBucket(rate, max(1, self.settings.chat_burst))
        if self.settings.chat_per_minute > 0 and not bucket.take():
            raise ProtocolError("rate_limited", f"at most {self.settings.chat_per_minute} chat lines a minute")
        # One line at a time per call: the customer's line numbers follow the stored order.
        async with live.chat_lock:
            if live.chat_count is None:
                live.chat_count = len(await self.store.list_chat(live.id))
            cap = self.settings.max_chat_per_session
            if cap > 0 and live.chat_count >= cap:
                raise ProtocolError("chat_full", f"this call's chat holds at most {cap} lines")
            record = await self.store.add_chat(live.id, role, name, text.strip())
            live.chat_count += 1
            seq = live.chat_count
        self._send_to_customer(live, views.customer_chat_message(record, seq))
        self._send_to_rep(live, [views.rep_chat_message(record)])

    def media_flags(self, conn: Participant, flags: dict[str, Any], session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        live.media_flags[role] = flags
        peer = live.conns.get(other(role))
        if peer is not None:
            peer.send(views.peer_media(role, flags))

    async def set_emotion_consent(self, conn: Participant, enabled: bool) -> None:
        """The customer changed their mind about emotion cues; it applies at once."""
        live, role = self._session_of(conn, None)
        if role != "customer":
            raise ProtocolError("forbidden", "only the customer decides about emotion cues")
        await self.store.set_emotion_consent(live.id, enabled)
        live.record = replace(live.record, emotion_consent=enabled)
        if live.state != "active":
            return
        if enabled:
            self._start_cues(live)
        elif live.cues is not None:
            cues, live.cues = live.cues, None
            await cues.aclose()
        self._send_to_rep(live, self._cue_state(live))

    async def _start_recording(self, live: LiveSession) -> None:
        if not live.record.recording_consent or live.media is None:
            live.recording_note = "declined" if live.record.recording_consent is False else "off"
            return
        root = self.settings.recordings_path
        root.mkdir(parents=True, exist_ok=True)
        if free_mb(root) < self.settings.recording_min_free_mb:
            live.recording_note = "no_space"
            log.warning("not recording %s: less than %d MB free", live.id, self.settings.recording_min_free_mb)
            await self.store.add_event(live.id, "recording_skipped", {"reason": "low disk space"})
            return
        if isinstance(live.media, RemoteCallMedia):
            # The worker writes the files and their rows itself: the frames never cross processes.
            live.recording = await live.media.start_recording(root.resolve())
        else:
            recording = CallRecording(self.store, root, live.id)
            await recording.start(live.media.feeds)
            live.recording = recording
        live.recording_note = "recording"
        self._spawn(self._watch_recording(live, live.recording))

    async def _watch_recording(self, live: LiveSession, recording: CallRecording | RemoteRecording) -> None:
        # A full disk ends the recording, never the call: say so to both sides and to the log.
        while live.recording is recording:
            await asyncio.sleep(1.0)
            await recording.save_epochs()
            if recording.truncated:
                live.recording_note = "truncated"
                log.warning("recording of %s truncated: %s", live.id, recording.error)
                await self.store.add_event(live.id, "recording_truncated", {"error": recording.error})
                self._send_to_customer(live, views.recording_state(live))
                self._send_to_rep(live, [views.recording_state(live)])
                return

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        if self.on_event is not None:
            await self.on_event(event, data)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        watcher = asyncio.create_task(coro)
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    def _start_cues(self, live: LiveSession) -> None:
        if live.cues is not None or live.media is None or not live.record.emotion_consent:
            return
        if self.emotion is None:
            return
        live.cues = CallCues(
            self.emotion,
            live.id,
            # The customer's video only: never the rep's.
            live.media.feeds["customer"]["video"],
            self.store,
            lambda message: self._send_to_rep(live, [message]),
            on_event=self.on_event,
        )

    def _cue_state(self, live: LiveSession) -> list[dict[str, Any]]:
        if not live.record.emotion_consent:
            return [{**OFF_BY_CUSTOMER, "session_id": live.id}]
        if live.cues is None:
            return [{**unavailable_status(self.emotion_unavailable), "session_id": live.id}]
        return live.cues.snapshot()

    def _send_to_customer(self, live: LiveSession, message: dict[str, Any]) -> None:
        """Every customer-bound message passes here, built by a ``views.customer_*`` function."""
        conn = live.conns.get("customer")
        if conn is not None:
            conn.send(message)

    def _send_to_rep(self, live: LiveSession, messages: list[dict[str, Any]]) -> None:
        conn = live.conns.get("rep")
        if conn is not None:
            for message in messages:
                conn.send(message)

    async def end(self, conn: Participant, reason: str | None, session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        if live.state == "waiting":
            await self._finish(live, state="abandoned", ended_by=role, reason="customer_left")
        else:
            await self._finish(live, state="ended", ended_by=role, reason=reason or f"{role}_hangup")

    async def disconnected(self, conn: Participant) -> None:
        if self._closing:
            return
        if conn.role == "customer":
            live = self.sessions.get(conn.session_id or "")
            if live is not None and live.conns.get("customer") is conn:
                live.conns["customer"] = None
                self._start_grace(live, "customer")
                if live.state == "active":
                    self._notify_peer_presence(live, "customer")
        elif conn.role == "rep" and conn.user is not None:
            rep = self.reps.get(conn.user.id)
            if rep is None:
                return
            rep.conns.discard(conn)
            live = self.sessions.get(rep.session_id or "")
            if live is not None and live.conns.get("rep") is conn:
                live.conns["rep"] = None
                self._start_grace(live, "rep")
                self._notify_peer_presence(live, "rep")
            if not rep.conns and rep.offer is not None:
                self._cancel_offer(self.sessions.get(rep.offer), "rep_left")
            if not rep.conns and rep.session_id is None:
                rep.status = "wrap_up" if rep.wrap_up else "away"
                self.broadcast_queue()

    async def close_login(self, login_id: str) -> None:
        for rep in self.reps.values():
            for conn in list(rep.conns):
                if conn.login_id == login_id:
                    conn.send(views.bye("logged_out"))
                    conn.close(4001, "logged out")

    # internals

    def _rep(self, conn: Participant) -> RepState:
        if conn.role != "rep" or conn.user is None:
            raise ProtocolError("forbidden", "only reps may do this")
        return self.reps.setdefault(conn.user.id, RepState(conn.user))

    def _present(self, live: LiveSession, role: str) -> bool:
        if live.conns.get(role) is None:
            return False
        return live.media is None or live.media.media_state(role) != "lost"

    def _notify_peer_presence(self, live: LiveSession, role: str) -> None:
        present = self._present(live, role)
        if live.state == "active":
            if present:
                self._cancel_grace(live, role)
            else:
                self._start_grace(live, role)
        target = live.conns.get(other(role))
        if target is not None:
            target.send(views.peer_state(live.id, role, "connected" if present else "reconnecting"))

    async def _media_state_changed(self, live: LiveSession, role: str, state: str) -> None:
        if live.state == "active":
            self._notify_peer_presence(live, role)

    def _start_grace(self, live: LiveSession, role: str) -> None:
        if role in live.grace:
            return

        async def expire() -> None:
            await asyncio.sleep(self.settings.reconnect_grace_s)
            live.grace.pop(role, None)
            if live.state == "waiting":
                await self._finish(live, state="abandoned", ended_by="system", reason="customer_lost")
            elif live.state == "active":
                await self._finish(live, state="ended", ended_by="system", reason=f"{role}_lost")

        live.grace[role] = asyncio.create_task(expire(), name=f"grace-{live.id}-{role}")

    def _cancel_grace(self, live: LiveSession, role: str) -> None:
        task = live.grace.pop(role, None)
        if task is not None:
            task.cancel()

    def _start_wait_limit(self, live: LiveSession, remaining_s: float) -> None:
        """End the call if it still waits after ``remaining_s``: the customer may then ask for a callback."""
        self._cancel_wait_limit(live)
        if self.settings.max_wait_s <= 0:
            return

        async def expire() -> None:
            await asyncio.sleep(max(0.0, remaining_s))
            if live.wait_limit is asyncio.current_task():
                live.wait_limit = None
            if live.state == "waiting":
                log.info("call %s waited %.0f s without an answer: ending it", live.id, self.settings.max_wait_s)
                await self._finish(live, state="abandoned", ended_by="system", reason=views.MAX_WAIT)

        live.wait_limit = asyncio.create_task(expire(), name=f"wait-limit-{live.id}")

    def _cancel_wait_limit(self, live: LiveSession) -> None:
        task, live.wait_limit = live.wait_limit, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _finish(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> None:
        # aiohttp cancels a socket's handler when the client goes; ending a call must
        # not stop halfway (peers half-closed leak sockets), so it runs as its own task.
        job = asyncio.create_task(self._finish_now(live, state=state, ended_by=ended_by, reason=reason))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        await asyncio.shield(job)

    async def _finish_now(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> None:
        async with live.lock:
            if live.id not in self.sessions:
                return
            record = await self.store.finish_session(live.id, state=state, ended_by=ended_by, reason=reason)
            if record is None:
                record = await self.store.get_session(live.id)
            if record is not None:
                live.record = record
            self.sessions.pop(live.id, None)
            # In the same step as the pop, so the frame counters never dip between the two.
            self.metrics.call_ended(state, live.media.stats() if live.media is not None else None)
        if live.offer is not None:
            self._cancel_offer(live, "ended")
        for task in list(live.grace.values()):
            if task is not asyncio.current_task():
                task.cancel()
        live.grace.clear()
        self._cancel_wait_limit(live)
        # The record is final before anyone hears the call ended: a reader never sees it half-written.
        if live.cues is not None:
            cues, live.cues = live.cues, None
            await cues.aclose()
        if live.record.answered_at is not None:
            await self.store.summarize_emotion(live.id)
        customer = live.conns.get("customer")
        if customer is not None:
            customer.send(views.customer_ended(live.record, self._disposition_codes()))
            customer.close(4003, "session over")
        if live.rep is not None:
            rep = self.reps.get(live.rep.id)
            if rep is not None:
                if rep.session_id == live.id:
                    rep.session_id = None
                    # A disposition is due before the next call.
                    rep.wrap_up = live.id
                    rep.status = "wrap_up"
                    rep.idle_since = time.monotonic()
                for c in rep.conns:
                    c.send(views.rep_ended(live.record, wrap_up=rep.wrap_up == live.id))
                    c.send({"type": "rep.status", "status": rep.status})
        final = await self.store.get_session(live.id)
        await self._emit("session.ended", {"session": (final or live.record).to_json()})
        recorded = live.recording is not None
        if live.recording is not None:
            recording, live.recording = live.recording, None
            await recording.stop()
        if live.media is not None:
            await live.media.aclose()
        if recorded and self.on_recorded is not None:
            try:
                await self.on_recorded(live.id)
            except Exception:
                log.exception("could not queue the QA file of %s", live.id)
        log.info("session %s %s (%s by %s)", live.id, live.record.state, reason, ended_by)
        self.broadcast_queue()

    def _disposition_codes(self) -> frozenset[str]:
        return frozenset(code for code, _label, _category in self.settings.dispositions)

    # routing

    def _can_ring(self, rep: RepState) -> bool:
        return (
            rep.status == "available"
            and bool(rep.conns)
            and rep.session_id is None
            and rep.wrap_up is None
            and rep.offer is None
        )

    @staticmethod
    def matches(rep: RepState, record: SessionRecord) -> bool:
        """Skills and languages: an empty list takes anything, a call without one goes to anyone."""
        reason_ok = not rep.skills or record.reason is None or record.reason in rep.skills
        language_ok = not rep.languages or record.language is None or record.language in rep.languages
        return reason_ok and language_ok

    def _offer_calls(self) -> None:
        """Ring the longest-idle matching rep for each waiting call, in queue order, one rep per call."""
        free = [r for r in self.reps.values() if self._can_ring(r)]
        for live in self._waiting():
            if not free:
                return
            if live.offer is not None or live.conns.get("customer") is None:
                continue
            candidates = [r for r in free if r.user.id not in live.declined and self.matches(r, live.record)]
            if not candidates:
                continue
            rep = min(candidates, key=lambda r: r.idle_since)
            free.remove(rep)
            self._ring(live, rep)

    def _ring(self, live: LiveSession, rep: RepState, *, transfer: bool = False, note: str | None = None) -> None:
        rep.offer = live.id
        timer = asyncio.create_task(self._ring_out(live, rep), name=f"ring-{live.id}-{rep.user.id}")
        live.offer = Offer(rep.user.id, timer, transfer)
        message: dict[str, Any] = {
            "type": "call.offer",
            "session_id": live.id,
            "ring_timeout_s": self.settings.ring_timeout_s,
            "item": self._queue_item(live),
            "transfer": transfer,
        }
        if note:
            message["note"] = note
        for conn in rep.conns:
            conn.send(message)

    async def _ring_out(self, live: LiveSession, rep: RepState) -> None:
        await asyncio.sleep(self.settings.ring_timeout_s)
        if live.offer is None or live.offer.rep_id != rep.user.id:
            return
        live.offer = None
        rep.offer = None
        for conn in rep.conns:
            conn.send({"type": "call.offer.cancelled", "session_id": live.id, "reason": "timeout"})
        # Nobody answered: this rep is probably not at the desk, so stop ringing them.
        log.info("call %s rang out at rep %s; rep set away", live.id, rep.user.username)
        self._set_status(rep, "away")

    def _cancel_offer(self, live: LiveSession | None, reason: str) -> None:
        if live is None or live.offer is None:
            return
        offer, live.offer = live.offer, None
        if offer.timer is not asyncio.current_task():
            offer.timer.cancel()
        rep = self.reps.get(offer.rep_id)
        if rep is None:
            return
        if rep.offer == live.id:
            rep.offer = None
        if reason != "accepted":
            for conn in rep.conns:
                conn.send({"type": "call.offer.cancelled", "session_id": live.id, "reason": reason})

    def decline(self, conn: Participant, session_id: str) -> None:
        rep = self._rep(conn)
        live = self.sessions.get(session_id)
        if live is None or live.offer is None or live.offer.rep_id != rep.user.id:
            raise ProtocolError("session_not_found", "no such offer")
        live.declined.add(rep.user.id)
        self._cancel_offer(live, "declined")
        rep.idle_since = time.monotonic()
        self.broadcast_queue()

    async def transfer(
        self, conn: Participant, session_id: str | None, *, to_rep: int | None, to_reason: str | None, note: str | None
    ) -> None:
        """Hand the call to another rep or back to a queue; the customer's media and context stay."""
        live, role = self._session_of(conn, session_id)
        rep = self._rep(conn)
        if live.state != "active":
            raise ProtocolError("not_in_call", "only a live call can be transferred")
        if to_reason is not None and to_reason not in {code for code, _ in self.settings.reasons}:
            raise ProtocolError("bad_message", "reason: unknown")
        target: RepState | None = None
        if to_rep is not None:
            target = self.reps.get(to_rep)
            if target is None or target is rep or not self._can_ring(target):
                raise ProtocolError("rep_unavailable", "that rep cannot take a call now")
        detail = {"from_rep": rep.user.id, "to_rep": to_rep, "to_reason": to_reason, "note": note}
        live.record = await self.store.requeue_session(live.id, reason=to_reason or live.record.reason, detail=detail)
        live.rep = None
        live.conns["rep"] = None
        live.media_flags.pop("rep", None)
        live.declined.clear()
        self._cancel_grace(live, "rep")
        rep.session_id = None
        self._set_status(rep, "available")
        if live.media is not None:
            await live.media.drop("rep")
        moved = views.customer_transferred(live.id, "rep" if target else "queue")
        self._send_to_customer(live, moved)
        for c in rep.conns:
            c.send({**moved, "note": note})
        # Waiting again: the wait limit starts afresh (the time with the first rep does not count).
        self._start_wait_limit(live, self.settings.max_wait_s)
        if target is not None:
            self._ring(live, target, transfer=True, note=note)
        self.broadcast_queue()

    # queue

    def _waiting(self) -> list[LiveSession]:
        waiting = [s for s in self.sessions.values() if s.state == "waiting"]
        waiting.sort(key=lambda s: (-s.record.priority, s.record.queued_at))
        return waiting

    def _positions(self) -> dict[str, int]:
        return {s.id: i + 1 for i, s in enumerate(self._waiting())}

    def available_reps(self) -> int:
        return sum(1 for r in self.reps.values() if r.status == "available" and r.conns)

    def _observe_wait(self, wait_s: float, reason: str | None = None) -> None:
        alpha = 0.3
        self._wait_ewma = wait_s if self._wait_ewma is None else alpha * wait_s + (1 - alpha) * self._wait_ewma
        key = reason or ""
        old = self._wait_by_reason.get(key)
        self._wait_by_reason[key] = wait_s if old is None else alpha * wait_s + (1 - alpha) * old

    def estimated_wait(self, position: int, reason: str | None = None) -> int:
        # Recent waits in this queue (smoothed) stand for one place in line per free rep.
        per_place = self._wait_by_reason.get(reason or "", self._wait_ewma)
        per_place = max(per_place if per_place is not None else DEFAULT_WAIT_S, 10.0)
        return int(round(per_place * position / max(1, self.available_reps())))

    def estimated_waits(self) -> dict[str, int]:
        """The estimate for the next caller of each reason, for the supervisor's floor."""
        return {code: self.estimated_wait(1, code) for code, _label in self.settings.reasons}

    def _send_position(self, live: LiveSession, position: int) -> None:
        wait = self.estimated_wait(position, live.record.reason)
        self._send_to_customer(live, views.queue_position(position, wait))

    def _queue_item(self, live: LiveSession) -> dict[str, Any]:
        return views.queue_item(live)

    def _queue_snapshot(self) -> dict[str, Any]:
        online = [(r.user, r.status) for r in self.reps.values() if r.conns]
        return views.queue_snapshot(self._waiting(), available_reps=self.available_reps(), reps=online)

    def broadcast_queue(self) -> None:
        """Ring at once; tell reps and waiting customers at most ``queue_updates_per_s`` times a second.

        Every join, leave and status change calls this: without coalescing, a burst of N joins
        would send N snapshots of up to N items to every rep. The first change goes out at once,
        later ones within the interval are folded into one send at its end.
        """
        if self._closing:
            return
        self._offer_calls()
        if self._queue_flush is not None:
            return
        loop = asyncio.get_running_loop()
        rate = self.settings.queue_updates_per_s
        due = self._queue_sent_at + (1.0 / rate if rate > 0 else 0.0)
        if loop.time() >= due:
            self._send_queue()
        else:
            self._queue_flush = loop.call_later(due - loop.time(), self._flush_queue)

    def _flush_queue(self) -> None:
        self._queue_flush = None
        if not self._closing:
            self._send_queue()

    def _send_queue(self) -> None:
        self._queue_sent_at = asyncio.get_running_loop().time()
        for position, live in enumerate(self._waiting(), start=1):
            self._send_position(live, position)
        snapshot = self._queue_snapshot()
        for rep in self.reps.values():
            for conn in rep.conns:
                conn.send(snapshot)

    async def _queue_ticker(self) -> None:
        while True:
            await asyncio.sleep(QUEUE_TICK_S)
            if self._waiting():
                self.broadcast_queue()

    def live_floor(self) -> dict[str, Any]:
        """The supervisor's view: the queue, every rep, and live calls with the customer's frustration."""
        now, mono = time.time(), time.monotonic()
        calls = []
        for live in self.sessions.values():
            if live.state != "active":
                continue
            update = live.cues.last_update if live.cues is not None else None
            calls.append(
                {
                    "session_id": live.id,
                    "rep": {"id": live.rep.id, "display_name": live.rep.display_name} if live.rep else None,
                    "reason": live.record.reason,
                    "language": live.record.language,
                    "talk_s": int(now - (live.record.answered_at or now)),
                    "customer_frustration": update.get("smoothed") if update else None,
                    "customer_flag": bool(update and update.get("flag_active")),
                }
            )
        reps = [
            {
                "id": r.user.id,
                "display_name": r.user.display_name,
                "status": r.status if r.conns or r.session_id else "offline",
                "idle_s": int(mono - r.idle_since),
                "session_id": r.session_id,
                "skills": sorted(r.skills),
                "languages": sorted(r.languages),
            }
            for r in self.reps.values()
        ]
        return {
            "queue": [self._queue_item(live) for live in self._waiting()],
            "reps": reps,
            "calls": calls,
            "estimated_wait_s": self.estimated_waits(),
        }

    def update_routing(self, user_id: int, skills: frozenset[str], languages: frozenset[str]) -> None:
        rep = self.reps.get(user_id)
        if rep is not None:
            rep.skills, rep.languages = skills, languages
            self.broadcast_queue()

    @property
    def capacity(self) -> int:
        if self.settings.max_calls > 0:
            return self.settings.max_calls
        return max(1, int(CALLS_PER_CORE[self.settings.media_path] * (os.cpu_count() or 1)))

    def active_calls(self) -> int:
        return sum(1 for s in self.sessions.values() if s.state == "active")

    def is_full(self) -> bool:
        """Every media slot is busy and as many customers already wait: a new one would only wait longer."""
        waiting = len(self._waiting())
        return self.active_calls() >= self.capacity and waiting >= self.capacity

    def media_stats(self) -> list[dict[str, Any]]:
        out = []
        for live in self.sessions.values():
            if live.media is None:
                continue
            stats = live.media.stats()
            for role in ("customer", "rep"):
                out.append(
                    {
                        "session_id": live.id,
                        "from": role,
                        "to": other(role),
                        "video_in": stats[role].get("video_in", 0),
                        "video_out": stats[other(role)].get("video_out", 0),
                    }
                )
        return out

    def floor(self) -> dict[str, Any]:
        return {
            "waiting": len(self._waiting()),
            "active": sum(1 for s in self.sessions.values() if s.state == "active"),
            "available_reps": self.available_reps(),
        }


CALL_CENTER = web.AppKey("call_center", CallCenter)
