"""Wrap-up, the QA session list and its filters, the review bundle, scorecards, reviews and CSV export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from server.storage import schema
from server.storage.reviews import REVIEWS
from tests.support.clients import SignalingClient, SignalingError
from tests.support.server import BOTH_DATABASES, Rapport

# The QA queries (filters, joins, aggregates, CSV) are the storage's richest: they run on each database.
pytestmark = pytest.mark.parametrize("database", BOTH_DATABASES)

DAY = 86_400.0


async def answered_and_ended(rapport: Rapport, rep: SignalingClient, **fields: Any) -> str:
    customer, call = await rapport.customer(**fields)
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.request({"type": "chat.send", "text": "My charger broke"})
    await rep.send({"type": "call.end"})
    ended = await rep.wait_for("call.ended")
    assert ended["wrap_up"] is True
    return str(call["session_id"])


async def set_session(rapport: Rapport, session_id: str, **values: Any) -> None:
    async with rapport.store.engine.begin() as conn:
        await conn.execute(
            update(schema.support_sessions).where(schema.support_sessions.c.id == session_id).values(**values)
        )


async def post(http: aiohttp.ClientSession, url: str, csrf: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    async with http.post(url, data=data, headers=headers) as r:
        return r.status, await r.json()


# wrap-up


async def test_a_rep_must_wrap_up_before_taking_the_next_call(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    session_id = await answered_and_ended(rapport, rep)
    status = await rep.wait_for(lambda m: m["type"] == "rep.status" and m["status"] == "wrap_up")
    assert status["status"] == "wrap_up"

    with pytest.raises(SignalingError) as refused:
        await rep.request({"type": "rep.status", "status": "available"})
    assert refused.value.code == "wrap_up_required"
    _customer, waiting = await rapport.customer()
    with pytest.raises(SignalingError) as refused:
        await rep.request({"type": "call.accept", "session_id": waiting["session_id"]})
    assert refused.value.code == "wrap_up_required"

    http, csrf = await rapport.staff_session("rep1")
    url = f"{rapport.url}/api/v1/sessions/{session_id}/wrapup"
    assert (await post(http, url, csrf, {"disposition": "nonsense"}))[0] == 400
    assert (await post(http, url, csrf, {"disposition": "resolved", "notes": "x" * 4001}))[0] == 400
    assert (await post(http, url, csrf, "{not json"))[0] == 400
    status_code, saved = await post(http, url, csrf, {"disposition": "resolved", "notes": "Sent a new charger"})
    assert status_code == 200 and saved["disposition"] == "resolved" and saved["notes"] == "Sent a new charger"
    await rep.wait_for(lambda m: m["type"] == "rep.status" and m["status"] == "available")
    accepted = await rep.request({"type": "call.accept", "session_id": waiting["session_id"]})
    assert accepted["type"] == "ack"


async def test_only_the_rep_who_took_the_call_wraps_it_up_and_not_while_live(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    _customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    mine, csrf = await rapport.staff_session("rep1")
    url = f"{rapport.url}/api/v1/sessions/{call['session_id']}/wrapup"
    assert (await post(mine, url, csrf, {"disposition": "resolved"}))[0] == 409
    other, other_csrf = await rapport.staff_session("rep2")
    assert (await post(other, url, other_csrf, {"disposition": "resolved"}))[0] == 404
    foreign = f"{rapport.url}/api/v1/sessions/s_not_a_session/wrapup"
    assert (await post(mine, foreign, csrf, {"disposition": "resolved"}))[0] == 404


async def test_a_reconnecting_rep_is_reminded_of_the_pending_wrap_up(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    session_id = await answered_and_ended(rapport, rep)
    await rep.close()
    again = await rapport.rep("rep1", available=False)
    welcome = await again.wait_for("welcome")
    assert welcome["status"] == "wrap_up" and welcome["wrap_up"] == {"session_id": session_id}


# the QA list


async def qa_list(rapport: Rapport, query: str = "") -> list[dict[str, Any]]:
    http, _csrf = await rapport.staff_session("qa1")
    async with http.get(f"{rapport.url}/api/v1/qa/sessions{query}") as r:
        assert r.status == 200, await r.text()
        return list((await r.json())["items"])


async def test_the_qa_list_filters_by_every_field(rapport: Rapport) -> None:
    rep1 = await rapport.rep("rep1")
    calm = await answered_and_ended(rapport, rep1, reason="order")
    rep2 = await rapport.rep("rep2")
    angry = await answered_and_ended(rapport, rep2, reason="complaint")
    t = schema.now()
    await set_session(rapport, calm, answered_at=t - 100, ended_at=t - 40, disposition="resolved", peak_frustration=0.2)
    await set_session(
        rapport,
        angry,
        answered_at=t - 700,
        ended_at=t - 100,
        disposition="escalated",
        peak_frustration=0.9,
        flag_count=2,
        created_at=t - 3 * DAY,
    )
    user1 = await rapport.store.user_with_hash("rep1")
    assert user1 is not None
    reviews = rapport.app[REVIEWS]
    card = await reviews.current_scorecard()
    assert card is not None
    await reviews.add_review(calm, reviewer_id=user1[0].id, scorecard_id=card.id, answers={}, comments="", score=1)

    def ids(rows: list[dict[str, Any]]) -> set[str]:
        return {r["session_id"] for r in rows}

    assert ids(await qa_list(rapport)) == {calm, angry}
    assert ids(await qa_list(rapport, f"?rep_id={user1[0].id}")) == {calm}
    assert ids(await qa_list(rapport, "?reason=complaint")) == {angry}
    assert ids(await qa_list(rapport, "?outcome=escalated")) == {angry}
    assert ids(await qa_list(rapport, "?min_duration_s=300")) == {angry}
    assert ids(await qa_list(rapport, "?max_duration_s=300")) == {calm}
    assert ids(await qa_list(rapport, "?min_frustration=0.5")) == {angry}
    assert ids(await qa_list(rapport, "?flagged=true")) == {angry}
    assert ids(await qa_list(rapport, "?flagged=false")) == {calm}
    assert ids(await qa_list(rapport, "?qa_status=scored")) == {calm}
    assert ids(await qa_list(rapport, "?qa_status=unscored")) == {angry}
    day = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
    assert ids(await qa_list(rapport, f"?from={day}&to={day}")) == {calm}
    row = next(r for r in await qa_list(rapport) if r["session_id"] == angry)
    assert row["duration_s"] == 600 and row["flag_count"] == 2 and row["peak_frustration"] == 0.9
    assert row["rep"]["display_name"] == "Rep2" and row["recorded"] is False


async def test_bad_filters_get_a_clear_400(rapport: Rapport) -> None:
    http, _csrf = await rapport.staff_session("qa1")
    for query in (
        "?from=yesterday",
        "?min_frustration=2",
        "?min_duration_s=abc",
        "?flagged=maybe",
        "?qa_status=done",
        "?reason=../../etc",
        "?limit=0",
        "?rep_id=-1",
    ):
        async with http.get(f"{rapport.url}/api/v1/qa/sessions{query}") as r:
            body = await r.json()
            assert r.status == 400 and body["error"]["code"] == "bad_request", query


# the review bundle and scoring


async def test_the_bundle_lines_chat_and_flags_up_on_the_player_clock(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    session_id = await answered_and_ended(rapport, rep)
    rows = [
        {"second": s, "samples": 5, "face_present": True, "mean_frustration": f, "max_frustration": f, "dominant": d}
        | {"flag": flag}
        for s, f, d, flag in [
            (0, 0.1, "neutral", False),
            (1, 0.7, "angry", True),
            (2, 0.9, "angry", True),
            (3, 0.2, "neutral", False),
            (5, 0.8, "angry", True),
        ]
    ]
    await rapport.store.add_timeline(session_id, rows)
    peak, episodes = await rapport.store.summarize_emotion(session_id)
    assert peak == 0.9 and episodes == 2
    http, _csrf = await rapport.staff_session("qa1")
    async with http.get(f"{rapport.url}/api/v1/qa/sessions/{session_id}") as r:
        bundle = await r.json()
    assert bundle["flags"] == [{"start_s": 1, "end_s": 3, "peak": 0.9}, {"start_s": 5, "end_s": 6, "peak": 0.8}]
    assert bundle["player"] is None and bundle["recordings"] == []
    assert [c["text"] for c in bundle["chat"]] == ["My charger broke"] and isinstance(bundle["chat"][0]["t"], float)
    assert bundle["session"]["rep"]["display_name"] == "Rep1"
    assert [c["id"] for c in bundle["scorecard"]["criteria"]][:2] == ["greeting", "understanding"]
    async with http.get(f"{rapport.url}/api/v1/qa/sessions/s_nope") as r:
        assert r.status == 404


async def test_a_review_must_answer_every_criterion_and_is_scored(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    session_id = await answered_and_ended(rapport, rep)
    http, csrf = await rapport.staff_session("qa1")
    async with http.get(f"{rapport.url}/api/v1/qa/scorecard") as r:
        card = await r.json()
    full = {c["id"]: (5 if c["type"] == "scale" else True) for c in card["criteria"]}
    url = f"{rapport.url}/api/v1/qa/sessions/{session_id}/reviews"
    bad_bodies = [
        {"scorecard_id": card["id"], "answers": {**full, "greeting": 6}},
        {"scorecard_id": card["id"], "answers": {**full, "process": 1}},
        {"scorecard_id": card["id"], "answers": {k: v for k, v in full.items() if k != "resolved"}},
        {"scorecard_id": card["id"], "answers": {**full, "invented": 3}},
        {"scorecard_id": 999, "answers": full},
        {"scorecard_id": card["id"], "answers": "all good"},
        {"scorecard_id": card["id"], "answers": full, "comments": "x" * 5000},
    ]
    for body in bad_bodies:
        status, answer = await post(http, url, csrf, body)
        assert status == 400 and answer["error"]["code"] == "bad_request", body
    half = {**full, "greeting": 3, "understanding": 3, "clarity": 3, "courtesy": 3, "process": False, "resolved": True}
    status, review = await post(http, url, csrf, {"scorecard_id": card["id"], "answers": half, "comments": "Fine"})
    assert status == 201
    assert review["score"] == round((4 * 0.5 + 0 + 1) / 6, 4) and review["reviewer"]["display_name"] == "Qa1"
    rows = await qa_list(rapport, "?qa_status=scored")
    assert [r["session_id"] for r in rows] == [session_id] and rows[0]["score"] == review["score"]


async def test_an_admin_edits_the_rubric_and_old_reviews_keep_theirs(rapport: Rapport) -> None:
    await rapport.add_user("adm1", "admin")
    admin, csrf = await rapport.staff_session("adm1")
    url = f"{rapport.url}/api/v1/qa/scorecard"
    for bad in (
        {"criteria": []},
        {"criteria": [{"id": "a b", "label": "x", "type": "scale"}]},
        {"criteria": [{"id": "a", "label": "x", "type": "stars"}]},
        {"criteria": [{"id": "a", "label": "x", "type": "scale"}, {"id": "a", "label": "y", "type": "yesno"}]},
        {"criteria": "everything"},
    ):
        async with admin.put(url, json=bad, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 400, bad
    rubric = {"criteria": [{"id": "empathy", "label": "Shows empathy", "type": "scale"}]}
    async with admin.put(url, json=rubric, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 201
        created = await r.json()
    qa, _ = await rapport.staff_session("qa1")
    async with qa.get(url) as r:
        current = await r.json()
    assert current["id"] == created["id"] and current["criteria"] == rubric["criteria"]
    audit = [e.action for e in await rapport.store.list_audit()]
    assert "qa.scorecard" in audit


async def test_csv_export_has_one_row_per_session_and_defuses_formulas(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    session_id = await answered_and_ended(rapport, rep, name='=HYPERLINK("http://evil")')
    await set_session(rapport, session_id, disposition="resolved", notes="+1 call back")
    http, _csrf = await rapport.staff_session("qa1")
    async with http.get(f"{rapport.url}/api/v1/qa/export.csv?reason=") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert len(rows) == 1 and rows[0]["session_id"] == session_id
    assert rows[0]["customer_name"].startswith("'=") and rows[0]["notes"] == "'+1 call back"
    assert "criterion:greeting" in rows[0] and "customer_peak_frustration" in rows[0]
    assert "qa.export" in [e.action for e in await rapport.store.list_audit()]
