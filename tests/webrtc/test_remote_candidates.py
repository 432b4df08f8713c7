"""An offer whose host candidates are all mDNS names and that ends its candidates (Firefox's, by default) still
connects: server/media/remote_candidates.py leaves out what the server can never resolve, and the server learns
the browser's address from its checks.

The "browser" here is an aiortc peer whose offer has its addresses replaced by mDNS names, as Firefox's has;
tests/network/test_firefox.py makes the same call with Firefox itself.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from server.media.peers import ServerPeer
from server.media.remote_candidates import reachable_offer

pytestmark = pytest.mark.webrtc

CANDIDATE = re.compile(r"^(a=candidate:\S+ (\d+) \S+ \d+ )(\S+)( .*)$", re.MULTILINE)
HIDDEN_HOST = "5c1a2c53-0a3d-4f5e-9b8e-43d1c36bd2a1.local"


def hidden(sdp: str) -> str:
    """``sdp`` with every candidate's address replaced by an mDNS name (what Firefox shows by default)."""
    return CANDIDATE.sub(lambda m: f"{m.group(1)}{HIDDEN_HOST}{m.group(4)}", sdp)


def candidates(sdp: str) -> list[str]:
    return [m.group(3) for m in CANDIDATE.finditer(sdp)]


@pytest.fixture
async def browser() -> AsyncIterator[RTCPeerConnection]:
    """The offering side, its offer made (audio and video, candidates gathered, end-of-candidates)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    yield pc
    await pc.close()


def offer_of(pc: RTCPeerConnection) -> str:
    assert pc.localDescription is not None
    return pc.localDescription.sdp


async def answer_candidates(offer: str) -> list[str]:
    """The candidates of a bare aiortc peer's answer to ``offer``."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        assert pc.localDescription is not None
        return candidates(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_aioice_gathers_nothing_for_an_offer_of_unresolvable_names_that_ends_its_candidates(
    browser: RTCPeerConnection,
) -> None:
    # Why the adapter exists (aioice 0.13): this fails once aioice keeps the component, and the adapter may go.
    offer = hidden(offer_of(browser))
    assert "a=end-of-candidates" in offer and set(candidates(offer)) == {HIDDEN_HOST}
    assert await answer_candidates(offer) == [], "aioice now gathers for such an offer: reachable_offer may go"
    assert await answer_candidates(reachable_offer(offer)), "the server's answer has no candidates"


def test_only_mdns_candidates_go_and_end_of_candidates_only_where_none_is_left() -> None:
    offer = "\r\n".join(
        [
            "v=0",
            "o=- 1 0 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1",
            "m=audio 9 UDP/TLS/RTP/SAVPF 109",
            f"a=candidate:0 1 UDP 2122252543 {HIDDEN_HOST} 37953 typ host",
            f"a=candidate:1 1 TCP 2105524479 {HIDDEN_HOST} 9 typ host tcptype active",
            f"a=candidate:0 2 UDP 2122252542 {HIDDEN_HOST} 56431 typ host",
            "a=candidate:2 1 UDP 8265727 203.0.113.5 61000 typ relay raddr 0.0.0.0 rport 0",
            "a=end-of-candidates",
            "a=mid:0",
            "m=video 9 UDP/TLS/RTP/SAVPF 120",
            f"a=candidate:0 1 UDP 2122252543 {HIDDEN_HOST} 44123 typ host",
            "a=candidate:3 2 UDP 1686052606 198.51.100.7 40001 typ srflx raddr 0.0.0.0 rport 0",
            "a=end-of-candidates",
            "a=mid:1",
            "",
        ]
    )
    kept = reachable_offer(offer)
    assert kept.endswith("\r\n") and "\n" not in kept.replace("\r\n", "")
    audio, video = kept.split("m=video")
    # The relay candidate stays, and with it the end of the audio's candidates.
    assert candidates(audio) == ["203.0.113.5"] and "a=end-of-candidates" in audio
    # Only a component-2 candidate is left for video: more (the browser's checks) may still come.
    assert candidates(video) == ["198.51.100.7"] and "a=end-of-candidates" not in video
    # An offer with nothing hidden (Chromium's with a camera permission) is passed on as it is.
    assert reachable_offer(kept) is kept


async def test_a_browser_hiding_its_addresses_connects_to_the_server(browser: RTCPeerConnection) -> None:
    server_connected, browser_connected = asyncio.Event(), asyncio.Event()

    def on_server_state(state: str) -> None:
        if state == "connected":
            server_connected.set()

    @browser.on("connectionstatechange")
    def on_browser_state() -> None:
        if browser.connectionState == "connected":
            browser_connected.set()

    server = ServerPeer("customer", (), on_track=lambda _track: None, on_state=on_server_state)
    try:
        answer = await server.answer(hidden(offer_of(browser)), [])
        assert candidates(answer), "the server's answer has no candidates"
        await browser.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        async with asyncio.timeout(10):  # a hang guard: without a path, neither side ever connects
            await server_connected.wait()
            await browser_connected.wait()
    finally:
        await server.close()
