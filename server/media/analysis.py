"""Emotion analysis beside the media, on a media node: the customer's video in, readings out, never frames.

The front door turns a call's cues on (``cues_on``, with the deployment's emotion settings) and off
(``cues_off``). While on, the node decodes the customer's video (never the rep's: analysing employees' faces
is banned in the EU), runs it through its own :class:`emotion.EmotionService`, and sends each
``EmotionUpdate`` / ``EmotionStatus`` as plain JSON (``emotion`` / ``emotion_status`` events). The per-second
timeline rows stay on the node too: it stores them in the database itself, as it does recordings' rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from emotion import EmotionService, EmotionSettings, EmotionStatus, EmotionStream, EmotionUpdate

from ..config import Settings
from ..storage.store import Store
from .feeds import DecodingSink, ParticipantFeed

log = logging.getLogger(__name__)

TIMELINE_FLUSH_S = 5.0
SETTING_NAMES = ("analysis_fps", "raise_threshold", "clear_threshold", "hold_seconds")

Send = Callable[[dict[str, Any]], None]


def settings_of(settings: Settings) -> EmotionSettings:
    """The deployment's emotion settings, for the front door's emotion service and a media node's alike."""
    return EmotionSettings(
        analysis_fps=settings.emotion_analysis_fps,
        raise_threshold=settings.emotion_raise_threshold,
        clear_threshold=settings.emotion_clear_threshold,
        hold_seconds=settings.emotion_hold_s,
    )


def emotion_settings(fields: dict[str, Any]) -> EmotionSettings | None:
    """The front door's emotion settings from a ``cues_on`` request (None: the service's own)."""
    if not any(name in fields for name in SETTING_NAMES):
        return None
    default = EmotionSettings()
    return dataclasses.replace(
        default,
        analysis_fps=float(fields.get("analysis_fps", default.analysis_fps)),
        raise_threshold=float(fields.get("raise_threshold", default.raise_threshold)),
        clear_threshold=float(fields.get("clear_threshold", default.clear_threshold)),
        hold_seconds=float(fields.get("hold_seconds", default.hold_seconds)),
    )


class FeedAnalysis:
    """The customer's video feed → an emotion stream, whose timeline rows are stored every few seconds.

    The analysis in the front door (``calls.cues.CallCues``) and on a media node (:class:`CueAnalysis`) both run
    on this; who hears the stream's events is theirs. ``stop()`` ends the events, ``finish()`` then stores the rest.
    """

    def __init__(
        self,
        service: EmotionService,
        session_id: str,
        customer_video: ParticipantFeed,
        store: Callable[[], Store],
        settings: EmotionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self._feed = customer_video
        self._store = store
        self.stream: EmotionStream = service.open_stream(session_id, settings=settings)
        # A forwarded call carries packets: decode them (in a thread) for the analysis only.
        self._decoder = DecodingSink(self.stream, asyncio.get_running_loop())
        self._feed.subscribe(self._decoder)
        self._flusher = asyncio.create_task(self._flush_periodically(), name=f"cues-flush-{session_id}")

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(TIMELINE_FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        rows = [row.to_dict() for row in self.stream.take_timeline()]
        if rows:
            try:
                await self._store().add_timeline(self.session_id, rows)
            except Exception:
                log.exception("could not store the emotion timeline of %s", self.session_id)

    async def stop(self) -> None:
        """No more frames in; the stream's events end."""
        self._feed.unsubscribe(self._decoder)
        self._decoder.close()
        self._flusher.cancel()
        await self.stream.aclose()

    async def finish(self) -> None:
        """After ``stop`` and the last event read: the rest of the timeline is stored."""
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._flusher
        await self._flush()


class CueAnalysis:
    """One call's analysis on this node; ``aclose()`` stops it and stores the rest of the timeline."""

    def __init__(
        self,
        service: EmotionService,
        session_id: str,
        customer_video: ParticipantFeed,
        send: Send,
        store: Callable[[], Store],
        settings: EmotionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self._send = send
        self._analysis = FeedAnalysis(service, session_id, customer_video, store, settings)
        self._reader = asyncio.create_task(self._relay(), name=f"node-cues-{session_id}")

    async def _relay(self) -> None:
        async for event in self._analysis.stream:
            if isinstance(event, EmotionUpdate):
                self._send({"event": "emotion", "session": self.session_id, "reading": event.to_dict()})
            elif isinstance(event, EmotionStatus):
                self._send(
                    {
                        "event": "emotion_status",
                        "session": self.session_id,
                        "status": event.status,
                        "message": event.message,
                    }
                )

    async def aclose(self) -> None:
        await self._analysis.stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self._analysis.finish()
