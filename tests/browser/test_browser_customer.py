"""Real Chromium on an emulated phone: the customer's intake, languages (Persian right to left),
self-help, the post-call rating, invite links and the link error page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import Chromium, desktop_page, pixel_7, rep_login, shot
from tests.support.server import Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]")


class PageErrors:
    """Script errors and Content-Security-Policy violations a page reports."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )


async def phone(browser: Chromium, url: str, **context: Any) -> tuple[Page, PageErrors]:
    """A Pixel 7 page (as tests/support/browser.py's phone_page) with extra context options such as ``locale``."""
    ctx = await browser.browser.new_context(**{**pixel_7(browser.pw), **context}, permissions=["camera", "microphone"])
    page = await ctx.new_page()
    errors = PageErrors(page)
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-state", re.compile("start|waiting"))
    return page, errors


async def session_of(rapport: Rapport) -> Any:
    records = await rapport.store.list_sessions()
    assert records, "no session was created"
    return await rapport.store.get_session(records[0].id)


# ---------------------------------------------------------------- languages


async def test_persian_lays_out_right_to_left_with_persian_digits(served: Rapport, browser: Chromium) -> None:
    # Someone is already waiting, so this customer is number 2: a number to see in Persian digits.
    await served.customer(name="First")
    page, errors = await phone(browser, f"{served.url}/call", locale="fa-IR")

    html = page.locator("html")
    await expect(html).to_have_attribute("lang", "fa")
    await expect(html).to_have_attribute("dir", "rtl")
    await expect(page.get_by_test_id("start-call")).to_have_text("تماس تصویری")
    assert ARABIC_SCRIPT.search(await page.get_by_test_id("reason-select").inner_text())
    await expect(page.get_by_test_id("language-select")).to_have_value("fa")

    select = page.get_by_test_id("reason-select")
    assert await select.evaluate("el => getComputedStyle(el).direction") == "rtl"
    box = await select.bounding_box()
    width = await page.evaluate("innerWidth")
    assert box is not None
    # The field fills the column between the page's 16 px paddings: its right edge is the start.
    assert abs((box["x"] + box["width"]) - (width - 16)) <= 4, (box, width)
    # The brand (start of the top bar) sits at the right, the language picker (end) at the left.
    brand = await page.locator(".c-brand").bounding_box()
    picker = await page.get_by_test_id("language-select").bounding_box()
    assert brand is not None and picker is not None and brand["x"] > picker["x"]
    # Email and phone stay left to right inside the Persian page.
    assert await page.get_by_test_id("customer-phone").evaluate("el => getComputedStyle(el).direction") == "ltr"
    await shot(page, "customer-fa-rtl")

    await page.get_by_test_id("start-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
    position = page.get_by_test_id("queue-position")
    await expect(position).to_contain_text("۲")
    assert not re.search(r"[0-9]", await position.inner_text())
    estimate = await page.get_by_test_id("estimated-wait").inner_text()
    assert estimate.startswith("زمان تقریبی انتظار") and any(d in estimate for d in PERSIAN_DIGITS), estimate
    await shot(page, "customer-fa-waiting")
    record = await served.store.get_session((await served.store.list_sessions())[0].id)
    assert record is not None and record.language == "fa"
    assert errors.errors == []


async def test_the_language_switcher_changes_the_page_at_once_and_is_remembered(
    served: Rapport, browser: Chromium
) -> None:
    page, errors = await phone(browser, f"{served.url}/call", locale="en-GB")
    html = page.locator("html")
    await expect(html).to_have_attribute("lang", "en")
    await expect(page.get_by_test_id("start-call")).to_have_text("Video call")
    await page.get_by_test_id("customer-email").fill("not-an-email")
    await page.get_by_test_id("start-call").click()
    await expect(page.get_by_test_id("customer-email-error")).to_contain_text("name@example.com")

    await page.get_by_test_id("language-select").select_option("nl")
    await expect(html).to_have_attribute("lang", "nl")
    await expect(html).to_have_attribute("dir", "ltr")
    await expect(page.get_by_test_id("start-call")).to_have_text("Videobellen")
    await expect(page.locator("#start-title")).to_have_text("Spreek ons persoonlijk, via video")
    await expect(page.get_by_test_id("reason-select").locator("option[value=complaint]")).to_have_text("Een klacht")
    # Messages already on screen follow the switch too.
    await expect(page.get_by_test_id("customer-email-error")).to_contain_text("Vul een e-mailadres in")
    assert await page.title() == "Videoklantenservice"

    await page.get_by_test_id("language-select").select_option("cs")
    await expect(page.get_by_test_id("start-call")).to_have_text("Videohovor")
    await page.get_by_test_id("language-select").select_option("fa")
    await expect(html).to_have_attribute("dir", "rtl")
    await page.get_by_test_id("language-select").select_option("nb")
    await expect(html).to_have_attribute("dir", "ltr")
    await expect(page.get_by_test_id("start-call")).to_have_text("Videosamtale")

    await page.get_by_test_id("language-select").select_option("nl")
    await page.reload()
    await expect(html).to_have_attribute("lang", "nl")
    await expect(page.get_by_test_id("start-call")).to_have_text("Videobellen")
    assert errors.errors == []


async def test_a_reload_in_the_queue_keeps_the_place_and_the_language(served: Rapport, browser: Chromium) -> None:
    page, errors = await phone(browser, f"{served.url}/call", locale="en-GB")
    await page.get_by_test_id("language-select").select_option("cs")
    await page.get_by_test_id("start-call").click()
    await expect(page.get_by_test_id("queue-position")).to_have_text("Jste na řadě jako další")
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
    await expect(page.get_by_test_id("queue-position")).to_have_text("Jste na řadě jako další")
    await expect(page.get_by_test_id("end-call")).to_have_text("Opustit frontu")
    sessions = await served.store.list_sessions()
    assert len(sessions) == 1 and sessions[0].state == "waiting" and sessions[0].language == "cs"
    assert errors.errors == []


# ---------------------------------------------------------------- intake and self-help


async def test_self_help_articles_then_i_still_need_a_person_queues_with_the_intake(
    served: Rapport, browser: Chromium
) -> None:
    page, errors = await phone(browser, f"{served.url}/call", locale="en-US")
    await expect(page.get_by_test_id("help")).to_be_hidden()
    await page.get_by_test_id("reason-select").select_option("not_working")
    articles = page.get_by_test_id("help-article")
    await expect(page.get_by_test_id("help-articles")).to_be_visible()
    await expect(articles).to_have_count(2)
    await expect(articles.first).to_contain_text("Restart the device")
    # Articles come in the page's language (the server localises them).
    await page.get_by_test_id("language-select").select_option("nl")
    await expect(articles.first).to_contain_text("Start het apparaat opnieuw")
    await page.get_by_test_id("language-select").select_option("en")
    await expect(articles.first).to_contain_text("Restart the device")
    # A reason without articles hides the panel.
    await page.get_by_test_id("reason-select").select_option("complaint")
    await expect(page.get_by_test_id("help")).to_be_hidden()
    await page.get_by_test_id("reason-select").select_option("not_working")
    await expect(articles).to_have_count(2)

    await page.get_by_test_id("customer-name").fill("Ada Lovelace")
    await page.get_by_test_id("customer-email").fill("ada@example")
    await page.get_by_test_id("customer-phone").fill("12")
    await page.get_by_test_id("help-need-person").click()
    await expect(page.get_by_test_id("customer-email-error")).to_be_visible()
    await expect(page.get_by_test_id("customer-phone-error")).to_be_visible()
    await expect(page.get_by_test_id("customer-email")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_test_id("form-error")).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-state", "start")
    assert await served.store.list_sessions() == []

    await page.get_by_test_id("customer-email").fill("ada@example.com")
    await expect(page.get_by_test_id("customer-email-error")).to_be_hidden()
    await page.get_by_test_id("customer-phone").fill("+44 20 7946 0958")
    await expect(page.get_by_test_id("customer-phone-error")).to_be_hidden()
    await shot(page, "customer-help")
    await page.get_by_test_id("help-need-person").click()

    await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
    await expect(page.get_by_test_id("queue-position")).to_have_text("You are next")
    record = await session_of(served)
    assert record.reason == "not_working"
    assert record.customer_name == "Ada Lovelace"
    assert record.language == "en"
    assert record.contact == {"email": "ada@example.com", "phone": "+44 20 7946 0958"}
    assert "Pixel 7" in (record.device or "")

    # Leaving the queue: no one answered, so there is nothing to rate.
    await expect(page.get_by_test_id("end-call")).to_have_text("Leave the queue")
    await page.get_by_test_id("end-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "ended")
    await expect(page.get_by_test_id("ended-text")).to_have_text("You left the queue.")
    await expect(page.get_by_test_id("rating")).to_be_hidden()
    assert errors.errors == []


async def test_that_solved_it_ends_without_a_call(served: Rapport, browser: Chromium) -> None:
    page, _errors = await phone(browser, f"{served.url}/call")
    await page.get_by_test_id("reason-select").select_option("order")
    await expect(page.get_by_test_id("help-article")).to_have_count(1)
    await page.get_by_test_id("help-solved").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "ended")
    await expect(page.get_by_test_id("ended-text")).to_contain_text("Glad that helped")
    await expect(page.get_by_test_id("rating")).to_be_hidden()
    assert await served.store.list_sessions() == []


# ---------------------------------------------------------------- the rating


async def test_after_an_answered_call_the_customer_rates_it(served: Rapport, browser: Chromium) -> None:
    rep = await desktop_page(browser.browser, f"{served.url}/console")
    await rep_login(rep)
    page, errors = await phone(browser, f"{served.url}/call", locale="en-GB")
    await page.get_by_test_id("customer-name").fill("Ada")
    await page.get_by_test_id("reason-select").select_option("complaint")
    await page.get_by_test_id("start-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
    await rep.get_by_test_id("accept").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "in-call")
    await expect(page.get_by_test_id("call-state")).to_contain_text("Rep1")
    await expect(page.get_by_test_id("end-call")).to_have_text("End call")

    await rep.get_by_test_id("end-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "ended")
    await expect(page.get_by_test_id("ended-text")).to_have_text("The call has ended.")
    await expect(page.get_by_test_id("rating")).to_be_visible()
    stars = page.get_by_test_id("rating-star")
    await expect(stars).to_have_count(5)
    await expect(stars.nth(3)).to_have_attribute("aria-label", "4 stars – Good")

    # Sending without stars explains what is missing.
    await page.get_by_test_id("rating-submit").click()
    await expect(page.get_by_test_id("rating-error")).to_have_text("Please choose 1 to 5 stars.")
    # Keyboard: the stars are one radio group; arrow keys move the choice.
    await page.locator('[data-testid="rating-star"][data-value="2"]').click()
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    await expect(page.locator('[data-testid="rating-star"][data-value="4"]')).to_be_checked()
    await expect(page.get_by_test_id("rating-word")).to_have_text("Good")
    await expect(page.get_by_test_id("rating-error")).to_be_hidden()
    await page.get_by_test_id("rating-comment").fill("Quick and friendly, thank you")
    await shot(page, "customer-rating")
    await page.get_by_test_id("rating-submit").click()
    await expect(page.get_by_test_id("rating-thanks")).to_be_visible()
    await expect(page.get_by_test_id("rating")).to_be_hidden()
    await shot(page, "customer-rated")

    record = await session_of(served)
    assert record.rating == 4
    assert record.rating_comment == "Quick and friendly, thank you"
    assert errors.errors == []


# ---------------------------------------------------------------- invite links


async def test_an_invite_link_never_asks_who_the_customer_is(served: Rapport, browser: Chromium) -> None:
    http, csrf = await served.staff_session("rep1")
    invite = {
        "customer": {"id": "crm-77", "name": "Ada Lovelace", "email": "ada@example.com"},
        "reason": "order",
        "language": "nl",
    }
    async with http.post(f"{served.url}/api/v1/invites", json=invite, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 201, await r.text()
        url = (await r.json())["url"]
    page, errors = await phone(browser, url, locale="en-GB")
    await expect(page.get_by_test_id("identified-note")).to_be_visible()
    await expect(page.get_by_test_id("about-you")).to_be_hidden()
    await expect(page.get_by_test_id("customer-name")).to_be_hidden()
    await expect(page.get_by_test_id("reason-select")).to_be_hidden()
    await page.get_by_test_id("start-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "waiting")
    record = await session_of(served)
    assert record.customer_name == "Ada Lovelace"
    assert record.reason == "order"
    # The customer did not pick a language here, so the invite's stands.
    assert record.language == "nl"
    assert errors.errors == []


async def test_a_tampered_link_shows_the_link_error_page(served: Rapport, browser: Chromium) -> None:
    page = await (await browser.browser.new_context(**pixel_7(browser.pw))).new_page()
    errors = PageErrors(page)
    response = await page.goto(f"{served.url}/join/eyJjIjoiYWJjIn0.forged")
    assert response is not None and response.status == 400
    await expect(page.get_by_test_id("link-error")).to_be_visible()
    await expect(page.get_by_test_id("link-error-message")).to_contain_text("not valid")
    assert "{{" not in await page.content()
    # The page's own styles loaded (no inline styles under the CSP): the card is centred.
    assert await page.get_by_test_id("link-error").evaluate("el => getComputedStyle(el).textAlign") == "center"
    await shot(page, "customer-link-error")
    await page.get_by_test_id("link-error-new-call").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "start")
    assert page.url.endswith("/call")
    assert errors.errors == []
