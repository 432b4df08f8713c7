"""What the server's peers and the browsers get for ICE: per-session TURN credentials on every welcome, and
the announced address (``public_ip``) beside the host candidate, on the same socket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import replace

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from server.config import Settings
from server.media import ice
from tests.support.clients import ToneAudioTrack, welcomed
from tests.support.server import start_rapport

pytestmark = pytest.mark.webrtc

SECRET = "test-turn-secret"
URLS = ("turn:10.99.0.5:3478?transport=udp", "turn:10.99.0.5:3478?transport=tcp")


def valid_for_coturn(server: dict[str, object], label: str, ttl_s: int) -> None:
    """The entry coturn's use-auth-secret would accept: expiry:label, HMAC-SHA1 of it, expiry about ttl away."""
    username, credential = str(server["username"]), str(server["credential"])
    expiry, _, got_label = username.partition(":")
    assert got_label == label
    assert abs(int(expiry) - (time.time() + ttl_s)) < 5
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert credential == base64.b64encode(digest).decode()
    assert server["urls"] == list(URLS)


async def test_every_welcome_hands_out_turn_credentials_of_its_own(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, turn_secret=SECRET, turn_urls=URLS, turn_ttl_s=120))
    try:
        await rapport.add_user("rep1")
        rep = await rapport.rep("rep1")
        rep_welcome = next(m for m in rep.inbox if m["type"] == "welcome")
        customer, call = await rapport.customer(name="Ada")
        welcome = next(m for m in customer.inbox if m["type"] == "welcome")
        (turn,) = welcome["ice_servers"]
        valid_for_coturn(turn, call["session_id"], 120)
        (rep_turn,) = rep_welcome["ice_servers"]
        assert rep_turn["username"].split(":", 1)[1].startswith("rep-")
        assert rep_turn["username"] != turn["username"]

        # A reconnect is a new hello: newer credentials, for the same session.
        await asyncio.sleep(1.1)
        again = await welcomed(rapport.http, rapport.url, call["token"])
        (renewed,) = next(m for m in again.inbox if m["type"] == "welcome")["ice_servers"]
        await again.close()
        valid_for_coturn(renewed, call["session_id"], 120)
        assert int(renewed["username"].split(":")[0]) > int(turn["username"].split(":")[0])

        # The public page's configuration carries no TURN credentials: only sessions get them.
        async with rapport.http.get(f"{rapport.url}/api/v1/config") as r:
            assert (await r.json())["ice_servers"] == []
    finally:
        await rapport.stop()


async def test_the_announced_address_is_a_host_candidate_on_the_same_port() -> None:
    previous = ice.install(ice.IcePolicy(public_ip="203.0.113.7"))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTrack(ToneAudioTrack())
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        candidates = [line.split() for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate")]
        hosts = {(c[4], c[5]) for c in candidates if c[7] == "host"}
        private = {port for address, port in hosts if address == "127.0.0.2"}
        announced = {port for address, port in hosts if address == "203.0.113.7"}
        assert private and announced == private, candidates
    finally:
        await pc.close()
        ice.install(previous)
    # And without a public address nothing is announced.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTrack(ToneAudioTrack())
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None and "203.0.113.7" not in pc.localDescription.sdp
    finally:
        await pc.close()
