"""/metrics from prometheus_client: bounded labels on a busy server, histograms, and a media worker's transit."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.config import Settings
from server.metrics import ENDED_STATES, ERROR_CODES, REP_STATUSES, SIDES
from server.signalling.endpoint import HANDLERS
from tests.support.clients import CUSTOMER, REP, MediaClient, SignalingClient, SignalingError
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.webrtc

# Every label a sample may carry, and the fixed set its value comes from (``le`` is a bucket bound).
BOUNDED: dict[str, frozenset[str]] = {
    "type": frozenset({*HANDLERS, "other"}),
    "code": frozenset({*ERROR_CODES, "other"}),
    "where": frozenset({"customer", "accept"}),
    "worker": frozenset({"0"}),
    "path": frozenset({"forward", "transcode"}),
    "status": frozenset(REP_STATUSES),
    "from": frozenset(SIDES),
    "to": frozenset(SIDES),
    "state": frozenset({*ENDED_STATES, "other"}),
    "process": frozenset({"front", "worker 0"}),
}


async def scrape(rapport: Rapport) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with rapport.http.get(f"{rapport.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def live_call(rapport: Rapport) -> tuple[SignalingClient, SignalingClient, MediaClient, str]:
    rep, customer, call, cm, rm = await rapport.media_call()
    await rm.wait_frames("video", 30)
    await rm.wait_to_see_and_hear(CUSTOMER)
    await cm.wait_to_see_and_hear(REP)
    return rep, customer, rm, str(call["session_id"])


async def test_a_busy_server_labels_samples_only_from_bounded_sets_and_adds_up_its_workers(settings: Settings) -> None:
    # Media in a worker process: its frame transit reaches the front door's histogram over the pipe.
    rapport = await start_rapport(replace(settings, media_workers=1))
    try:
        await rapport.add_user("rep1")
        rep, customer, rep_media, session_id = await live_call(rapport)
        # Hostile and wrong messages: a type made of the session id must not become a label.
        await customer.send_raw("{not json")
        await customer.send({"type": f"evil-{session_id}", "id": "e1"})
        with pytest.raises(SignalingError):
            await customer.request({"type": "call.accept", "session_id": session_id})
        await customer.wait_for(lambda m: m.get("reply_to") == "e1")
        await rep.request({"type": "ping"})
        await asyncio.sleep(2.5)  # the worker reports its transit once a second

        async with rapport.http.get(f"{rapport.url}/metrics") as r:
            text = await r.text()
        assert session_id not in text
        samples = await scrape(rapport)
        for name, labels in samples:
            for label, label_value in labels:
                if label == "le":
                    float(label_value)  # a bucket bound, "+Inf" included
                    continue
                assert label in BOUNDED, f"{name} has an unbounded label {label}={label_value!r}"
                assert label_value in BOUNDED[label], f"{name}{{{label}={label_value!r}}} is not from a fixed set"

        timed = value(samples, "rapport_transit_seconds_count")
        assert timed >= 30, "the worker's frames were not added to the front door's transit histogram"
        assert value(samples, "rapport_transit_seconds_bucket", le="+Inf") == timed
        # The rep's accept and the customer's forbidden one: both are handled call.accept messages.
        assert value(samples, "rapport_signalling_seconds_count", type="call.accept") == 2
        assert value(samples, "rapport_signalling_seconds_count", type="ping") >= 1
        assert value(samples, "rapport_signalling_seconds_count", type="other") == 2  # bad JSON, unknown type
        assert value(samples, "rapport_signalling_errors_total", code="bad_json") == 1
        assert value(samples, "rapport_signalling_errors_total", code="unknown_type") == 1
        assert value(samples, "rapport_signalling_errors_total", code="forbidden") == 1
        assert value(samples, "rapport_calls_answered_total") == 1
        assert value(samples, "rapport_reps", status="busy") == 1
        assert value(samples, "rapport_calls", worker="0", path="forward") == 1
        # Asyncio tasks per process: this one's, and the worker's from its last stats report (bench/soak.py).
        assert value(samples, "rapport_asyncio_tasks", process="front") > 0
        assert value(samples, "rapport_asyncio_tasks", process="worker 0") > 0
        frames_to_rep = value(samples, "rapport_frames_out_total", to="rep")
        assert frames_to_rep > 0 and value(samples, "rapport_frames_in_total", **{"from": "customer"}) > 0

        # The call ends: its frames stay counted, and the gauges go back to idle.
        await rep.request({"type": "call.end"})
        await customer.wait_for("call.ended")
        after = await scrape(rapport)
        assert value(after, "rapport_frames_out_total", to="rep") >= frames_to_rep
        assert value(after, "rapport_calls_ended_total", state="ended") == 1
        assert value(after, "rapport_calls", worker="0", path="forward") == 0
        assert value(after, "rapport_reps", status="wrap_up") == 1
        assert value(after, "rapport_transit_seconds_count") >= timed
        assert rep_media.frames("video") > 0
    finally:
        await rapport.aclose()
        await rapport.http.close()
        await rapport.server.close()


async def test_two_apps_in_one_process_keep_their_own_metrics(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = await start_rapport(settings)
    second = await start_rapport(replace(settings, data_dir=tmp_path_factory.mktemp("second")))
    try:
        with pytest.raises(SignalingError):
            await (await first.customer())[0].request({"type": "call.accept", "session_id": "x"})
        one, other = await scrape(first), await scrape(second)
        assert value(one, "rapport_signalling_errors_total", code="forbidden") == 1
        assert value(other, "rapport_signalling_errors_total", code="forbidden") == 0
    finally:
        for rapport in (first, second):
            await rapport.aclose()
            await rapport.http.close()
            await rapport.server.close()
