"""Real Chromium on the QA page of an assisted call: the supervisor's steps on the timeline and in the
"Supervisor assist" list, the text whisper shown as the words written, and both seeking the player.

The call itself is made by aiortc clients (tests/webrtc/test_assist.py); only the review is a browser's.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import Chromium, desktop_page, shot
from tests.support.clients import CUSTOMER, SUPERVISOR
from tests.support.server import PASSWORD, Serve
from tests.webrtc.test_assist import call_with_supervisor

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# How long each step lasts in the call: the marks land far enough apart to tell a seek to one from another.
PERIOD_S = 2.5
# Markup in a text whisper must reach the reviewer as the characters typed, never as elements.
WHISPER = "Offer the <b>x</b> replacement"
STEPS = ["listen", "whisper", "barge", "left"]
CURRENT_TIME_JS = "() => window.rapport.video.currentTime"
# Within this of the target counts as "the player went there": a seek lands on the key frame before it.
NEAR_S = 1.0


async def assisted_call(serve: Serve) -> tuple[str, str]:
    """(server URL, session id) of a recorded call that sup1 listened to, whispered in (with a text line),
    joined and left, ended by the rep; a QA reviewer, qa1, exists."""
    rapport = await serve(recording_policy="always", compose_recordings=True)
    await rapport.add_user("qa1", "qa")
    three = await call_with_supervisor(rapport, "listen")
    await three.supervisor_media.wait_to_see_and_hear(CUSTOMER, slot=0)
    await asyncio.sleep(PERIOD_S)
    await three.supervisor.request({"type": "assist.mode", "mode": "whisper"})
    await three.rep_media.wait_to_hear(SUPERVISOR, slot=1)
    await three.supervisor.request({"type": "whisper.send", "text": WHISPER})
    await three.rep.wait_for("whisper.message")
    await asyncio.sleep(PERIOD_S)
    await three.supervisor.request({"type": "assist.mode", "mode": "barge"})
    await three.customer_media.wait_to_hear(SUPERVISOR, slot=1)
    await asyncio.sleep(PERIOD_S)
    await three.supervisor.request({"type": "assist.leave"})
    await three.rep.wait_for(lambda m: m["type"] == "assist.state" and m["mode"] is None)
    await asyncio.sleep(PERIOD_S)  # the leave well inside the file, so its marker is on the chart
    await three.rep.send({"type": "call.end"})
    await three.rep.wait_for("call.ended")
    return rapport.url, three.session_id


async def open_review(browser: Chromium, url: str) -> Page:
    """qa1 on /qa, the one call opened and its composed file loaded (its length known, at 0 s)."""
    qa = await desktop_page(browser.browser, f"{url}/qa")
    await qa.get_by_test_id("login-username").fill("qa1")
    await qa.get_by_test_id("login-password").fill(PASSWORD)
    await qa.get_by_test_id("login-submit").click()
    row = qa.get_by_test_id("qa-session-row")
    await expect(row).to_have_count(1)
    await row.click()
    player = qa.get_by_test_id("qa-player")
    await expect(player).to_have_attribute("src", re.compile(r"/api/v1/recordings/\d+/media"), timeout=90000)
    await qa.wait_for_function(
        "() => window.rapport.video.readyState >= 1 && Number.isFinite(window.rapport.video.duration)",
        timeout=15000,
    )
    return qa


async def seeks_to(qa: Page, target: float) -> None:
    """The player's position moves to within NEAR_S of ``target`` (TimeoutError if it stays elsewhere)."""
    await qa.wait_for_function(
        "([t, near]) => Math.abs(window.rapport.video.currentTime - t) < near", arg=[target, NEAR_S], timeout=5000
    )


async def test_qa_shows_the_supervisors_steps_and_text_whisper_and_they_seek_the_player(
    serve: Serve, browser: Chromium
) -> None:
    url, _session_id = await assisted_call(serve)
    qa = await open_review(browser, url)

    # The markers on the chart: one per step, in time order, each naming the supervisor.
    markers = qa.get_by_test_id("qa-assist-marker")
    await expect(markers).to_have_count(len(STEPS))
    kinds = [await m.get_attribute("data-kind") for m in await markers.all()]
    assert kinds == STEPS, kinds
    times = [float(await m.get_attribute("data-t") or "nan") for m in await markers.all()]
    assert times == sorted(times) and times[0] >= 0, times
    assert times[2] - times[0] > 2 * NEAR_S, f"the steps are too close together to tell seeks apart: {times}"
    for marker in await markers.all():
        await expect(marker).to_have_attribute("aria-label", re.compile(r"^Sup1 "))
    await expect(markers.nth(2)).to_have_attribute("aria-label", re.compile(r"^Sup1 joined the call at \d+:\d\d$"))

    # The list under the chart: the same steps and the text whisper, between the whisper and the barge-in.
    listing = qa.get_by_test_id("qa-assist-list")
    await expect(listing).to_be_visible()
    items = listing.get_by_test_id("qa-assist-item")
    await expect(items).to_have_count(len(STEPS))
    assert [await i.get_attribute("data-kind") for i in await items.all()] == STEPS
    for item in await items.all():
        await expect(item).to_contain_text("Sup1")
    line = listing.get_by_test_id("qa-whisper-line")
    await expect(line).to_have_count(1)
    await expect(line).to_contain_text(f"Sup1 wrote to the rep only: {WHISPER}")
    assert await line.locator("b").count() == 0, "the whisper's text was rendered as HTML"
    order = [await li.get_attribute("data-kind") for li in await listing.locator("li").all()]
    assert order == ["listen", "whisper", "whisper_text", "barge", "left"], order
    await shot(qa, "qa-assist")

    # Clicking a marker (its round head: the pole is a dashed line over the chart's own seek area) seeks the
    # player to it; so does an entry's time in the list.
    assert float(await qa.evaluate(CURRENT_TIME_JS)) < times[2] - NEAR_S
    await markers.nth(2).locator(".assist-head").click()
    await seeks_to(qa, times[2])
    await items.nth(0).get_by_role("button").click()
    await seeks_to(qa, times[0])
    whispered_at = float(await line.get_attribute("data-t") or "nan")
    await line.get_by_role("button").click()
    await seeks_to(qa, whispered_at)
