"""Real Chromium: the customer page on an emulated phone with a fake camera, the rep console on a desktop."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from emotion import EmotionService, fer_available
from server.config import Settings
from tests.conftest import PASSWORD, Rapport, start_rapport
from tests.support.faces import make_clip, person, write_clip_y4m

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402


def chromium_args(y4m: Path) -> list[str]:
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-gpu",
    ]


async def launch(y4m: Path) -> tuple[Any, Browser]:
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args(y4m))
    return pw, browser


async def phone_page(pw: Any, browser: Browser, url: str) -> Page:
    device = dict(pw.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    context = await browser.new_context(**device, permissions=["camera", "microphone"])
    page = await context.new_page()
    await page.goto(url)
    return page


async def desktop_page(browser: Browser, url: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, permissions=["camera", "microphone"])
    page = await context.new_page()
    await page.goto(url)
    return page


async def decoded_frames(page: Page) -> int:
    """Frames the page's remote <video> has decoded so far."""
    value = await page.eval_on_selector(
        '[data-testid="remote-video"]', "v => v.getVideoPlaybackQuality().totalVideoFrames"
    )
    return int(value)


FRAMES_AT_LEAST_JS = """n => document.querySelector('[data-testid="remote-video"]')
    .getVideoPlaybackQuality().totalVideoFrames >= n"""


async def wait_frames_grow(page: Page, at_least: int, timeout_ms: int = 15000) -> int:
    await page.wait_for_function(
        FRAMES_AT_LEAST_JS,
        arg=at_least,
        timeout=timeout_ms,
    )
    return await decoded_frames(page)


async def rep_login(page: Page, username: str = "rep1") -> None:
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "queue")
    await page.get_by_test_id("availability").click()
    await expect(page.get_by_test_id("availability")).to_have_attribute("data-status", "available")


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def test_a_phone_customer_and_a_rep_talk_chat_flip_and_end(served: Rapport, faces_y4m: Path) -> None:
    pw, browser = await launch(faces_y4m)
    try:
        rep = await desktop_page(browser, f"{served.url}/console")
        await rep_login(rep)
        customer = await phone_page(pw, browser, f"{served.url}/call")
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

        await customer.get_by_test_id("chat-input").fill("My router blinks red")
        await customer.get_by_test_id("chat-send").click()
        await expect(rep.get_by_test_id("chat-log")).to_contain_text("My router blinks red")
        await rep.get_by_test_id("chat-input").fill("Let us look at it together")
        await rep.get_by_test_id("chat-send").click()
        await expect(customer.get_by_test_id("chat-log")).to_contain_text("Let us look at it together")

        before_flip = await decoded_frames(rep)
        await customer.get_by_test_id("flip-camera").click()
        after_flip = await wait_frames_grow(rep, before_flip + 60)
        assert after_flip >= before_flip + 60
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await shot(customer, "customer-in-call")
        await shot(rep, "rep-in-call")

        await customer.get_by_test_id("end-call").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "ended")
        await expect(rep.get_by_test_id("call-ended")).to_be_visible()
        await shot(customer, "customer-ended")
        records = await served.store.list_sessions()
        assert records[0].state == "ended" and records[0].ended_by == "customer"
    finally:
        await browser.close()
        await pw.stop()


@pytest.mark.fer
async def test_the_rep_console_shows_the_flag_when_the_customer_looks_angry(settings: Settings, tmp_path: Path) -> None:
    available, why = fer_available()
    if not available:
        pytest.skip(why)
    y4m = tmp_path / "angry.y4m"
    write_clip_y4m(y4m, make_clip([(person("angry"), 2.0)], width=640, height=480, fps=30))
    service = EmotionService()
    await service.start()
    try:
        assert await service.wait_ready(timeout=150) == "ok", service.status_message
        rapport = await start_rapport(replace(settings, emotion_cues=True), emotion_service=service)
        await rapport.add_user("rep1")
        pw, browser = await launch(y4m)
        try:
            rep = await desktop_page(browser, f"{rapport.url}/console")
            await rep_login(rep)
            customer = await phone_page(pw, browser, f"{rapport.url}/call")
            await expect(customer.get_by_test_id("emotion-notice")).to_be_visible()
            await expect(customer.get_by_test_id("emotion-consent")).to_be_checked()
            await customer.get_by_test_id("start-call").click()
            await rep.get_by_test_id("accept").click()
            await expect(rep.get_by_test_id("emotion-flag")).to_be_visible(timeout=30000)
            await expect(rep.get_by_test_id("emotion-flag")).to_contain_text("frustrated")
            await expect(rep.get_by_test_id("emotion-label")).to_have_text("angry")
            assert int(await rep.get_by_test_id("emotion-meter").get_attribute("aria-valuenow") or 0) >= 50
            await shot(rep, "rep-emotion-flag")
        finally:
            await browser.close()
            await pw.stop()
            await rapport.aclose()
            await rapport.http.close()
            await rapport.server.close()
    finally:
        await service.aclose()


async def test_a_customer_who_declines_cues_shows_off_in_the_console(settings: Settings, faces_y4m: Path) -> None:
    from tests.test_call_emotion import recording_detector  # noqa: F401  (the worker imports it by path)

    service = EmotionService("tests.test_call_emotion:recording_detector", mode="thread")
    try:
        rapport = await start_rapport(replace(settings, emotion_cues=True), emotion_service=service)
        await rapport.add_user("rep1")
        pw, browser = await launch(faces_y4m)
        try:
            rep = await desktop_page(browser, f"{rapport.url}/console")
            await rep_login(rep)
            customer = await phone_page(pw, browser, f"{rapport.url}/call")
            await customer.get_by_test_id("emotion-consent").uncheck()
            await customer.get_by_test_id("start-call").click()
            await rep.get_by_test_id("accept").click()
            await expect(rep.get_by_test_id("emotion-off")).to_have_text("emotion cues off (customer's choice)")
            await wait_frames_grow(rep, 30)
            await expect(rep.get_by_test_id("emotion-flag")).to_be_hidden()
        finally:
            await browser.close()
            await pw.stop()
            await rapport.aclose()
            await rapport.http.close()
            await rapport.server.close()
    finally:
        await service.aclose()
