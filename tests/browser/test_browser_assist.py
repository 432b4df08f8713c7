"""Real Chromium: supervisor assist (issue 14). A customer, a rep and a supervisor, each in a Chromium of their own
with its own colour and tone, so every page must show (and play) the right party in the right <video>.

The supervisor answers the rep's "ask for help" from the needs-attention list with one click and sees both sides;
whispers (the rep hears it and sees who; the customer hears nothing of it), barges in (the customer is told who
joined and sees them) and leaves (the call goes on). A supervisor who takes a call over ends it for the rep, with no
wrap-up owed. With real fer, an angry customer's call appears on the supervisor's needs-attention list.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from server.config import Settings
from tests.support.browser import (
    CUSTOMER,
    REP,
    Chromium,
    Side,
    angry_customer_with_real_fer,
    chromium,
    chromium_per_side,
    colour_distance,
    console_and_phone,
    desktop_page,
    fake_capture,
    shot,
    wait_frames_grow,
    wait_remote_colour,
    wait_remote_tone,
)
from tests.support.server import PASSWORD, REP_AND_SUPERVISOR, Rapport, Serve, running

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# Green, far from the customer's orange and the rep's blue; a fifth above the customer's tone, a fifth below the rep's.
SUPERVISOR = Side("supervisor", (40, 200, 70), 660.0)

# The customer page wraps a name inside a sentence in Unicode isolates (FSI … PDI), for right-to-left languages.
SUP1 = "\u2068Sup1\u2069"

# Whether a page's <video> with this test id has decoded at least n frames.
FRAMES_AT_LEAST_JS = """([testid, n]) => document.querySelector(`[data-testid="${testid}"]`)
    .getVideoPlaybackQuality().totalVideoFrames >= n"""


@pytest.fixture
async def served(served: Rapport) -> Rapport:
    await served.add_user("sup1", "supervisor")
    return served


async def supervisor_page(url: str, browser: Browser) -> Page:
    """The supervisor dashboard, sup1 signed in, its floor pushed over the WebSocket."""
    page = await desktop_page(browser, f"{url}/supervisor")
    await expect(page.locator("body")).to_have_attribute("data-state", "login")
    await page.get_by_test_id("login-username").fill("sup1")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "dashboard")
    await page.wait_for_function("() => window.rapport.live === true")
    return page


async def session_of(rep: Page) -> str:
    """The id of the call on the rep's console, once it shows one."""
    await expect(rep.get_by_test_id("session-id")).to_have_text(re.compile(r"^s_"))
    return await rep.get_by_test_id("session-id").inner_text()


async def in_call_with_a_supervisor(
    url: str, customer_side: Chromium, rep_side: Chromium, supervisor_side: Chromium
) -> tuple[Page, Page, Page, str]:
    """(rep, customer, supervisor, session id): rep1 answered the customer's call, and sup1's dashboard is open."""
    rep, customer = await console_and_phone(url, rep_side, customer_side)
    await customer.get_by_test_id("start-call").click()
    await rep.get_by_test_id("accept").click()
    await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
    sup = await supervisor_page(url, supervisor_side.browser)
    return rep, customer, sup, await session_of(rep)


async def assert_shows(page: Page, who: str, video: str, sender: Side, viewer: Side) -> None:
    colour = await wait_remote_colour(page, sender, video=video)
    assert colour is not None, f"the {who}'s {video} shows no picture"
    assert colour_distance(colour, sender.rgb) < 40, f"the {who}'s {video} should show {sender.name}: {colour}"
    assert colour_distance(colour, viewer.rgb) > 150, f"the {who}'s {video} shows its own colour: {colour}"


async def assert_plays(page: Page, who: str, video: str, sender: Side, other: Side) -> None:
    heard = await wait_remote_tone(page, sender, other, video=video)
    assert heard is not None, f"the {who}'s {video} has no audio track"
    assert abs(heard["peak_hz"] - sender.tone_hz) <= 2 * heard["bin_hz"], (
        f"the {who}'s {video} should play the {sender.name}'s {sender.tone_hz} Hz: {heard}"
    )


async def test_a_supervisor_answers_a_call_for_help_listens_whispers_barges_in_and_leaves(
    served: Rapport, tmp_path: Path
) -> None:
    async with (
        chromium_per_side(tmp_path) as (customer_side, rep_side),
        chromium(*fake_capture(tmp_path, SUPERVISOR)) as supervisor_side,
    ):
        rep, customer = await console_and_phone(served.url, rep_side, customer_side)
        await customer.get_by_test_id("customer-name").fill("Ada")
        await customer.get_by_test_id("start-call").click()
        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await wait_frames_grow(rep, 30)
        await wait_frames_grow(customer, 30)
        sup = await supervisor_page(served.url, supervisor_side.browser)
        session_id = await session_of(rep)

        # The rep asks for help: the call is on the supervisor's list, saying why.
        await expect(sup.get_by_test_id("attention-empty")).to_be_visible()
        await rep.get_by_test_id("help-ask").click()
        await expect(rep.get_by_test_id("help-ask")).to_have_attribute("aria-pressed", "true")
        item = sup.locator(f'[data-testid="attention-item"][data-session-id="{session_id}"]')
        await expect(item).to_have_count(1)
        await expect(item).to_contain_text("Rep1")
        await expect(item.get_by_test_id("attention-why")).to_have_attribute("data-why", "help")

        # One click listens: the supervisor sees and hears both sides; the supervisor's answer clears the request.
        await item.get_by_test_id("assist-listen").click()
        await expect(sup.get_by_test_id("assist-panel")).to_be_visible()
        await expect(sup.get_by_test_id("assist-panel")).to_have_attribute("data-session-id", session_id)
        await assert_shows(sup, "supervisor", "assist-video-customer", CUSTOMER, SUPERVISOR)
        await assert_shows(sup, "supervisor", "assist-video-rep", REP, SUPERVISOR)
        await expect(sup.get_by_test_id("assist-video-rep")).to_be_visible()
        await assert_plays(sup, "supervisor", "assist-video-customer", CUSTOMER, REP)
        await assert_plays(sup, "supervisor", "assist-video-rep", REP, CUSTOMER)
        await expect(rep.get_by_test_id("help-ask")).to_have_attribute("aria-pressed", "false")
        await expect(sup.locator(f'[data-testid="attention-item"][data-session-id="{session_id}"]')).to_have_count(0)
        await expect(rep.get_by_test_id("assist-indicator")).to_have_text("Sup1 is listening")
        # Neither party's media changes, and the customer is told nothing (disclosure is off by default).
        await expect(customer.get_by_test_id("party-notice")).to_be_hidden()
        await expect(customer.get_by_test_id("monitored-notice")).to_be_hidden()
        await expect(customer.get_by_test_id("third-party-video")).to_be_hidden()
        await assert_shows(customer, "customer", "remote-video", REP, CUSTOMER)
        await assert_shows(rep, "rep", "remote-video", CUSTOMER, REP)
        await shot(sup, "supervisor-listening")

        # Whisper: the rep hears the supervisor and sees who; the customer hears only the rep.
        await sup.get_by_test_id("assist-whisper").click()
        await expect(sup.get_by_test_id("assist-whisper")).to_have_attribute("aria-pressed", "true")
        await expect(rep.get_by_test_id("assist-indicator")).to_have_text("Sup1 is whispering")
        await assert_plays(rep, "rep", "third-party-video", SUPERVISOR, CUSTOMER)
        await expect(rep.get_by_test_id("third-party-video")).to_be_hidden()  # a voice, no picture
        heard = await wait_remote_tone(customer, REP, SUPERVISOR)
        assert heard is not None and abs(heard["peak_hz"] - REP.tone_hz) <= 2 * heard["bin_hz"], heard
        rep_db, supervisor_db = heard["probes"]
        assert rep_db - supervisor_db > 20, f"the customer hears the whisper: {heard}"
        await sup.get_by_test_id("whisper-text").fill("Offer the refund")
        await sup.get_by_test_id("whisper-send").click()
        line = rep.get_by_test_id("whisper-line")
        await expect(line).to_contain_text("Offer the refund")
        await expect(line).to_contain_text("whisper — only you see this")
        await expect(rep.get_by_test_id("chat-log")).to_contain_text("Offer the refund")
        await expect(customer.get_by_test_id("party-notice")).to_be_hidden()
        await expect(customer.get_by_test_id("third-party-video")).to_be_hidden()
        assert "Offer the refund" not in await customer.get_by_test_id("chat-log").inner_text()
        await shot(rep, "rep-whispered")

        # Barge in: the customer is told who joined and sees them; the rep sees them too.
        await sup.get_by_test_id("assist-barge").click()
        await expect(sup.get_by_test_id("assist-barge")).to_have_attribute("aria-pressed", "true")
        await expect(sup.get_by_test_id("assist-whisper")).to_have_attribute("aria-pressed", "false")
        await expect(customer.get_by_test_id("party-notice")).to_have_text(f"{SUP1} joined the call")
        await expect(customer.get_by_test_id("third-party-video")).to_be_visible()
        await assert_shows(customer, "customer", "third-party-video", SUPERVISOR, CUSTOMER)
        await assert_plays(customer, "customer", "third-party-video", SUPERVISOR, REP)
        await assert_shows(customer, "customer", "remote-video", REP, CUSTOMER)
        await expect(rep.get_by_test_id("assist-indicator")).to_have_text("Sup1 joined the call")
        await expect(rep.get_by_test_id("third-party-video")).to_be_visible()
        await assert_shows(rep, "rep", "third-party-video", SUPERVISOR, REP)
        await shot(customer, "customer-barge-in")

        # Leave: the call goes on between the customer and the rep.
        await sup.get_by_test_id("assist-leave").click()
        await expect(sup.get_by_test_id("assist-panel")).to_be_hidden()
        await expect(customer.get_by_test_id("party-notice")).to_have_text(f"{SUP1} left the call")
        await expect(customer.get_by_test_id("third-party-video")).to_be_hidden()
        await expect(rep.get_by_test_id("assist-indicator")).to_be_hidden()
        await expect(rep.get_by_test_id("third-party-video")).to_be_hidden()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await expect(rep.locator("body")).to_have_attribute("data-state", "in-call")
        await assert_shows(customer, "customer", "remote-video", REP, CUSTOMER)
        await assert_shows(rep, "rep", "remote-video", CUSTOMER, REP)


async def test_a_supervisor_takes_the_call_over_and_the_rep_owes_no_wrap_up(served: Rapport, tmp_path: Path) -> None:
    async with (
        chromium_per_side(tmp_path) as (customer_side, rep_side),
        chromium(*fake_capture(tmp_path, SUPERVISOR)) as supervisor_side,
    ):
        rep, customer, sup, session_id = await in_call_with_a_supervisor(
            served.url, customer_side, rep_side, supervisor_side
        )

        row = sup.locator(f'[data-testid="sup-call-row"][data-session-id="{session_id}"]')
        await row.get_by_test_id("assist-listen").click()
        await expect(sup.get_by_test_id("assist-panel")).to_be_visible()
        await assert_shows(sup, "supervisor", "assist-video-customer", CUSTOMER, SUPERVISOR)

        take_over = sup.get_by_test_id("assist-take-over")
        await take_over.click()
        await expect(take_over).to_have_attribute("data-armed", "true")
        await take_over.click()
        # The rep leaves the call, told who took it, with nothing to wrap up.
        await expect(rep.locator("body")).to_have_attribute("data-state", "queue")
        await expect(rep.get_by_test_id("call-ended")).to_contain_text("Sup1 took over the call")
        await expect(rep.get_by_test_id("wrapup-form")).to_be_hidden()
        # The customer goes on with the supervisor, seen in the third party's tile.
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await expect(customer.get_by_test_id("party-notice")).to_have_text(f"{SUP1} joined the call")
        await assert_shows(customer, "customer", "third-party-video", SUPERVISOR, CUSTOMER)

        # The call is the supervisor's to end.
        await expect(sup.get_by_test_id("assist-leave")).to_have_text("End call")
        await sup.get_by_test_id("assist-leave").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "ended")
        await expect(sup.get_by_test_id("assist-panel")).to_be_hidden()


async def test_a_supervisor_reloading_mid_barge_in_leaves_the_call_undisturbed(served: Rapport, tmp_path: Path) -> None:
    async with (
        chromium_per_side(tmp_path) as (customer_side, rep_side),
        chromium(*fake_capture(tmp_path, SUPERVISOR)) as supervisor_side,
    ):
        rep, customer, sup, _session_id = await in_call_with_a_supervisor(
            served.url, customer_side, rep_side, supervisor_side
        )
        await sup.get_by_test_id("sup-call-row").get_by_test_id("assist-listen").click()
        await expect(sup.get_by_test_id("assist-panel")).to_be_visible()
        await sup.get_by_test_id("assist-barge").click()
        await expect(customer.get_by_test_id("party-notice")).to_have_text(f"{SUP1} joined the call")

        await sup.reload()
        await expect(sup.locator("body")).to_have_attribute("data-state", "dashboard")
        await expect(sup.get_by_test_id("assist-panel")).to_be_hidden()
        await expect(customer.get_by_test_id("party-notice")).to_have_text(f"{SUP1} left the call")
        await expect(customer.get_by_test_id("third-party-video")).to_be_hidden()
        await expect(rep.get_by_test_id("assist-indicator")).to_be_hidden()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await assert_shows(customer, "customer", "remote-video", REP, CUSTOMER)
        await assert_shows(rep, "rep", "remote-video", CUSTOMER, REP)
        # Back on the floor, the supervisor can listen again.
        await sup.get_by_test_id("sup-call-row").get_by_test_id("assist-listen").click()
        await assert_shows(sup, "supervisor", "assist-video-rep", REP, SUPERVISOR)


async def test_where_the_deployment_discloses_listening_the_customer_is_told(serve: Serve, tmp_path: Path) -> None:
    rapport = await serve(disclose_listening=True)
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        rep, customer = await console_and_phone(rapport.url, rep_side, customer_side)
        await customer.get_by_test_id("start-call").click()
        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        sup = await supervisor_page(rapport.url, rep_side.browser)
        await expect(customer.get_by_test_id("monitored-notice")).to_be_hidden()

        await sup.get_by_test_id("sup-call-row").get_by_test_id("assist-listen").click()
        await expect(sup.get_by_test_id("assist-panel")).to_be_visible()
        await expect(customer.get_by_test_id("monitored-notice")).to_have_text(
            "A supervisor may listen to this call to help the agent."
        )
        await expect(customer.get_by_test_id("party-notice")).to_be_hidden()  # listening is not joining
        await sup.get_by_test_id("assist-leave").click()
        await expect(customer.get_by_test_id("monitored-notice")).to_be_hidden()


@pytest.mark.fer
async def test_an_angry_customers_call_appears_on_the_attention_list(settings: Settings, tmp_path: Path) -> None:
    # Real fer on an angry face: the rep's flag, then the supervisor's list (how soon is for bench/, not here).
    async with angry_customer_with_real_fer(tmp_path) as (y4m, service):
        changed = replace(settings, emotion_cues=True)
        async with (
            running(changed, REP_AND_SUPERVISOR, emotion_service=service) as rapport,
            chromium(y4m) as both_sides,
        ):
            sup = await supervisor_page(rapport.url, both_sides.browser)
            rep, customer = await console_and_phone(rapport.url, both_sides)
            await expect(customer.get_by_test_id("emotion-consent")).to_be_checked()
            await customer.get_by_test_id("start-call").click()
            await rep.get_by_test_id("accept").click()
            session_id = await session_of(rep)
            await expect(rep.get_by_test_id("emotion-flag")).to_be_visible(timeout=30000)

            item = sup.locator(f'[data-testid="attention-item"][data-session-id="{session_id}"]')
            await expect(item).to_have_count(1, timeout=30000)
            await expect(item.locator('[data-testid="attention-why"][data-why="frustration"]')).to_be_visible()
            await expect(item).to_contain_text("Rep1")
            await shot(sup, "supervisor-attention")

            await item.get_by_test_id("assist-listen").click()
            await expect(sup.get_by_test_id("assist-panel")).to_be_visible()
            for video in ("assist-video-customer", "assist-video-rep"):
                await sup.wait_for_function(FRAMES_AT_LEAST_JS, arg=[video, 30], timeout=15000)


# Records what the page asks of the browser's alerts: notifications shown, oscillators started (the beep).
ALERT_SPY_JS = """(() => {
  window.__alerts = { notifications: [], beeps: 0 };
  const Real = window.Notification;
  class Spy extends Real {
    constructor(title, options) {
      super(title, options);
      window.__alerts.notifications.push({ title, body: options && options.body });
    }
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__alerts.beeps += 1;
    return start.apply(this, args);
  };
})();"""


def floor_with(attention: list[dict[str, object]]) -> dict[str, object]:
    calls = [
        {
            "session_id": item["session_id"],
            "rep": item["rep"],
            "reason": item["reason"],
            "talk_s": item["talk_s"],
            "customer_frustration": None,
            "customer_flag": False,
            "assist": None,
            "help": "help" in item["why"],  # type: ignore[operator]
        }
        for item in attention
    ]
    return {"queue": [], "reps": [], "calls": calls, "estimated_wait_s": {}, "attention": attention}


def attention_item(session_id: str, rep: str, why: list[str], urgency: int) -> dict[str, object]:
    return {
        "session_id": session_id,
        "rep": {"id": hash(rep) % 1000, "display_name": rep},
        "reason": "complaint",
        "talk_s": 120,
        "why": why,
        "urgency": urgency,
        "since": "2026-01-01T10:00:00Z",
    }


async def test_the_attention_list_follows_the_pushed_floor_and_alerts_only_when_asked(
    served: Rapport, tmp_path: Path
) -> None:
    """The page's side of the contract, with the socket stubbed: the list in the server's order, why badges,
    updates pushed (no polling while the socket is up), and the sound and notification only once turned on."""
    pushes: list[WebSocketRoute] = []

    def socket(route: WebSocketRoute) -> None:
        def on_message(message: str | bytes) -> None:
            msg = json.loads(message)
            if msg["type"] == "hello":
                user = {"id": 2, "username": "sup1", "display_name": "Sup1", "role": "supervisor"}
                floor = floor_with([attention_item("s_help", "Rep Two", ["help"], 50)])
                welcome = {"type": "welcome", "protocol": 1, "role": "supervisor", "user": user, "ice_servers": []}
                route.send(json.dumps({**welcome, "floor": floor}))
            elif msg["type"] == "ping":
                route.send(json.dumps({"type": "pong", "reply_to": msg.get("id")}))

        route.on_message(on_message)
        pushes.append(route)

    polls: list[str] = []
    async with chromium(*fake_capture(tmp_path, SUPERVISOR)) as side:
        context = await side.browser.new_context(viewport={"width": 1400, "height": 900})
        await context.add_init_script(ALERT_SPY_JS)
        page = await context.new_page()
        await page.route_web_socket("**/ws/v1", socket)
        page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/api/v1/floor") else None)
        await page.goto(f"{served.url}/supervisor")
        await expect(page.locator("body")).to_have_attribute("data-state", "login")
        await page.get_by_test_id("login-username").fill("sup1")
        await page.get_by_test_id("login-password").fill(PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await page.wait_for_function("() => window.rapport.live === true")

        items = page.get_by_test_id("attention-item")
        await expect(items).to_have_count(1)
        await expect(items.first).to_have_attribute("data-session-id", "s_help")
        await expect(items.first.get_by_test_id("attention-why")).to_have_text("Rep asked for help")
        await expect(page.get_by_test_id("attention-count")).to_have_text("1")
        row = page.locator('[data-testid="sup-call-row"][data-session-id="s_help"]')
        await expect(row.get_by_test_id("sup-call-help")).to_be_visible()
        await expect(row.get_by_test_id("assist-listen")).to_be_visible()

        # A more urgent call arrives: first, as the server sorts it; alerts are off, so nothing rings.
        route = pushes[-1]
        frustrated = attention_item("s_angry", "Rep One", ["frustration", "long_call"], 90)
        update = floor_with([frustrated, attention_item("s_help", "Rep Two", ["help"], 50)])
        route.send(json.dumps({"type": "floor.update", "floor": update}))
        await expect(items).to_have_count(2)
        await expect(items.first).to_have_attribute("data-session-id", "s_angry")
        whys = items.first.get_by_test_id("attention-why")
        await expect(whys).to_have_count(2)
        await expect(whys.nth(0)).to_have_attribute("data-why", "frustration")
        await expect(whys.nth(1)).to_have_attribute("data-why", "long_call")
        await expect(page.get_by_test_id("attention-announce")).to_contain_text("Rep One")
        assert await page.evaluate("window.__alerts") == {"notifications": [], "beeps": 0}

        # Sound and notifications on (the permission is asked for only now); the next new call rings and notifies.
        await context.grant_permissions(["notifications"])
        await page.get_by_test_id("attention-sound").check()
        await page.get_by_test_id("attention-notify").check()
        await expect(page.get_by_test_id("attention-notify")).to_be_checked()
        await expect(page.get_by_test_id("attention-notify-denied")).to_be_hidden()
        long_call = attention_item("s_long", "Rep Three", ["long_call"], 20)
        update = floor_with([frustrated, attention_item("s_help", "Rep Two", ["help"], 50), long_call])
        route.send(json.dumps({"type": "floor.update", "floor": update}))
        await expect(items).to_have_count(3)
        await expect(items.nth(2)).to_have_attribute("data-session-id", "s_long")
        await page.wait_for_function("() => window.__alerts.notifications.length === 1")
        alerts = await page.evaluate("window.__alerts")
        assert alerts["beeps"] >= 1, alerts
        assert alerts["notifications"][0]["title"] == "A call needs attention"
        assert "Rep Three" in alerts["notifications"][0]["body"], alerts

        # Cleared on the server: gone from the list.
        route.send(json.dumps({"type": "floor.update", "floor": floor_with([])}))
        await expect(items).to_have_count(0)
        await expect(page.get_by_test_id("attention-empty")).to_be_visible()
        # The floor came over the socket: at most the one poll made before its welcome.
        assert len(polls) <= 1, polls
        await context.close()
