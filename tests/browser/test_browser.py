"""Real Chromium: the customer page on an emulated phone with a fake camera, the rep console on a desktop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import expect

from server.config import Settings
from tests.support.browser import (
    CUSTOMER,
    REP,
    Chromium,
    angry_customer_with_real_fer,
    assert_sees_and_hears,
    chromium,
    chromium_per_side,
    colour_distance,
    console_and_phone,
    decoded_frames,
    shot,
    wait_frames_grow,
    wait_remote_colour,
)
from tests.support.server import Rapport, running, running_with_cues

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# The track the customer's page sends as its camera (window.rapport.pc is the page's RTCPeerConnection).
SENT_VIDEO_TRACK_JS = """() => {
  const sender = window.rapport.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  return sender ? { id: sender.track.id, state: sender.track.readyState } : null;
}"""


async def test_a_phone_customer_and_a_rep_talk_chat_flip_and_end(served: Rapport, tmp_path: Path) -> None:
    # One Chromium per side: each plays its own colour and tone, so each page must show the other's.
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        rep, customer = await console_and_phone(served.url, rep_side, customer_side)
        await customer.get_by_test_id("customer-name").fill("Ada")
        await customer.get_by_test_id("reason-select").select_option("not_working")
        await shot(customer, "customer-start")
        await customer.get_by_test_id("start-call").click()

        await expect(customer.get_by_test_id("queue-position")).to_contain_text("next")
        await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
        await expect(rep.get_by_test_id("queue-item")).to_contain_text("Ada")
        await shot(customer, "customer-waiting")
        await shot(rep, "rep-queue")

        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await expect(rep.get_by_test_id("customer-card")).to_contain_text("Ada")
        await expect(rep.get_by_test_id("customer-card")).to_contain_text("Pixel 7")

        first_rep = await wait_frames_grow(rep, 30)
        first_customer = await wait_frames_grow(customer, 30)
        assert await wait_frames_grow(rep, first_rep + 30) > first_rep
        assert await wait_frames_grow(customer, first_customer + 30) > first_customer
        await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)
        await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER)

        await customer.get_by_test_id("chat-input").fill("My router blinks red")
        await customer.get_by_test_id("chat-send").click()
        await expect(rep.get_by_test_id("chat-log")).to_contain_text("My router blinks red")
        await rep.get_by_test_id("chat-input").fill("Let us look at it together")
        await rep.get_by_test_id("chat-send").click()
        await expect(customer.get_by_test_id("chat-log")).to_contain_text("Let us look at it together")

        # The flip: the page sends a new camera track (replaceTrack), and says which way it faces.
        await expect(rep.get_by_test_id("customer-camera")).not_to_have_text("Back camera")
        sent_before = await customer.evaluate(SENT_VIDEO_TRACK_JS)
        assert sent_before is not None and sent_before["state"] == "live", sent_before
        before_flip = await decoded_frames(rep)
        await customer.get_by_test_id("flip-camera").click()
        await expect(rep.get_by_test_id("customer-camera")).to_have_text("Back camera")
        sent_after = await customer.evaluate(SENT_VIDEO_TRACK_JS)
        assert sent_after is not None and sent_after["state"] == "live", sent_after
        assert sent_after["id"] != sent_before["id"], "the flip kept sending the same camera track"
        live = next(iter(served.center.sessions.values()))
        assert live.media_flags["customer"].get("facing") == "environment", live.media_flags
        # The rep goes on seeing the customer, now from the new track (the old one is stopped).
        after_flip = await wait_frames_grow(rep, before_flip + 60)
        assert after_flip >= before_flip + 60
        colour = await wait_remote_colour(rep, CUSTOMER)
        assert colour is not None and colour_distance(colour, CUSTOMER.rgb) < 40, colour
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await shot(customer, "customer-in-call")
        await shot(rep, "rep-in-call")

        await customer.get_by_test_id("end-call").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "ended")
        await expect(rep.get_by_test_id("call-ended")).to_be_visible()
        await shot(customer, "customer-ended")
        records = await served.store.list_sessions()
        assert records[0].state == "ended"
        assert records[0].ended_by == "customer"


@pytest.mark.fer
async def test_the_rep_console_shows_the_flag_when_the_customer_looks_angry(settings: Settings, tmp_path: Path) -> None:
    # Without fer the conftest skips this (the `fer` marker), and strict mode fails it.
    async with angry_customer_with_real_fer(tmp_path) as (y4m, service):
        changed = replace(settings, emotion_cues=True)
        async with running(changed, emotion_service=service) as rapport, chromium(y4m) as both_sides:
            rep, customer = await console_and_phone(rapport.url, both_sides)
            await expect(customer.get_by_test_id("emotion-notice")).to_be_visible()
            await expect(customer.get_by_test_id("emotion-consent")).to_be_checked()
            await customer.get_by_test_id("start-call").click()
            await rep.get_by_test_id("accept").click()
            await expect(rep.get_by_test_id("emotion-flag")).to_be_visible(timeout=30000)
            await expect(rep.get_by_test_id("emotion-flag")).to_contain_text("frustrated")
            await expect(rep.get_by_test_id("emotion-label")).to_have_text("angry")
            assert int(await rep.get_by_test_id("emotion-meter").get_attribute("aria-valuenow") or 0) >= 50
            await shot(rep, "rep-emotion-flag")


async def test_a_customer_who_declines_cues_shows_off_in_the_console(settings: Settings, browser: Chromium) -> None:
    changed = replace(settings, emotion_cues=True)
    async with running_with_cues(changed, "tests.support.fakes:recording_detector") as rapport:
        rep, customer = await console_and_phone(rapport.url, browser)
        await customer.get_by_test_id("emotion-consent").uncheck()
        await customer.get_by_test_id("start-call").click()
        await rep.get_by_test_id("accept").click()
        await expect(rep.get_by_test_id("emotion-off")).to_have_text("emotion cues off (customer's choice)")
        await wait_frames_grow(rep, 30)
        await expect(rep.get_by_test_id("emotion-flag")).to_be_hidden()
