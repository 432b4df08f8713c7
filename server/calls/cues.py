"""Emotion cues of one call: the customer's video feed → the emotion stream → the rep.

The analysis runs here (``CallCues``) or on the media node carrying the call (``NodeCues``): either way the
rep gets the same messages, and listeners the same ``emotion.flag`` events.

Only the customer's feed is ever attached here: analysing employees' faces is
banned in the EU. Nothing runs unless the customer agreed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emotion import EmotionEvent, EmotionService, EmotionSettings, EmotionStatus, EmotionUpdate

from ..config import Settings
from ..media.analysis import FeedAnalysis
from ..media.feeds import ParticipantFeed
from ..media.pool import RemoteCallMedia
from ..storage.store import Store
from . import views
from .payloads import EmotionStatusMessage, EmotionUpdateMessage, ServerMessage

log = logging.getLogger(__name__)

OFF_BY_CUSTOMER = "emotion cues off (customer's choice)"
CUES_OFF_FOR_CENTRE = "emotion cues are turned off for this centre (admin settings)"

SendToRep = Callable[[ServerMessage], None]
EventSink = Callable[[str, dict[str, Any]], Awaitable[object]]


@dataclass(frozen=True)
class EmotionSetup:
    """The emotion service, or why there is none (said once in the log and to every rep)."""

    service: EmotionService | None
    message: str


EMOTION = web.AppKey("emotion", EmotionSetup)


class CueRelay:
    """Emotion events of one call → the rep (and ``emotion.flag`` to listeners); the analysis is elsewhere.

    ``events`` ends when the analysis stops. Subclasses say where the events come from and what ``aclose`` stops.
    """

    def __init__(
        self,
        session_id: str,
        events: AsyncIterable[EmotionEvent],
        status: EmotionStatusMessage,
        send_to_rep: SendToRep,
        on_event: EventSink | None = None,
    ) -> None:
        self.session_id = session_id
        self._on_event = on_event
        self._send = send_to_rep
        self.last_update: EmotionUpdateMessage | None = None
        self.last_status = status
        self._reader = asyncio.create_task(self._relay(events), name=f"cues-{session_id}")

    async def _relay(self, events: AsyncIterable[EmotionEvent]) -> None:
        async for event in events:
            if isinstance(event, EmotionUpdate):
                update = self.last_update = views.emotion_update(event, self.session_id)
                if self._on_event is not None and update.flag in ("raised", "cleared"):
                    await self._on_event(
                        "emotion.flag",
                        {
                            "session_id": self.session_id,
                            "flag": update.flag,
                            "media_time": update.media_time,
                            "smoothed": update.smoothed,
                            "flag_seconds": update.flag_seconds,
                        },
                    )
                self._send(update)
            elif isinstance(event, EmotionStatus):
                self.last_status = views.emotion_status(event.status, event.message, self.session_id)
                self._send(self.last_status)

    def snapshot(self) -> list[ServerMessage]:
        """What a rep who (re)connects needs to see the current state at once."""
        return [m for m in (self.last_status, self.last_update) if m is not None]

    async def _stop_reader(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    async def aclose(self) -> None:
        raise NotImplementedError


class CallCues(CueRelay):
    """The analysis in this process (over the customer's feed here, or a worker's frames of it).

    Runs while the customer consents; ``aclose()`` stops analysis and stores the rest of the timeline.
    """

    def __init__(
        self,
        service: EmotionService,
        session_id: str,
        customer_video: ParticipantFeed,
        store: Store,
        send_to_rep: SendToRep,
        on_event: EventSink | None = None,
        settings: EmotionSettings | None = None,
    ) -> None:
        # ``settings``: the centre's thresholds when the call started (None: the service's own).
        self._analysis = FeedAnalysis(service, session_id, customer_video, lambda: store, settings)
        status = views.emotion_status(service.status, service.status_message, session_id)
        super().__init__(session_id, self._analysis.stream, status, send_to_rep, on_event)

    async def aclose(self) -> None:
        await self._analysis.stop()
        await self._stop_reader()
        await self._analysis.finish()


class NodeCues(CueRelay):
    """The analysis on the media node carrying the call: readings arrive on its link, never frames.

    The node stores the timeline rows itself (``server.media.analysis``).
    """

    def __init__(
        self,
        media: RemoteCallMedia,
        settings: Settings,
        send_to_rep: SendToRep,
        on_event: EventSink | None = None,
    ) -> None:
        self._media = media
        readings = media.start_cues(
            {
                "analysis_fps": settings.emotion_analysis_fps,
                "raise_threshold": settings.emotion_raise_threshold,
                "clear_threshold": settings.emotion_clear_threshold,
                "hold_seconds": settings.emotion_hold_s,
            }
        )
        status = views.emotion_status("starting", "emotion cues are starting on the media node", media.session_id)
        super().__init__(media.session_id, readings, status, send_to_rep, on_event)

    async def aclose(self) -> None:
        self._media.stop_cues()
        await self._stop_reader()
