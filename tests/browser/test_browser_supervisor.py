"""Real Chromium: the supervisor dashboard shows the live floor, draws the reports and exports them.

The calls are made with the WebSocket test clients (no media needed): one
customer talks to rep1, another waits. The supervisor sees both, sees rep1 on a
call, watches the floor change when the call ends and the waiting customer
leaves, and then reads today's report as charts, a table and a CSV file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from server.config import SETTINGS
from tests.support.browser import ARTIFACTS, Chromium, desktop_page, shot
from tests.support.server import PASSWORD, Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

CSV_HEADER = ",".join(
    [
        "day",
        *("calls", "answered", "abandoned", "abandonment_rate", "wait_p50_s", "wait_p90_s"),
        *("handle_avg_s", "rating_avg", "ratings", "flagged_share"),
        *("callbacks_requested", "callbacks_started", "callbacks_completed"),
    ]
)
FETCH_JS = """async (url) => {
    const r = await fetch(url, {credentials: "same-origin"});
    return {status: r.status, type: r.headers.get("content-type"), text: await r.text()};
}"""


@pytest.fixture
async def served(served: Rapport) -> Rapport:
    await served.add_user("sup1", "supervisor")
    await served.add_user("qa1", "qa")
    return served


async def sign_in(page: Page, username: str) -> None:
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()


def csp_watch(page: Page) -> list[str]:
    """Console errors about the Content-Security-Policy (an inline style or script would show here)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security" in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


async def test_the_supervisor_watches_the_floor_and_reads_todays_report(served: Rapport, browser: Chromium) -> None:
    rep = await served.rep("rep1")
    _talking, live = await served.customer(reason="complaint", name="Ada")
    await rep.request({"type": "call.accept", "session_id": live["session_id"]})
    waiting_client, waiting = await served.customer(reason="order", name="Bob")

    page = await desktop_page(browser.browser, f"{served.url}/supervisor")
    problems = csp_watch(page)
    await sign_in(page, "sup1")
    await expect(page.locator("body")).to_have_attribute("data-state", "dashboard")
    assert await page.evaluate("window.rapport.state") == "dashboard"
    await expect(page.get_by_test_id("user-name")).to_have_text("Sup1 · Supervisor")

    # The live floor: the call, the waiting customer, rep1 busy.
    call_row = page.locator(f'[data-testid="sup-call-row"][data-session-id="{live["session_id"]}"]')
    await expect(call_row).to_have_count(1)
    await expect(call_row).to_contain_text("Rep1")
    await expect(call_row).to_contain_text("Complaint")
    queue_row = page.locator(f'[data-testid="sup-queue-row"][data-session-id="{waiting["session_id"]}"]')
    await expect(queue_row).to_have_count(1)
    await expect(queue_row).to_contain_text("Bob")
    await expect(queue_row).to_contain_text("Order")
    rep_row = page.get_by_test_id("sup-rep-row").filter(has_text="Rep1")
    await expect(rep_row).to_have_attribute("data-status", "busy")
    await expect(rep_row.get_by_test_id("sup-rep-status")).to_have_text("On a call")
    await expect(page.get_by_test_id("sup-tile-waiting").locator(".tile-value")).to_have_text("1")
    await expect(page.get_by_test_id("sup-tile-calls").locator(".tile-value")).to_have_text("1")
    await expect(page.get_by_test_id("sup-tile-busy").locator(".tile-value")).to_have_text("1")
    await expect(page.get_by_test_id("sup-est-wait-row")).to_have_count(len(served.app[SETTINGS].reasons))

    # Frustration is labelled as the customer's, and appears nowhere next to reps alone.
    await expect(page.get_by_test_id("sup-calls-table")).to_contain_text("Customer frustration")
    await expect(page.get_by_test_id("sup-calls-note")).to_contain_text("never the rep")
    assert "frustration" not in (await page.get_by_test_id("sup-reps-table").inner_text()).lower()

    # Waiting times tick between polls.
    waited = queue_row.locator("td.waited")
    before = await waited.inner_text()
    await expect(waited).not_to_have_text(before, timeout=4000)
    await shot(page, "supervisor")

    # The floor follows the server: the call ends (rep1 to wrap-up), the waiting customer gives up.
    await rep.send({"type": "call.end", "reason": "resolved"})
    await rep.wait_for("call.ended")
    await waiting_client.send({"type": "call.end"})
    await expect(rep_row).to_have_attribute("data-status", "wrap_up")
    await expect(page.get_by_test_id("sup-queue-empty")).to_be_visible()
    await expect(page.get_by_test_id("sup-calls-empty")).to_be_visible()

    # Reports for the default period (the last 7 days, today included), by day.
    now = datetime.now(UTC)
    today, week_ago = now.strftime("%Y-%m-%d"), (now - timedelta(days=6)).strftime("%Y-%m-%d")
    await expect(page.get_by_test_id("sup-report-to")).to_have_value(today)
    await page.get_by_test_id("sup-report-apply").click()
    await expect(page.get_by_test_id("sup-report-row")).to_have_count(1)
    await expect(page.get_by_test_id("sup-report-row")).to_have_attribute("data-key", today)
    await expect(page.get_by_test_id("sup-total-calls").locator(".tile-value")).to_have_text("2")
    await expect(page.get_by_test_id("sup-total-answered").locator(".tile-value")).to_have_text("1")
    await expect(page.get_by_test_id("sup-total-abandoned").locator(".tile-value")).to_have_text("1")
    volume = page.locator('[data-testid="sup-chart-volume"] svg')
    await expect(volume).to_have_attribute("role", "img")
    await expect(volume.locator("rect.bar[data-series='answered']")).to_have_count(1)
    await expect(volume.locator("rect.bar[data-series='abandoned']")).to_have_count(1)
    for chart in ("volume", "wait", "handle", "abandon", "rating", "flags"):
        svg = page.locator(f'[data-testid="sup-chart-{chart}"] svg')
        await expect(svg).to_have_count(1)
        assert (await svg.locator("title").first.text_content() or "").strip()
    await expect(page.get_by_test_id("sup-chart-flags")).to_contain_text("Customer frustration flags")
    await page.get_by_test_id("sup-report-details").locator("summary").click()
    await expect(page.get_by_test_id("sup-report-table")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.locator("#reports").screenshot(path=str(ARTIFACTS / "supervisor-reports.png"))

    # The CSV link carries the same query and downloads with the page's cookie.
    href = await page.get_by_test_id("sup-export").get_attribute("href") or ""
    assert href == f"/api/v1/reports.csv?from={week_ago}&to={today}&group=day"
    answer = await page.evaluate(FETCH_JS, href)
    assert answer["status"] == 200 and answer["type"].startswith("text/csv")
    lines = answer["text"].splitlines()
    assert lines[0] == CSV_HEADER
    assert lines[1].startswith(f"{today},2,1,1,")
    assert lines[1].endswith(",0,0,0")  # no callbacks today: counted as 0, not left empty

    # By reason: one row per reason, and the export follows.
    await page.get_by_test_id("sup-report-group").select_option("reason")
    await page.get_by_test_id("sup-report-apply").click()
    await expect(page.get_by_test_id("sup-report-row")).to_have_count(2)
    await expect(page.locator('[data-testid="sup-report-row"][data-key="complaint"]')).to_contain_text("Complaint")
    await expect(page.get_by_test_id("sup-export")).to_have_attribute(
        "href", f"/api/v1/reports.csv?from={week_ago}&to={today}&group=reason"
    )
    assert problems == []


@pytest.mark.parametrize("username", ["rep1", "qa1"])
async def test_reps_and_qa_are_turned_away(served: Rapport, browser: Chromium, username: str) -> None:
    page = await desktop_page(browser.browser, f"{served.url}/supervisor")
    await sign_in(page, username)
    await expect(page.locator("body")).to_have_attribute("data-state", "forbidden")
    assert await page.evaluate("window.rapport.state") == "forbidden"
    await expect(page.get_by_test_id("sup-forbidden")).to_have_text("This page is for supervisors.")
    await expect(page.get_by_test_id("sup-forbidden")).to_be_visible()
    await expect(page.get_by_test_id("sup-tiles")).to_be_hidden()
    await expect(page.get_by_test_id("sup-report-form")).to_be_hidden()
    await expect(page.get_by_test_id("logout")).to_be_visible()
    # The server agrees: the floor and the reports are not theirs to read.
    for url in ("/api/v1/floor", "/api/v1/reports?group=day", "/api/v1/reports.csv?group=day"):
        assert (await page.evaluate(FETCH_JS, url))["status"] == 403


async def test_the_customers_frustration_meter_flag_and_an_empty_report(served: Rapport, browser: Chromium) -> None:
    """Emotion cues need the fer model, so the floor answer is stubbed here: the page's side of the contract."""
    floor = {
        "queue": [],
        "reps": [
            {"id": 7, "display_name": "Rep Seven", "status": "busy", "idle_s": 75, "session_id": "s_angry"},
            {"id": 8, "display_name": "Rep Eight", "status": "busy", "idle_s": 30, "session_id": "s_nocues"},
        ],
        "calls": [
            {
                "session_id": "s_angry",
                "rep": {"id": 7, "display_name": "Rep Seven"},
                "reason": "complaint",
                "talk_s": 75,
                "customer_frustration": 0.72,
                "customer_flag": True,
            },
            {
                "session_id": "s_nocues",
                "rep": {"id": 8, "display_name": "Rep Eight"},
                "reason": "order",
                "talk_s": 30,
                "customer_frustration": None,
                "customer_flag": False,
            },
        ],
        "estimated_wait_s": {},
    }
    page = await desktop_page(browser.browser, "about:blank")
    # The floor comes from the stub: the page's socket (which would push the real floor) stays down, so it polls.
    await page.route_web_socket("**/ws/v1", lambda ws: ws.close())
    await page.route("**/api/v1/floor", lambda route: route.fulfill(json=floor))
    empty = {"group": "day", "rows": [], "totals": {}}
    await page.route("**/api/v1/reports?*", lambda route: route.fulfill(json=empty))
    await page.goto(f"{served.url}/supervisor")
    await sign_in(page, "sup1")

    angry = page.locator('[data-testid="sup-call-row"][data-session-id="s_angry"]')
    meter = angry.get_by_test_id("sup-call-frustration")
    await expect(meter).to_have_attribute("role", "meter")
    await expect(meter).to_have_attribute("aria-valuenow", "72")
    await expect(meter).to_have_attribute("aria-label", "Customer frustration (the customer's expression)")
    await expect(angry.get_by_test_id("sup-call-flag")).to_be_visible()
    calm = page.locator('[data-testid="sup-call-row"][data-session-id="s_nocues"]')
    await expect(calm.get_by_test_id("sup-call-no-cues")).to_be_visible()
    await expect(calm.get_by_test_id("sup-call-frustration")).to_have_count(0)
    await expect(calm.get_by_test_id("sup-call-flag")).to_have_count(0)
    # Calls are listed by talk time, never by the customer's expression; reps carry no emotion at all.
    await expect(page.get_by_test_id("sup-call-row")).to_have_count(2)
    assert await page.get_by_test_id("sup-call-row").first.get_attribute("data-session-id") == "s_angry"
    assert "frustration" not in (await page.get_by_test_id("sup-reps-table").inner_text()).lower()

    await expect(page.get_by_test_id("sup-report-empty")).to_have_text("No calls in this period.")
    await expect(page.get_by_test_id("sup-report-body")).to_be_hidden()
