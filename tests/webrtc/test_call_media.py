"""End to end: Python aiortc clients as customer and rep through the real server.

Each side sends its own colour and tone, so a server that looped a side back to itself fails.
"""

from __future__ import annotations

import pytest

from tests.support.clients import CUSTOMER, REP, MediaClient
from tests.support.queue_view import wait_queue
from tests.support.server import Rapport

pytestmark = pytest.mark.webrtc


async def test_customer_and_rep_see_and_hear_each_other_then_end_cleanly(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="order", name="Ada")
    await wait_queue(rep, lambda q: q["items"])
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.wait_for("call.accepted")

    customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
    rapport.media += [customer_media, rep_media]
    await customer_media.negotiate(customer)
    await rep_media.negotiate(rep)

    assert await rep_media.wait_frames("video", 60) >= 60
    assert await rep_media.wait_frames("audio", 100) >= 100
    assert await customer_media.wait_frames("video", 60) >= 60
    assert await customer_media.wait_frames("audio", 100) >= 100
    assert rep_media.received["video"].last.width == 640
    # Who sees what: each side decodes the other's picture and tone, never its own.
    await rep_media.wait_to_see_and_hear(CUSTOMER)
    await customer_media.wait_to_see_and_hear(REP)

    await rep.send({"type": "call.end", "reason": "resolved"})
    ended = await customer.wait_for("call.ended")
    assert ended["state"] == "ended" and ended["ended_by"] == "rep" and ended["reason"] == "resolved"
    record = await rapport.store.get_session(call["session_id"])
    assert record is not None and record.state == "ended" and record.answered_at and record.ended_at
