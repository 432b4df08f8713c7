"""Zero-transcode forwarding: hand received encoded frames to the other peer as ``av.Packet``.

aiortc's receiver reassembles RTP into encoded frames and gives them to a
decoder thread (``aiortc.rtcrtpreceiver.decoder_worker``) that fills the remote
track's queue with decoded frames. Its sender, given an ``av.Packet`` instead of
a frame, packetizes it as it is (what ``MediaPlayer(decode=False)`` relies on).

The seam used here: the decoder-thread function is looked up in the receiver
module when a receiver starts, with the remote track's queue as an argument.
:func:`install` puts a wrapper there that, for queues registered with
:func:`forward_track`, hands out packets instead of decoding; every other
receiver decodes as before. A receiver's track is registered from the peer's
``track`` event, which aiortc fires before the receiver starts.

Keyframe requests travel upstream: a PLI/FIR that reaches one of our senders
ends in ``RTCRtpSender._send_keyframe``, which :func:`relay_keyframe_requests`
wraps on that sender instance to call the feed's upstream request instead.

These are aiortc 1.16 internals; ``tests/test_forwarding.py`` pins them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.mediastreams import MediaStreamTrack

from .feeds import tag_codec

log = logging.getLogger(__name__)

# Remote tracks (their queues) whose receiver forwards packets instead of decoding.
_FORWARDED: weakref.WeakKeyDictionary[asyncio.Queue[Any], str] = weakref.WeakKeyDictionary()
_installed = threading.Lock()
_original_worker: Callable[..., None] | None = None


def install() -> None:
    """Put the forwarding-aware decoder worker in place (idempotent; other receivers still decode)."""
    global _original_worker
    with _installed:
        if _original_worker is not None:
            return
        _original_worker = _receiver_module.decoder_worker
        _receiver_module.decoder_worker = _worker


def forward_track(track: MediaStreamTrack) -> None:
    """From now on ``track.recv()`` returns encoded packets (call before its receiver starts)."""
    install()
    _FORWARDED[track._queue] = track.kind  # type: ignore[attr-defined]


def is_keyframe(packet: av.Packet, codec: str) -> bool:
    data = bytes(packet)
    if not data:
        return False
    if codec == "vp8":
        # RFC 6386 9.1: the frame tag's lowest bit is 0 on a key frame.
        return not data[0] & 0x01
    if codec == "h264":
        # Annex B as aiortc depayloads it: an IDR slice or a sequence parameter set starts a picture.
        for i in range(len(data) - 4):
            if data[i : i + 3] == b"\x00\x00\x01" and data[i + 3] & 0x1F in (5, 7):
                return True
        return False
    return True  # audio: every packet stands on its own


def _worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    if output_q not in _FORWARDED:
        assert _original_worker is not None
        _original_worker(loop, input_q, output_q, decode_error)
        return
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            return
        codec, encoded_frame = task
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = Fraction(1, codec.clockRate)
        # What the packet is, for sinks that need to know (recorder, decoder, keyframe gate).
        name = codec.name.lower()
        tag_codec(packet, name)
        packet.is_keyframe = is_keyframe(packet, name)
        asyncio.run_coroutine_threadsafe(output_q.put(packet), loop)


def relay_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """A keyframe asked of this sender (PLI/FIR from its receiver) is asked of the source instead."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        request()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


async def request_keyframe_from(receiver: Any) -> bool:
    """Send a PLI for every stream this receiver gets; False if there is none yet."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)
