"""The short fuzzing run for CI, and the crashes ``make fuzz`` found, each pinned on its own.

``make fuzz`` (tests/fuzz/__main__.py) sends 10,000+ inputs to a server process; this sends a few hundred
to a server in this process, through the same harness, and holds it to the same rules: no 5xx, no error in
the server's log, and a bystander call that keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from server.api import WEB_CLIENT
from server.config import Settings
from server.keys import API_KEYS, SETTINGS
from server.openapi import document
from tests.conftest import Rapport, start_rapport
from tests.fuzz.harness import (
    Budget,
    Bystander,
    ErrorRecords,
    Target,
    exchange,
    provision,
    routes_of,
    run,
    static_files,
)

pytestmark = pytest.mark.fuzz

# A few hundred inputs: about half a minute, every route and every message type at least once.
SHORT = Budget(http=250, ws=120, sdp=50)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[Rapport, ErrorRecords]]:
    # Mutated offers should reach aiortc's parser, not the per-participant offer cap (tested on its own).
    rapport = await start_rapport(replace(settings, offers_per_minute=0))
    records = ErrorRecords()
    logging.getLogger().addHandler(records)
    try:
        yield rapport, records
    finally:
        logging.getLogger().removeHandler(records)
        await rapport.aclose()
        await rapport.http.close()
        await rapport.server.close()
        await asyncio.sleep(0)


@pytest.mark.webrtc
async def test_hostile_inputs_get_answers_not_crashes_while_a_bystander_call_flows(
    server: tuple[Rapport, ErrorRecords],
) -> None:
    rapport, records = server
    credentials = await provision(rapport.store, rapport.app[API_KEYS])
    doc = document(rapport.app[SETTINGS])
    bystander = Bystander(rapport.url, credentials.password)
    await bystander.start()
    try:
        records.take()  # setting up is not the fuzzer's doing
        target = Target(
            url=rapport.url,
            routes=routes_of(rapport.app, doc),
            doc=doc,
            static_files=static_files(WEB_CLIENT),
            credentials=credentials,
            errors=records.take,
        )
        report = await run(target, SHORT, bystander.frames)
        print(report.text())
    finally:
        await bystander.close()

    assert report.tally.total >= SHORT.total, report.text()
    unreached = [r.label for r in target.routes if report.tally.sent[r.label] == 0]
    assert not unreached, f"routes that got no input: {unreached}"
    assert not report.crashes, report.text()
    # The bystander's media kept flowing, both ways, through the run and after it.
    start, end, after = report.frames_at["start"], report.frames_at["end"], report.frames_at["after"]
    assert start[0] < end[0] < after[0] and start[1] < end[1] < after[1], report.frames_at


async def test_a_malformed_request_gets_400_and_one_info_line_not_an_error_with_traceback(
    server: tuple[Rapport, ErrorRecords], caplog: pytest.LogCaptureFixture
) -> None:
    """Found by make fuzz: aiohttp logged every request its parser rejects at ERROR, with a traceback."""
    rapport, records = server
    host, port = rapport.server.host, rapport.server.port
    assert port is not None
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    bad = (
        b"GET /api/v1/config HTTP/1.1\r\nHost: x\r\nX Junk: 1\r\n\r\n",  # a space in a header name
        b"GET /api/v1/config?a=b c HTTP/1.1\r\nHost: x\r\n\r\n",  # a raw space in the target
        b"POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        b"POST /api/v1/calls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    for request in bad:
        answer = await exchange(host, port, "127.0.0.1", request, half_close=False, head_only=False)
        assert answer.status == 400, (request, answer)
    assert records.take() == []
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == len(bad), [r.getMessage() for r in lines]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
    assert all(r.getMessage().startswith("bad request from 127.0.0.1 (400)") for r in lines)
    assert all("\n" not in r.getMessage() for r in lines)
