"""CallMedia: all media wiring of one support session, in one place.

Each participant (customer, rep, and a supervisor who assists) has one ServerPeer at a time and one feed
per kind. A participant's incoming tracks attach to their feeds; the others' peers send FeedTracks that
play those feeds. Recorders, the emotion pipeline and the forwarding path attach here too.

Every peer has two slots (docs/protocol.md, "Supervisor assist"): slot 0 carries the other side, slot 1
the third party. The supervisor's slot 0 and 1 carry the customer and the rep; the customer's and the
rep's slot 1 carries the supervisor through a gate (``server.media.assist``), so a change of mode is a
gate opening or closing, never a new negotiation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from ..config import IceServer
from ..metrics import BucketCounts, measure_transit
from .assist import ASSIST_MODES, SUPERVISOR, supervisor_reaches
from .feeds import FeedTrack, GatedFeedTrack, ParticipantFeed
from .forwarding import RtpFeedTrack, RtpParticipantFeed, request_keyframe_from
from .healing import give_up_on_lost_packets
from .peers import ServerPeer
from .seams import tap_receiver

# What a peer sends: a feed's frames (transcoding) or its packets, renumbered (forwarding).
Outgoing = FeedTrack | RtpFeedTrack

log = logging.getLogger(__name__)

ROLES = ("customer", "rep")  # the call's two sides; a supervisor joins as a third party
PARTIES = (*ROLES, SUPERVISOR)
KINDS = ("audio", "video")


def other(role: str) -> str:
    return "rep" if role == "customer" else "customer"


class MediaClosed(Exception):
    """The call's media was torn down (the call ended) while an offer was in flight."""


MediaStateCallback = Callable[[str, str], Coroutine[Any, Any, None]]


class BaseCallMedia:
    """What a call's media keeps wherever it runs (here or in a worker): each side's media state and offer.

    ``on_media_state(role, state)`` hears "connected" / "lost".
    """

    def __init__(self, session_id: str, *, on_media_state: MediaStateCallback, forward: bool) -> None:
        self.session_id = session_id
        # Forwarding: encoded packets go from one peer to the other, nothing is decoded or encoded.
        self.forward = forward
        self._on_media_state = on_media_state
        self._media_state: dict[str, str] = {role: "new" for role in PARTIES}
        # How a supervisor takes part (None: no one assists); the gates read it for every packet.
        self.assist_mode: str | None = None
        self._negotiating: set[str] = set()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def is_negotiating(self, role: str) -> bool:
        return role in self._negotiating

    def begin_negotiation(self, role: str) -> None:
        """Mark ``role`` busy before yielding, so a second offer sees it at once."""
        self._negotiating.add(role)

    def media_state(self, role: str) -> str:
        return self._media_state[role]

    def _report_media_state(self, role: str, state: str) -> None:
        self._media_state[role] = state
        self._spawn(self._on_media_state(role, state))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # Held until done: the loop keeps only a weak reference to a task.
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class CallMedia(BaseCallMedia):
    """Media of one session, carried in this process."""

    def __init__(
        self,
        session_id: str,
        ice_servers: tuple[IceServer, ...],
        *,
        on_media_state: MediaStateCallback,
        stall_after_s: float = 6.0,
        forward: bool = False,
        transit: BucketCounts | None = None,
    ) -> None:
        super().__init__(session_id, on_media_state=on_media_state, forward=forward)
        self.transit = transit
        # Forwarding: the first peer's video codec; the other side is answered with the same one.
        self.video_codec: str | None = None
        self.ice_servers = ice_servers
        feed = RtpParticipantFeed if forward else ParticipantFeed
        self.feeds: dict[str, dict[str, ParticipantFeed]] = {
            role: {kind: feed(kind, f"{session_id}/{role}") for kind in KINDS} for role in PARTIES
        }
        self.peers: dict[str, ServerPeer | None] = {role: None for role in PARTIES}
        self._outgoing: dict[str, list[Outgoing]] = {role: [] for role in PARTIES}
        self._stall_after_s = stall_after_s
        self._peer_started: dict[str, float] = {}
        self._watchdog = asyncio.create_task(self._watch(), name=f"media-watchdog-{session_id}")

    async def answer(self, role: str, offer_sdp: str) -> str:
        """Build a new peer for ``role`` from this offer; it replaces the old one only if it works."""
        if self._closed:
            raise MediaClosed
        self._negotiating.add(role)
        incoming: list[MediaStreamTrack] = []

        def on_track(track: MediaStreamTrack) -> None:
            if any(t.kind == track.kind for t in incoming):
                return  # a participant sends one track of each kind (slot 0); another one is not played
            receiver = peer.receiver_of(track)
            feed = self.feeds[role].get(track.kind)
            if isinstance(feed, RtpParticipantFeed) and receiver is not None:
                tap_receiver(receiver, feed.tap(receiver))  # before it receives: its packets go to the feed
            elif track.kind == "video" and receiver is not None:
                give_up_on_lost_packets(receiver)  # or a lost packet freezes the picture for ~17 s
            incoming.append(track)

        peer = ServerPeer(
            f"{self.session_id}/{role}",
            self.ice_servers,
            on_track=on_track,
            on_state=lambda state: self._peer_state(role, peer, state),
        )
        outgoing = self._outgoing_tracks(role)
        try:
            answer = await peer.answer(
                offer_sdp,
                list(outgoing),  # VP8 unless a side already chose: every browser has it (Firefox ESR ships no H.264).
                video_codec=(self.video_codec or "VP8") if self.forward else None,
            )
            if self._closed:
                raise MediaClosed
        except BaseException:
            for track in outgoing:
                track.stop()
            await peer.close()
            raise
        finally:
            self._negotiating.discard(role)
        # A garbage offer must not cost the participant the media they already have,
        # so the old peer goes only now.
        await self._drop_peer(role)
        self.peers[role] = peer
        sent = {id(sender.track) for sender in peer.senders}
        for track in outgoing:
            if id(track) not in sent:
                track.stop()  # no section for it in this offer (an older page): not fed either
        self._outgoing[role] = [track for track in outgoing if id(track) in sent]
        if self.forward and self.video_codec is None:
            self.video_codec = peer.video_codec()
        self._peer_started[role] = time.monotonic()
        for remote in incoming:
            if remote.kind in self.feeds[role]:
                feed = self.feeds[role][remote.kind]
                receiver = peer.receiver_of(remote)
                if isinstance(feed, RtpParticipantFeed) and receiver is not None:
                    feed.attach_rtp(receiver)
                    feed.keyframe_source = self._keyframe_requester(peer, remote)
                else:
                    feed.attach(remote)
        for sender in peer.senders:
            if isinstance(sender.track, RtpFeedTrack):
                # Its packets go out through this sender; a PLI/FIR or NACK at it is answered or sent upstream.
                sender.track.bind(sender)
            elif isinstance(sender.track, FeedTrack) and self.transit is not None and sender.track.kind == "video":
                measure_transit(sender, sender.track, self.transit)
        return answer

    def _outgoing_tracks(self, role: str) -> list[Outgoing]:
        """What ``role``'s peer sends, in slot order: slot 0's audio and video, then slot 1's."""
        if self.forward:
            return self._forwarded_tracks(role)
        if role == SUPERVISOR:
            return [FeedTrack(self.feeds[side][kind]) for side in ROLES for kind in KINDS]
        main: list[Outgoing] = [FeedTrack(self.feeds[other(role)][kind]) for kind in KINDS]
        third: list[Outgoing] = [GatedFeedTrack(self.feeds[SUPERVISOR][kind], self._gate(role, kind)) for kind in KINDS]
        return main + third

    def _forwarded_tracks(self, role: str) -> list[Outgoing]:
        feeds = self.feeds

        def stream(feed: ParticipantFeed, gate: Callable[[], bool] | None = None) -> RtpFeedTrack:
            assert isinstance(feed, RtpParticipantFeed)
            return RtpFeedTrack(feed, gate, transit=self.transit)

        if role == SUPERVISOR:
            return [stream(feeds[side][kind]) for side in ROLES for kind in KINDS]
        main: list[Outgoing] = [stream(feeds[other(role)][kind]) for kind in KINDS]
        return main + [stream(feeds[SUPERVISOR][kind], self._gate(role, kind)) for kind in KINDS]

    def _gate(self, role: str, kind: str) -> Callable[[], bool]:
        return lambda: supervisor_reaches(role, kind, self.assist_mode)

    async def set_assist(self, mode: str | None) -> None:
        """A supervisor listens, whispers, barges in, or (None) left: the gates follow at once."""
        if mode is not None and mode not in ASSIST_MODES:
            raise ValueError(f"no such way to assist: {mode!r}")
        self.assist_mode = mode
        for role in ROLES:
            for track in self._outgoing[role]:
                if not isinstance(track, GatedFeedTrack | RtpFeedTrack) or track.is_open is None:
                    continue
                if not track.is_open():
                    track.flush()
                elif track.kind == "video":
                    track.feed.request_keyframe()  # the picture starts at once, not at the next periodic keyframe

    async def _ask_keyframe(self, receiver: Any) -> None:
        try:
            await request_keyframe_from(receiver)
        except Exception:  # a closing transport: the next request will do
            log.debug("keyframe request failed", exc_info=True)

    def _keyframe_requester(self, peer: ServerPeer, track: MediaStreamTrack) -> Callable[[], None]:
        receiver = peer.receiver_of(track)

        def request() -> None:
            if receiver is None or self._closed:
                return
            self._spawn(self._ask_keyframe(receiver))

        return request

    def _peer_state(self, role: str, peer: ServerPeer, state: str) -> None:
        if self.peers.get(role) is not peer:
            return  # a replaced peer's last words
        log.info("session %s %s peer %s", self.session_id, role, state)
        # A supervisor's media coming and going is no side's media state: it never ends or pauses the call.
        if state in ("failed", "closed") and role in ROLES:
            self._set_media_state(role, "lost")

    async def _drop_peer(self, role: str) -> None:
        peer = self.peers.get(role)
        self.peers[role] = None
        for feed_track in self._outgoing[role]:
            feed_track.stop()
        self._outgoing[role] = []
        for feed in self.feeds[role].values():
            feed.detach()
        if peer is not None:
            await peer.close()

    async def drop(self, role: str) -> None:
        """The participant left or vanished: close their peer, keep the feeds for a comeback."""
        await self._drop_peer(role)
        self._media_state[role] = "new"

    def _set_media_state(self, role: str, state: str) -> None:
        if self._media_state[role] == state or self._closed:
            return
        self._report_media_state(role, state)

    async def _watch(self) -> None:
        # ICE consent takes ~30 s to notice a dead peer; frames stop at once.
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for role in ROLES:
                if self.peers[role] is None:
                    continue
                last = max((f.last_frame_at or 0.0 for f in self.feeds[role].values()), default=0.0)
                started = self._peer_started.get(role, now)
                if last > started:
                    fresh = now - last < self._stall_after_s
                    self._set_media_state(role, "connected" if fresh else "lost")
                elif now - started > self._stall_after_s * 2:
                    self._set_media_state(role, "lost")

    def stats(self) -> dict[str, dict[str, int]]:
        """Frames in from each participant and out to them (all slots), the supervisor's only while present."""
        present = [*ROLES, SUPERVISOR] if self.peers[SUPERVISOR] is not None else list(ROLES)
        out: dict[str, dict[str, int]] = {}
        for role in present:
            counts = {f"{kind}_in": self.feeds[role][kind].frames_in for kind in KINDS}
            for track in self._outgoing[role]:
                counts[f"{track.kind}_out"] = counts.get(f"{track.kind}_out", 0) + track.frames_out
            out[role] = counts
        return out

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watchdog
        await asyncio.gather(*(self._drop_peer(role) for role in PARTIES))
        for feeds in self.feeds.values():
            for feed in feeds.values():
                feed.keyframe_source = None
                await feed.aclose()
        for task in list(self._tasks):
            task.cancel()
