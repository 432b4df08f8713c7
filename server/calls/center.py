"""CallCenter: the live queue, reps, and the life of each support session.

The database is the source of truth for session state; this module keeps the live parts (sockets, media,
timers) and tells everyone what changed. It is a façade: each request goes to the parts that decide —
- ``routing``: which rep may ring, which calls a rep takes, the queue's order (pure rules);
- ``ringing``: the offers out at reps; ``broadcast``: the queue as reps and waiting customers see it;
- ``waits``: wait estimates and the limit on waiting; ``grace``: reconnect grace and presence;
- ``media_life``: media, offers, recording and cues; ``chat``: chat lines; ``teardown``: the end of a call;
- ``capacity``: how many calls the server carries and who may still join; ``floor``: the supervisor's view;
- ``state``: the live state they share, and ``Shared``, what each part is built on; ``views``: every message
  they send; ``assist``: supervisors listening, whispering, joining and taking over, and the floor they watch.

Over 500 lines because it is the one façade every route and message goes through: each method is a few lines
that hand the work to the part that decides, and splitting the façade would only split its callers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from emotion import EmotionService

from ..config import Settings
from ..media.assist import SUPERVISOR
from ..media.call import CallMedia
from ..media.link import MediaPool
from ..media.pool import RemoteCallMedia
from ..media.turn import ice_servers_for
from ..metrics import Metrics
from ..recording.recorder import reconcile
from ..storage.records import NewCall, SessionRecord, User
from ..storage.store import Store
from . import routing, views
from .assist import Assists
from .attachments import Attachments
from .broadcast import QueueBroadcast
from .capacity import Admission, media_stats
from .centre_settings import CentreSettings
from .chat import ChatLines
from .cues import EmotionSetup, EventSink
from .errors import ProtocolError
from .floor import live_floor
from .grace import ReconnectGrace
from .media_life import MediaLife
from .participant import Participant, encode_message
from .payloads import CustomerWelcome
from .ringing import Ringing
from .state import LiveSession, LiveView, RepState, Shared
from .takeover import adopt_active_calls
from .teardown import Teardown
from .waits import WaitEstimates, WaitLimits, cancel_wait_limit

log = logging.getLogger(__name__)


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
        pool: MediaPool | None = None,
        centre: CentreSettings | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.metrics = metrics or Metrics()
        self.metrics.watch(self, settings.media_path)
        self.on_event = on_event
        # What /admin changes applies to the next call: every part reads the current settings, never a copy.
        self.centre = centre or CentreSettings(settings)
        self.sessions: dict[str, LiveSession] = {}
        self.reps: dict[int, RepState] = {}
        self._closing = False
        # The parts, each over the same services, sessions and reps; callbacks point back at the façade.
        self.shared = shared = Shared(
            store,
            self.centre,
            self.metrics,
            self.sessions,
            self.reps,
            changed=self.broadcast_queue,
            emit=self._emit,
            finish=self._finish,
        )
        self.admission = Admission(shared, pool)
        self.waits = WaitEstimates()
        self.wait_limits = WaitLimits(shared)
        self.grace = ReconnectGrace(shared)
        self.ringing = Ringing(shared, grace=self.grace, wait_limits=self.wait_limits, set_status=self._set_status)
        self.queue = QueueBroadcast(shared, self.waits, self.ringing.offer_calls)
        self.chat_lines = ChatLines(shared)
        self.teardown = Teardown(shared, self.ringing, on_recorded=on_recorded)
        self.media = MediaLife(
            shared,
            pool,
            emotion=EmotionSetup(emotion, emotion_unavailable),
            on_media_state=self.grace.media_state_changed,
        )
        self.assists = Assists(shared, self.live_floor, set_status=self._set_status, ice_servers=self._ice_servers)
        self.teardown.on_ended.append(self.assists.ended)
        self.attachments = Attachments(shared)
        self.teardown.on_ended.append(self.attachments.ended)

    @property
    def settings(self) -> Settings:
        return self.centre.current

    # lifecycle

    async def start(self, takeover: LiveView | None = None) -> list[str]:
        """Rebuild the live view from the database. One box: calls that ran when it stopped are interrupted.
        A cluster's new leader (``takeover``) keeps them: both sides come back and re-offer to new media."""
        interrupted = [] if takeover is not None else await self.store.interrupt_active_sessions()
        if takeover is None:
            await reconcile(self.store, self.settings.recordings_path)
        if interrupted:
            log.warning("marked %d call(s) interrupted by the last shutdown", len(interrupted))
        waits = await self.store.recent_waits()
        for reason, wait in reversed(waits):
            self.waits.observe(wait, reason)
        view = takeover or LiveView()
        for record in await self.store.waiting_sessions():
            live = LiveSession(record)
            self.sessions[record.id] = live
            # Waiting customers keep their place if they come back in time.
            self.grace.start(live, "customer", view.grace_left(record.id, "customer"))
            self.wait_limits.start(live, record.queued_at + self.settings.max_wait_s - time.time())
        if takeover is not None:
            await adopt_active_calls(self.shared, self.grace, self.media, view)
        self.queue.start()
        return interrupted

    async def _finish(self, live: LiveSession, *, state: str, ended_by: str, reason: str) -> None:
        # Late-bound, so the timers built before ``teardown`` can end calls.
        await self.teardown.finish(live, state=state, ended_by=ended_by, reason=reason)

    async def aclose(self, *, handover: bool = False) -> None:
        """Close every call. ``handover``: a cluster's next leader takes them over, so none is marked ended."""
        self.media.cancel_watchers()
        await self.teardown.drain(timeout=10)
        self._closing = True
        await self.queue.aclose()
        await self.assists.aclose()
        await self.attachments.aclose()
        # All calls at once: a vanished client's pc.close() can take its full 5 s timeout.
        await asyncio.gather(
            *(self.teardown.shut(live, handover=handover) for live in list(self.sessions.values())),
            return_exceptions=True,
        )
        self.sessions.clear()

    # customers

    async def create_call(self, call: NewCall, *, address: str | None = None) -> tuple[SessionRecord, str]:
        # Counted as joining until the call is in the queue, so a burst cannot slip past the caps.
        with self.admission.admit(address):
            # The deployment settles what the customer left open, and a fixed recording policy overrides them.
            emotion_consent = call.emotion_consent
            if emotion_consent is None:
                emotion_consent = self.settings.emotion_default_consent
            policy = self.settings.recording_policy
            recording_consent = {"always": True, "never": None}.get(policy, bool(call.recording_consent))
            record, token = await self.store.create_session(
                replace(call, emotion_consent=emotion_consent, recording_consent=recording_consent),
                token_ttl_s=self.settings.session_token_ttl_s,
            )
            live = LiveSession(
                record, identified=call.identified, address=address, chat_count=0, preferred_rep=call.preferred_rep
            )
            await self._emit("session.created", {"session": record.to_json()})
            self.sessions[record.id] = live
            # The customer has the grace period to open the socket, like a reconnect.
            self.grace.start(live, "customer")
            self.wait_limits.start(live, self.settings.max_wait_s)
            new = views.queue_new(views.queue_item(live))
            frame = encode_message(new)  # once for every rep
            for rep in self.reps.values():
                for conn in rep.conns:
                    conn.send_encoded(new, frame)
            self.broadcast_queue()
            return record, token

    async def customer_hello(self, conn: Participant, token: str) -> CustomerWelcome:
        record = await self.store.session_for_token(token)
        if record is None or record.token_expires_at < time.time() or record.id not in self.sessions:
            raise ProtocolError("token_invalid", "this call link is no longer valid")
        live = self.sessions[record.id]
        conn.role = "customer"
        conn.session_id = live.id
        self.grace.seat(live, "customer", conn)
        records = await self.store.list_chat(live.id)
        # What was shared before a reload or reconnect comes back with the chat, so nothing is lost from the page.
        welcome = views.customer_welcome(
            live,
            chat=views.customer_chat(records),
            files=await self.store.list_files(live.id),
            ice_servers=self._ice_servers(live.id),
        )
        conn.send(welcome)
        if live.state == "waiting":
            # Their own place at once; everyone else's picture may wait for the next coalesced send.
            position = routing.positions(self._waiting()).get(live.id)
            if position is not None:
                self.queue.send_position(live, position)
            self.broadcast_queue()
        else:
            self.grace.presence_changed(live, "customer")
        return welcome

    def _ice_servers(self, label: str) -> list[dict[str, Any]]:
        # Fresh TURN credentials on every welcome: a reconnect renews them.
        return [s.to_browser() for s in ice_servers_for(self.settings, label)]

    # supervisors (the rest is ``assists``)

    async def ask_help(self, conn: Participant, on: bool) -> None:
        live, role = self._session_of(conn, None)
        if role != "rep":
            raise ProtocolError("forbidden", "only the rep in the call asks for help")
        await self.assists.set_help(live, on)

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
            self.grace.seat(live, "rep", conn)
            call = views.rep_accepted(live)
            call.chat = views.rep_chat(await self.store.list_chat(live.id))
            call.files = views.rep_files(await self.store.list_files(live.id))
        conn.send(
            views.rep_welcome(
                user, status=rep.status, call=call, wrap_up=rep.wrap_up, ice_servers=self._ice_servers(f"rep-{user.id}")
            )
        )
        conn.send(self.queue.snapshot())
        if call is not None:
            live = self.sessions[rep.session_id or ""]
            for message in self.media.cue_state(live):
                conn.send(message)
            self.grace.presence_changed(live, "rep")

    def set_rep_status(self, conn: Participant, status: str) -> None:
        rep = self._rep(conn)
        if status == "available" and rep.session_id is not None:
            raise ProtocolError("not_available", "finish the current call first")
        if status == "available" and rep.wrap_up is not None:
            raise ProtocolError("wrap_up_required", "save the last call's disposition first")
        if status != "available":
            self.ringing.cancel_rep_offer(rep, "rep_away")
        self._set_status(rep, status)

    def _set_status(self, rep: RepState, status: str) -> None:
        if rep.status != status:
            rep.status = status
            rep.idle_since = time.monotonic()
        for c in rep.conns:
            c.send(views.rep_status(rep.status))
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
        self.admission.check_answer(live)
        placed = await self.media.place(live)
        claimed: SessionRecord | None = None
        try:
            claimed = await self.store.claim_session(session_id, rep.user.id)
        finally:
            await self.media.settle(live, placed, answered=claimed is not None)
        if claimed is None:
            raise ProtocolError("already_taken", "another rep took this call")
        if live.offer is not None:
            self.ringing.cancel(live, "accepted" if live.offer.rep_id == rep.user.id else "taken")
        self.ringing.cancel_rep_offer(rep, "taken")
        cancel_wait_limit(live)
        # A second rep may have claimed between our checks; the DB decided, so follow it.
        live.record = claimed
        live.rep = rep.user
        live.conns["rep"] = conn
        rep.session_id = live.id
        rep.status = "busy"
        for c in rep.conns:
            c.send(views.rep_status("busy"))
        self.waits.observe(claimed.answered_at - claimed.queued_at if claimed.answered_at else 0.0, claimed.reason)
        if claimed.customer_ref:
            live.history = await self.store.customer_history(claimed.customer_ref, exclude=live.id)
        await self._emit(
            "session.answered",
            {"session": claimed.to_json(), "rep": {"id": rep.user.id, "display_name": rep.user.display_name}},
        )
        await self.media.start(live)
        accepted = views.rep_accepted(live)
        # What the customer typed while waiting is the first thing the rep should read.
        accepted.chat = views.rep_chat(await self.store.list_chat(live.id))
        accepted.files = views.rep_files(await self.store.list_files(live.id))
        live.send_to_customer(views.customer_accepted(live))
        for c in rep.conns:
            c.send(accepted)
        if live.cues is None:
            # Tell the rep at once why there are no cues (customer's choice, or none on this server).
            live.send_to_rep(self.media.cue_state(live))
        if live.conns.get("customer") is None:
            self.grace.presence_changed(live, "customer")
        self.broadcast_queue()

    # both sides

    def _session_of(self, conn: Participant, session_id: str | None) -> tuple[LiveSession, str]:
        if conn.role == SUPERVISOR:
            assisted = self.assists.assisted_by(conn)
            if session_id is not None and session_id != assisted.id:
                raise ProtocolError("session_not_found", "no such session")
            return assisted, SUPERVISOR
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

    async def media_lost(self, session_ids: list[str]) -> None:
        """A media worker died: end exactly its calls, cleanly, and say why. A media node's calls get new
        media on another node instead, and both sides re-offer."""
        for session_id in session_ids:
            live = self.sessions.get(session_id)
            if live is not None and live.state == "active" and await self.media.replace(live):
                continue
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
        return self.media.claim_negotiation(live, role, sdp), role

    async def answer_offer(self, media: CallMedia | RemoteCallMedia, role: str, sdp: str) -> str:
        return await self.media.answer(media, role, sdp)

    async def chat(self, conn: Participant, text: str, session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        await self.chat_lines.add(live, role, conn, text)

    def take_snapshot(self, conn: Participant, session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        if role != "rep":
            raise ProtocolError("forbidden", "only the rep in the call takes snapshots")
        self.attachments.take_snapshot(live)

    def media_flags(self, conn: Participant, flags: dict[str, Any], session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        self.media.set_flags(live, role, flags)

    async def set_emotion_consent(self, conn: Participant, enabled: bool) -> None:
        """The customer changed their mind about emotion cues; it applies at once."""
        live, role = self._session_of(conn, None)
        if role != "customer":
            raise ProtocolError("forbidden", "only the customer decides about emotion cues")
        await self.media.set_emotion_consent(live, enabled)

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        if event == "emotion.flag":
            self.assists.floor_changed()  # a frustration flag goes to the supervisors' floor at once
        if self.on_event is not None:
            await self.on_event(event, data)

    async def end(self, conn: Participant, reason: str | None, session_id: str | None) -> None:
        live, role = self._session_of(conn, session_id)
        if role == SUPERVISOR and not (live.assist is not None and live.assist.handler):
            raise ProtocolError("forbidden", "leave the call with assist.leave; the rep ends it")
        if live.state == "waiting":
            await self._finish(live, state="abandoned", ended_by=role, reason="customer_left")
        else:
            await self._finish(live, state="ended", ended_by=role, reason=reason or f"{role}_hangup")

    async def disconnected(self, conn: Participant) -> None:
        if self._closing:
            return
        if conn.role == SUPERVISOR:
            await self.assists.disconnected(conn)
        elif conn.role == "customer":
            live = self.sessions.get(conn.session_id or "")
            if live is not None and live.conns.get("customer") is conn:
                live.conns["customer"] = None
                self.grace.start(live, "customer")
                if live.state == "active":
                    self.grace.presence_changed(live, "customer")
        elif conn.role == "rep" and conn.user is not None:
            rep = self.reps.get(conn.user.id)
            if rep is None:
                return
            rep.conns.discard(conn)
            live = self.sessions.get(rep.session_id or "")
            if live is not None and live.conns.get("rep") is conn:
                live.conns["rep"] = None
                self.grace.start(live, "rep")
                self.grace.presence_changed(live, "rep")
            if not rep.conns:
                self.ringing.cancel_rep_offer(rep, "rep_left")
                if rep.session_id is None:
                    rep.status = "wrap_up" if rep.wrap_up else "away"
                    self.broadcast_queue()

    async def close_login(self, login_id: str) -> None:
        for rep in self.reps.values():
            for conn in list(rep.conns):
                if conn.login_id == login_id:
                    conn.send(views.bye("logged_out"))
                    conn.close(4001, "logged out")

    def _rep(self, conn: Participant) -> RepState:
        if conn.role != "rep" or conn.user is None:
            raise ProtocolError("forbidden", "only reps may do this")
        return self.reps.setdefault(conn.user.id, RepState(conn.user))

    # routing

    matches = staticmethod(routing.matches)

    def decline(self, conn: Participant, session_id: str) -> None:
        self.ringing.decline(self._rep(conn), session_id)
        self.broadcast_queue()

    async def transfer(
        self, conn: Participant, session_id: str | None, *, to_rep: int | None, to_reason: str | None, note: str | None
    ) -> None:
        """Hand the call to another rep or back to a queue; the customer's media and context stay."""
        live, _role = self._session_of(conn, session_id)
        await self.ringing.transfer(live, self._rep(conn), to_rep=to_rep, to_reason=to_reason, note=note)

    def update_routing(self, user_id: int, skills: frozenset[str], languages: frozenset[str]) -> None:
        rep = self.reps.get(user_id)
        if rep is not None:
            rep.skills, rep.languages = skills, languages
            self.broadcast_queue()

    # queue

    def _waiting(self) -> list[LiveSession]:
        return routing.waiting_order(self.sessions.values())

    def broadcast_queue(self) -> None:
        """Ring at once; tell reps and waiting customers soon (coalesced: see ``QueueBroadcast.changed``)."""
        self.queue.changed()
        self.assists.floor_changed()

    def available_reps(self) -> int:
        return routing.available_reps(self.reps.values())

    def estimated_wait(self, position: int, reason: str | None = None) -> int:
        return self.queue.estimated_wait(position, reason)

    def estimated_waits(self) -> dict[str, int]:
        """The estimate for the next caller of each reason, for the supervisor's floor."""
        return {code: self.estimated_wait(1, code) for code, _label in self.settings.reasons}

    def next_waits(self) -> dict[str, int]:
        """What a customer who joins now would be told to expect, per reason (``""``: no reason)."""
        position = len(self._waiting()) + 1
        codes = ["", *(code for code, _label in self.settings.reasons)]
        return {code: self.estimated_wait(position, code or None) for code in codes}

    def live_floor(self) -> dict[str, Any]:
        """The supervisor's view: the queue, every rep, and live calls with the customer's frustration."""
        return live_floor(
            self.sessions.values(),
            self.reps.values(),
            waiting=self._waiting(),
            estimated_wait_s=self.estimated_waits(),
            handle_times=self.assists.handle_times,
            long_call_factor=self.settings.long_call_factor,
        )

    # capacity

    @property
    def capacity(self) -> int:
        return self.admission.capacity

    def active_calls(self) -> int:
        return self.admission.active_calls()

    def is_full(self) -> bool:
        """Every media slot is busy and as many customers already wait: a new one would only wait longer."""
        return self.admission.is_full()

    def media_stats(self) -> list[dict[str, Any]]:
        return media_stats(self.sessions)

    def floor(self) -> dict[str, Any]:
        return {
            "waiting": len(self._waiting()),
            "active": sum(1 for s in self.sessions.values() if s.state == "active"),
            "available_reps": self.available_reps(),
        }


CALL_CENTER = web.AppKey("call_center", CallCenter)
