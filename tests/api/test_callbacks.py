"""Callbacks and business hours through the API: an admin sets the hours (hostile documents refused, naming the
field; a non-admin gets 403; audited); out of hours a customer leaves a callback (refused while open, spam
limited, bad contacts refused, known contacts not revealed); a rep starts it once, the customer's link rings
that rep, the call completes the callback; webhooks carry the contact and the link; reports count it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from server.config import Settings
from server.webhooks.dispatcher import WEBHOOKS
from tests.api.test_webhooks import FAST, LOCAL, Receiver
from tests.support.clients import welcomed
from tests.support.server import Rapport, running, with_settings

CLOSED = {"timezone": "Europe/Amsterdam", "callback_wait_threshold_s": 600, "queues": [{"queue": "*", "weekly": {}}]}
PHONE = {"phone": "+31 6 1234 5678"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver().start()
    yield made
    await made.close()


@pytest.fixture
async def centre(settings: Settings) -> AsyncIterator[Rapport]:
    users = (("adm1", "admin"), ("rep1", "rep"), ("rep2", "rep"), ("sup1", "supervisor"))
    async with running(with_settings(settings, webhook_allowed_hosts=LOCAL), users) as r:
        r.app[WEBHOOKS].backoff_s = FAST
        yield r


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None, csrf: str = "") -> tuple[int, Any]:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(method, url, data=data, headers=headers) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text) if text else None
        except ValueError:
            return r.status, text


async def set_hours(r: Rapport, document: Any) -> tuple[int, Any]:
    admin, csrf = await r.staff_session("adm1")
    return await call(admin, "PUT", f"{r.url}/api/v1/business-hours", document, csrf)


async def queue_of(r: Rapport, code: str = "*") -> dict[str, Any]:
    _s, config = await call(r.http, "GET", f"{r.url}/api/v1/config")
    return next(q for q in config["hours"]["queues"] if q["queue"] == code)


async def test_hours_default_to_open_and_only_an_admin_changes_them(centre: Rapport) -> None:
    star = await queue_of(centre)
    assert star["open"] is True and star["estimated_wait_s"] >= 0 and len(star["callback_slots"]) == 12
    rep, rep_csrf = await centre.staff_session("rep1")
    status, got = await call(rep, "GET", f"{centre.url}/api/v1/business-hours")
    assert status == 200 and got == {"timezone": "UTC", "callback_wait_threshold_s": 600, "queues": []}
    assert (await call(rep, "PUT", f"{centre.url}/api/v1/business-hours", CLOSED, rep_csrf))[0] == 403
    sup, sup_csrf = await centre.staff_session("sup1")
    assert (await call(sup, "PUT", f"{centre.url}/api/v1/business-hours", CLOSED, sup_csrf))[0] == 403
    assert (await call(centre.http, "PUT", f"{centre.url}/api/v1/business-hours", CLOSED))[0] in (401, 403)

    status, saved = await set_hours(centre, CLOSED)
    assert status == 200 and saved["queues"][0]["weekly"]["mon"] == []
    star = await queue_of(centre)
    assert star["open"] is False and star["next_opening"] is None and star["callback_slots"] == []
    audit = [e for e in await centre.store.list_audit() if e.action == "business_hours.set"]
    assert len(audit) == 1 and audit[0].detail == {"timezone": "Europe/Amsterdam", "queues": ["*"], "threshold_s": 600}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../../etc/localtime"}, "timezone"),
        (
            {"timezone": "UTC", "queues": [{"queue": "*", "weekly": {"mon": [["17:00", "09:00"]]}}]},
            "queues[0].weekly.mon[0]",
        ),
        (
            {
                "timezone": "UTC",
                "queues": [{"queue": "*", "weekly": {"tue": [["09:00", "12:00"], ["11:00", "13:00"]]}}],
            },
            "queues[0].weekly.tue",
        ),
        (
            {"timezone": "UTC", "queues": [{"queue": "*", "weekly": {"mon": [["25:00", "26:00"]]}}]},
            "queues[0].weekly.mon[0][0]",
        ),
        ({"timezone": "UTC", "queues": [{"queue": "flying"}]}, "queues[0].queue"),
        (
            {"timezone": "UTC", "queues": [{"queue": "*", "holidays": [{"date": "2026-02-30"}]}]},
            "queues[0].holidays[0].date",
        ),
        ({"timezone": "UTC", "callback_wait_threshold_s": -5}, "callback_wait_threshold_s"),
        ({"timezone": "UTC", "queues": [{"queue": "*", "weekly": {"someday": []}}]}, "queues[0].weekly.someday"),
    ],
)
async def test_hostile_hours_are_refused_naming_the_field(centre: Rapport, document: Any, field: str) -> None:
    status, answer = await set_hours(centre, document)
    assert status == 400, answer
    assert answer["error"]["message"].startswith(f"{field}:"), answer
    assert (await queue_of(centre))["open"] is True, "nothing was saved"


async def test_a_huge_hours_body_is_refused(centre: Rapport) -> None:
    huge = {"timezone": "UTC", "queues": [{"queue": "*", "holidays": [{"date": "2026-12-25"}] * 50_000}]}
    status, _answer = await set_hours(centre, huge)
    assert status == 413


async def test_out_of_hours_callbacks_are_checked_and_not_spammed(centre: Rapport) -> None:
    url = f"{centre.url}/api/v1/calls/callback"
    status, answer = await call(centre.http, "POST", url, {"contact": PHONE, "reason": "order"})
    assert status == 409 and "open" in answer["error"]["message"], "open and no wait: start a call instead"
    assert (await set_hours(centre, CLOSED))[0] == 200
    for bad in ({"phone": "call me"}, {"email": "nobody"}, {}):
        status, answer = await call(centre.http, "POST", url, {"contact": bad})
        assert status == 400 and answer["error"]["message"].startswith("contact"), answer
    status, answer = await call(centre.http, "POST", url, {"contact": PHONE, "reason": "flying"})
    assert status == 400
    status, answer = await call(
        centre.http,
        "POST",
        url,
        {"contact": PHONE, "window": {"start": "2026-12-07T08:00:00Z", "end": "2026-12-07T09:00:00Z"}},
    )
    assert status == 400 and answer["error"]["message"].startswith("window"), "never open: no window fits"
    assert (await call(centre.http, "POST", url, {"contact": PHONE, "name": "Ada", "reason": "order"}))[0] == 200
    # The same number again: the same answer, and still one callback (nothing tells a known number apart).
    assert (await call(centre.http, "POST", url, {"contact": {"phone": "+31 6 1234 5678"}}))[0] == 200
    assert len(await centre.store.list_callbacks(("requested",))) == 1
    # Spam from one address: limited.
    statuses = [
        (await call(centre.http, "POST", url, {"contact": {"email": f"x{n}@example.com"}}))[0] for n in range(6)
    ]
    assert statuses[-1] == 429 and 200 in statuses
    # A forged or unknown call token.
    status, _a = await call(centre.http, "POST", url, {"token": "x" * 43, "contact": PHONE})
    assert status == 404


async def test_a_waiting_customer_with_a_short_wait_is_told_to_stay(centre: Rapport) -> None:
    _customer, queued = await centre.customer(reason="order")
    status, answer = await call(
        centre.http, "POST", f"{centre.url}/api/v1/calls/callback", {"token": queued["token"], "contact": PHONE}
    )
    assert status == 409 and "stay in line" in answer["error"]["message"]
    threshold_zero = {"timezone": "UTC", "callback_wait_threshold_s": 0, "queues": []}
    assert (await set_hours(centre, threshold_zero))[0] == 200
    status, _a = await call(
        centre.http, "POST", f"{centre.url}/api/v1/calls/callback", {"token": queued["token"], "contact": PHONE}
    )
    assert status == 200
    status, _a = await call(
        centre.http, "POST", f"{centre.url}/api/v1/calls/callback", {"token": queued["token"], "contact": PHONE}
    )
    assert status == 409, "once per call"


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_callback_from_request_to_completed_call(centre: Rapport, receiver: Receiver) -> None:
    _endpoint, secret = await centre.app[WEBHOOKS].create_endpoint(
        receiver.url, ("callback.requested", "callback.started")
    )
    receiver.secret = secret
    assert (await set_hours(centre, CLOSED))[0] == 200
    body = {"contact": {"email": "ada@example.com"}, "name": "Ada", "reason": "order", "language": "nl"}
    assert (await call(centre.http, "POST", f"{centre.url}/api/v1/calls/callback", body))[0] == 200
    requested = await until(lambda: asyncio.sleep(0, [r for r in receiver.requests if b"callback.requested" in r.body]))
    event = json.loads(requested[0].body)
    assert requested[0].verified and event["data"]["callback"]["contact"] == {"email": "ada@example.com"}

    rep2 = await centre.rep("rep2")  # idle longest
    rep1 = await centre.rep("rep1")
    http1, csrf1 = await centre.staff_session("rep1")
    status, listed = await call(http1, "GET", f"{centre.url}/api/v1/callbacks")
    assert status == 200 and [c["customer_name"] for c in listed["items"]] == ["Ada"]
    callback_id = listed["items"][0]["id"]
    status, started = await call(http1, "POST", f"{centre.url}/api/v1/callbacks/{callback_id}/start", None, csrf1)
    assert status == 200, started
    assert started["callback"]["state"] == "started" and started["invite"]["url"].startswith(centre.url + "/join/")
    http2, csrf2 = await centre.staff_session("rep2")
    status, again = await call(http2, "POST", f"{centre.url}/api/v1/callbacks/{callback_id}/start", None, csrf2)
    assert status == 409, "a callback starts once"
    status, _a = await call(http2, "POST", f"{centre.url}/api/v1/callbacks/cb_{'A' * 22}/start", None, csrf2)
    assert status == 404
    started_hook = await until(
        lambda: asyncio.sleep(0, [r for r in receiver.requests if b"callback.started" in r.body])
    )
    assert json.loads(started_hook[0].body)["data"]["url"] == started["invite"]["url"]

    # rep2 has been idle longer, but the callback's call rings at rep1, who started it.
    token = started["invite"]["code"]
    status, queued = await call(centre.http, "POST", f"{centre.url}/api/v1/invites/{token}/redeem", {})
    assert status == 201, queued
    customer = await welcomed(centre.http, centre.url, queued["token"])
    offer = await rep1.wait_for("call.offer")
    assert offer["session_id"] == queued["session_id"]
    await rep1.request({"type": "call.accept", "session_id": queued["session_id"]})
    await rep1.send({"type": "call.end"})
    await customer.wait_for("call.ended")
    done = await until(lambda: _state(centre, callback_id, "completed"))
    assert done.session_id == queued["session_id"]
    await customer.close()
    await rep2.close()

    sup, _csrf = await centre.staff_session("sup1")
    status, report = await call(sup, "GET", f"{centre.url}/api/v1/reports?group=reason")
    totals = report["totals"]
    assert (totals["callbacks_requested"], totals["callbacks_started"], totals["callbacks_completed"]) == (1, 1, 1)
    async with sup.get(f"{centre.url}/api/v1/reports.csv?group=day") as r:
        text = await r.text()
    assert "callbacks_completed" in text.splitlines()[0] and text.splitlines()[-1].endswith(",1,1,1")


async def _state(r: Rapport, callback_id: str, state: str) -> Any:
    found = await r.store.get_callback(callback_id)
    return found if found is not None and found.state == state else None


async def test_erasure_blanks_a_callbacks_contact(centre: Rapport) -> None:
    _customer, queued = await centre.customer(reason="order")
    made = await centre.store.create_callback(
        reason="order",
        language="en",
        customer_name="Bo",
        contact=PHONE,
        window=None,
        due_at=0.0,
        origin_session_id=queued["session_id"],
    )
    counts = await centre.store.erase_session_rows(queued["session_id"])
    assert counts["callbacks"] == 1
    erased = await centre.store.get_callback(made.id)
    assert erased is not None and erased.contact is None and erased.customer_name is None
