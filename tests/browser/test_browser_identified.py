"""Real Chromium: a customer identified by a CRM's invite reaches a rep whose card shows who and why."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from server.storage.api_keys import ApiKeyStore
from server.storage.records import NewCall
from tests.support.browser import Chromium, console_and_phone, shot
from tests.support.server import Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]


async def test_an_identified_customer_reaches_a_rep_whose_card_shows_context_and_history(
    served: Rapport,
    browser: Chromium,
) -> None:
    # An earlier call of the same customer, wrapped up with notes.
    earlier, _token = await served.store.create_session(
        NewCall(reason="order", customer_name="Ada Lovelace", customer_ref="crm-77"), token_ttl_s=60
    )
    await served.store.finish_session(earlier.id, state="ended", ended_by="rep", reason="rep_hangup")
    await served.store.save_wrapup(earlier.id, disposition="follow_up", notes="Replacement charger promised", user_id=1)

    _key, secret = await ApiKeyStore(served.store.engine).create("crm", ("invites:write",))
    async with served.http.post(
        f"{served.url}/api/v1/invites",
        json={
            "customer": {"id": "crm-77", "name": "Ada Lovelace", "email": "ada@example.com"},
            "context": {"order": "A-1001", "device_id": "th-42"},
            "reason": "not_working",
        },
        headers={"Authorization": f"Bearer {secret}"},
    ) as r:
        invite = await r.json()

    rep, customer = await console_and_phone(served.url, browser, customer_url=invite["url"])
    await expect(customer.get_by_test_id("customer-name")).to_be_hidden()
    await customer.get_by_test_id("start-call").click()
    if await customer.get_by_test_id("help-need-person").is_visible():
        await customer.get_by_test_id("help-need-person").click()

    await expect(rep.get_by_test_id("offer")).to_be_visible(timeout=15000)
    await expect(rep.get_by_test_id("offer-text")).to_contain_text("Ada Lovelace")
    await rep.get_by_test_id("offer-accept").click()
    card = rep.get_by_test_id("customer-card")
    await expect(card).to_contain_text("Ada Lovelace")
    await expect(rep.get_by_test_id("customer-ref")).to_have_text("crm-77")
    await expect(rep.get_by_test_id("customer-context")).to_contain_text("A-1001")
    await expect(rep.get_by_test_id("customer-contact")).to_contain_text("ada@example.com")
    await expect(rep.get_by_test_id("customer-history-item")).to_have_count(1)
    await expect(rep.get_by_test_id("customer-history")).to_contain_text("Replacement charger promised")
    await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
    await shot(rep, "rep-identified-customer")
