"""Real Chromium, real fer: a recorded call with an angry customer, wrapped up by the rep, reviewed in QA.

This is the issue's "done when" as a test: the QA reviewer finds the call, the
side-by-side file plays, the emotion timeline shows the flags, clicking a flag
moves the playhead, and the score is saved.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from playwright.async_api import Page, expect

from emotion import EmotionService
from server.config import SETTINGS, Settings
from server.recording.composer import composed_path
from tests.support.browser import (
    CUSTOMER,
    REP,
    RGB,
    assert_sees_and_hears,
    chromium_per_side,
    colour_distance,
    console_and_phone,
    desktop_page,
    shot,
    write_banded_clip_y4m,
    write_tone_wav,
)
from tests.support.faces import make_clip, person
from tests.support.server import PASSWORD, running

pytestmark = [pytest.mark.browser, pytest.mark.webrtc, pytest.mark.fer]

CURRENT_TIME_JS = "() => window.rapport.video.currentTime"
# The customer's face (for the cues) under a strip of the customer's colour.
CUSTOMER_WITH_FACE = replace(CUSTOMER, band=(0.0, 0.12))


async def staff_login(page: Page, username: str) -> None:
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()


def composed_sides(path: Path) -> tuple[RGB, RGB]:
    """Mean RGB of the customer's colour strip (left half) and of the rep's picture (right half), mid-file."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frames, f"{path} has no video"
    picture = frames[len(frames) // 2].astype(np.float64)
    height, width = picture.shape[:2]
    top, bottom = (round(f * height) for f in CUSTOMER_WITH_FACE.band)
    inset = (bottom - top) // 5
    left = picture[top + inset : bottom - inset, : width // 2 - 8].reshape(-1, 3).mean(axis=0)
    right = picture[height // 5 : height * 4 // 5, width // 2 + 8 :].reshape(-1, 3).mean(axis=0)
    return (float(left[0]), float(left[1]), float(left[2])), (float(right[0]), float(right[1]), float(right[2]))


async def test_qa_reviews_a_recorded_call_with_the_customers_emotion_timeline(
    settings: Settings, tmp_path: Path
) -> None:
    # Without fer the conftest skips this (the `fer` marker), and strict mode fails it.
    customer_y4m = write_banded_clip_y4m(
        tmp_path / "calm-then-angry.y4m",
        make_clip([(person("happy"), 3.0), (person("angry"), 8.0)], width=640, height=480, fps=30),
        CUSTOMER_WITH_FACE,
    )
    customer_wav = write_tone_wav(tmp_path / "customer.wav", CUSTOMER.tone_hz)
    service = EmotionService()
    await service.start()
    try:
        assert await service.wait_ready(timeout=150) == "ok", service.status_message
        changed = replace(settings, emotion_cues=True, recording_policy="always", compose_recordings=True)
        async with (
            running(changed, (("rep1", "rep"), ("qa1", "qa")), emotion_service=service) as rapport,
            chromium_per_side(tmp_path, (customer_y4m, customer_wav)) as (customer_side, rep_side),
        ):
            browser = rep_side.browser
            # The call: the customer turns angry, the rep sees the flag, ends and wraps up.
            rep, customer = await console_and_phone(rapport.url, rep_side, customer_side)
            await customer.get_by_test_id("start-call").click()
            await rep.get_by_test_id("accept").click()
            await expect(customer.get_by_test_id("recording-indicator")).to_be_visible()
            await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER_WITH_FACE)
            await assert_sees_and_hears(customer, viewer=CUSTOMER_WITH_FACE, sender=REP)
            await expect(rep.get_by_test_id("emotion-flag")).to_be_visible(timeout=30000)
            await customer.get_by_test_id("chat-input").fill("This is the third time I call!")
            await customer.get_by_test_id("chat-send").click()
            await expect(rep.get_by_test_id("chat-line")).to_have_count(1)
            await rep.wait_for_timeout(2000)
            await rep.get_by_test_id("end-call").click()
            await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()
            await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "wrap_up")
            await rep.get_by_test_id("wrapup-disposition").select_option("escalated")
            await rep.get_by_test_id("wrapup-notes").fill("Charger failed twice; escalated to returns")
            await rep.get_by_test_id("wrapup-submit").click()
            await expect(rep.get_by_test_id("wrapup-form")).to_be_hidden()
            await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "available")

            # QA: find the call, watch it, follow the flags, score it.
            qa = await desktop_page(browser, f"{rapport.url}/qa")
            await staff_login(qa, "qa1")
            row = qa.get_by_test_id("qa-session-row")
            await expect(row).to_have_count(1)
            await row.click()
            await expect(qa.get_by_test_id("qa-disposition")).to_contain_text("Escalated")
            await expect(qa.get_by_test_id("qa-notes")).to_have_text("Charger failed twice; escalated to returns")
            await expect(qa.get_by_test_id("qa-chat-line")).to_contain_text("third time")
            player = qa.get_by_test_id("qa-player")
            await expect(player).to_have_attribute("src", re.compile(r"/api/v1/recordings/\d+/media"), timeout=90000)
            await qa.evaluate("() => { const v = window.rapport.video; v.muted = true; return v.play(); }")
            await qa.wait_for_function("() => window.rapport.video.currentTime > 1.0", timeout=15000)
            await qa.evaluate("() => window.rapport.video.pause()")
            record = (await rapport.store.list_sessions())[0]
            assert record.ended_at is not None and record.answered_at is not None
            call_s = record.ended_at - record.answered_at
            duration = float(await qa.evaluate("() => window.rapport.video.duration"))
            assert abs(duration - call_s) < 3.0, f"the QA file lasts {duration:.1f} s, the call {call_s:.1f} s"

            markers = qa.get_by_test_id("qa-flag-marker")
            assert await markers.count() >= 1
            await expect(qa.get_by_test_id("qa-timeline")).to_contain_text("not the rep")
            flag_at = float(await markers.first.get_attribute("data-t") or "nan")
            assert flag_at >= 2.0, "the customer was calm for the first seconds"
            await markers.first.click()
            await qa.wait_for_function(
                "t => Math.abs(window.rapport.video.currentTime - t) < 0.75", arg=flag_at, timeout=5000
            )
            await shot(qa, "qa-session")

            for criterion in await qa.get_by_test_id("qa-criterion").all():
                kind = await criterion.get_attribute("data-type")
                await criterion.locator(f"input[value='{'true' if kind == 'yesno' else '4'}']").check()
            await qa.get_by_test_id("qa-score-comments").fill("Kept calm with an angry customer")
            await qa.get_by_test_id("qa-score-submit").click()
            await expect(qa.get_by_test_id("qa-score-saved")).to_be_visible()
            await expect(qa.get_by_test_id("qa-review")).to_have_count(1)

            # The side-by-side file keeps the sides apart: the customer on the left, the rep on the right.
            composed = rapport.app[SETTINGS].recordings_path / composed_path(record.id)
            left, right = composed_sides(composed)
            assert colour_distance(left, CUSTOMER.rgb) < 40, f"left half should be the customer's, is {left}"
            assert colour_distance(right, REP.rgb) < 40, f"right half should be the rep's, is {right}"
    finally:
        await service.aclose()
