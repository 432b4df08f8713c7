"""Retention, legal hold and erasure: files go, rows are stripped, held sessions stay, all audited."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import update

from server.config import SETTINGS
from server.recording.retention import DAY_S, apply_retention, session_folder
from server.storage import schema
from server.storage.reviews import REVIEWS
from tests.support.media import record_a_file
from tests.support.raw import raw_url
from tests.support.server import BOTH_DATABASES, Rapport

# Every test here that runs a server runs it on SQLite and on PostgreSQL (tests/support/server.py).
ON_DATABASES = BOTH_DATABASES

# The erase route's own answer for an id it cannot find (the router's 404 says "Not Found").
NO_SUCH_SESSION = {"error": {"code": "not_found", "message": "no such session"}}


async def ended_recorded_session(rapport: Rapport, *, days_ago: float = 0, **fields: str) -> tuple[str, Path]:
    """A finished call with chat, an emotion timeline, a review and one recording file."""
    customer, call = await rapport.customer(**fields)
    session_id = str(call["session_id"])
    await customer.request({"type": "chat.send", "text": "my address is 1 Main St"})
    await customer.send({"type": "call.end"})
    await customer.wait_for("call.ended")
    await record_a_file(rapport, session_id)
    recorded_file = rapport.app[SETTINGS].recordings_path / session_id / "customer-video.mkv"
    await rapport.store.add_timeline(
        session_id,
        [
            {"second": 0, "samples": 5, "face_present": True, "mean_frustration": 0.6, "max_frustration": 0.7}
            | {"dominant": "angry", "flag": True}
        ],
    )
    reviews = rapport.app[REVIEWS]
    card = await reviews.current_scorecard()
    assert card is not None
    qa = await rapport.store.user_with_hash("qa1")
    assert qa is not None
    await reviews.add_review(session_id, reviewer_id=qa[0].id, scorecard_id=card.id, answers={}, comments="", score=1)
    async with rapport.store.engine.begin() as conn:
        await conn.execute(
            update(schema.support_sessions)
            .where(schema.support_sessions.c.id == session_id)
            .values(ended_at=schema.now() - days_ago * DAY_S)
        )
    return session_id, recorded_file


async def test_retention_deletes_old_files_but_not_recent_or_held_ones(rapport: Rapport) -> None:
    old, old_file = await ended_recorded_session(rapport, days_ago=100)
    held, held_file = await ended_recorded_session(rapport, days_ago=100)
    recent, recent_file = await ended_recorded_session(rapport, days_ago=2)
    await rapport.add_user("sup1", "supervisor")
    sup, csrf = await rapport.staff_session("sup1")
    async with sup.put(
        f"{rapport.url}/api/v1/sessions/{held}/legal-hold",
        json={"hold": True, "note": "dispute 42"},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        assert r.status == 200 and (await r.json())["legal_hold"] is True

    deleted = await apply_retention(rapport.store, rapport.app[SETTINGS].recordings_path, retention_days=90)

    assert deleted == 1
    assert not old_file.exists() and held_file.exists() and recent_file.exists()
    assert [r.state for r in await rapport.store.list_recordings(old)] == ["deleted"]
    assert [r.state for r in await rapport.store.list_recordings(held)] == ["complete"]
    actions = [(e.action, e.target) for e in await rapport.store.list_audit()]
    assert ("session.legal_hold", held) in actions and any(a == "retention.delete" for a, _ in actions)
    # Running again finds nothing more to do.
    assert await apply_retention(rapport.store, rapport.app[SETTINGS].recordings_path, retention_days=90) == 0


async def test_an_admin_erases_a_session_everything_personal_goes(rapport: Rapport) -> None:
    session_id, media = await ended_recorded_session(rapport)
    personal = {"contact": '{"phone": "+31 6 1234 5678"}', "context": '{"crm": "vip"}', "customer_ref": "cust-7"}
    async with rapport.store.engine.begin() as conn:
        await conn.execute(
            update(schema.support_sessions)
            .where(schema.support_sessions.c.id == session_id)
            .values(**personal, rating_comment="call me on 0612345678")
        )
    await rapport.store.add_event(session_id, "callback_requested", {"contact": {"phone": "+31 6 1234 5678"}})
    before = await rapport.store.get_session(session_id)
    assert before is not None and before.contact == {"phone": "+31 6 1234 5678"} and before.rating_comment
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    async with admin.delete(f"{rapport.url}/api/v1/sessions/{session_id}", headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200
        erased = (await r.json())["erased"]
    assert erased == {
        "files": 1,
        "recordings": 1,
        "chat_messages": 1,
        "emotion_seconds": 1,
        "reviews": 1,
        "webhook_payloads": 0,
        "session_files": 0,
        "callbacks": 0,
    }
    assert not media.exists() and not media.parent.exists()
    assert await rapport.store.list_chat(session_id) == []
    assert await rapport.store.list_timeline(session_id) == []
    record = await rapport.store.get_session(session_id)
    assert record is not None and record.erased_at is not None and record.customer_name is None
    assert (record.contact, record.context, record.rating_comment, record.customer_ref) == (None, None, None, None)
    assert record.ended_at is not None, "times stay so reports still add up"
    events = await rapport.store.list_events(session_id)
    assert events and all(e.detail is None for e in events), "event details can hold a callback's contact"
    qa, _ = await rapport.staff_session("qa1")
    async with qa.get(f"{rapport.url}/api/v1/qa/sessions/{session_id}") as r:
        assert r.status == 404
    audit = [(e.action, e.target, e.detail) for e in await rapport.store.list_audit()]
    assert ("session.erase", session_id, erased) in audit


async def test_erasure_is_refused_for_live_and_held_sessions_and_unknown_ids(rapport: Rapport) -> None:
    held, held_file = await ended_recorded_session(rapport)
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    headers = {"X-CSRF-Token": csrf}
    async with admin.put(f"{rapport.url}/api/v1/sessions/{held}/legal-hold", json={"hold": True}, headers=headers) as r:
        assert r.status == 200
    async with admin.delete(f"{rapport.url}/api/v1/sessions/{held}", headers=headers) as r:
        assert r.status == 409 and "legal hold" in (await r.json())["error"]["message"]
    assert held_file.exists()
    _customer, live = await rapport.customer()
    async with admin.delete(f"{rapport.url}/api/v1/sessions/{live['session_id']}", headers=headers) as r:
        assert r.status == 409
    # Sent raw, so ".." reaches the route as the id (yarl would turn it into DELETE /api/v1/, the router's 405).
    for bad in ("s_unknown", "..", "%2e%2e", "%2e%2e%2f", "..%2F..%2Fetc"):
        async with admin.delete(raw_url(rapport.url, f"/api/v1/sessions/{bad}"), headers=headers) as r:
            assert (r.status, await r.json()) == (404, NO_SUCH_SESSION), bad
    async with admin.put(
        f"{rapport.url}/api/v1/sessions/{held}/legal-hold", json={"hold": "yes"}, headers=headers
    ) as r:
        assert r.status == 400


async def test_an_admin_erases_every_session_of_one_customer(rapport: Rapport) -> None:
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    headers = {"X-CSRF-Token": csrf}
    sessions = []
    for _ in range(2):
        async with admin.post(
            f"{rapport.url}/api/v1/invites", json={"customer_name": "Ada", "customer_ref": "crm-77"}, headers=headers
        ) as r:
            code = (await r.json())["code"]
        async with aiohttp.ClientSession() as anon, anon.post(f"{rapport.url}/api/v1/invites/{code}/redeem") as r:
            call = await r.json()
        sessions.append(call["session_id"])
    for session_id in sessions:
        record = await rapport.store.get_session(session_id)
        assert record is not None and record.customer_ref == "crm-77"
    finished, live = sessions
    await rapport.store.finish_session(finished, state="abandoned", ended_by="customer", reason="customer_left")
    async with admin.delete(f"{rapport.url}/api/v1/customers/crm-77", headers=headers) as r:
        answer = await r.json()
    # The call still waiting in the queue is live: it is not erased, and the answer says so.
    assert r.status == 200 and answer["erased"] == [finished]
    assert [x["session_id"] for x in answer["refused"]] == [live]
    record = await rapport.store.get_session(finished)
    assert record is not None and record.customer_ref is None and record.erased_at is not None
    async with admin.delete(f"{rapport.url}/api/v1/customers/nobody", headers=headers) as r:
        assert r.status == 404


def test_session_folders_never_lead_outside_the_recordings_root(tmp_path: Path) -> None:
    assert session_folder(tmp_path, "s_abc") == (tmp_path / "s_abc").resolve()
    for bad in ("..", "../x", "/etc", "a/b", ""):
        assert session_folder(tmp_path, bad) is None, bad
