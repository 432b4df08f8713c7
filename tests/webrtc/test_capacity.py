"""Admission control and /metrics: a full server refuses new calls clearly and the calls it has keep going."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import pytest

from server.config import Settings
from tests.support.clients import CUSTOMER, SignalingError
from tests.support.server import start_rapport

pytestmark = pytest.mark.webrtc


def sample(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


async def test_a_full_server_refuses_new_calls_with_a_clear_message_and_keeps_its_calls(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, max_calls=1))
    try:
        for name in ("rep1", "rep2"):
            await rapport.add_user(name)
        rep1, customer, call, cm, rm = await rapport.media_call("rep1")
        await rm.wait_frames("video", 30)
        await rm.wait_to_see(CUSTOMER)

        # One call fills the box; one customer may still wait for it.
        _waiting, second = await rapport.customer()
        async with rapport.http.post(f"{rapport.url}/api/v1/calls", json={}) as r:
            refused = await r.json()
            assert r.status == 503 and r.headers["Retry-After"]
        assert refused["error"]["code"] == "all_lines_busy" and "All lines are busy" in refused["error"]["message"]
        rep2 = await rapport.rep("rep2", available=False)
        with pytest.raises(SignalingError) as at_capacity:
            await rep2.request({"type": "call.accept", "session_id": second["session_id"]})
        assert at_capacity.value.code == "at_capacity"

        before = rm.frames("video")
        await asyncio.sleep(3.0)
        fps = (rm.frames("video") - before) / 3.0
        assert fps >= 24, f"the admitted call fell to {fps:.1f} fps"
        await rm.wait_to_see_and_hear(CUSTOMER)  # still the customer's media, after the refusals

        async with rapport.http.get(f"{rapport.url}/metrics") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            text = await r.text()
        assert sample(text, 'rapport_refusals_total{where="customer"}') == 1
        assert sample(text, 'rapport_refusals_total{where="accept"}') == 1
        assert sample(text, 'rapport_calls{path="forward",worker="0"}') == 1
        assert sample(text, 'rapport_capacity_calls{path="forward",worker="0"}') == 1
        # Transit is a histogram now: frames were timed, and 95 % of them took under 0.5 s.
        timed = sample(text, "rapport_transit_seconds_count")
        assert timed > 0
        assert sample(text, 'rapport_transit_seconds_bucket{le="0.5"}') >= 0.95 * timed
        assert sample(text, "rapport_event_loop_lag_seconds") >= 0
        assert sample(text, "process_cpu_seconds_total") > 0
        assert sample(text, 'rapport_frames_out_total{to="rep"}') > 0
    finally:
        await rapport.stop()
