"""HTTP routes for wrap-up, QA review, legal hold and erasure (see docs/api.md)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from ...calls.centre_settings import CENTRE
from ...calls.desk import CALL_DESK
from ...calls.views import staff_file_url
from ...config import SETTINGS
from ...recording.composer import COMPOSED_PARTICIPANT, COMPOSER, track_offsets
from ...recording.retention import ErasureRefused, erase_session, sessions_of_customer, set_legal_hold
from ...storage.records import SessionEvent, SessionRecord, iso
from ...storage.reviews import REVIEWS, SessionFilter, score_answers, validate_answers
from ...storage.sessions import OPEN_STATES
from ...storage.store import STORE
from ..api import CSV_EXPORT, Answer, Routes, respond, respond_csv, staff, staff_user
from ..models.common import SessionPath, UserRef
from ..models.qa import (
    AddReview,
    ComposeJob,
    CustomerErasure,
    CustomerPath,
    Disposition,
    DispositionList,
    ErasureReport,
    LegalHold,
    PutScorecard,
    QaFilters,
    QaList,
    QaListQuery,
    QaRow,
    RefusedErasure,
    Review,
    ReviewBundle,
    Scorecard,
    WrapUp,
)
from ..models.sessions import Session
from ..pages import page_response
from ..security import ApiError
from .intake import clean, day_start, validate_reason
from .sessions import REVIEWERS, file_json, recording_json

routes = Routes(tag="QA")
EXPORT_ROWS = 10_000


async def _session(request: web.Request, session_id: str) -> SessionRecord:
    record = await request.app[STORE].get_session(session_id)
    if record is None or record.erased_at is not None:
        raise ApiError(404, "not_found", "no such session")
    return record


# wrap-up

wrapup = routes.under("Wrap-up")


@wrapup.get("/api/v1/dispositions", op="listDispositions", auth=staff())
async def dispositions(request: web.Request) -> DispositionList:
    """The wrap-up outcome codes"""
    return DispositionList(
        items=[
            Disposition(code=c, label=label, category=cat) for c, label, cat in request.app[CENTRE].current.dispositions
        ]
    )


@wrapup.post("/api/v1/sessions/{session_id}/wrapup", op="wrapUp", auth=staff(), answer="The session.", errors=(409,))
async def wrap_up(request: web.Request, *, path_params: SessionPath, body: WrapUp) -> Session:
    """Save the outcome and notes of a call

    The rep who took the call; supervisor and admin may correct any. A session that is not yours is 404; a live
    call is 409.
    """
    user = staff_user(request)
    record = await _session(request, path_params.session_id)
    if record.rep_id != user.id and user.role not in ("supervisor", "admin"):
        raise ApiError(404, "not_found", "no such session")  # the same answer as for a foreign id
    if record.state in OPEN_STATES:
        raise ApiError(409, "conflict", "the call is still live: end it first")
    codes = {c for c, _label, _cat in request.app[CENTRE].current.dispositions}
    if body.disposition not in codes:
        raise ApiError(400, "bad_request", f"disposition: one of {', '.join(sorted(codes))}")
    store = request.app[STORE]
    await store.save_wrapup(record.id, disposition=body.disposition, notes=body.notes.strip(), user_id=user.id)
    if record.rep_id == user.id:
        await request.app[CALL_DESK].wrapped_up(user.id, record.id)
    updated = await store.get_session(record.id)
    assert updated is not None
    return Session.of(updated.to_json())


# QA list and export


def session_filter(request: web.Request, query: QaFilters, *, limit: int) -> SessionFilter:
    return SessionFilter(
        from_ts=day_start(query.from_),
        to_ts=day_start(query.to, end=True),
        rep_id=query.rep_id,
        reason=validate_reason(request, query.reason),
        outcome=query.outcome,
        min_duration_s=query.min_duration_s,
        max_duration_s=query.max_duration_s,
        min_frustration=query.min_frustration,
        flagged=query.flagged,
        qa_status=query.qa_status,
        limit=limit,
    )


@routes.get("/api/v1/qa/sessions", op="listQaSessions", auth=REVIEWERS)
async def qa_sessions(request: web.Request, *, query: QaListQuery) -> QaList:
    """Closed sessions for QA, with filters

    Newest first; erased sessions are left out.
    """
    reviews = request.app[REVIEWS]
    rows = await reviews.list_sessions(session_filter(request, query, limit=query.limit))
    reps = await reviews.staff_with_calls()
    return QaList(items=QaRow.all_of(r.to_json() for r in rows), reps=UserRef.all_of(r.to_json() for r in reps))


CSV_COLUMNS = (
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
)


@routes.get("/api/v1/qa/export.csv", op="exportQaSessions", auth=REVIEWERS, **CSV_EXPORT)
async def qa_export(request: web.Request, *, query: QaFilters) -> web.Response:
    """The QA list as CSV

    The same filters (up to 10,000 rows); one row per session with its latest review and one column per
    criterion. Audited.
    """
    reviews = request.app[REVIEWS]
    rows = await reviews.list_sessions(session_filter(request, query, limit=EXPORT_ROWS))
    scorecard = await reviews.current_scorecard()
    criteria = scorecard.criteria if scorecard else []
    lines = []
    for r in rows:
        review = r.review
        answers = review.answers if review else {}
        lines.append(
            (
                r.session_id,
                iso(r.created_at),
                iso(r.answered_at),
                iso(r.ended_at),
                r.duration_s,
                r.reason,
                r.customer_name,
                r.rep_name if r.rep_id else None,
                r.state,
                r.disposition,
                r.notes,
                r.peak_frustration,
                r.flag_count,
                "yes" if r.recorded else "no",
                r.qa_status,
                r.score,
                review.reviewer_name if review else None,
                iso(review.created_at) if review else None,
                review.comments if review else None,
                *[answers.get(c["id"]) for c in criteria],
            )
        )
    await request.app[STORE].audit(staff_user(request).id, "qa.export", "sessions", {"rows": len(rows)})
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    header = [*CSV_COLUMNS, *[f"criterion:{c['id']}" for c in criteria]]
    return respond_csv(f"rapport-qa-{stamp}.csv", header, lines)


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


# Session events (server/calls/assist.py) as the QA timeline's assist marks.
ASSIST_MARKS = {
    "assist.listen": "listen",
    "assist.whisper": "whisper",
    "assist.barge": "barge",
    "assist.left": "left",
    "assist.take_over": "take_over",
    "help.asked": "help_asked",
    "help.closed": "help_closed",
}


def _assist(events: list[SessionEvent], epoch: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The supervisor's steps and the rep's asks for help, and the text whispers, on the player's clock."""
    marks, whispers = [], []
    for event in events:
        detail = event.detail or {}
        by = detail.get("by") if isinstance(detail.get("by"), str) else None
        t = round(event.at - epoch, 2)
        if event.kind in ASSIST_MARKS:
            marks.append({"t": t, "kind": ASSIST_MARKS[event.kind], "by": by})
        elif event.kind == "assist.whisper_text" and isinstance(detail.get("text"), str):
            whispers.append({"t": t, "by": by, "text": detail["text"]})
    return marks, whispers


@routes.get("/api/v1/qa/sessions/{session_id}", op="getQaSession", auth=REVIEWERS, answer="The bundle.")
async def qa_session(request: web.Request, *, path_params: SessionPath) -> ReviewBundle:
    """The review bundle of one session

    Session, player file, tracks, chat and emotion timeline on one clock, flags, scorecard and reviews. Audited.
    """
    record = await _session(request, path_params.session_id)
    store, reviews = request.app[STORE], request.app[REVIEWS]
    rows = await store.list_recordings(record.id)
    tracks = [r for r in rows if r.participant != COMPOSED_PARTICIPANT and r.state != "deleted"]
    composed = next((r for r in rows if r.participant == COMPOSED_PARTICIPANT and r.state != "deleted"), None)
    t0, _offsets = track_offsets(tracks)
    if composed is not None and composed.epoch is not None:
        t0 = composed.epoch
    epoch = t0 if t0 is not None else (record.answered_at or record.created_at)
    # The timeline counts seconds of the customer's video; shift it onto the player's clock.
    customer_video = next((r for r in tracks if (r.participant, r.kind) == ("customer", "video")), None)
    shift = round(customer_video.epoch - epoch) if customer_video and customer_video.epoch else 0
    timeline = [{**row.to_json(), "second": row.second + shift} for row in await store.list_timeline(record.id)]
    chat = [{**c.to_json(), "t": round(c.created_at - epoch, 2)} for c in await store.list_chat(record.id)]
    stored_files = await store.list_files(record.id)
    files = [{**file_json(f, staff_file_url(f)), "t": round(f.created_at - epoch, 2)} for f in stored_files]
    marks, whispers = _assist(await store.list_events(record.id), epoch)
    data = record.to_json()
    rep = await store.get_user(record.rep_id) if record.rep_id else None
    labels = {c: label for c, label, _cat in request.app[CENTRE].current.dispositions}
    data["rep"] = {"id": rep.id, "display_name": rep.display_name} if rep else None
    data["disposition_label"] = labels.get(record.disposition or "", record.disposition)
    scorecard = await reviews.current_scorecard()
    await store.audit(staff_user(request).id, "qa.view", record.id)
    return ReviewBundle.of(
        {
            "session": data,
            "media_epoch": iso(epoch),
            "player": recording_json(composed) if composed is not None else None,
            "recordings": [recording_json(r) for r in tracks],
            "chat": chat,
            "files": files,
            "timeline": timeline,
            "flags": _flags(timeline),
            "assist": marks,
            "whispers": whispers,
            "notes": record.notes,
            "scorecard": scorecard.to_json() if scorecard else None,
            "reviews": [r.to_json() for r in (await reviews.list_reviews([record.id])).get(record.id, [])],
        }
    )


@routes.post(
    "/api/v1/qa/sessions/{session_id}/reviews",
    op="addReview",
    auth=REVIEWERS,
    status=201,
    answer="The review.",
    errors=(409,),
)
async def add_review(request: web.Request, *, path_params: SessionPath, body: AddReview) -> Review:
    """Review a session against a scorecard

    Every criterion must be answered: scale 1-5, yesno true or false. A live call is 409.
    """
    user = staff_user(request)
    record = await _session(request, path_params.session_id)
    if record.state in OPEN_STATES:
        raise ApiError(409, "conflict", "the call is still live")
    reviews = request.app[REVIEWS]
    scorecard = await reviews.get_scorecard(body.scorecard_id)
    if scorecard is None:
        raise ApiError(400, "bad_request", "scorecard_id: an existing scorecard")
    try:
        answers = validate_answers(scorecard.criteria, body.answers)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    score = score_answers(scorecard.criteria, answers)
    review_id = await reviews.add_review(
        record.id,
        reviewer_id=user.id,
        scorecard_id=scorecard.id,
        answers=answers,
        comments=clean(body.comments),
        score=score,
    )
    await request.app[STORE].audit(user.id, "qa.review", record.id, {"review_id": review_id, "score": score})
    saved = (await reviews.list_reviews([record.id]))[record.id]
    return Review.of(next(r for r in saved if r.id == review_id).to_json())


@routes.post(
    "/api/v1/qa/sessions/{session_id}/compose",
    op="composeSession",
    auth=REVIEWERS,
    status=202,
    answer="Queued.",
    errors=(409,),
)
async def recompose(request: web.Request, *, path_params: SessionPath) -> ComposeJob:
    """Queue the side-by-side QA file again

    For example after a failure. 409 when nothing was recorded or composing is off.
    """
    record = await _session(request, path_params.session_id)
    recording_id = await request.app[COMPOSER].enqueue(record.id)
    if recording_id is None:
        raise ApiError(409, "conflict", "nothing was recorded in this session, or composing is off")
    await request.app[STORE].audit(staff_user(request).id, "qa.compose", record.id)
    return ComposeJob(id=recording_id, state="pending")


@routes.get(
    "/api/v1/qa/scorecard",
    op="getScorecard",
    auth=REVIEWERS,
    response=Scorecard | None,
    answer="The newest version of the rubric (null before the first).",
)
async def get_scorecard(request: web.Request) -> Scorecard | web.Response:
    """The current scorecard"""
    scorecard = await request.app[REVIEWS].current_scorecard()
    if scorecard is None:
        return respond(None)  # a table answer of None would be an empty body, not JSON null
    return Scorecard.of(scorecard.to_json())


@routes.put("/api/v1/qa/scorecard", op="putScorecard", auth=staff("admin"), status=201, answer="The new version.")
async def put_scorecard(request: web.Request, *, body: PutScorecard) -> Scorecard:
    """Publish a new scorecard version"""
    user = staff_user(request)
    criteria = [msgspec.structs.asdict(c) for c in body.criteria]
    scorecard = await request.app[REVIEWS].create_scorecard(criteria, created_by=user.id)
    await request.app[STORE].audit(user.id, "qa.scorecard", str(scorecard.id))
    return Scorecard.of(scorecard.to_json())


# legal hold and erasure

retention = routes.under("Retention")


@retention.put(
    "/api/v1/sessions/{session_id}/legal-hold",
    op="setLegalHold",
    auth=staff("supervisor", "admin"),
    answer="The session.",
)
async def legal_hold(request: web.Request, *, path_params: SessionPath, body: LegalHold) -> Session:
    """Put a session on legal hold, or release it

    Held sessions are never deleted by retention or erasure.
    """
    record = await _session(request, path_params.session_id)
    store = request.app[STORE]
    await set_legal_hold(store, record.id, hold=body.hold, note=clean(body.note), user_id=staff_user(request).id)
    updated = await store.get_session(record.id)
    assert updated is not None
    return Session.of(updated.to_json())


@retention.delete(
    "/api/v1/sessions/{session_id}", op="eraseSession", auth=staff("admin"), answer="What was erased.", errors=(409,)
)
async def erase_one_session(request: web.Request, *, path_params: SessionPath) -> ErasureReport:
    """Erase a session's personal data

    Removes its media, chat, emotion timeline, notes and reviews; the row stays, stripped, so reports still add
    up. 409 while live or on legal hold.
    """
    record = await _session(request, path_params.session_id)
    try:
        report = await erase_session(
            request.app[STORE], request.app[SETTINGS].recordings_path, record.id, user_id=staff_user(request).id
        )
    except ErasureRefused as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return ErasureReport.of({"session_id": record.id, "erased": report.counts})


@retention.delete(
    "/api/v1/customers/{customer_ref}",
    op="eraseCustomer",
    auth=staff("admin"),
    response=CustomerErasure,
    answer="What was erased and what was kept.",
    also={409: Answer("Every session was refused.", model=CustomerErasure)},
)
async def erase_customer(request: web.Request, *, path_params: CustomerPath) -> web.Response:
    """Erase every session of one customer

    As DELETE /api/v1/sessions/{session_id} for each session with this customer_ref. When every session is
    refused (live or on hold) the answer is 409 with the same body.
    """
    user, ref, store = staff_user(request), path_params.customer_ref, request.app[STORE]
    session_ids = await sessions_of_customer(store, ref)
    if not session_ids:
        raise ApiError(404, "not_found", "no sessions for this customer")
    erased: list[str] = []
    refused: list[RefusedErasure] = []
    for session_id in session_ids:
        try:
            await erase_session(store, request.app[SETTINGS].recordings_path, session_id, user_id=user.id)
            erased.append(session_id)
        except ErasureRefused as exc:
            refused.append(RefusedErasure(session_id=session_id, why=str(exc)))
    await store.audit(user.id, "customer.erase", ref, {"erased": len(erased), "refused": len(refused)})
    answer = CustomerErasure(erased=erased, refused=refused)
    return respond(answer, status=409 if refused and not erased else 200)


async def qa_page(request: web.Request) -> web.Response:
    return page_response(request, "qa")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/qa", qa_page)
    routes.setup(app)
