"""Real Chromium: a callback from the closed centre's page to a completed call. The customer's phone shows the
closed notice and leaves a callback request; the callback.requested webhook reaches a receiver; the rep's
console lists it, starts it (link and QR shown, callback.started carries the link); the customer opens the link,
the call rings at that rep, both see and hear each other; the end completes the callback and the reports (API
and the supervisor's page) count it. Also: a waiting customer past the threshold takes "callback instead of
waiting", and a second rep who starts a callback someone else started sees the 409 in words."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.async_api import Page, Route, expect

from server.config import Settings
from server.webhooks.dispatcher import WEBHOOKS
from tests.api.test_callbacks import CLOSED, call, set_hours, until
from tests.api.test_webhooks import FAST, LOCAL, Receiver
from tests.support.axe import check_accessibility
from tests.support.browser import (
    CUSTOMER,
    REP,
    assert_sees_and_hears,
    chromium_per_side,
    desktop_page,
    phone_page,
    rep_login,
)
from tests.support.server import PASSWORD, Rapport, running, with_settings

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# README pictures land beside the other artifacts; docs/screenshots/ keeps the committed copies (copied by hand).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "readme"
USERS = (("adm1", "admin"), ("rep1", "rep"), ("rep2", "rep"), ("sup1", "supervisor"))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver().start()
    yield made
    await made.close()


@pytest.fixture
async def centre(settings: Settings) -> AsyncIterator[Rapport]:
    async with running(with_settings(settings, webhook_allowed_hosts=LOCAL), USERS) as r:
        r.app[WEBHOOKS].backoff_s = FAST
        yield r


async def hooked(centre: Rapport, receiver: Receiver, event: str) -> dict[str, Any]:
    """The first delivery of ``event`` the receiver got (signed by the endpoint's secret), as JSON."""
    got = await until(lambda: asyncio.sleep(0, [r for r in receiver.requests if f'"{event}"'.encode() in r.body]))
    assert got[0].verified, "signed with the endpoint's secret"
    return json.loads(got[0].body)


async def save_screenshot(page: Page, name: str) -> None:
    """A README picture (artifacts/readme/), as a palette PNG (a phone's screen at its device pixels is big)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot: Image.Image = Image.open(io.BytesIO(await page.screenshot()))
    if shot.width > 1280:
        shot = shot.resize((1280, round(shot.height * 1280 / shot.width)))
    shot.convert("RGB").quantize(colors=128).save(SCREENSHOTS / name, optimize=True)


async def staff_page(centre: Rapport, browser: Any, path: str, username: str) -> Page:
    page = await desktop_page(browser, f"{centre.url}{path}")
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    return page


async def test_a_callback_out_of_hours_becomes_a_completed_call(
    centre: Rapport, receiver: Receiver, tmp_path: Path
) -> None:
    _endpoint, receiver.secret = await centre.app[WEBHOOKS].create_endpoint(
        receiver.url, ("callback.requested", "callback.started")
    )
    assert (await set_hours(centre, CLOSED))[0] == 200
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        # The centre is closed: the phone shows the notice and the callback form instead of the start button.
        customer = await phone_page(*customer_side, f"{centre.url}/call")
        await expect(customer.get_by_test_id("closed-panel")).to_be_visible()
        await expect(customer.get_by_test_id("closed-text")).to_have_text("We're closed at the moment.")
        await expect(customer.get_by_test_id("start-call")).to_be_hidden()
        await customer.get_by_test_id("customer-name").fill("Ada")
        await customer.get_by_test_id("closed-email").fill("ada@example.com")
        await check_accessibility(customer, "customer-closed")
        await customer.get_by_test_id("closed-panel").evaluate("e => e.scrollIntoView({block: 'start'})")
        await save_screenshot(customer, "callback-closed-form.png")
        # A bad contact is refused on the page, and nothing is sent.
        await customer.get_by_test_id("closed-phone").fill("call me")
        await customer.get_by_test_id("closed-submit").click()
        await expect(customer.get_by_test_id("closed-error")).to_be_visible()
        assert await centre.store.list_callbacks(("requested",)) == []
        await customer.get_by_test_id("closed-phone").fill("")
        await customer.get_by_test_id("closed-submit").click()
        await expect(customer.get_by_test_id("closed-thanks")).to_be_visible()

        requested = await hooked(centre, receiver, "callback.requested")
        assert requested["data"]["callback"]["contact"] == {"email": "ada@example.com"}
        assert requested["data"]["callback"]["customer_name"] == "Ada"

        # The rep's console lists it (polled), with the contact and when it is due.
        rep = await desktop_page(rep_side.browser, f"{centre.url}/console")
        await rep_login(rep)
        item = rep.get_by_test_id("callback-item")
        await expect(item).to_have_count(1)
        await expect(item).to_contain_text("Ada")
        await expect(item.get_by_test_id("callback-contact")).to_have_text("ada@example.com")
        await expect(item.get_by_test_id("callback-window")).to_have_text("As soon as possible")
        await expect(rep.get_by_test_id("callbacks-count")).to_have_text("1")
        await check_accessibility(rep, "console-callbacks")

        # Started from the keyboard: the link and its QR show, and the state says so.
        await item.get_by_test_id("callback-start").focus()
        await rep.keyboard.press("Enter")
        link = rep.get_by_test_id("callback-link")
        await expect(link).to_be_visible()
        await expect(item.get_by_test_id("callback-state")).to_have_text("Started by you")
        await expect(item.get_by_test_id("callback-start")).to_be_disabled()
        await rep.wait_for_function("() => document.querySelector('[data-testid=\"callback-qr\"]')?.naturalWidth > 0")
        url = await link.get_attribute("href")
        assert url and url.startswith(f"{centre.url}/join/"), url
        await item.get_by_test_id("callback-copy").click()
        await expect(item.get_by_test_id("callback-copied")).to_have_text(
            "Link copied."
        )  # the clipboard or the fallback
        await check_accessibility(rep, "console-callback-started")
        await rep.set_viewport_size({"width": 1280, "height": 1000})
        await rep.evaluate("window.scrollTo(0, 0)")
        await save_screenshot(rep, "console-callbacks.png")

        started = await hooked(centre, receiver, "callback.started")
        assert started["data"]["url"] == url and started["data"]["callback"]["state"] == "started"

        # The customer opens the link (an SMS would bring it): the call rings at this rep, who answers.
        await customer.goto(url)
        await customer.get_by_test_id("start-call").click()
        if await customer.get_by_test_id("help-need-person").is_visible():
            await customer.get_by_test_id("help-need-person").click()
        await expect(rep.get_by_test_id("offer")).to_be_visible(timeout=15000)
        await expect(rep.get_by_test_id("offer-text")).to_contain_text("Ada")
        await rep.get_by_test_id("offer-accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await assert_sees_and_hears(rep, REP, CUSTOMER)
        await assert_sees_and_hears(customer, CUSTOMER, REP)

        await rep.get_by_test_id("end-call").click()
        await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()
        await rep.get_by_test_id("wrapup-disposition").select_option("resolved")
        await rep.get_by_test_id("wrapup-submit").click()
        await expect(rep.get_by_test_id("wrapup-form")).to_be_hidden()
        # Done: it leaves the rep's list, and it is completed with its call.
        await expect(rep.get_by_test_id("callback-item")).to_have_count(0)
        await expect(rep.get_by_test_id("callbacks-empty")).to_be_visible()
        callback_id = requested["data"]["callback"]["id"]
        done = await centre.store.get_callback(callback_id)
        assert done is not None and done.state == "completed" and done.session_id

        sup, _csrf = await centre.staff_session("sup1")
        _status, report = await call(sup, "GET", f"{centre.url}/api/v1/reports?group=day")
        totals = report["totals"]
        assert (totals["callbacks_requested"], totals["callbacks_started"], totals["callbacks_completed"]) == (1, 1, 1)

        # The supervisor's reports show the same counts, in the totals and in the table.
        page = await staff_page(centre, rep_side.browser, "/supervisor", "sup1")
        await page.get_by_test_id("sup-report-apply").click()
        await expect(page.get_by_test_id("sup-total-callbacks").locator(".tile-value")).to_have_text("1 / 1 / 1")
        await page.get_by_test_id("sup-report-details").locator("summary").click()
        row = page.get_by_test_id("sup-report-row")
        await expect(row).to_have_count(1)
        assert (await row.locator("td").all_inner_texts())[-3:] == ["1", "1", "1"]


async def test_a_waiting_customer_leaves_a_callback_instead(centre: Rapport, tmp_path: Path) -> None:
    # Open, but any wait is past the threshold (0 s): the page offers the callback while the customer waits.
    assert (await set_hours(centre, {"timezone": "UTC", "callback_wait_threshold_s": 0, "queues": []}))[0] == 200
    async with chromium_per_side(tmp_path) as (customer_side, _rep_side):
        customer = await phone_page(*customer_side, f"{centre.url}/call")
        await expect(customer.get_by_test_id("closed-panel")).to_be_hidden()
        await customer.get_by_test_id("customer-name").fill("Bo")
        await customer.get_by_test_id("start-call").click()
        if await customer.get_by_test_id("help-need-person").is_visible():
            await customer.get_by_test_id("help-need-person").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "waiting")
        offer = customer.get_by_test_id("callback-instead-open")
        await expect(offer).to_be_visible(timeout=15000)
        await offer.click()
        await expect(customer.get_by_test_id("instead-phone")).to_be_focused()
        await customer.get_by_test_id("instead-submit").click()  # no contact: said on the page
        await expect(customer.get_by_test_id("instead-error")).to_be_visible()
        await customer.get_by_test_id("instead-phone").fill("+31 6 1234 5678")
        await customer.get_by_test_id("instead-submit").click()
        # The customer leaves the queue at once; the end screen itself confirms the request.
        await expect(customer.locator("body")).to_have_attribute("data-state", "ended")
        thanks = "Thank you. We'll get back to you as soon as we can."
        await expect(customer.get_by_test_id("ended-text")).to_have_text(thanks)

        made = await until(lambda: centre.store.list_callbacks(("requested",)))
        assert len(made) == 1 and (made[0].contact or {}).get("phone") and made[0].origin_session_id
        origin = made[0].origin_session_id
        # The customer left the queue: nobody waits for a rep any more.
        ended = await until(lambda: _ended(centre, origin))
        assert ended.ended_at is not None


async def _ended(centre: Rapport, session_id: str) -> Any:
    found = await centre.store.get_session(session_id)
    return found if found is not None and found.ended_at is not None else None


async def test_a_second_rep_starting_the_same_callback_is_told(centre: Rapport, tmp_path: Path) -> None:
    assert (await set_hours(centre, CLOSED))[0] == 200
    body = {"contact": {"phone": "+31 6 1234 5678"}, "name": "Cy", "reason": "order", "language": "nl"}
    assert (await call(centre.http, "POST", f"{centre.url}/api/v1/calls/callback", body))[0] == 200
    async with chromium_per_side(tmp_path) as (_customer_side, rep_side):
        first = await desktop_page(rep_side.browser, f"{centre.url}/console")
        await rep_login(first, "rep1")
        second = await desktop_page(rep_side.browser, f"{centre.url}/console")
        await rep_login(second, "rep2")
        for page in (first, second):
            await expect(page.get_by_test_id("callback-item")).to_have_count(1)
        # rep2's list is a moment old (its poll has not run since): it still offers Start.
        stale = await (await second.request.get(f"{centre.url}/api/v1/callbacks")).json()

        async def frozen(route: Route) -> None:
            await route.fulfill(json=stale)

        await second.route("**/api/v1/callbacks", frozen)
        await first.get_by_test_id("callback-start").click()
        await expect(first.get_by_test_id("callback-link")).to_be_visible()

        await second.get_by_test_id("callback-start").click()
        error = second.get_by_test_id("callback-error")
        await expect(error).to_have_text("Another rep has started this callback already.")
        await expect(second.get_by_test_id("callback-link")).to_have_count(0)
        # Once its list is fresh again, it says who has it.
        await second.unroute("**/api/v1/callbacks", frozen)
        await expect(second.get_by_test_id("callback-state")).to_have_text("Started by another rep", timeout=10000)
        await expect(second.get_by_test_id("callback-start")).to_be_disabled()
        # Still one started callback, with rep1's link only.
        started = await centre.store.list_callbacks(("started",))
        assert len(started) == 1 and started[0].started_by is not None
