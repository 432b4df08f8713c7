"""Accessibility in real Chromium: axe-core (WCAG 2.1 A/AA) on every page and state, keyboard-only operation of
the call controls and the console, visible focus, and the names a screen reader reads.

Each state is checked as a person would meet it: the customer's phone page at the start, in the queue, in the
call and at the end (rating; callback after a wait that ran out), the console from sign-in to wrap-up, QA's list
and one recorded call, the supervisor's floor and reports, and /admin. axe's results are kept in
artifacts/axe/<state>.json; a serious or critical violation fails the test with the rule and the elements.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.config import Settings
from tests.support.axe import check_accessibility
from tests.support.browser import (
    ARTIFACTS,
    CUSTOMER,
    REP,
    Chromium,
    chromium_per_side,
    colour_distance,
    desktop_page,
    phone_page,
    rep_login,
    wait_remote_colour,
)
from tests.support.server import PASSWORD, Rapport, Serve, running_with_cues

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"
# Sees the customer's orange as an angry face, so the emotion meter, the flag and QA's timeline have something.
COLOUR_DETECTOR = "tests.support.fakes:ColourDetector"
REP_AND_QA = (("rep1", "rep"), ("qa1", "qa"))

# What has keyboard focus now: its test id (or tag), and whether a focus ring is drawn around it.
FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== "none";
  return { testid: el.dataset.testid || null, tag: el.tagName.toLowerCase(), ring };
}"""

# The texts of the elements an aria-labelledby names.
LABELLED_BY_JS = "ids => ids.split(' ').map((id) => document.getElementById(id)?.textContent || '')"


async def staff_login(page: Page, username: str) -> None:
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()


def in_call_settings(settings: Settings) -> Settings:
    """Cues, recording and the composed QA file on: every part of the console and QA has something to show."""
    return replace(settings, emotion_cues=True, recording_policy="always", compose_recordings=True)


# ---------------------------------------------------------------- axe on every page and state


async def test_axe_finds_nothing_serious_in_a_call_from_start_to_qa(settings: Settings, tmp_path: Path) -> None:
    changed = in_call_settings(settings)
    async with (
        running_with_cues(changed, COLOUR_DETECTOR, REP_AND_QA) as rapport,
        chromium_per_side(tmp_path) as (customer_side, rep_side),
    ):
        rep = await desktop_page(rep_side.browser, f"{rapport.url}/console")
        await expect(rep.locator("body")).to_have_attribute("data-state", "login")
        await check_accessibility(rep, "console-login")
        await rep_login(rep)
        await check_accessibility(rep, "console-queue-empty")

        customer = await phone_page(*customer_side, f"{rapport.url}/call")
        await expect(customer.locator("body")).to_have_attribute("data-state", "start")
        await check_accessibility(customer, "customer-start")
        await customer.get_by_test_id("customer-name").fill("Ada")
        await customer.get_by_test_id("reason-select").select_option("not_working")
        await customer.get_by_test_id("start-call").click()
        await expect(customer.get_by_test_id("queue-position")).to_contain_text("next")
        await check_accessibility(customer, "customer-waiting")
        await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
        await check_accessibility(rep, "console-queue")

        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        colour = await wait_remote_colour(rep, CUSTOMER)
        assert colour is not None and colour_distance(colour, CUSTOMER.rgb) < 40, colour
        await expect(rep.get_by_test_id("emotion-flag")).to_be_visible(timeout=30000)
        await customer.get_by_test_id("chat-input").fill("My router blinks red")
        await customer.get_by_test_id("chat-send").click()
        await expect(rep.get_by_test_id("chat-line")).to_have_count(1)
        await rep.get_by_test_id("chat-input").fill("Let us look at it together")
        await rep.get_by_test_id("chat-send").click()
        await expect(customer.get_by_test_id("chat-line")).to_have_count(2)
        await check_accessibility(customer, "customer-in-call")
        await check_accessibility(rep, "console-in-call")
        await assert_screen_reader_names(customer, rep)

        await rep.get_by_test_id("end-call").click()
        await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()
        await expect(customer.get_by_test_id("rating")).to_be_visible()
        await check_accessibility(customer, "customer-ended-rating")
        await check_accessibility(rep, "console-wrap-up")
        await rep.get_by_test_id("wrapup-disposition").select_option("resolved")
        await rep.get_by_test_id("wrapup-submit").click()
        await expect(rep.get_by_test_id("wrapup-form")).to_be_hidden()

        qa = await desktop_page(rep_side.browser, f"{rapport.url}/qa")
        await expect(qa.locator("body")).to_have_attribute("data-state", "login")
        await check_accessibility(qa, "qa-login")
        await staff_login(qa, "qa1")
        row = qa.get_by_test_id("qa-session-row")
        await expect(row).to_have_count(1)
        await check_accessibility(qa, "qa-list")
        await row.click()
        await expect(qa.get_by_test_id("qa-player")).to_have_attribute(
            "src", re.compile(r"/api/v1/recordings/\d+/media"), timeout=90000
        )
        await expect(qa.get_by_test_id("qa-flag-marker").first).to_be_visible()
        await check_accessibility(qa, "qa-session")
        # The emotion timeline: a labelled chart described in words, its flags buttons with their time.
        chart = qa.get_by_role("group", name="Customer's frustration (emotion cues)")
        await expect(chart).to_have_accessible_description(
            re.compile(
                r"^Chart of the customer's frustration over \d+:\d\d of the call: "
                r"highest \d+% at \d+:\d\d; [1-9]\d* frustration flags\.$"
            )
        )
        await expect(qa.get_by_role("button", name=re.compile(r"^Frustration flag at \d+:\d\d")).first).to_be_visible()
        await expect(qa.get_by_role("slider", name="Seek the recording (customer's frustration chart)")).to_be_visible()


async def test_axe_finds_nothing_serious_on_the_supervisors_floor_and_reports(
    served: Rapport, browser: Chromium
) -> None:
    await served.add_user("sup1", "supervisor")
    rep = await served.rep("rep1")
    _talking, live = await served.customer(reason="complaint", name="Ada")
    await rep.request({"type": "call.accept", "session_id": live["session_id"]})
    await served.customer(reason="order", name="Bob")

    page = await desktop_page(browser.browser, f"{served.url}/supervisor")
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await check_accessibility(page, "supervisor-login")
    await staff_login(page, "sup1")
    await expect(page.get_by_test_id("sup-call-row")).to_have_count(1)
    await expect(page.get_by_test_id("sup-queue-row")).to_have_count(1)
    await check_accessibility(page, "supervisor-floor")

    await rep.request({"type": "call.end"})
    await page.get_by_test_id("sup-report-apply").click()
    await expect(page.get_by_test_id("sup-report-row")).to_have_count(1)
    await page.get_by_test_id("sup-report-details").locator("summary").click()
    await expect(page.get_by_test_id("sup-report-table")).to_be_visible()
    await check_accessibility(page, "supervisor-reports")
    # Each report chart is an image named by its title and described by a sentence; the numbers are in the table.
    charts = page.get_by_test_id("sup-charts").get_by_role("img")
    assert await charts.count() >= 4
    for chart in await charts.all():
        assert (await chart.evaluate("el => el.tagName.toLowerCase()")) == "svg"
        name = await chart.get_attribute("aria-labelledby") or ""
        text = await page.evaluate(LABELLED_BY_JS, name)
        assert text and all(part.strip() for part in text), f"a chart without a title or a description: {text}"


async def test_axe_finds_nothing_serious_on_the_phone_callback_persian_and_link_error_pages(
    serve: Serve, browser: Chromium
) -> None:
    rapport = await serve(max_wait_s=2.0)
    page = await phone_page(*browser, f"{rapport.url}/call")
    await page.get_by_test_id("customer-phone").fill("+44 20 7946 0958")
    await page.get_by_test_id("start-call").click()
    # Nobody answers: the wait runs out and the end screen offers a callback.
    await expect(page.get_by_test_id("callback")).to_be_visible(timeout=15000)
    await check_accessibility(page, "customer-ended-callback")

    ctx = await browser.browser.new_context(viewport={"width": 390, "height": 844}, locale="fa-IR")
    persian = await ctx.new_page()
    await persian.goto(f"{rapport.url}/call")
    await expect(persian.locator("html")).to_have_attribute("dir", "rtl")
    await expect(persian.locator("body")).to_have_attribute("data-state", "start")
    await check_accessibility(persian, "customer-start-fa")

    desktop = await desktop_page(browser.browser, f"{rapport.url}/call")
    await expect(desktop.locator("body")).to_have_attribute("data-state", "start")
    await check_accessibility(desktop, "customer-start-desktop")

    link_error = await desktop_page(browser.browser, f"{rapport.url}/join/eyJjIjoiYWJjIn0.forged")
    await expect(link_error.get_by_test_id("link-error")).to_be_visible()
    await check_accessibility(link_error, "customer-link-error")


@pytest.mark.skipif(
    not (WEB_CLIENT / "admin.html").exists(), reason="web_client/admin.html (the /admin page) is not built yet"
)
async def test_axe_finds_nothing_serious_on_the_admin_page(served: Rapport, browser: Chromium) -> None:
    await served.add_user("admin1", "admin")
    page = await desktop_page(browser.browser, f"{served.url}/admin")
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await check_accessibility(page, "admin-login")
    await staff_login(page, "admin1")
    await expect(page.locator("body")).not_to_have_attribute("data-state", re.compile("^(login|loading)$"))
    await expect(page.get_by_test_id("error-toast")).to_be_hidden()
    await check_accessibility(page, "admin")


async def test_the_axe_check_fails_on_a_nameless_button_and_faint_text(served: Rapport, browser: Chromium) -> None:
    page = await phone_page(*browser, f"{served.url}/call")
    await expect(page.locator("body")).to_have_attribute("data-state", "start")
    await page.evaluate(
        """() => {
          const button = document.createElement("button");
          button.dataset.testid = "nameless";
          const faint = document.createElement("p");
          faint.textContent = "Hard to read";
          faint.style.color = "#c8c8c8";
          faint.style.background = "#ffffff";
          document.querySelector("main").append(button, faint);
        }"""
    )
    with pytest.raises(AssertionError) as failed:
        await check_accessibility(page, "hostile-nameless-button")
    message = str(failed.value)
    assert "button-name (critical)" in message and '[data-testid="nameless"]' in message, message
    assert "color-contrast (serious)" in message, message
    saved = ARTIFACTS / "axe" / "hostile-nameless-button.json"
    assert {v["id"] for v in json.loads(saved.read_text())["violations"]} >= {"button-name", "color-contrast"}


# ---------------------------------------------------------------- what a screen reader reads


async def assert_screen_reader_names(customer: Page, rep: Page) -> None:
    """In a call: the videos are named, the emotion meter is a meter with its value, and what changes is announced."""
    remote = customer.get_by_label("The agent's video", exact=True)
    await expect(remote).to_have_attribute("data-testid", "remote-video")
    await expect(customer.get_by_label("Your camera", exact=True)).to_have_attribute("data-testid", "local-video")
    await expect(rep.get_by_label("The customer's video", exact=True)).to_have_attribute("data-testid", "remote-video")
    await expect(rep.get_by_label("Your camera", exact=True)).to_have_attribute("data-testid", "local-video")

    meter = rep.get_by_role("meter", name="Frustration")
    await expect(meter).to_have_attribute("data-testid", "emotion-meter")
    await expect(meter).to_have_attribute("aria-valuemin", "0")
    await expect(meter).to_have_attribute("aria-valuemax", "100")
    now = int(await meter.get_attribute("aria-valuenow") or "-1")
    assert 0 < now <= 100, now
    await expect(meter).to_have_attribute("aria-valuetext", re.compile(r"^\d+%$"))
    await expect(meter).to_have_accessible_description(re.compile("angry"))

    # Live regions: the queue position, the chat, the call's status (both sides).
    for page, testids in (
        (customer, ("queue-position", "chat-log", "call-state")),
        (rep, ("queue-list", "chat-log")),
    ):
        for testid in testids:
            await expect(page.get_by_test_id(testid)).to_have_attribute("aria-live", "polite")
    for testid in ("call-ended", "peer-media", "peer-reconnecting", "emotion-flag"):
        await expect(rep.get_by_test_id(testid)).to_have_attribute("role", "status")
    for testid in ("peer-media", "reconnecting"):
        await expect(customer.get_by_test_id(testid)).to_have_attribute("role", "status")


# ---------------------------------------------------------------- keyboard only


async def focused(page: Page) -> dict[str, Any] | None:
    value: dict[str, Any] | None = await page.evaluate(FOCUSED_JS)
    return value


async def press(page: Page, key: str, expected: str) -> None:
    """Press ``key`` (Tab or Shift+Tab); focus must land on ``expected`` (a test id) with a visible ring."""
    await page.keyboard.press(key)
    now = await focused(page)
    assert now is not None and now["testid"] == expected, f"{key} should reach {expected}, focus is on {now}"
    assert now["ring"], f"{expected} has keyboard focus but no visible focus ring (outline or box-shadow)"


async def tab_to(page: Page, testid: str, most: int = 25) -> list[str]:
    """Tab until ``testid`` has focus (with a visible ring); returns the test ids passed on the way."""
    passed: list[str] = []
    for _ in range(most):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if now is not None and now["testid"] == testid:
            assert now["ring"], f"{testid} has keyboard focus but no visible focus ring"
            return passed
        passed.append(now["testid"] or now["tag"] if now else "body")
    raise AssertionError(f"{most} Tabs never reached {testid}; passed {passed}")


async def assert_focus_on(page: Page, testid: str) -> None:
    await page.wait_for_function("id => document.activeElement?.dataset.testid === id", arg=testid)
    now = await focused(page)
    assert now is not None and now["ring"], f"{testid} has focus but no visible ring: {now}"


async def test_the_call_and_the_console_work_with_the_keyboard_alone(served: Rapport, tmp_path: Path) -> None:
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        # The rep signs in and makes themselves available: Tab, typing and Enter only.
        rep = await desktop_page(rep_side.browser, f"{served.url}/console")
        await expect(rep.locator("body")).to_have_attribute("data-state", "login")
        await tab_to(rep, "login-username")
        await rep.keyboard.type("rep1")
        await press(rep, "Tab", "login-password")
        await rep.keyboard.type(PASSWORD)
        await rep.keyboard.press("Enter")
        await expect(rep.locator("body")).to_have_attribute("data-state", "queue")
        await tab_to(rep, "availability")
        await rep.keyboard.press("Enter")
        await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "available")

        # The customer fills in a name and starts the call from the keyboard.
        customer = await phone_page(*customer_side, f"{served.url}/call")
        await expect(customer.locator("body")).to_have_attribute("data-state", "start")
        before_name = await tab_to(customer, "customer-name")
        assert before_name[:2] == ["language-select", "reason-select"], before_name
        await customer.keyboard.type("Ada")
        await tab_to(customer, "start-call")
        await customer.keyboard.press("Enter")
        await expect(customer.locator("body")).to_have_attribute("data-state", "waiting")

        # The rep: from the status, past log out, to the ringing call's Accept (then Decline, then the queue's own
        # Accept); Enter takes the call.
        await expect(rep.get_by_test_id("offer")).to_be_visible()
        await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
        await press(rep, "Tab", "logout")
        await press(rep, "Tab", "offer-accept")
        await press(rep, "Tab", "offer-decline")
        await press(rep, "Tab", "accept")
        await press(rep, "Shift+Tab", "offer-decline")
        await press(rep, "Shift+Tab", "offer-accept")
        await rep.keyboard.press("Enter")
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        # Media flows both ways, and the rep's keyboard goes on at the call's controls.
        for page, sender in ((rep, CUSTOMER), (customer, REP)):
            colour = await wait_remote_colour(page, sender)
            assert colour is not None and colour_distance(colour, sender.rgb) < 40, (sender.name, colour)
        await assert_focus_on(rep, "mute")

        # The customer's controls in order: mute, camera, switch camera, hang up, chat.
        await tab_to(customer, "mute")
        mute = customer.get_by_test_id("mute")
        await customer.keyboard.press("Space")
        await expect(mute).to_have_attribute("aria-pressed", "true")
        await expect(rep.get_by_test_id("peer-media")).to_contain_text("muted")
        await customer.keyboard.press("Enter")
        await expect(mute).to_have_attribute("aria-pressed", "false")
        await press(customer, "Tab", "camera-toggle")
        await customer.keyboard.press("Space")
        await expect(customer.get_by_test_id("camera-toggle")).to_have_attribute("aria-pressed", "true")
        await expect(rep.get_by_test_id("peer-media")).to_contain_text("camera is off")
        await customer.keyboard.press("Space")
        await expect(rep.get_by_test_id("peer-media")).to_be_hidden()
        await press(customer, "Tab", "flip-camera")
        await customer.keyboard.press("Enter")
        await expect(rep.get_by_test_id("customer-camera")).to_have_text("Back camera")
        await press(customer, "Tab", "end-call")
        await press(customer, "Tab", "chat-input")
        await customer.keyboard.type("My router blinks red")
        await customer.keyboard.press("Enter")
        await expect(rep.get_by_test_id("chat-log")).to_contain_text("My router blinks red")
        await press(customer, "Tab", "chat-send")
        # And back again with Shift+Tab.
        for testid in ("chat-input", "end-call", "flip-camera", "camera-toggle", "mute"):
            await press(customer, "Shift+Tab", testid)

        # The rep's controls, then the chat.
        passed = await tab_to(rep, "chat-input")
        assert passed[:4] == ["camera-toggle", "transfer", "help-ask", "end-call"], passed
        await rep.keyboard.type("Let us look at it together")
        await rep.keyboard.press("Enter")
        await expect(customer.get_by_test_id("chat-log")).to_contain_text("Let us look at it together")

        # The customer hangs up from the keyboard; the rep's wrap-up form takes the focus.
        for testid in ("camera-toggle", "flip-camera", "end-call"):
            await press(customer, "Tab", testid)
        await customer.keyboard.press("Enter")
        await expect(customer.locator("body")).to_have_attribute("data-state", "ended")
        await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()
        await assert_focus_on(rep, "wrapup-disposition")
        await rep.keyboard.press("ArrowDown")
        await expect(rep.get_by_test_id("wrapup-disposition")).not_to_have_value("")
        await press(rep, "Tab", "wrapup-notes")
        await rep.keyboard.type("Router replaced")
        await press(rep, "Tab", "wrapup-submit")
        await rep.keyboard.press("Enter")
        await expect(rep.get_by_test_id("wrapup-form")).to_be_hidden()
        record = (await served.store.list_sessions())[0]
        saved = await served.store.get_session(record.id)
        assert saved is not None and saved.notes == "Router replaced", saved
        # Focus moves to the status, the next thing a rep changes: Enter sets them away.
        await assert_focus_on(rep, "availability")
        await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "available")
        await rep.keyboard.press("Enter")
        await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "away")
