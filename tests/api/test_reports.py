"""Supervisor reports and the live floor: the figures add up, and nothing scores reps by emotions."""

from __future__ import annotations

import csv
import io

from sqlalchemy import update

from server.http.routes.supervisor import percentile, summarize
from server.storage import schema
from tests.support.server import BOTH_DATABASES, Rapport

# Every test here that runs a server runs it on SQLite and on PostgreSQL (tests/support/server.py).
ON_DATABASES = BOTH_DATABASES


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.0


def test_a_summary_counts_waits_handles_abandonment_ratings_and_flags() -> None:
    rows = [
        {"queued_at": 0, "answered_at": 10, "ended_at": 70, "state": "ended", "rating": 5, "flag_count": 0},
        {"queued_at": 0, "answered_at": 30, "ended_at": 150, "state": "ended", "rating": 3, "flag_count": 2},
        {"queued_at": 0, "answered_at": None, "ended_at": 20, "state": "abandoned", "rating": None, "flag_count": None},
        {"queued_at": 0, "answered_at": 50, "ended_at": 80, "state": "ended", "rating": None, "flag_count": None},
    ]
    s = summarize(rows)
    assert (s["calls"], s["answered"], s["abandoned"]) == (4, 3, 1)
    assert s["abandonment_rate"] == 0.25 and s["wait_p50_s"] == 30 and s["wait_p90_s"] == 50
    assert s["handle_avg_s"] == round((60 + 120 + 30) / 3, 1) and s["rating_avg"] == 4 and s["ratings"] == 2
    assert s["flagged_share"] == 0.5, "of the calls where the customer allowed cues"


async def test_reports_by_reason_and_csv_and_the_live_floor(rapport: Rapport) -> None:
    rep = await rapport.rep("rep1")
    _c1, answered = await rapport.customer(reason="complaint")
    await rep.request({"type": "call.accept", "session_id": answered["session_id"]})
    _c2, waiting = await rapport.customer(reason="order")
    await rapport.add_user("sup1", "supervisor")
    sup, _csrf = await rapport.staff_session("sup1")

    async with sup.get(f"{rapport.url}/api/v1/floor") as r:
        floor = await r.json()
    assert [q["session_id"] for q in floor["queue"]] == [waiting["session_id"]]
    assert [c["session_id"] for c in floor["calls"]] == [answered["session_id"]]
    assert floor["calls"][0]["customer_frustration"] is None, "no cues: the customer's, when there are"
    assert floor["reps"][0]["status"] == "busy" and "frustration" not in str(floor["reps"])

    async with rapport.store.engine.begin() as conn:
        await conn.execute(
            update(schema.support_sessions)
            .where(schema.support_sessions.c.id == answered["session_id"])
            .values(flag_count=1, rating=2)
        )
    async with sup.get(f"{rapport.url}/api/v1/reports?group=reason") as r:
        report = await r.json()
    by_reason = {row["key"]: row for row in report["rows"]}
    assert by_reason["complaint"]["answered"] == 1 and by_reason["complaint"]["flagged_share"] == 1.0
    assert by_reason["order"]["answered"] == 0 and report["totals"]["calls"] == 2
    assert all("rep" not in key for row in report["rows"] for key in row), "no per-rep figures"

    async with sup.get(f"{rapport.url}/api/v1/reports.csv?group=day") as r:
        rows = list(csv.reader(io.StringIO(await r.text())))
    assert rows[0][:3] == ["day", "calls", "answered"] and rows[-1][0] == "total" and rows[-1][1] == "2"
    for bad in ("?group=rep", "?from=2026-02-30", "?from=2026-01-10&to=2026-01-01", "?from=2020-01-01&to=2026-01-01"):
        async with sup.get(f"{rapport.url}/api/v1/reports{bad}") as r:
            assert r.status == 400, bad
