"""Real Chromium: an admin runs the centre from /admin.

The admin adds a rep with skills and languages (the password shown once), the rep signs in to /console in a
second page and is available, and disabling them ends that session; an API key made on the page works with
aiohttp until the page revokes it; a webhook to a receiver on loopback gets a signed test delivery that the
page's log shows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from server.config import Settings
from server.webhooks.signing import verify
from tests.support.browser import Chromium, desktop_page, rep_login, shot
from tests.support.server import PASSWORD, Rapport, running

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]


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
