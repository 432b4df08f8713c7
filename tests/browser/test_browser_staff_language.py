"""Real Chromium: the staff pages speak the staff member's language, and an invite's language reaches the customer.

A Persian rep's console is right to left (the queue on the right; screenshot kept), a Dutch supervisor reads Dutch
on the QA and supervisor pages, the picker's choice is stored and survives a reload, a Czech browser with no stored
choice gets Czech, a catalogue that fails to load gives English, and an invite made in Norwegian opens the
customer's page in Norwegian.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.support.browser import ARTIFACTS, Chromium, pixel_7, shot
from tests.support.server import PASSWORD, Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# README pictures land beside the other artifacts; docs/screenshots/ keeps the committed copies (copied by hand).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "readme"
ME_JS = """async () => (await fetch("/api/v1/me", {credentials: "same-origin"})).json()"""


@pytest.fixture
async def served(served: Rapport) -> Rapport:
    await served.add_user("sup1", "supervisor")
    return served


async def choose_language(rapport: Rapport, username: str, language: str | None) -> None:
    http, csrf = await rapport.staff_session(username)
    url = f"{rapport.url}/api/v1/me/language"
    async with http.put(url, json={"language": language}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200, await r.text()


async def staff_page(browser: Chromium, url: str, locale: str = "en-US") -> tuple[Page, list[str]]:
    context = await browser.browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    return page, errors


async def sign_in(page: Page, username: str, state: str) -> None:
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", state)


async def direction(page: Page) -> Any:
    return await page.evaluate("() => [document.documentElement.lang, document.dir]")


async def test_a_persian_rep_sees_the_console_right_to_left(served: Rapport, browser: Chromium) -> None:
    await choose_language(served, "rep1", "fa")
    page, errors = await staff_page(browser, f"{served.url}/console")
    await sign_in(page, "rep1", "queue")
    # Signing in brought the rep's own language (the page reloads into it); the sign-in again is not needed.
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert await direction(page) == ["fa", "rtl"]
    await expect(page.locator("#queue-title")).to_contain_text("صف")
    await expect(page.get_by_test_id("queue-empty")).to_have_text("کسی در انتظار نیست.")
    await expect(page.get_by_test_id("staff-language")).to_have_value("fa")
    # The desk's grid is mirrored: the queue, first in the source, is the rightmost panel.
    queue = await page.locator("section.queue").bounding_box()
    call = await page.locator("section.callview").bounding_box()
    assert queue and call and queue["x"] > call["x"] + call["width"] - 1
    await shot(page, "console-fa-rtl")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTIFACTS / "console-fa-rtl.png", SCREENSHOTS / "console-fa-rtl.png")
    assert errors == []


async def test_a_dutch_supervisor_reads_dutch_on_the_qa_and_supervisor_pages(
    served: Rapport, browser: Chromium
) -> None:
    await choose_language(served, "sup1", "nl")
    page, errors = await staff_page(browser, f"{served.url}/supervisor")
    await sign_in(page, "sup1", "dashboard")
    assert await direction(page) == ["nl", "ltr"]
    await expect(page.locator("body")).to_contain_text("Live vloer")
    await expect(page.get_by_test_id("logout")).to_have_text("Afmelden")
    await page.goto(f"{served.url}/qa")
    await expect(page.get_by_test_id("logout")).to_have_text("Afmelden")
    assert await direction(page) == ["nl", "ltr"]
    await expect(page.locator("body")).to_contain_text("Opgenomen gesprekken")
    assert errors == []


async def test_the_picker_switches_the_language_and_it_is_stored(served: Rapport, browser: Chromium) -> None:
    page, errors = await staff_page(browser, f"{served.url}/console")
    await sign_in(page, "rep1", "queue")
    assert await direction(page) == ["en", "ltr"]
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Nobody is waiting.")
    assert (await page.evaluate(ME_JS))["language"] is None

    await page.get_by_test_id("staff-language").select_option("nb")
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Ingen venter.")
    assert await direction(page) == ["nb", "ltr"]
    assert (await page.evaluate(ME_JS))["language"] == "nb"
    await page.reload()
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Ingen venter.")
    await expect(page.get_by_test_id("staff-language")).to_have_value("nb")
    # Stored for the person, not the browser: a fresh browser signing in as rep1 gets Norwegian too.
    other, other_errors = await staff_page(browser, f"{served.url}/console")
    await sign_in(other, "rep1", "queue")
    await expect(other.get_by_test_id("queue-empty")).to_have_text("Ingen venter.")
    assert errors == [] and other_errors == []


async def test_a_czech_browser_with_no_stored_choice_gets_czech(served: Rapport, browser: Chromium) -> None:
    page, errors = await staff_page(browser, f"{served.url}/console", locale="cs-CZ")
    await expect(page.locator("#login-title")).to_have_text("Přihlášení zaměstnanců")
    assert await direction(page) == ["cs", "ltr"]
    await sign_in(page, "rep1", "queue")
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Nikdo nečeká.")
    assert errors == []


async def test_a_catalogue_that_fails_to_load_gives_english(served: Rapport, browser: Chromium) -> None:
    await choose_language(served, "rep1", "fa")
    context = await browser.browser.new_context(viewport={"width": 1280, "height": 800}, locale="xx-YY")
    await context.route("**/static/i18n/staff-fa.json", lambda route: route.fulfill(status=404, body="no"))
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{served.url}/console")
    await expect(page.locator("#login-title")).to_have_text("Staff sign-in")  # an unknown browser language: English
    await sign_in(page, "rep1", "queue")
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Nobody is waiting.")
    assert await direction(page) == ["en", "ltr"]
    # A broken catalogue (not JSON) is the same.
    await context.unroute("**/static/i18n/staff-fa.json")

    async def broken(route: Route) -> None:
        await route.fulfill(status=200, content_type="application/json", body="{not json")

    await context.route("**/static/i18n/staff-fa.json", broken)
    await page.reload()
    await expect(page.get_by_test_id("queue-empty")).to_have_text("Nobody is waiting.")
    assert errors == []


async def test_an_invite_in_norwegian_opens_the_customer_page_in_norwegian(served: Rapport, browser: Chromium) -> None:
    http, csrf = await served.staff_session("rep1")
    async with http.post(f"{served.url}/api/v1/invites", json={"language": "nb"}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 201, await r.text()
        url = (await r.json())["url"]
    context = await browser.browser.new_context(**{**pixel_7(browser.pw), "locale": "en-GB"})
    page = await context.new_page()
    await page.goto(url)
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await expect(page.get_by_test_id("language-select")).to_have_value("nb")
    await expect(page.locator("#start-title")).to_have_text("Snakk med oss ansikt til ansikt")
