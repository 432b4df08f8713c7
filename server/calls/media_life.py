"""A call's media and what runs on it: the peer connections (in a worker, on a media node or here), offers,
recording, cues; and a call's media moved to another node when its node is lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

from ..media.analysis import settings_of as emotion_settings_of
from ..media.call import ROLES, CallMedia, MediaClosed, other
from ..media.ice import PortsExhausted
from ..media.link import MediaPool, WorkerGone
from ..media.peers import BadOffer
from ..media.pool import RemoteCallMedia, RemoteRecording
from ..media.turn import ice_servers_for
from ..recording.recorder import CallRecording, free_mb, reconcile
from . import views
from .cues import CUES_OFF_FOR_CENTRE, OFF_BY_CUSTOMER, CallCues, EmotionSetup, NodeCues
from .errors import ProtocolError
from .payloads import ServerMessage
from .state import LiveSession, Shared

log = logging.getLogger(__name__)


class MediaLife:
    """Opens each answered call's media and starts its recording and emotion cues, as settings and consent say."""

    def __init__(
        self,
        shared: Shared,
        pool: MediaPool | None,
        *,
        emotion: EmotionSetup,
        on_media_state: Callable[[LiveSession, str, str], Awaitable[None]],
    ) -> None:
        self.shared = shared
        self.pool = pool
        self.emotion = emotion
        self.on_media_state = on_media_state
        self._watchers: set[asyncio.Task[None]] = set()

    def cancel_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.cancel()

    async def open(self, live: LiveSession) -> CallMedia | RemoteCallMedia:
        """The call's media: in a worker process when there are workers, else in this process."""

        async def changed(role: str, state: str) -> None:
            await self.on_media_state(live, role, state)

        forward = self.shared.settings.media_path == "forward"
        if self.pool is not None:
            try:
                return await self.pool.open(
                    live.id,
                    ice_servers_for(self.shared.settings, f"{live.id}-server"),
                    on_media_state=changed,
                    stall_after_s=self.shared.settings.media_stall_s,
                    forward=forward,
                )
            except (MediaClosed, WorkerGone, TimeoutError):
                if self.shared.settings.media_nodes:
                    # A cluster's front door is no place for media (browsers may not reach it): refuse.
                    log.error("no media node could take %s", live.id)
                    raise ProtocolError("at_capacity", "no media node can take this call now; try again") from None
                log.error("no media worker could take %s; carrying it in the front door", live.id)
        return CallMedia(
            live.id,
            ice_servers_for(self.shared.settings, f"{live.id}-server"),
            on_media_state=changed,
            stall_after_s=self.shared.settings.media_stall_s,
            forward=forward,
            transit=self.shared.metrics.transit,
        )

    async def place(self, live: LiveSession) -> CallMedia | RemoteCallMedia | None:
        """With media nodes, a call's media is placed before a rep's answer is stored: when no node can take it
        the answer is refused and the call keeps waiting. None otherwise (``start`` opens it)."""
        if live.media is not None or not self.shared.settings.media_nodes:
            return None
        return await self.open(live)

    async def settle(self, live: LiveSession, placed: CallMedia | RemoteCallMedia | None, *, answered: bool) -> None:
        """``placed`` becomes the call's media if the answer stood; else (or if another's came first) it closes."""
        if placed is None:
            return
        if answered and live.media is None:
            live.media = placed
            self.shared.metrics.calls_answered.inc()
        else:
            await placed.aclose()

    async def start(self, live: LiveSession) -> None:
        """The answered call's media (unless a transfer kept it), its cues and its recording."""
        if live.media is None:
            live.media = await self.open(live)
            self.shared.metrics.calls_answered.inc()
        self.start_cues(live)
        if live.recording is None:
            await self.start_recording(live)

    def claim_negotiation(self, live: LiveSession, role: str, sdp: str) -> CallMedia | RemoteCallMedia:
        """Reserve the participant's media for one offer; a second one meanwhile is refused."""
        if live.state != "active" or live.media is None:
            raise ProtocolError("not_in_call", "media starts once a rep has accepted the call")
        self._limit_offers(live, role)
        # aiortc sends connectivity checks to every address an offer lists: bound how many.
        candidates = sum(1 for line in sdp.splitlines() if line.lstrip().startswith("a=candidate"))
        cap = self.shared.settings.max_offer_candidates
        if cap > 0 and candidates > cap:
            raise ProtocolError("bad_sdp", f"the offer lists {candidates} ICE candidates; at most {cap} are accepted")
        if live.media.is_negotiating(role):
            raise ProtocolError("negotiation_in_progress", "the previous offer is still being answered")
        live.media.begin_negotiation(role)
        return live.media

    async def answer(self, media: CallMedia | RemoteCallMedia, role: str, sdp: str) -> str:
        try:
            return await media.answer(role, sdp)
        except BadOffer as exc:
            raise ProtocolError("bad_sdp", str(exc)) from None
        except MediaClosed:
            raise ProtocolError("not_in_call", "the call ended during negotiation") from None
        except PortsExhausted:
            log.error("no media port free for %s (rtc_ports): refusing the offer", media.session_id)
            raise ProtocolError("at_capacity", "no media port is free on the server; try again shortly") from None

    def _limit_offers(self, live: LiveSession, role: str) -> None:
        """At most ``offers_per_minute`` offers per participant: each one builds a peer connection."""
        cap = self.shared.settings.offers_per_minute
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

    def set_flags(self, live: LiveSession, role: str, flags: dict[str, Any]) -> None:
        """A participant's camera and microphone switches, shown to the other side."""
        live.media_flags[role] = flags
        peer = live.conns.get(other(role))
        if peer is not None:
            peer.send(views.peer_media(role, flags))

    async def start_recording(self, live: LiveSession) -> None:
        if not live.record.recording_consent or live.media is None:
            live.recording_note = "declined" if live.record.recording_consent is False else "off"
            return
        root = self.shared.settings.recordings_path
        root.mkdir(parents=True, exist_ok=True)
        if free_mb(root) < self.shared.settings.recording_min_free_mb:
            live.recording_note = "no_space"
            log.warning("not recording %s: less than %d MB free", live.id, self.shared.settings.recording_min_free_mb)
            await self.shared.store.add_event(live.id, "recording_skipped", {"reason": "low disk space"})
            return
        if isinstance(live.media, RemoteCallMedia):
            # The worker writes the files and their rows itself: the frames never cross processes.
            live.recording = await live.media.start_recording(root.resolve())
        else:
            recording = CallRecording(self.shared.store, root, live.id)
            media = live.media
            await recording.start(media.feeds, assist_mode=lambda: media.assist_mode)
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
                await self.shared.store.add_event(live.id, "recording_truncated", {"error": recording.error})
                live.send_to_customer(views.recording_state(live))
                live.send_to_rep([views.recording_state(live)])
                return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        watcher = asyncio.create_task(coro)
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def replace(self, live: LiveSession) -> bool:
        """The node carrying the call's media is gone: new media on another one, and both sides re-offer.

        False when the pool cannot do that (local workers): the call ends as before. The recording stops at
        the loss (what the node wrote plays up to it); the cues start again on the new node.
        """
        if self.pool is None or not self.pool.replaces_lost_calls:
            return False
        try:
            replacement = await self.open(live)
        except ProtocolError:
            return False  # no node left to take it: the call ends as on one box
        lost = live.media
        if isinstance(lost, RemoteCallMedia):
            lost.abandon()
        if live.cues is not None:
            cues, live.cues = live.cues, None
            await cues.aclose()
        had_recording = live.recording is not None
        live.recording = None
        # Before anything new is written: the lost node's files become what they hold.
        await reconcile(self.shared.store, self.shared.settings.recordings_path, live.id)
        live.media = replacement
        log.warning("media of %s lost with its node; re-placed, both sides re-offer", live.id)
        self.start_cues(live)
        if had_recording:
            live.recording_note = "truncated"
            await self.shared.store.add_event(live.id, "recording_truncated", {"error": "media node lost"})
            live.send_to_customer(views.recording_state(live))
            live.send_to_rep([views.recording_state(live)])
        restart = views.media_restart(live.id)
        live.send_to_customer(restart)
        live.send_to_rep([restart])
        if isinstance(live.media, RemoteCallMedia):
            # Each side sees the other "reconnecting" (and the grace runs) until media flows again.
            for role in ROLES:
                live.media.report_lost(role)
        return True

    def start_cues(self, live: LiveSession) -> None:
        if live.cues is not None or live.media is None or not live.record.emotion_consent:
            return
        if not self.shared.settings.emotion_cues_allowed:
            return  # turned off for the centre on /admin (cue_state says so)
        if isinstance(live.media, RemoteCallMedia) and live.media.cues_on_link:
            # The node analyses the customer's video itself: the frames never cross the link.
            live.cues = NodeCues(
                live.media, self.shared.settings, lambda message: live.send_to_rep([message]), on_event=self.shared.emit
            )
            return
        if self.emotion.service is None:
            return
        live.cues = CallCues(
            self.emotion.service,
            live.id,
            # The customer's video only: never the rep's.
            live.media.feeds["customer"]["video"],
            self.shared.store,
            lambda message: live.send_to_rep([message]),
            on_event=self.shared.emit,
            settings=emotion_settings_of(self.shared.settings),
        )

    async def set_emotion_consent(self, live: LiveSession, enabled: bool) -> None:
        """Stored at once; in a live call the cues start or stop, and the rep sees which."""
        await self.shared.store.set_emotion_consent(live.id, enabled)
        live.record = replace(live.record, emotion_consent=enabled)
        if live.state != "active":
            return
        if enabled:
            self.start_cues(live)
        elif live.cues is not None:
            cues, live.cues = live.cues, None
            await cues.aclose()
        live.send_to_rep(self.cue_state(live))

    def cue_state(self, live: LiveSession) -> list[ServerMessage]:
        """What the rep's cue panel shows now: the cues, or why there are none."""
        if not live.record.emotion_consent:
            return [views.emotion_status("off", OFF_BY_CUSTOMER, live.id)]
        if live.cues is None and not self.shared.settings.emotion_cues_allowed:
            return [views.emotion_status("unavailable", CUES_OFF_FOR_CENTRE, live.id)]
        if live.cues is None:
            return [views.emotion_status("unavailable", self.emotion.message, live.id)]
        return live.cues.snapshot()
