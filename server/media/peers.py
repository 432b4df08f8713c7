"""ServerPeer: the server's end of one participant's WebRTC connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from ..config import IceServer
from .ice import PortsExhausted
from .remote_candidates import reachable_offer
from .seams import capture_send_parameters

log = logging.getLogger(__name__)

NEGOTIATION_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


class BadOffer(Exception):
    """The offer's SDP is unusable; the message says why, for the client."""


def rtc_configuration(servers: tuple[IceServer, ...]) -> RTCConfiguration:
    # Always explicit: RTCConfiguration() without iceServers means Google's STUN server.
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in servers]
    )


def bundle_every_section(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Put every section the offer bundles on the bundle's one transport (after setRemoteDescription).

    aiortc 1.16 ("balanced" bundling) gives a second section of a kind, such as the third-party slot, the
    transport of the first section of that kind, then moves only that first section onto the bundle's transport
    and stops the one they shared: the second section's sender never starts. The bundle policy "max-bundle"
    avoids that but broke relayed calls, so this mends what aiortc left behind instead.
    """
    session, _sections_ = _sections(offer_sdp)
    group = next((line.split()[1:] for line in session if line.startswith("a=group:BUNDLE")), [])
    if not group:
        return
    by_mid = {t.mid: t for t in pc.getTransceivers() if t.mid is not None}
    primary = by_mid.get(group[0])
    if primary is None:
        return
    transport = primary.receiver.transport
    for mid in group[1:]:
        transceiver = by_mid.get(mid)
        if transceiver is not None and transceiver.receiver.transport is not transport:
            transceiver.receiver.setTransport(transport)
            transceiver.sender.setTransport(transport)


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and media sections, split exactly as aiortc splits them (aiortc.sdp.grouplines)."""
    session: list[str] = []
    media: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _attribute(lines: list[str], name: str) -> str | None:
    """The last ``a=name:value`` of these lines (aiortc keeps the last one too)."""
    values = [line[len(name) + 3 :] for line in lines if line.startswith(f"a={name}:")]
    return values[-1] if values else None


def _count_sections(sdp: str, kind: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith(f"m={kind} "))


def _check_offer_text(sdp: str) -> None:
    if not sdp.startswith("v=0"):
        raise BadOffer("SDP must start with v=0")
    media = [line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=") and line.split()]
    if not any(kind in ("audio", "video") for kind in media):
        raise BadOffer("SDP has no audio or video section")
    if len(media) > 8:
        raise BadOffer("SDP has too many media sections")
    # aiortc accepts an offer without these and then fails in a task of its own (found by make fuzz): a BUNDLE
    # naming a mid no section has leaves transceivers without a transport; a section without a fingerprint
    # trips an assertion once ICE connects. Browsers always send both.
    session, sections = _sections(sdp)
    mids = [_attribute(section, "mid") for section in sections]
    if not all(mids) or len(set(mids)) != len(mids):
        raise BadOffer("every media section needs its own a=mid")
    for group in (line for line in session if line.startswith("a=group:")):
        semantic, *items = group[len("a=group:") :].split() or [""]
        if semantic == "BUNDLE" and any(item not in mids for item in items):
            raise BadOffer("a=group:BUNDLE names a mid that no media section has")
    if _attribute(session, "fingerprint") is None and not all(_attribute(s, "fingerprint") for s in sections):
        raise BadOffer("every media section needs a DTLS fingerprint (a=fingerprint)")


class ServerPeer:
    """Wraps an RTCPeerConnection; reports incoming tracks and connection state."""

    def __init__(
        self,
        label: str,
        ice_servers: tuple[IceServer, ...],
        *,
        on_track: Callable[[MediaStreamTrack], None],
        on_state: Callable[[str], None],
    ) -> None:
        self.label = label
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers))
        self.senders: list[RTCRtpSender] = []
        self._on_state = on_state
        self._closed = False

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            on_track(track)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            on_state(self.pc.connectionState)

    @property
    def state(self) -> str:
        return self.pc.connectionState

    def video_codec(self) -> str | None:
        """The video codec this peer negotiated (the first one of the answer's video section)."""
        desc = self.pc.localDescription
        if desc is None:
            return None
        lines = desc.sdp.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("m=video") and len(line.split()) > 3:
                payload = line.split()[3]
                for rtpmap in lines[index:]:
                    if rtpmap.startswith(f"a=rtpmap:{payload} "):
                        return rtpmap.split()[1].split("/")[0]
        return None

    def receiver_of(self, track: MediaStreamTrack) -> Any:
        return next((r for r in self.pc.getReceivers() if r.track is track), None)

    async def answer(self, offer_sdp: str, outgoing: list[MediaStreamTrack], *, video_codec: str | None = None) -> str:
        """Apply the client's offer, send ``outgoing`` back on its transceivers, return our answer.

        ``video_codec`` (e.g. "VP8", "H264") is chosen when the offer has it: forwarding needs both
        sides of a call on the same codec.
        """
        _check_offer_text(offer_sdp)
        try:
            await asyncio.wait_for(self._negotiate(offer_sdp, outgoing, video_codec), NEGOTIATION_TIMEOUT_S)
        except (BadOffer, PortsExhausted):
            raise
        except TimeoutError:
            raise BadOffer("negotiation timed out") from None
        except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError … on odd SDP
            raise BadOffer(f"unusable SDP: {type(exc).__name__}: {str(exc)[:120]}") from None
        desc = self.pc.localDescription
        assert desc is not None
        return desc.sdp

    async def _negotiate(self, offer_sdp: str, outgoing: list[MediaStreamTrack], video_codec: str | None) -> None:
        if video_codec and f" {video_codec.lower()}/90000" in offer_sdp.lower():
            # Transceivers made before the offer are the ones its video sections land on, in order: every
            # video section (the third-party slot too) carries the call's one codec.
            wanted = (f"video/{video_codec.lower()}", "video/rtx")
            codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]
            for _section in range(_count_sections(offer_sdp, "video")):
                self.pc.addTransceiver("video", direction="recvonly").setCodecPreferences(codecs)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=reachable_offer(offer_sdp), type="offer"))
        bundle_every_section(self.pc, offer_sdp)
        # Slot order: the n-th outgoing track of a kind goes on the offer's n-th section of that kind. A track
        # without a section (an older page offers one pair) is not sent; aiortc would add a section of its own.
        room = {kind: sum(1 for t in self.pc.getTransceivers() if t.kind == kind) for kind in ("audio", "video")}
        for track in outgoing:
            if room.get(track.kind, 0) > 0:
                room[track.kind] -= 1
                sender = self.pc.addTrack(track)
                capture_send_parameters(sender)  # forwarded packets are written with what it negotiates
                self.senders.append(sender)
        answer = await self.pc.createAnswer()
        if answer is None:
            raise BadOffer("no answer could be made")
        await self.pc.setLocalDescription(answer)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # pc.close() can hang on a wedged transport (aiortc #283): bound it.
        try:
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        except Exception:
            log.exception("closing peer %s failed", self.label)
