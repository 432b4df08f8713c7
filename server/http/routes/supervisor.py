"""Supervisors' routes: the live floor, reports by day or reason (JSON and CSV), and reps' routing.

Reports count what happened to customers (volumes, waits, handle times,
abandonment, ratings, the share of calls where the customer looked frustrated).
They never rank or score reps by their customers' emotions.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...calls.center import CALL_CENTER
from ...config import SETTINGS
from ...storage.store import STORE
from ..security import ApiError, read_json, require_staff
from .intake import query_date
from .sessions import ROW_ID, WEB_CLIENT

SUPERVISOR_ROLES = ("supervisor", "admin")
MAX_RANGE_S = 366 * 86_400
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


async def report_rows(request: web.Request) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    q = request.query
    group = q.get("group", "day")
    if group not in ("day", "reason"):
        raise ApiError(400, "bad_request", "group: day or reason")
    now = time.time()
    start = query_date(q.get("from"), "from") or now - 7 * 86_400
    end = query_date(q.get("to"), "to", end=True) or now
    if end <= start or end - start > MAX_RANGE_S:
        raise ApiError(400, "bad_request", "from/to: a range of one day to a year, from before to")
    rows = [dataclasses.asdict(r) for r in await request.app[STORE].report_sessions(start, end)]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = (
            datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d")
            if group == "day"
            else row["reason"] or "none"
        )
        groups[key].append(row)
    out = [{"key": key, **summarize(items)} for key, items in sorted(groups.items())]
    return group, out, summarize(rows)


async def reports(request: web.Request) -> web.Response:
    await require_staff(request, SUPERVISOR_ROLES)
    group, rows, totals = await report_rows(request)
    return web.json_response({"group": group, "rows": rows, "totals": totals})


async def reports_csv(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, SUPERVISOR_ROLES)
    group, rows, totals = await report_rows(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([group, *REPORT_FIELDS])
    for row in [*rows, {"key": "total", **totals}]:
        writer.writerow([row["key"], *("" if row[f] is None else row[f] for f in REPORT_FIELDS)])
    await request.app[STORE].audit(user.id, "reports.export", group)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="rapport-report-{group}.csv"'},
    )


async def floor(request: web.Request) -> web.Response:
    await require_staff(request, SUPERVISOR_ROLES)
    return web.json_response(request.app[CALL_CENTER].live_floor())


async def list_users(request: web.Request) -> web.Response:
    await require_staff(request, ("admin",))
    return web.json_response({"items": await request.app[STORE].list_users()})


async def set_routing(request: web.Request) -> web.Response:
    user, _csrf, _login = await require_staff(request, ("admin",))
    raw_id = request.match_info["user_id"]
    user_id = int(raw_id) if ROW_ID.fullmatch(raw_id) else None
    store = request.app[STORE]
    if user_id is None or await store.get_user(user_id) is None:
        raise ApiError(404, "not_found", "no such user")
    body = await read_json(request)
    settings = request.app[SETTINGS]
    known = {
        "skills": {code for code, _ in settings.reasons},
        "languages": {code for code, _n, _d in settings.languages},
    }
    values: dict[str, list[str]] = {}
    for name, allowed in known.items():
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or set(value) - allowed:
            raise ApiError(400, "bad_request", f"{name}: a list from {', '.join(sorted(allowed))}")
        values[name] = value
    await store.set_routing(user_id, values["skills"], values["languages"])
    request.app[CALL_CENTER].update_routing(user_id, frozenset(values["skills"]), frozenset(values["languages"]))
    await store.audit(user.id, "user.routing", str(user_id), values)
    updated = next(u for u in await store.list_users() if u["id"] == user_id)
    return web.json_response(updated)


async def supervisor_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_CLIENT / "supervisor.html")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/supervisor", supervisor_page)
    app.router.add_get("/api/v1/floor", floor)
    app.router.add_get("/api/v1/reports", reports)
    app.router.add_get("/api/v1/reports.csv", reports_csv)
    app.router.add_get("/api/v1/users", list_users)
    app.router.add_put("/api/v1/users/{user_id}/routing", set_routing)
