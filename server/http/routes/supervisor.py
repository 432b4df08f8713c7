"""Supervisors' routes: the live floor, reports by day or reason (JSON and CSV), and reps' routing.

Reports count what happened to customers (volumes, waits, handle times,
abandonment, ratings, the share of calls where the customer looked frustrated).
They never rank or score reps by their customers' emotions.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...calls.centre_settings import CENTRE
from ...calls.desk import CALL_DESK
from ...storage import records
from ...storage.store import STORE
from ..api import CSV_EXPORT, Routes, respond_csv, staff, staff_user
from ..models.supervisor import (
    MAX_RANGE_S,
    REPORT_DEFAULT_DAYS,
    Floor,
    Report,
    ReportQuery,
    ReportRow,
    ReportTotals,
    SetRouting,
    StaffUser,
    StaffUserList,
    UserPath,
)
from ..pages import page_response
from ..security import ApiError
from .intake import day_start

routes = Routes(tag="Supervisor")
SUPERVISOR_ROLES = ("supervisor", "admin")
REPORT_FIELDS = (
    "calls",
    "answered",
    "abandoned",
    "abandonment_rate",
    "wait_p50_s",
    "wait_p90_s",
    "handle_avg_s",
    "rating_avg",
    "ratings",
    "flagged_share",
    "callbacks_requested",
    "callbacks_started",
    "callbacks_completed",
)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n)
    return ordered[min(rank, len(ordered)) - 1]


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in rows if r["answered_at"] is not None]
    abandoned = [r for r in rows if r["state"] == "abandoned"]
    waits = [r["answered_at"] - r["queued_at"] for r in answered]
    handles = [r["ended_at"] - r["answered_at"] for r in answered if r["ended_at"] is not None]
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
    with_cues = [r for r in answered if r["flag_count"] is not None]
    p50, p90 = percentile(waits, 0.5), percentile(waits, 0.9)
    return {
        "calls": len(rows),
        "answered": len(answered),
        "abandoned": len(abandoned),
        "abandonment_rate": round(len(abandoned) / len(rows), 4) if rows else None,
        "wait_p50_s": round(p50, 1) if p50 is not None else None,
        "wait_p90_s": round(p90, 1) if p90 is not None else None,
        "handle_avg_s": round(statistics.fmean(handles), 1) if handles else None,
        "rating_avg": round(statistics.fmean(ratings), 2) if ratings else None,
        "ratings": len(ratings),
        # Of the answered calls where the customer allowed cues, the share with at least one flag.
        "flagged_share": round(sum(1 for r in with_cues if r["flag_count"]) / len(with_cues), 4) if with_cues else None,
    }


async def report_rows(request: web.Request, query: ReportQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (one per day or reason) and the totals of the sessions created in the query's range."""
    now = time.time()
    start = day_start(query.from_)
    end = day_start(query.to, end=True)
    start = now - REPORT_DEFAULT_DAYS * 86_400 if start is None else start
    end = now if end is None else end
    if end <= start or end - start > MAX_RANGE_S:
        raise ApiError(400, "bad_request", "from/to: a range of one day to a year, from before to")
    rows = [dataclasses.asdict(r) for r in await request.app[STORE].report_sessions(start, end)]
    callbacks = await request.app[STORE].report_callbacks(start, end)

    def key_of(created_at: float, reason: str | None) -> str:
        if query.group == "day":
            return datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d")
        return reason or "none"

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[key_of(row["created_at"], row["reason"])].append(row)
    asked: dict[str, list[records.Callback]] = defaultdict(list)
    for callback in callbacks:
        asked[key_of(callback.created_at, callback.reason)].append(callback)
    out = [
        {"key": key, **summarize(groups.get(key, [])), **count_callbacks(asked.get(key, []))}
        for key in sorted(set(groups) | set(asked))
    ]
    return out, {**summarize(rows), **count_callbacks(callbacks)}


def count_callbacks(callbacks: list[records.Callback]) -> dict[str, int]:
    """Callbacks asked for (by the day or reason they were asked for), how many of them reps started and completed."""
    return {
        "callbacks_requested": len(callbacks),
        "callbacks_started": sum(1 for c in callbacks if c.started_at is not None),
        "callbacks_completed": sum(1 for c in callbacks if c.state == "completed"),
    }


@routes.get("/api/v1/reports", op="getReport", auth=staff(*SUPERVISOR_ROLES), answer="The rows and totals.")
async def reports(request: web.Request, *, query: ReportQuery) -> Report:
    """Reports by day or reason

    The range defaults to the last 7 days and may span one day to 366 days; to before from is 400.
    """
    # The docstring is the API's description: keep its numbers those of REPORT_DEFAULT_DAYS and MAX_RANGE_S.
    rows, totals = await report_rows(request, query)
    return Report(group=query.group, rows=ReportRow.all_of(rows), totals=ReportTotals.of(totals))


@routes.get("/api/v1/reports.csv", op="exportReport", auth=staff(*SUPERVISOR_ROLES), **CSV_EXPORT)
async def reports_csv(request: web.Request, *, query: ReportQuery) -> web.Response:
    """Reports as CSV

    The same rows as GET /api/v1/reports, the last row being the total. Audited.
    """
    rows, totals = await report_rows(request, query)
    lines = [[row["key"], *(row[f] for f in REPORT_FIELDS)] for row in [*rows, {"key": "total", **totals}]]
    await request.app[STORE].audit(staff_user(request).id, "reports.export", query.group)
    return respond_csv(f"rapport-report-{query.group}.csv", [query.group, *REPORT_FIELDS], lines)


@routes.get(
    "/api/v1/floor", op="getFloor", auth=staff(*SUPERVISOR_ROLES), answer="Queue, reps, live calls and wait estimates."
)
async def floor(request: web.Request) -> Floor:
    """The live floor"""
    return Floor.of(await request.app[CALL_DESK].live_floor())


# reps' routing

routing = routes.under("Routing")


@routing.get("/api/v1/users", op="listUsers", auth=staff("admin"), answer="The accounts.")
async def list_users(request: web.Request) -> StaffUserList:
    """Staff accounts with their routing"""
    return StaffUserList(items=StaffUser.all_of(u.to_json() for u in await request.app[STORE].list_users()))


@routing.put("/api/v1/users/{user_id}/routing", op="setRouting", auth=staff("admin"), answer="The account.")
async def set_routing(request: web.Request, *, path_params: UserPath, body: SetRouting) -> StaffUser:
    """Set a rep's skills and languages

    Empty lists (the default) mean any.
    """
    user_id, store = path_params.user_id, request.app[STORE]
    if await store.get_user(user_id) is None:
        raise ApiError(404, "not_found", "no such user")
    settings = request.app[CENTRE].current
    values = {"skills": body.skills, "languages": body.languages}
    known = {
        "skills": {code for code, _ in settings.reasons},
        "languages": {code for code, _n, _d in settings.languages},
    }
    for name, allowed in known.items():
        if set(values[name]) - allowed:
            raise ApiError(400, "bad_request", f"{name}: a list from {', '.join(sorted(allowed))}")
    await store.set_routing(user_id, body.skills, body.languages)
    await request.app[CALL_DESK].update_routing(user_id, frozenset(body.skills), frozenset(body.languages))
    await store.audit(staff_user(request).id, "user.routing", str(user_id), values)
    updated = next(u for u in await store.list_users() if u.id == user_id)
    return StaffUser.of(updated.to_json())


async def supervisor_page(request: web.Request) -> web.Response:
    return page_response(request, "supervisor")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/supervisor", supervisor_page)
    routes.setup(app)
