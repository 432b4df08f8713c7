"""HTTP routes for wrap-up, QA review, legal hold and erasure (see docs/api.md)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from aiohttp import web

from ...calls.center import CALL_CENTER
from ...config import SETTINGS
from ...recording.composer import COMPOSED_PARTICIPANT, COMPOSER, track_offsets
from ...recording.retention import ErasureRefused, erase_session, sessions_of_customer, set_legal_hold
from ...storage.reviews import REVIEWS, SessionFilter, score_answers, validate_answers, validate_criteria
from ...storage.store import OPEN_STATES, STORE, SessionRecord, iso
from ..security import ApiError, optional_str, read_json, require_staff
from .intake import query_date
from .sessions import WEB_CLIENT, recording_json

REVIEW_ROLES = ("qa", "supervisor", "admin")
STAFF_ROLES = ("rep", "qa", "supervisor", "admin")
NOTES_MAX = 4000
COMMENTS_MAX = 4000


async def _session(request: web.Request) -> SessionRecord:
    session_id = request.match_info["session_id"]
    record = await request.app[STORE].get_session(session_id) if len(session_id) <= 64 else None
    if record is None or record.erased_at is not None:
        raise ApiError(404, "not_found", "no such session")
    return record


# wrap-up


async def dispositions(request: web.Request) -> web.Response:
    await require_staff(request, STAFF_ROLES)
    items = [{"code": c, "label": label, "category": cat} for c, label, cat in request.app[SETTINGS].dispositions]
    return web.json_response({"items": items})


async def wrap_up(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, STAFF_ROLES)
    record = await _session(request)
    if record.rep_id != user.id and user.role not in ("supervisor", "admin"):
        raise ApiError(404, "not_found", "no such session")  # the same answer as for a foreign id
    if record.state in OPEN_STATES:
        raise ApiError(409, "conflict", "the call is still live: end it first")
    body = await read_json(request)
    codes = {c for c, _label, _cat in request.app[SETTINGS].dispositions}
    disposition = body.get("disposition")
    if disposition not in codes:
        raise ApiError(400, "bad_request", f"disposition: one of {', '.join(sorted(codes))}")
    notes = body.get("notes", "")
    if not isinstance(notes, str) or len(notes) > NOTES_MAX:
        raise ApiError(400, "bad_request", f"notes: a string of at most {NOTES_MAX} characters")
    store = request.app[STORE]
    await store.save_wrapup(record.id, disposition=disposition, notes=notes.strip(), user_id=user.id)
    if record.rep_id == user.id:
        request.app[CALL_CENTER].wrapped_up(user.id, record.id)
    updated = await store.get_session(record.id)
    assert updated is not None
    return web.json_response(updated.to_json())


# QA list and export


def _query_number(request: web.Request, name: str, low: float, high: float) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name}: a number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name}: from {low:g} to {high:g}")
    return value


def _query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    if raw not in choices:
        raise ApiError(400, "bad_request", f"{name}: one of {', '.join(choices)}")
    return raw


def session_filter(request: web.Request) -> SessionFilter:
    rep_id = _query_number(request, "rep_id", 1, 2**31)
    limit = _query_number(request, "limit", 1, 500)
    outcome = request.query.get("outcome") or None
    if outcome is not None and len(outcome) > 64:
        raise ApiError(400, "bad_request", "outcome: at most 64 characters")
    reason = request.query.get("reason") or None
    if reason is not None and reason not in {c for c, _ in request.app[SETTINGS].reasons}:
        raise ApiError(400, "bad_request", "reason: unknown")
    flagged = _query_choice(request, "flagged", ("true", "false"))
    return SessionFilter(
        from_ts=query_date(request.query.get("from"), "from"),
        to_ts=query_date(request.query.get("to"), "to", end=True),
        rep_id=int(rep_id) if rep_id is not None else None,
        reason=reason,
        outcome=outcome,
        min_duration_s=_query_number(request, "min_duration_s", 0, 10**7),
        max_duration_s=_query_number(request, "max_duration_s", 0, 10**7),
        min_frustration=_query_number(request, "min_frustration", 0, 1),
        flagged=None if flagged is None else flagged == "true",
        qa_status=_query_choice(request, "qa_status", ("scored", "unscored")),
        limit=int(limit) if limit is not None else 100,
    )


async def qa_sessions(request: web.Request) -> web.Response:
    await require_staff(request, REVIEW_ROLES)
    reviews = request.app[REVIEWS]
    rows = await reviews.list_sessions(session_filter(request))
    return web.json_response({"items": rows, "reps": await reviews.staff_with_calls()})


def _cell(value: Any) -> Any:
    # Spreadsheets run cells that start like a formula: neutralise them.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


async def qa_export(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    reviews = request.app[REVIEWS]
    f = session_filter(request)
    rows = await reviews.list_sessions(SessionFilter(**{**f.__dict__, "limit": 10_000}))
    scorecard = await reviews.current_scorecard()
    criteria = scorecard["criteria"] if scorecard else []
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "session_id",
            "created_at",
            "answered_at",
            "ended_at",
            "duration_s",
            "reason",
            "customer_name",
            "rep",
            "state",
            "disposition",
            "notes",
            "customer_peak_frustration",
            "customer_frustration_flags",
            "recorded",
            "qa_status",
            "score",
            "reviewer",
            "reviewed_at",
            "comments",
            *[f"criterion:{c['id']}" for c in criteria],
        ]
    )
    for r in rows:
        review = r["review"] or {}
        answers = review.get("answers", {})
        writer.writerow(
            [
                _cell(v)
                for v in (
                    r["session_id"],
                    r["created_at"],
                    r["answered_at"],
                    r["ended_at"],
                    r["duration_s"],
                    r["reason"],
                    r["customer_name"],
                    (r["rep"] or {}).get("display_name"),
                    r["state"],
                    r["disposition"],
                    r["notes"],
                    r["peak_frustration"],
                    r["flag_count"],
                    "yes" if r["recorded"] else "no",
                    r["qa_status"],
                    r["score"],
                    (review.get("reviewer") or {}).get("display_name"),
                    review.get("created_at"),
                    review.get("comments"),
                    *[answers.get(c["id"]) for c in criteria],
                )
            ]
        )
    await request.app[STORE].audit(user.id, "qa.export", "sessions", {"rows": len(rows)})
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="rapport-qa-{stamp}.csv"'},
    )


# one session


def _flags(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of flagged seconds: when the customer's frustration flag was up."""
    flags: list[dict[str, Any]] = []
    for row in timeline:
        if not row["flag"]:
            continue
        last = flags[-1] if flags else None
        if last is not None and last["end_s"] == row["second"]:
            last["end_s"] = row["second"] + 1
            last["peak"] = max(last["peak"], row["max_frustration"] or 0.0)
        else:
            flags.append({"start_s": row["second"], "end_s": row["second"] + 1, "peak": row["max_frustration"] or 0.0})
    return flags


async def qa_session(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    record = await _session(request)
    store, reviews = request.app[STORE], request.app[REVIEWS]
    rows = await store.list_recordings(record.id)
    tracks = [r for r in rows if r["participant"] != COMPOSED_PARTICIPANT and r["state"] != "deleted"]
    composed = next((r for r in rows if r["participant"] == COMPOSED_PARTICIPANT and r["state"] != "deleted"), None)
    t0, _offsets = track_offsets(tracks)
    if composed is not None and composed["epoch"] is not None:
        t0 = composed["epoch"]
    epoch = t0 if t0 is not None else (record.answered_at or record.created_at)
    # The timeline counts seconds of the customer's video; shift it onto the player's clock.
    customer_video = next((r for r in tracks if (r["participant"], r["kind"]) == ("customer", "video")), None)
    shift = round(customer_video["epoch"] - epoch) if customer_video and customer_video["epoch"] else 0
    timeline = [{**row, "second": row["second"] + shift} for row in await store.list_timeline(record.id)]
    chat = [{**c.to_json(), "t": round(c.created_at - epoch, 2)} for c in await store.list_chat(record.id)]
    data = record.to_json()
    rep = await store.get_user(record.rep_id) if record.rep_id else None
    labels = {c: label for c, label, _cat in request.app[SETTINGS].dispositions}
    data["rep"] = {"id": rep.id, "display_name": rep.display_name} if rep else None
    data["disposition_label"] = labels.get(record.disposition or "", record.disposition)
    await store.audit(user.id, "qa.view", record.id)
    return web.json_response(
        {
            "session": data,
            "media_epoch": iso(epoch),
            "player": recording_json(composed) if composed is not None else None,
            "recordings": [recording_json(r) for r in tracks],
            "chat": chat,
            "timeline": timeline,
            "flags": _flags(timeline),
            "notes": record.notes,
            "scorecard": await reviews.current_scorecard(),
            "reviews": (await reviews.list_reviews([record.id])).get(record.id, []),
        }
    )


async def add_review(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    record = await _session(request)
    if record.state in OPEN_STATES:
        raise ApiError(409, "conflict", "the call is still live")
    body = await read_json(request)
    reviews = request.app[REVIEWS]
    scorecard_id = body.get("scorecard_id")
    # A 64-bit database id: past that, SQLite's INTEGER overflows (a 500 before; found by make fuzz).
    if not isinstance(scorecard_id, int) or isinstance(scorecard_id, bool) or not 0 < scorecard_id < 2**63:
        scorecard_id = None
    scorecard = await reviews.get_scorecard(scorecard_id) if scorecard_id is not None else None
    if scorecard is None:
        raise ApiError(400, "bad_request", "scorecard_id: an existing scorecard")
    try:
        answers = validate_answers(scorecard["criteria"], body.get("answers"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    comments = optional_str(body, "comments", COMMENTS_MAX)
    score = score_answers(scorecard["criteria"], answers)
    review_id = await reviews.add_review(
        record.id, reviewer_id=user.id, scorecard_id=scorecard["id"], answers=answers, comments=comments, score=score
    )
    await request.app[STORE].audit(user.id, "qa.review", record.id, {"review_id": review_id, "score": score})
    saved = (await reviews.list_reviews([record.id]))[record.id]
    return web.json_response(next(r for r in saved if r["id"] == review_id), status=201)


async def recompose(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, REVIEW_ROLES)
    record = await _session(request)
    recording_id = await request.app[COMPOSER].enqueue(record.id)
    if recording_id is None:
        raise ApiError(409, "conflict", "nothing was recorded in this session, or composing is off")
    await request.app[STORE].audit(user.id, "qa.compose", record.id)
    return web.json_response({"id": recording_id, "state": "pending"}, status=202)


async def get_scorecard(request: web.Request) -> web.Response:
    await require_staff(request, REVIEW_ROLES)
    return web.json_response(await request.app[REVIEWS].current_scorecard())


async def put_scorecard(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, ("admin",))
    body = await read_json(request)
    try:
        criteria = validate_criteria(body.get("criteria"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    scorecard = await request.app[REVIEWS].create_scorecard(criteria, created_by=user.id)
    await request.app[STORE].audit(user.id, "qa.scorecard", str(scorecard["id"]))
    return web.json_response(scorecard, status=201)


# legal hold and erasure


async def legal_hold(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, ("supervisor", "admin"))
    record = await _session(request)
    body = await read_json(request)
    hold = body.get("hold")
    if not isinstance(hold, bool):
        raise ApiError(400, "bad_request", "hold: true or false")
    note = optional_str(body, "note", 200)
    await set_legal_hold(request.app[STORE], record.id, hold=hold, note=note, user_id=user.id)
    updated = await request.app[STORE].get_session(record.id)
    assert updated is not None
    return web.json_response(updated.to_json())


async def erase_one_session(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, ("admin",))
    record = await _session(request)
    try:
        report = await erase_session(
            request.app[STORE], request.app[SETTINGS].recordings_path, record.id, user_id=user.id
        )
    except ErasureRefused as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return web.json_response({"session_id": record.id, "erased": report.counts})


async def erase_customer(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, ("admin",))
    ref = request.match_info["customer_ref"]
    store = request.app[STORE]
    session_ids = await sessions_of_customer(store, ref) if len(ref) <= 128 else []
    if not session_ids:
        raise ApiError(404, "not_found", "no sessions for this customer")
    erased, refused = [], []
    for session_id in session_ids:
        try:
            await erase_session(store, request.app[SETTINGS].recordings_path, session_id, user_id=user.id)
            erased.append(session_id)
        except ErasureRefused as exc:
            refused.append({"session_id": session_id, "why": str(exc)})
    await store.audit(user.id, "customer.erase", ref, {"erased": len(erased), "refused": len(refused)})
    return web.json_response({"erased": erased, "refused": refused}, status=409 if refused and not erased else 200)


async def qa_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_CLIENT / "qa.html")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/qa", qa_page)
    app.router.add_get("/api/v1/dispositions", dispositions)
    app.router.add_post("/api/v1/sessions/{session_id}/wrapup", wrap_up)
    app.router.add_put("/api/v1/sessions/{session_id}/legal-hold", legal_hold)
    app.router.add_delete("/api/v1/sessions/{session_id}", erase_one_session)
    app.router.add_delete("/api/v1/customers/{customer_ref}", erase_customer)
    app.router.add_get("/api/v1/qa/sessions", qa_sessions)
    app.router.add_get("/api/v1/qa/sessions/{session_id}", qa_session)
    app.router.add_post("/api/v1/qa/sessions/{session_id}/reviews", add_review)
    app.router.add_post("/api/v1/qa/sessions/{session_id}/compose", recompose)
    app.router.add_get("/api/v1/qa/scorecard", get_scorecard)
    app.router.add_put("/api/v1/qa/scorecard", put_scorecard)
    app.router.add_get("/api/v1/qa/export.csv", qa_export)
