"""Recording one track (a participant's audio or video) to Matroska, off the event loop.

Matroska is written cluster by cluster, so a file cut short by ``kill -9``
still plays up to its last cluster. Frames come from the participant's feeds
(``push`` is the FrameSink interface); a dedicated thread encodes and writes, fed
by a bounded queue, so a slow disk or encoder drops frames instead of stalling
the call. The file is written as ``*.mkv.part`` and renamed when complete.

A supervisor who assists the call (``server.media.assist``) gets a fifth file, ``supervisor-audio.mka``: their
voice whenever it reached someone (the rep in a whisper, both sides in a barge-in), never what they said while
only listening. It is begun at the first such word, so a call no supervisor spoke into has no such file or row.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..media.assist import SUPERVISOR, supervisor_reaches
from ..media.feeds import FrameSink, Media, ParticipantFeed, codec_of, tag_codec
from ..storage.store import Store

log = logging.getLogger(__name__)

QUEUE_FRAMES = 90  # ~1.5 s of audio+video: beyond that the writer is not keeping up


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    size: int
    sha256: str
    truncated: bool
    dropped_frames: int
    frames: int
    error: str | None = None


def file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class TrackRecorder:
    """One track in one Matroska file (``.mkv`` video, ``.mka`` audio); a FrameSink for a feed."""

    def __init__(self, final_path: Path, kind: str, *, video_codec: str = "libx264") -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"kind must be audio or video, not {kind!r}")
        self.kind = kind
        self.final_path = final_path
        self.part_path = final_path.with_name(final_path.name + ".part")
        self.video_codec = video_codec
        self._queue: queue.Queue[Media | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name=f"recorder-{final_path.stem}", daemon=True)
        self.dropped = 0
        self.frames = 0
        self.truncated = False
        self.error: str | None = None
        # Wall-clock time of pts 0, taken from the first frame: lines the tracks up with each other.
        self.epoch: float | None = None
        # Forwarded packets are muxed as they are: no encoder in the recording path.
        self.passthrough = False
        self._keyframe_seen = False
        self._stopped = False

    def start(self) -> None:
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def push(self, frame: Media) -> None:
        if self._stopped or self.truncated:
            return
        if isinstance(frame, av.Packet) and self.kind == "video" and not self._keyframe_seen:
            if not frame.is_keyframe:
                return  # a file of forwarded video starts at a keyframe
            self._keyframe_seen = True
        if isinstance(frame, av.Packet):
            # The queue holds a reference while the feed goes on restamping the next ones: copy.
            frame = _copy_packet(frame)
        if self.epoch is None and frame.pts is not None and frame.time_base:
            self.epoch = time.time() - float(frame.pts * frame.time_base)
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def stop(self) -> RecordingResult:
        """Blocking: finish the file and rename it. Call it in a thread (``asyncio.to_thread``)."""
        self._stopped = True
        self._queue.put(None)
        self._thread.join()
        path = self.part_path
        if path.exists():
            path = self.final_path
            self.part_path.replace(path)
        size, sha = file_digest(path) if path.exists() else (0, "")
        return RecordingResult(
            path=path,
            size=size,
            sha256=sha,
            truncated=self.truncated,
            dropped_frames=self.dropped,
            frames=self.frames,
            error=self.error,
        )

    # the writer thread

    def _run(self) -> None:
        container = None
        stream = None
        last_ms = -1
        try:
            # Close a cluster every second and write it through at once: a crash loses about a second.
            container = av.open(
                str(self.part_path),
                "w",
                format="matroska",
                options={"cluster_time_limit": "1000", "flush_packets": "1"},
            )
            while True:
                frame = self._queue.get()
                if frame is None:
                    break
                if self.truncated:
                    continue
                if stream is None:
                    stream = self._add_stream(container, frame)
                if isinstance(frame, av.Packet):
                    last_ms = self._mux_packet(container, stream, frame, last_ms)
                    continue
                if self.kind == "video":
                    # A flipped camera may change the size: scale to the size the file started with.
                    frame = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")  # type: ignore[attr-defined]
                # Matroska counts in milliseconds: a frame that would not move the clock forward is
                # rejected by the muxer (EINVAL), so skip it rather than lose the file.
                ms = (
                    int(float(frame.pts * frame.time_base) * 1000)
                    if frame.pts is not None and frame.time_base
                    else None
                )
                if ms is None or ms <= last_ms:
                    self.dropped += 1
                    continue
                last_ms = ms
                for packet in stream.encode(frame):  # type: ignore[attr-defined]
                    try:
                        container.mux(packet)
                    except av.error.ArgumentError:
                        self.dropped += 1  # one unmuxable packet costs one frame, not the recording
                self.frames += 1
            if stream is not None and not self.truncated and not self.passthrough:
                for packet in stream.encode(None):  # type: ignore[attr-defined]
                    container.mux(packet)
        except OSError as exc:
            self._fail(exc)
        except Exception as exc:  # an encoder error must not take the call down
            log.exception("recording %s failed", self.final_path.name)
            self.error = f"{type(exc).__name__}: {exc}"
            self.truncated = True
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception as exc:
                    self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            self.error = "disk full"
        else:
            self.error = f"{type(exc).__name__}: {exc}"
        log.warning("recording %s truncated: %s", self.final_path.name, self.error)
        self.truncated = True
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                if self._queue.get_nowait() is None:
                    self._queue.put_nowait(None)  # keep the stop signal for the loop
                    return
            except queue.Empty:
                return

    def _mux_packet(
        self, container: av.container.OutputContainer, stream: av.stream.Stream, packet: av.Packet, last_ms: int
    ) -> int:
        ms = int(float(packet.pts * packet.time_base) * 1000) if packet.pts is not None and packet.time_base else -1
        if ms <= last_ms:
            self.dropped += 1
            return last_ms
        packet.stream = stream
        try:
            container.mux(packet)
        except av.error.ArgumentError:
            self.dropped += 1
            return last_ms
        self.frames += 1
        return ms

    def _add_stream(self, container: av.container.OutputContainer, frame: Media) -> av.stream.Stream:
        if isinstance(frame, av.Packet):
            return self._add_passthrough_stream(container, frame)
        if self.kind == "video":
            assert isinstance(frame, av.VideoFrame)
            stream: av.stream.Stream = container.add_stream(self.video_codec, rate=30)
            assert isinstance(stream, av.VideoStream)
            stream.width, stream.height = frame.width // 2 * 2, frame.height // 2 * 2
            stream.pix_fmt = "yuv420p"
            # The cheapest encoder measured here (bench/recording.py): x264 ultrafast, no lookahead,
            # about 1.6 ms per 640x480 frame against 3.5 ms for libvpx at its fastest.
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
            stream.bit_rate = 800_000
            stream.codec_context.time_base = frame.time_base or Fraction(1, 90_000)
        else:
            assert isinstance(frame, av.AudioFrame)
            stream = container.add_stream("libopus", rate=48_000)
            assert isinstance(stream, av.AudioStream)
            stream.layout = "stereo"
            stream.codec_context.time_base = Fraction(1, 48_000)
        return stream

    def _add_passthrough_stream(self, container: av.container.OutputContainer, packet: av.Packet) -> av.stream.Stream:
        self.passthrough = True
        codec = codec_of(packet, "vp8" if self.kind == "video" else "opus")
        if self.kind == "video":
            stream: av.stream.Stream = container.add_stream({"vp8": "libvpx", "h264": "libx264"}.get(codec, codec))
            assert isinstance(stream, av.VideoStream)
            size = vp8_size(bytes(packet)) if codec == "vp8" else None
            stream.width, stream.height = size or (640, 480)
            stream.time_base = packet.time_base
            if codec == "h264":
                # Matroska keeps SPS/PPS as codec private data; given them in Annex B form, the muxer
                # also rewrites each Annex B packet the way Matroska wants it.
                stream.codec_context.extradata = h264_parameter_sets(bytes(packet))
        else:
            stream = container.add_stream("libopus", rate=48_000)
            assert isinstance(stream, av.AudioStream)
            stream.layout = "stereo"
            stream.codec_context.extradata = OPUS_HEAD
            stream.time_base = Fraction(1, 48_000)
        return stream


OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + (312).to_bytes(2, "little") + (48_000).to_bytes(4, "little") + bytes(3)


def _copy_packet(packet: av.Packet) -> av.Packet:
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base = packet.pts, packet.pts, packet.time_base
    copy.is_keyframe = packet.is_keyframe
    tag_codec(copy, codec_of(packet))
    return copy


def h264_parameter_sets(data: bytes) -> bytes:
    """The SPS and PPS NAL units (with start codes) of an Annex B key frame."""
    out = b""
    for nal in data.split(b"\x00\x00\x01"):
        nal = nal.rstrip(b"\x00")
        if nal and nal[0] & 0x1F in (7, 8):
            out += b"\x00\x00\x00\x01" + nal
    return out


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame's header (RFC 6386 9.1)."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF


RECORDED_TRACKS = (("customer", "video"), ("customer", "audio"), ("rep", "video"), ("rep", "audio"))
# Recorded from its first frame that reached someone: most calls have no supervisor in them.
SUPERVISOR_TRACK = (SUPERVISOR, "audio")
SUFFIX = {"video": ".mkv", "audio": ".mka"}


def free_mb(folder: Path) -> float:
    usage = shutil.disk_usage(folder)
    return usage.free / (1024 * 1024)


@dataclass
class _Track:
    recording_id: int
    recorder: TrackRecorder
    feed: ParticipantFeed
    sink: FrameSink  # what is subscribed to the feed: the recorder, or the supervisor's gate in front of it


class _HeardVoice:
    """The supervisor's voice, passed to a recorder only while it reaches someone; the recorder and its row
    are made at the first such frame."""

    def __init__(self, recording: CallRecording, feed: ParticipantFeed, assist_mode: Callable[[], str | None] | None):
        self.recording = recording
        self.feed = feed
        self.assist_mode = assist_mode
        self.recorder: TrackRecorder | None = None

    def push(self, frame: Media) -> None:
        if self.assist_mode is not None and not supervisor_reaches("rep", "audio", self.assist_mode()):
            return  # listening only: nobody heard it, so it is not the call's
        if self.recorder is None:
            self.recorder = self.recording.begin_lazy(self)
        self.recorder.push(frame)


class CallRecording:
    """The per-track files of one call: started with the call, finished when it ends."""

    def __init__(self, store: Store, root: Path, session_id: str) -> None:
        self.store = store
        self.root = root
        self.session_id = session_id
        self.tracks: list[_Track] = []
        self._epochs_saved: set[int] = set()
        self._voice: _HeardVoice | None = None
        self._voice_row: asyncio.Task[None] | None = None

    def _relative(self, participant: str, kind: str) -> str:
        return f"{self.session_id}/{participant}-{kind}{SUFFIX[kind]}"

    async def start(
        self, feeds: dict[str, dict[str, ParticipantFeed]], *, assist_mode: Callable[[], str | None] | None = None
    ) -> None:
        """``assist_mode``: how a supervisor takes part now (the call media's ``assist_mode``); without it, all
        the supervisor's feed sends is recorded."""
        folder = self.root / self.session_id
        folder.mkdir(parents=True, exist_ok=True)
        for participant, kind in RECORDED_TRACKS:
            relative = self._relative(participant, kind)
            recorder = TrackRecorder(self.root / relative, kind)
            recording_id = await self.store.add_recording(self.session_id, participant, kind, relative)
            recorder.start()
            feed = feeds[participant][kind]
            feed.subscribe(recorder)
            self.tracks.append(_Track(recording_id, recorder, feed, recorder))
        supervisor_feed = feeds.get(SUPERVISOR_TRACK[0], {}).get(SUPERVISOR_TRACK[1])
        if supervisor_feed is not None:
            self._voice = _HeardVoice(self, supervisor_feed, assist_mode)
            supervisor_feed.subscribe(self._voice)

    def begin_lazy(self, voice: _HeardVoice) -> TrackRecorder:
        """The supervisor's first heard frame: their file starts now, its row as soon as the database answers."""
        participant, kind = SUPERVISOR_TRACK
        relative = self._relative(participant, kind)
        recorder = TrackRecorder(self.root / relative, kind)
        recorder.start()

        async def add_row() -> None:
            recording_id = await self.store.add_recording(self.session_id, participant, kind, relative)
            self.tracks.append(_Track(recording_id, recorder, voice.feed, voice))

        self._voice_row = asyncio.get_running_loop().create_task(add_row())
        return recorder

    @property
    def truncated(self) -> bool:
        return any(t.recorder.truncated for t in self.tracks)

    @property
    def error(self) -> str | None:
        return next((t.recorder.error for t in self.tracks if t.recorder.error), None)

    async def save_epochs(self) -> None:
        """Store each track's start time as soon as it is known, so a crash keeps it too."""
        for track in self.tracks:
            if track.recorder.epoch is not None and track.recording_id not in self._epochs_saved:
                await self.store.update_recording(track.recording_id, epoch=track.recorder.epoch)
                self._epochs_saved.add(track.recording_id)

    async def stop(self) -> list[RecordingResult]:
        if self._voice is not None:
            self._voice.feed.unsubscribe(self._voice)
        if self._voice_row is not None:
            try:
                await self._voice_row  # its row exists before anything is finished
            except Exception:
                log.exception("no row for the supervisor's recording of %s", self.session_id)
        voice = self._voice.recorder if self._voice is not None else None
        if voice is not None and all(t.recorder is not voice for t in self.tracks):
            await asyncio.to_thread(voice.stop)  # rowless: at least its thread ends
        await self.save_epochs()
        results = []
        for track in self.tracks:
            track.feed.unsubscribe(track.sink)
            result = await asyncio.to_thread(track.recorder.stop)
            state = "truncated" if result.truncated else "complete"
            await self.store.finish_recording(
                track.recording_id, state=state, size=result.size, sha256=result.sha256, error=result.error
            )
            results.append(result)
        self.tracks.clear()
        return results


async def reconcile(store: Store, root: Path, session_id: str | None = None) -> int:
    """After a crash (the server's, or one call's media worker): finish what was being recorded.

    The files play up to the crash; they are renamed and their rows marked ``recovered``.
    """
    count = 0
    for row in await store.recordings_in_state("recording"):
        if session_id is not None and row.session_id != session_id:
            continue
        final = root / row.path
        part = final.with_name(final.name + ".part")
        if part.exists():
            await asyncio.to_thread(part.replace, final)
        if final.exists():
            size, sha = await asyncio.to_thread(file_digest, final)
            await store.finish_recording(row.id, state="recovered", size=size, sha256=sha, error="server stopped")
        else:
            await store.finish_recording(row.id, state="failed", size=0, sha256="", error="file missing")
        count += 1
    if count:
        log.warning("reconciled %d recording(s) left by the last shutdown", count)
    return count
