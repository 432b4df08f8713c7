"""Real Chromium: an admin runs the centre from /admin.

The admin adds a rep with skills and languages (the password shown once), the rep signs in to /console in a
second page and is available, and disabling them ends that session; an API key made on the page works with
aiohttp until the page revokes it; a webhook to a receiver on loopback gets a signed test delivery that the
page's log shows. Business hours are a form: the admin sets Monday to Friday 09:00-17:00 in Europe/Amsterdam with
holidays and the API returns that document; an inverted interval shows the server's error and saves nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from server.config import Settings
from server.webhooks.signing import verify
from tests.support.axe import check_accessibility
from tests.support.browser import Chromium, desktop_page, rep_login, shot
from tests.support.server import PASSWORD, Rapport, running

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# README pictures land beside the other artifacts; docs/screenshots/ keeps the committed copies (copied by hand).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "readme"


@pytest.fixture
async def centre(settings: Settings) -> AsyncIterator[Rapport]:
    # Sockets notice a disabled login at once; webhooks may reach the test's receiver on loopback.
    changed = replace(settings, login_recheck_s=0.3, webhook_allowed_hosts=("127.0.0.1",))
    async with running(changed, (("admin1", "admin"),)) as r:
        yield r


async def admin_page(browser: Chromium, rapport: Rapport) -> Page:
    page = await desktop_page(browser.browser, f"{rapport.url}/admin")
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill("admin1")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


async def test_an_admin_adds_a_rep_who_signs_in_and_is_then_disabled(centre: Rapport, browser: Chromium) -> None:
    page = await admin_page(browser, centre)
    await page.get_by_test_id("user-username").fill("rep7")
    await page.get_by_test_id("user-display-name").fill("Rep Seven")
    await page.get_by_test_id("user-role").select_option("rep")
    await page.get_by_test_id("user-skill-order").check()
    await page.get_by_test_id("user-language-nl").check()
    await page.get_by_test_id("user-create").click()
    await expect(page.get_by_test_id("user-secret")).to_be_visible()
    password = await page.get_by_test_id("user-secret-value").text_content()
    assert password and len(password) >= 16
    row = page.get_by_test_id("user-row-rep7")
    await expect(row).to_contain_text("Rep Seven")
    await expect(page.get_by_test_id("admin-announce")).to_contain_text("rep7")
    # Shown once: dismissed, it is gone from the page.
    await page.get_by_test_id("user-secret-dismiss").click()
    await expect(page.get_by_test_id("user-secret")).to_be_hidden()
    assert password not in await page.content()

    console = await desktop_page(browser.browser, f"{centre.url}/console")
    await rep_login(console, "rep7", password)
    (rep,) = [r for r in centre.center.reps.values() if r.user.username == "rep7"]
    assert (rep.status, rep.skills, rep.languages) == ("available", frozenset({"order"}), frozenset({"nl"}))
    # The admin header link shows for admins only.
    await expect(console.get_by_test_id("nav-admin")).to_be_hidden()

    await page.get_by_test_id("user-toggle-rep7").click()
    await expect(page.get_by_test_id("admin-announce")).to_contain_text("disabled")
    await expect(page.get_by_test_id("user-row-rep7")).to_contain_text("Disabled")
    # Their socket is closed (their console signs out) and their cookie no longer works.
    await expect(console.locator("body")).to_have_attribute("data-state", "login", timeout=15_000)
    status = await console.evaluate("async () => (await fetch('/api/v1/dispositions')).status")
    assert status == 401
    assert all(r.user.username != "rep7" or not r.conns for r in centre.center.reps.values())
    await shot(page, "admin-users")


async def test_an_api_key_made_on_the_page_works_until_revoked(centre: Rapport, browser: Chromium) -> None:
    page = await admin_page(browser, centre)
    await page.get_by_test_id("key-name").fill("CRM")
    await page.get_by_test_id("key-scope-sessions:read").check()
    await page.get_by_test_id("key-create").click()
    await expect(page.get_by_test_id("key-secret")).to_be_visible()
    secret = await page.get_by_test_id("key-secret-value").text_content()
    assert secret and secret.startswith("rk_")
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{centre.url}/api/v1/sessions", headers=headers) as r:
            assert r.status == 200
        row = page.locator('[data-testid^="key-row-"]', has_text="CRM")
        await expect(row).to_contain_text("sessions:read")
        await expect(row).to_contain_text(secret[:10])
        await row.locator('[data-testid^="key-revoke-"]').click()
        await expect(row).to_contain_text("Revoked")
        async with http.get(f"{centre.url}/api/v1/sessions", headers=headers) as r:
            assert r.status == 401


async def test_a_webhook_test_delivery_reaches_a_real_receiver_signed(centre: Rapport, browser: Chromium) -> None:
    got: list[tuple[str | None, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((request.headers.get("Rapport-Signature"), await request.read()))
        return web.Response(status=204)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    try:
        page = await admin_page(browser, centre)
        await page.get_by_test_id("webhook-url").fill(str(receiver.make_url("/hook")))
        await page.get_by_test_id("webhook-event-session.ended").check()
        await page.get_by_test_id("webhook-create").click()
        await expect(page.get_by_test_id("webhook-secret")).to_be_visible()
        secret = await page.get_by_test_id("webhook-secret-value").text_content()
        assert secret
        await page.locator('[data-testid^="webhook-test-"]').click()
        result = page.locator('[data-testid^="webhook-result-"]')
        await expect(result).to_contain_text("Delivered (HTTP 204)")
        ((signature, body),) = got
        assert verify(secret, signature, body)
        assert json.loads(body)["type"] == "webhook.test"
        await expect(page.get_by_test_id("deliveries-rows")).to_contain_text("webhook.test")
        await expect(page.get_by_test_id("deliveries-rows")).to_contain_text("delivered")
        await page.get_by_test_id("settings-recording").select_option("always")
        await page.get_by_test_id("settings-recording-save").click()
        await expect(page.get_by_test_id("admin-announce")).to_contain_text("Settings saved")
        assert centre.center.settings.recording_policy == "always"
        await shot(page, "admin-webhooks")
    finally:
        await receiver.close()


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
GET_HOURS = "async () => (await fetch('/api/v1/business-hours')).json()"


async def test_business_hours_are_set_in_a_form_and_an_inverted_interval_is_refused(
    centre: Rapport, browser: Chromium
) -> None:
    page = await admin_page(browser, centre)
    assert (await page.evaluate(GET_HOURS))["queues"] == []
    await expect(page.get_by_test_id("hours-always-open")).to_be_visible()
    await page.get_by_test_id("admin-nav-hours").click()
    await page.get_by_test_id("hours-timezone").select_option("Europe/Amsterdam")
    await page.get_by_test_id("hours-threshold").fill("15")
    # A reason's queue comes and goes with its buttons; "*" stays.
    await page.get_by_test_id("hours-queue-choice").select_option("order")
    await page.get_by_test_id("hours-queue-add").click()
    await expect(page.get_by_test_id("hours-queue-order")).to_be_visible()
    await page.get_by_test_id("hours-queue-remove-order").click()
    await expect(page.get_by_test_id("hours-queue-order")).to_have_count(0)
    await page.get_by_test_id("hours-queue-choice").select_option("*")
    await page.get_by_test_id("hours-queue-add").click()
    # Keyboard: the new queue's first add button has the focus, and Enter adds an interval there.
    await expect(page.get_by_test_id("hours-*-mon-add")).to_be_focused()
    await expect(page.get_by_test_id("hours-*-sat-closed")).to_have_text("Closed")
    for day in WEEKDAYS:
        await page.get_by_test_id(f"hours-*-{day}-add").press("Enter")
        await expect(page.get_by_test_id(f"hours-*-{day}-0-from")).to_be_focused()
        await page.get_by_test_id(f"hours-*-{day}-0-from").fill("09:00")
        await page.get_by_test_id(f"hours-*-{day}-0-until").fill("17:00")
    # A second interval, removed again: Monday is one interval.
    await page.get_by_test_id("hours-*-mon-add").click()
    await expect(page.get_by_test_id("hours-*-mon-1")).to_be_visible()
    await page.get_by_test_id("hours-*-mon-1-remove").click()
    await expect(page.get_by_test_id("hours-*-mon-1")).to_have_count(0)
    # Holidays: Christmas Eve until noon, Christmas Day closed.
    await page.get_by_test_id("hours-*-holiday-add").click()
    await page.get_by_test_id("hours-*-holiday-0-date").fill("2026-12-24")
    await page.get_by_test_id("hours-*-holiday-0-add").click()
    await page.get_by_test_id("hours-*-holiday-0-0-from").fill("09:00")
    await page.get_by_test_id("hours-*-holiday-0-0-until").fill("12:00")
    await page.get_by_test_id("hours-*-holiday-add").click()
    await page.get_by_test_id("hours-*-holiday-1-date").fill("2026-12-25")
    await expect(page.get_by_test_id("hours-*-holiday-1-closed")).to_be_visible()
    await page.get_by_test_id("hours-save").click()
    await expect(page.get_by_test_id("admin-announce")).to_contain_text("Business hours saved")

    expected: dict[str, Any] = {
        "timezone": "Europe/Amsterdam",
        "callback_wait_threshold_s": 900,
        "queues": [
            {
                "queue": "*",
                "weekly": {**{d: [["09:00", "17:00"]] for d in WEEKDAYS}, "sat": [], "sun": []},
                "holidays": [{"date": "2026-12-24", "hours": [["09:00", "12:00"]]}, {"date": "2026-12-25"}],
            }
        ],
    }
    assert await page.evaluate(GET_HOURS) == expected
    await expect(page.get_by_test_id("hours-error")).to_be_hidden()
    # The picture for the README: the editor, 1280 px wide.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.get_by_test_id("hours-form").evaluate("n => n.closest('section').scrollIntoView()")
    await expect(page.get_by_test_id("hours-*-sun-closed")).to_be_in_viewport()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "admin.png"))

    # Tuesday 17:00-09:00: the server's message (naming the field) is shown, the interval marked, nothing saved.
    await page.get_by_test_id("hours-*-tue-0-from").fill("17:00")
    await page.get_by_test_id("hours-*-tue-0-until").fill("09:00")
    await page.get_by_test_id("hours-save").click()
    error = page.get_by_test_id("hours-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("queues[0].weekly.tue[0]")
    await expect(error).to_contain_text("ends before it starts")
    await expect(page.get_by_test_id("hours-*-tue-0-from")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_test_id("hours-*-mon-0-from")).not_to_have_attribute("aria-invalid", "true")
    assert await page.evaluate(GET_HOURS) == expected
    # The drawn editor, with its error shown, has every input labelled (axe: nothing serious).
    await check_accessibility(page, "admin-hours")
    # The JSON disclosure: text that is not JSON is refused on the page and leaves the form as it was.
    await page.get_by_test_id("hours-advanced").locator("summary").click()
    await page.get_by_test_id("hours-document").fill('{"timezone": ')
    await page.get_by_test_id("hours-json-apply").click()
    await expect(error).to_contain_text("Not valid")
    await expect(page.get_by_test_id("hours-*-mon-0-from")).to_have_value("09:00")
    # Put right, it saves and the mark goes.
    await page.get_by_test_id("hours-*-tue-0-from").fill("08:00")
    await page.get_by_test_id("hours-*-tue-0-until").fill("00:00")
    await page.get_by_test_id("hours-save").click()
    # The form is drawn again from the saved document (the until of 00:00 sent as 24:00, the end of the day).
    await expect(page.get_by_test_id("hours-document")).to_have_value(re.compile(r'"08:00",\s*"24:00"'))
    await expect(error).to_be_hidden()
    await expect(page.get_by_test_id("hours-*-tue-0-from")).not_to_have_attribute("aria-invalid", "true")
    saved = await page.evaluate(GET_HOURS)
    assert saved["queues"][0]["weekly"]["tue"] == [["08:00", "24:00"]]
