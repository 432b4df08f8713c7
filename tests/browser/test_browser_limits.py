"""Real Chromium on a phone: what the customer's page says when a limit is reached.

A wait that runs out offers a callback, a full share of the queue says so, and the page keeps
one copy of each chat line when its socket comes back (the customer's lines are numbered by call).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.server import Serve

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]


async def waiting_customer(browser: tuple[Any, Browser], url: str, *, until: str = "waiting") -> Page:
    pw, chromium = browser
    device = dict(pw.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    context = await chromium.new_context(**device, permissions=["camera", "microphone"])
    page = await context.new_page()
    await page.goto(f"{url}/call")
    await expect(page.locator("body")).to_have_attribute("data-state", "start")
    await page.get_by_test_id("start-call").click()
    if until:
        await expect(page.locator("body")).to_have_attribute("data-state", until)
    return page


async def test_a_wait_that_runs_out_offers_a_callback(serve: Serve, browser: tuple[Any, Browser]) -> None:
    rapport = await serve(max_wait_s=2.0)
    page = await waiting_customer(browser, rapport.url)
    await expect(page.locator("body")).to_have_attribute("data-state", "ended", timeout=15_000)
    await expect(page.get_by_test_id("ended-text")).to_have_text("We're sorry: no one could take your call in time.")
    await expect(page.get_by_test_id("rating")).to_be_hidden()
    await expect(page.get_by_test_id("call-again")).to_be_visible()
    form = page.get_by_test_id("callback")
    await expect(form).to_be_visible()

    await page.get_by_test_id("callback-submit").click()
    await expect(page.get_by_test_id("callback-error")).to_have_text("Enter a phone number or an email address.")
    await page.get_by_test_id("callback-phone").fill("+31 6 1234 5678")
    await page.get_by_test_id("callback-submit").click()
    await expect(page.get_by_test_id("callback-thanks")).to_be_visible()
    await expect(form).to_be_hidden()

    [record] = await rapport.store.list_sessions()
    assert (record.state, record.end_reason) == ("abandoned", "max_wait")
    events = await rapport.store.list_events(record.id)
    [requested] = [e.detail for e in events if e.kind == "callback_requested"]
    callback = await rapport.store.callback_for_origin(record.id)
    assert callback is not None and requested == {"callback_id": callback.id}
    assert (callback.state, callback.contact) == ("requested", {"phone": "+31 6 1234 5678"})


async def test_a_second_waiting_call_from_one_address_is_told_why(serve: Serve, browser: tuple[Any, Browser]) -> None:
    rapport = await serve(max_waiting_per_address=1)
    await rapport.customer(name="Already waiting")  # from the same loopback address as the browser
    page = await waiting_customer(browser, rapport.url, until="")
    error = page.get_by_test_id("start-error")
    await expect(error).to_have_text(re.compile("You already have a call waiting"))
    await expect(page.locator("body")).to_have_attribute("data-state", "start")


async def test_a_reconnecting_page_keeps_one_copy_of_each_chat_line(serve: Serve, browser: tuple[Any, Browser]) -> None:
    rapport = await serve()
    page = await waiting_customer(browser, rapport.url)
    await page.get_by_test_id("chat-input").fill("Are you there?")
    await page.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("chat-line")).to_have_count(1)
    # The server drops the socket (a network change): the page comes back and the welcome replays the chat.
    [live] = list(rapport.center.sessions.values())
    old = live.conns["customer"]
    old.close(1011, "network change")
    await expect(page.get_by_test_id("queue-position")).to_have_text("You are next")
    for _ in range(100):
        if live.conns["customer"] not in (None, old):
            break
        await page.wait_for_timeout(100)
    assert live.conns["customer"] not in (None, old), "the page did not come back"
    await page.get_by_test_id("chat-input").fill("Hello?")
    await page.get_by_test_id("chat-send").click()
    lines = page.get_by_test_id("chat-line")
    # The new line comes after the welcome's replay: once it shows, the replay has been drawn too.
    await expect(lines.last).to_contain_text("Hello?")
    await expect(lines).to_have_text([re.compile("Are you there\\?"), re.compile("Hello\\?")])
