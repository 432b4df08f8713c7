"""Supervisor assist: the supervisors' live floor, and a supervisor listening to, whispering in, joining or
taking over a call.

Who hears whom is the media's business (``server.media.assist``: the supervisor's voice reaches the rep in a
whisper, both sides in a barge-in); this part keeps who assists which call, tells each side what it may know
(the customer: a name on barge-in, and a listener only where ``disclose_listening`` says so), writes the audit
log and the session's events (the QA timeline), and pushes the floor to supervisors' sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..media.assist import ASSIST_MODES
from ..media.call import MediaClosed
from ..storage.records import User
from . import views
from .errors import ProtocolError
from .floor import HandleTimes
from .participant import Participant
from .state import Assist, LiveSession, RepState, Shared

log = logging.getLogger(__name__)

SUPERVISOR_ROLES = ("supervisor", "admin")
# The floor's talk times and long calls move by themselves: supervisors get it again this often at least.
FLOOR_REFRESH_S = 5.0


class Assists:
    """Supervisors' sockets, the floor they watch, and each call's assist."""

    def __init__(
        self,
        shared: Shared,
        floor: Callable[[], dict[str, Any]],
        *,
        set_status: Callable[[RepState, str], None],
        ice_servers: Callable[[str], list[dict[str, Any]]],
    ) -> None:
        self.shared = shared
        self.floor = floor
        self.set_status = set_status
        self.ice_servers = ice_servers
        # For the floor's "long call": the usual handle time of each reason.
        self.handle_times = HandleTimes(shared.settings.long_call_default_s)
        self.watchers: set[Participant] = set()
        self._push: asyncio.TimerHandle | None = None
        self._last_push = 0.0
        self._refresh: asyncio.Task[None] | None = None

    # the floor

    def hello(self, conn: Participant, user: User) -> None:
        """A supervisor or admin opens the live floor: its pushes, and the calls they may assist."""
        if user.role not in SUPERVISOR_ROLES:
            raise ProtocolError("forbidden", "only supervisors and admins watch the floor")
        conn.role = "supervisor"
        self.watchers.add(conn)
        if self._refresh is None:
            self._refresh = asyncio.create_task(self._refresh_floor(), name="floor-refresh")
        welcome = views.supervisor_welcome(
            user, ice_servers=self.ice_servers(f"supervisor-{user.id}"), floor=self.floor()
        )
        conn.send(welcome)
        for live in self.shared.sessions.values():
            assist = live.assist
            if assist is not None and assist.handler and assist.supervisor.id == user.id and assist.conn is None:
                assist.conn = conn  # back to the call they handle
                conn.send(views.supervisor_assist_state(live.id, assist.mode, handler=True))

    def floor_changed(self) -> None:
        """Supervisors hear of a change at once, then at most ``queue_updates_per_s`` times a second."""
        if not self.watchers or self._push is not None:
            return
        interval = 1.0 / max(self.shared.settings.queue_updates_per_s, 0.1)
        delay = max(0.0, self._last_push + interval - time.monotonic())
        self._push = asyncio.get_running_loop().call_later(delay, self._send_floor)

    def _send_floor(self) -> None:
        self._push = None
        self._last_push = time.monotonic()
        if not self.watchers:
            return
        update = views.floor_update(self.floor())
        for conn in list(self.watchers):
            conn.send(update)

    async def _refresh_floor(self) -> None:
        while True:
            await asyncio.sleep(FLOOR_REFRESH_S)
            self.floor_changed()

    async def aclose(self) -> None:
        if self._push is not None:
            self._push.cancel()
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)

    # a supervisor in a call

    def assisted_by(self, conn: Participant) -> LiveSession:
        """The call this supervisor's socket assists."""
        for live in self.shared.sessions.values():
            if live.assist is not None and live.assist.conn is conn:
                return live
        raise ProtocolError("not_assisting", "you are not in a call; open one from the floor first")

    async def start(self, conn: Participant, session_id: str, mode: str) -> None:
        supervisor = self._supervisor(conn)
        live = self.shared.sessions.get(session_id)
        if live is None or live.state != "active" or live.media is None:
            raise ProtocolError("session_not_found", "no such live call")
        self._check_free(live, supervisor)
        for other in list(self.shared.sessions.values()):
            if other is not live and other.assist is not None and other.assist.conn is conn:
                await self.leave(conn)  # one call at a time: opening another leaves the first
        # Again after that wait: another supervisor may have opened the call meanwhile.
        current = self._check_free(live, supervisor)
        if current is not None:
            current.conn = conn  # the same supervisor again (a reload): the new socket takes over
            await self._set_mode(live, current, mode, supervisor)
            return
        live.assist = Assist(supervisor, conn, mode)
        await self._apply(live, None, mode)
        await self._record(live, supervisor, f"assist.{mode}")
        if live.help_since is not None:
            await self.set_help(live, False)  # answered
        self.floor_changed()

    async def change(self, conn: Participant, mode: str) -> None:
        live = self.assisted_by(conn)
        assist = live.assist
        assert assist is not None
        await self._set_mode(live, assist, mode, assist.supervisor)

    async def _set_mode(self, live: LiveSession, assist: Assist, mode: str, supervisor: User) -> None:
        if assist.handler and mode != "barge":
            raise ProtocolError("bad_message", "you handle this call now: you are in it until it ends")
        before, assist.mode = assist.mode, mode
        await self._apply(live, before, mode)
        if before != mode:
            await self._record(live, supervisor, f"assist.{mode}")
        self.floor_changed()

    async def leave(self, conn: Participant) -> None:
        live = self.assisted_by(conn)
        assist = live.assist
        assert assist is not None
        if assist.handler:
            raise ProtocolError("bad_message", "you handle this call now: end it instead")
        await self._end(live, assist, reason="left")
        await self._record(live, assist.supervisor, "assist.left")

    async def disconnected(self, conn: Participant) -> None:
        """A supervisor's socket closed (a reload, a lost network): the call goes on without them."""
        self.watchers.discard(conn)
        for live in list(self.shared.sessions.values()):
            assist = live.assist
            if assist is not None and assist.conn is conn:
                if assist.handler:
                    assist.conn = None  # the call is theirs: they come back to it, as a rep would
                    continue
                await self._end(live, assist, reason="left")
                await self._record(live, assist.supervisor, "assist.left")

    async def take_over(self, conn: Participant) -> None:
        """The supervisor handles the call from now on; the rep drops out with no outcome owed, free again."""
        live = self.assisted_by(conn)
        assist = live.assist
        assert assist is not None and live.media is not None
        if assist.handler:
            return
        if assist.mode != "barge":
            assist.mode = "barge"
            await self._apply(live, None, "barge")
        assist.handler = True
        rep = live.rep
        await self.shared.store.assign_handler(live.id, assist.supervisor.id)
        await self._record(live, assist.supervisor, "assist.take_over", {"from_rep": rep.id if rep else None})
        live.send_to_rep([views.rep_taken_over(live.id, assist.supervisor)])
        live.send_to_customer(views.customer_handler(live.id, assist.supervisor))
        live.conns["rep"] = None
        await live.media.drop("rep")
        live.rep = assist.supervisor
        conn.send(views.supervisor_assist_state(live.id, "barge", handler=True))
        desk = self.shared.reps.get(rep.id) if rep is not None else None
        if desk is not None and desk.session_id == live.id:
            desk.session_id = None
            self.set_status(desk, "available" if desk.conns else "away")
        self.floor_changed()

    async def whisper(self, conn: Participant, text: str) -> None:
        live = self.assisted_by(conn)
        assist = live.assist
        assert assist is not None
        if assist.handler:
            raise ProtocolError("not_in_call", "the rep has left this call")
        live.send_to_rep([views.rep_whisper(live.id, assist.supervisor, text)])
        # Stored as an event, never as a chat line: the customer's chat history must not hold it.
        await self.shared.store.add_event(
            live.id, "assist.whisper_text", {"by": assist.supervisor.display_name, "text": text}
        )
        await self.shared.store.audit(assist.supervisor.id, "assist.whisper_text", live.id)

    async def set_help(self, live: LiveSession, on: bool) -> None:
        """The rep asks for help, or the request is answered (or withdrawn)."""
        if (live.help_since is not None) == on:
            return
        live.help_since = time.time() if on else None
        await self.shared.store.add_event(live.id, "help.asked" if on else "help.closed")
        live.send_to_rep([views.help_state(live.id, on)])
        self.floor_changed()

    async def ended(self, live: LiveSession) -> None:
        """The call is over: a supervisor in it hears so and is out of it; its handle time is counted."""
        record = live.record
        if record.answered_at is not None and record.ended_at is not None:
            self.handle_times.observe(record.reason, record.ended_at - record.answered_at)
        assist, live.assist = live.assist, None
        if assist is not None and assist.conn is not None:
            assist.conn.send(views.supervisor_assist_state(live.id, None, reason="ended"))

    # inside

    def _check_free(self, live: LiveSession, supervisor: User) -> Assist | None:
        """The call's assist if it is this supervisor's own; ``already_assisted`` if it is someone else's."""
        current = live.assist
        if current is not None and current.supervisor.id != supervisor.id:
            who = current.supervisor.display_name
            raise ProtocolError("already_assisted", f"{who} is already in this call")
        return current

    def _supervisor(self, conn: Participant) -> User:
        if conn.role != "supervisor" or conn.user is None or conn.user.role not in SUPERVISOR_ROLES:
            raise ProtocolError("forbidden", "only supervisors and admins may listen, whisper or join a call")
        return conn.user

    async def _apply(self, live: LiveSession, before: str | None, mode: str | None) -> None:
        """The media's gates, then what each side is told of the change."""
        assert live.media is not None
        assert mode is None or mode in ASSIST_MODES
        try:
            await live.media.set_assist(mode)
        except MediaClosed:
            raise ProtocolError("not_in_call", "the call ended meanwhile") from None
        assist = live.assist
        supervisor = assist.supervisor if assist is not None else None
        live.send_to_rep([views.rep_assist_state(live.id, supervisor if mode else None, mode)])
        if mode is not None and assist is not None and assist.conn is not None:
            assist.conn.send(views.supervisor_assist_state(live.id, mode, handler=assist.handler))
        # The customer sees whoever joins, and a listener only where the deployment discloses it.
        was_in, now_in = before == "barge", mode == "barge"
        if was_in != now_in:
            name = supervisor.display_name if supervisor else None
            live.send_to_customer(views.customer_party(live.id, present=now_in, name=name))
        if self.shared.settings.disclose_listening:
            was_on, now_on = before is not None, mode is not None
            if was_on != now_on:
                live.send_to_customer(views.customer_monitored(live.id, now_on))

    async def _end(self, live: LiveSession, assist: Assist, *, reason: str) -> None:
        before = assist.mode
        media = live.media
        await self._apply(live, before, None)
        live.assist = None
        if assist.conn is not None:
            assist.conn.send(views.supervisor_assist_state(live.id, None, reason=reason))
        if media is not None:
            await media.drop("supervisor")
        self.floor_changed()

    async def _record(
        self, live: LiveSession, supervisor: User, action: str, detail: dict[str, Any] | None = None
    ) -> None:
        """The audit log (who, when, which call) and the session's events (the QA timeline)."""
        await self.shared.store.audit(supervisor.id, action, live.id, detail)
        await self.shared.store.add_event(live.id, action, {"by": supervisor.display_name, **(detail or {})})
