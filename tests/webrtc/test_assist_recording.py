"""Recording and QA of an assisted call: the supervisor's voice in its own track, in the composed file only
while they were in the call openly, and the QA bundle's assist marks and text whispers.

Customer, rep and supervisor send distinct tones (440, 880 and 660 Hz), so each file is checked by what it holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
import pytest

from server.config import SETTINGS
from tests.support.clients import CUSTOMER, REP, SUPERVISOR, dominant_frequency
from tests.support.server import Rapport, Serve
from tests.webrtc.test_assist import call_with_supervisor
from tests.webrtc.test_recording import file_audio, tone_level

pytestmark = pytest.mark.webrtc

# How long each way of assisting lasts in the call: long enough for a clean stretch in the middle of each.
PERIOD_S = 2.5
# Left out at both ends of a period when the composed file is examined: the events and the media move a few
# packets apart, and the composer trims barge-ins (composer.BARGE_GUARD_S).
EDGE_S = 0.5


async def finished_bundle(rapport: Rapport, session_id: str) -> dict[str, Any]:
    """The QA bundle once the composed file is complete."""
    await rapport.add_user("qa1", "qa")
    qa, _csrf = await rapport.staff_session("qa1")
    try:
        for _ in range(600):
            async with qa.get(f"{rapport.url}/api/v1/qa/sessions/{session_id}") as r:
                assert r.status == 200
                bundle: dict[str, Any] = await r.json()
            player = bundle["player"]
            if player is not None and player["state"] not in ("pending", "composing"):
                break
            await asyncio.sleep(0.1)
        assert bundle["player"] is not None and bundle["player"]["state"] == "complete", bundle["player"]
        return bundle
    finally:
        await qa.close()


def stretch(mix: np.ndarray, start: float, end: float) -> np.ndarray:
    """The composed audio between ``start`` and ``end`` (seconds), less EDGE_S at both ends."""
    lo, hi = round((start + EDGE_S) * 48_000), round((end - EDGE_S) * 48_000)
    assert hi - lo >= 48_000 // 2, f"too short a stretch to examine: {start:.2f}..{end:.2f}"
    return mix[lo:hi]


async def test_a_whisper_stays_in_the_supervisor_track_and_a_barge_in_is_in_the_composed_file(serve: Serve) -> None:
    rapport = await serve(recording_policy="always", compose_recordings=True)
    three = await call_with_supervisor(rapport, "listen")
    await three.supervisor_media.wait_to_see_and_hear(CUSTOMER, slot=0)
    await asyncio.sleep(PERIOD_S)  # listening: the supervisor's tone reaches nobody
    await three.supervisor.request({"type": "assist.mode", "mode": "whisper"})
    await three.rep_media.wait_to_hear(SUPERVISOR, slot=1)
    await three.supervisor.request({"type": "whisper.send", "text": "Offer the replacement"})
    await asyncio.sleep(PERIOD_S)
    await three.supervisor.request({"type": "assist.mode", "mode": "barge"})
    await three.customer_media.wait_to_hear(SUPERVISOR, slot=1)
    await asyncio.sleep(PERIOD_S)
    await three.supervisor.request({"type": "assist.mode", "mode": "listen"})
    await asyncio.sleep(PERIOD_S)
    await three.rep.send({"type": "call.end"})
    await three.rep.wait_for("call.ended")

    bundle = await finished_bundle(rapport, three.session_id)

    # The QA timeline: each step with the supervisor's name, on the player's clock, and the text whisper.
    marks = [(m["kind"], m["by"]) for m in bundle["assist"]]
    assert marks == [("listen", "Sup1"), ("whisper", "Sup1"), ("barge", "Sup1"), ("listen", "Sup1")], marks
    at = [m["t"] for m in bundle["assist"]]
    assert at == sorted(at) and at[0] >= 0, at
    assert [(w["by"], w["text"]) for w in bundle["whispers"]] == [("Sup1", "Offer the replacement")]
    assert at[1] <= bundle["whispers"][0]["t"] <= at[2]

    # The supervisor's own track: a fifth file, their tone, begun at the whisper (nothing of the listening).
    rows = await rapport.store.list_recordings(three.session_id)
    tracks = {(r.participant, r.kind): r for r in rows}
    assert ("supervisor", "audio") in tracks, sorted(tracks)
    voice = tracks[("supervisor", "audio")]
    assert voice.state == "complete" and voice.size and voice.epoch is not None, voice
    listed = {(r["participant"], r["kind"]) for r in bundle["recordings"]}
    assert ("supervisor", "audio") in listed
    root = rapport.app[SETTINGS].recordings_path
    samples = file_audio(root / voice.path)
    hz = dominant_frequency(samples[len(samples) // 4 : len(samples) * 3 // 4])
    assert abs(hz - SUPERVISOR.tone_hz) < 15, f"the supervisor's track holds {hz:.0f} Hz"
    events = {e.kind: e.at for e in await rapport.store.list_events(three.session_id) if e.kind.startswith("assist.")}
    with av.open(str(root / voice.path)) as container:
        first = next(container.decode(audio=0)).time  # the feed's clock ran from the listen: pts 0 lies before
    assert first is not None and voice.epoch + first >= events["assist.whisper"] - EDGE_S, (
        "the supervisor's track holds the listening too"
    )
    heard_s = len(samples) / 48_000
    assert heard_s < 3 * PERIOD_S, f"{heard_s:.1f} s of the supervisor: more than the whisper and the barge-in"

    # The composed file: the supervisor's tone during the barge-in, never during the whisper or the listening.
    mix = file_audio(root / three.session_id / "composed.webm")
    listen, whisper, barge, back = at
    levels = {
        name: {who.name: tone_level(stretch(mix, a, b), who.tone_hz) for who in (CUSTOMER, REP, SUPERVISOR)}
        for name, a, b in (("listen", listen, whisper), ("whisper", whisper, barge), ("barge", barge, back))
    }
    for name, level in levels.items():
        assert min(level["customer"], level["rep"]) > 0.2, f"both sides are in the mix while {name}: {levels}"
    assert levels["barge"]["supervisor"] > 0.2, f"the barge-in is not in the composed file: {levels}"
    assert levels["whisper"]["supervisor"] < 0.05, f"the whisper leaked into the composed file: {levels}"
    assert levels["listen"]["supervisor"] < 0.05, f"the listener is in the composed file: {levels}"
