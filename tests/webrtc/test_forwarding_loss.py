"""Forwarding under real packet loss: 5 % of every UDP datagram in the test's network namespace is dropped by
nftables (``numgen random mod 20 == 0 drop`` on the way out of every socket), on both legs of the call and in both
directions: the customer's client to the server, the server to the rep's client, and their RTCP back.

NACK must repair most of it: the server's own NACKs to the customer (aiortc's NACK generator on the upstream leg),
and the rep's NACKs answered from the server's retransmission cache. What NACK cannot repair heals at a keyframe.
The picture must never stall: every two-second window shows new decoded frames at the rep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace

import pytest

from server.config import Settings
from server.media.call import CallMedia
from server.media.forwarding import RtpFeedTrack, RtpParticipantFeed
from tests.support.clients import CUSTOMER, REP, MediaClient
from tests.support.server import running

pytestmark = pytest.mark.webrtc

TABLE = "rapport_loss"
WINDOW_S = 2.0
WINDOWS = 10


def _nft(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def udp_loss(one_in: int) -> Iterator[None]:
    """Drop one UDP datagram in ``one_in`` (at random) leaving any socket of this network namespace."""
    if shutil.which("nft") is None:
        if os.environ.get("RAPPORT_STRICT_TESTS") == "1":
            pytest.fail("nft is missing")
        pytest.skip("nft is missing")
    interfaces = [name for _index, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        pytest.skip(f"not in a private network namespace (interfaces {interfaces}): run it under unshare -rn")
    _nft(
        "-f",
        "-",
        stdin=f"""table inet {TABLE} {{
  chain out {{
    type filter hook output priority filter; policy accept;
    meta l4proto udp numgen random mod {one_in} == 0 counter drop
  }}
}}
""",
    )
    try:
        yield
    finally:
        _nft("delete", "table", "inet", TABLE)


def dropped_datagrams() -> int:
    found = re.search(r"counter packets (\d+)", _nft("list", "table", "inet", TABLE))
    return int(found.group(1)) if found else 0


async def test_five_percent_loss_is_repaired_by_nack_and_the_picture_never_stalls(settings: Settings) -> None:
    async with running(replace(settings, media_path="forward")) as rapport:
        with udp_loss(20):
            rep = await rapport.rep("rep1")
            customer, call = await rapport.customer()
            await rep.request({"type": "call.accept", "session_id": call["session_id"]})
            # The rep's client gives up on a packet NACK did not bring and asks for a keyframe, as browsers do.
            customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP, heal_lost_video=True)
            rapport.media += [customer_media, rep_media]
            resent_by_customer = [0]
            retransmit = customer_media.video_sender._retransmit

            async def counting(seq: int) -> None:
                resent_by_customer[0] += 1
                await retransmit(seq)

            customer_media.video_sender._retransmit = counting  # type: ignore[method-assign]
            await customer_media.negotiate(customer)
            await rep_media.negotiate(rep)
            await rep_media.wait_to_see(CUSTOMER, timeout=20)
            lost_before = dropped_datagrams()

            per_window = []
            for _ in range(WINDOWS):
                before = rep_media.frames("video")
                await asyncio.sleep(WINDOW_S)
                per_window.append(rep_media.frames("video") - before)

            live = rapport.center.sessions[call["session_id"]]
            assert isinstance(live.media, CallMedia)
            stream = next(t for t in live.media._outgoing["rep"] if isinstance(t, RtpFeedTrack) and t.kind == "video")
            feed = live.media.feeds["customer"]["video"]
            assert isinstance(feed, RtpParticipantFeed)
            lost = dropped_datagrams() - lost_before
            assert lost > 50, f"only {lost} datagrams dropped: the loss is not in the path"
            assert resent_by_customer[0] > 0, "the server never NACKed what it missed from the customer"
            assert stream.retransmitted > 0, "no NACK of the rep's was answered from the server's cache"
            assert min(per_window) > 0, f"the rep's picture stalled: frames per {WINDOW_S} s window {per_window}"
            assert sum(per_window) > WINDOWS * WINDOW_S * 15, f"barely moving: {per_window}"
            await rep_media.wait_to_see(CUSTOMER)
