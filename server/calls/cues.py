"""Emotion cues of one call: the customer's video feed → the emotion stream → the rep.

Only the customer's feed is ever attached here: analysing employees' faces is
banned in the EU. Nothing runs unless the customer agreed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emotion import EmotionService, EmotionStatus, EmotionStream, EmotionUpdate

from ..media.feeds import DecodingSink, ParticipantFeed
from ..storage.store import Store
from . import views
from .payloads import EmotionStatusMessage, EmotionUpdateMessage, ServerMessage

log = logging.getLogger(__name__)

TIMELINE_FLUSH_S = 5.0
OFF_BY_CUSTOMER = "emotion cues off (customer's choice)"

SendToRep = Callable[[ServerMessage], None]
EventSink = Callable[[str, dict[str, Any]], Awaitable[object]]


@dataclass(frozen=True)
class EmotionSetup:
    """The emotion service, or why there is none (said once in the log and to every rep)."""

    service: EmotionService | None
    message: str


EMOTION = web.AppKey("emotion", EmotionSetup)


class CallCues:
    """Runs while the customer consents; ``aclose()`` stops analysis and stores the rest of the timeline."""

    def __init__(
        self,
        service: EmotionService,
        session_id: str,
        customer_video: ParticipantFeed,
        store: Store,
        send_to_rep: SendToRep,
        on_event: EventSink | None = None,
    ) -> None:
        self.session_id = session_id
        self._on_event = on_event
        self._feed = customer_video
        self._store = store
        self._send = send_to_rep
        self._stream: EmotionStream = service.open_stream(session_id)
        # A forwarded call carries packets: decode them (in a thread) for the analysis only.
        self._decoder = DecodingSink(self._stream, asyncio.get_running_loop())
        self.last_update: EmotionUpdateMessage | None = None
        self.last_status: EmotionStatusMessage = views.emotion_status(
            service.status, service.status_message, session_id
        )
        self._feed.subscribe(self._decoder)
        self._reader = asyncio.create_task(self._relay(), name=f"cues-{session_id}")
        self._flusher = asyncio.create_task(self._flush_periodically(), name=f"cues-flush-{session_id}")

    async def _relay(self) -> None:
        async for event in self._stream:
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

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(TIMELINE_FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        rows = [row.to_dict() for row in self._stream.take_timeline()]
        if rows:
            try:
                await self._store.add_timeline(self.session_id, rows)
            except Exception:
                log.exception("could not store the emotion timeline of %s", self.session_id)

    def snapshot(self) -> list[ServerMessage]:
        """What a rep who (re)connects needs to see the current state at once."""
        return [m for m in (self.last_status, self.last_update) if m is not None]

    async def aclose(self) -> None:
        self._feed.unsubscribe(self._decoder)
        self._decoder.close()
        self._flusher.cancel()
        await self._stream.aclose()
        for task in (self._reader, self._flusher):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._flush()
