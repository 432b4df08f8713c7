"""Real Chromium: a call that rings while the console's tab is in the background raises a desktop notification,
which goes away when the ringing stops; in view, the console alerts as before and shows none."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.support.browser import Chromium, rep_login
from tests.support.clients import start_call, welcomed
from tests.support.server import Rapport

pytestmark = [pytest.mark.browser]

# The page's view of the browser: the tab hidden or not as the test says (headless tabs are always visible),
# and every notification it shows and closes.
BACKGROUND_SPY_JS = """(() => {
  window.__hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden });
  window.__notes = [];
  const Real = window.Notification;
  class Spy extends Real {
    constructor(title, options) {
      super(title, options);
      this.__entry = { title, body: options && options.body, tag: options && options.tag, closed: false };
      window.__notes.push(this.__entry);
    }
    close() {
      this.__entry.closed = true;
      super.close();
    }
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
})();"""


async def notes(page: Any) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = await page.evaluate("() => window.__notes")
    return value


async def test_a_call_ringing_in_a_background_tab_raises_a_desktop_notification(
    served: Rapport, browser: Chromium
) -> None:
    context = await browser.browser.new_context(
        viewport={"width": 1400, "height": 900}, permissions=["camera", "microphone", "notifications"]
    )
    await context.add_init_script(BACKGROUND_SPY_JS)
    rep = await context.new_page()
    await rep.goto(f"{served.url}/console")
    await rep_login(rep)

    # In view: the offer shows, and no notification.
    first = await start_call(served.http, served.url, name="Ada")
    customer = await welcomed(served.http, served.url, first["token"])
    await expect(rep.get_by_test_id("offer")).to_be_visible()
    assert await notes(rep) == []
    await customer.send({"type": "call.end"})  # the caller gives up: the ringing stops, the rep stays available
    await expect(rep.get_by_test_id("offer")).to_be_hidden()
    await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "available")

    # In the background: the ring is a notification naming the caller, closed once the rep answers.
    await rep.evaluate("() => { window.__hidden = true; }")
    second = await start_call(served.http, served.url, name="Bea")
    caller = await welcomed(served.http, served.url, second["token"])  # calls ring once their customer is there
    await expect(rep.get_by_test_id("offer")).to_be_visible()
    shown = await notes(rep)
    assert len(shown) == 1, shown
    assert shown[0]["title"] == "A call is ringing for you" and "Bea" in shown[0]["body"]
    assert shown[0]["tag"] == f"offer-{second['session_id']}" and not shown[0]["closed"]
    await rep.get_by_test_id("offer-accept").click()
    await expect(rep.get_by_test_id("offer")).to_be_hidden()
    assert (await notes(rep))[0]["closed"] is True
    await caller.close()
    await customer.close()
    await context.close()
