"""The short fuzzing run for CI, and the crashes ``make fuzz`` found, each pinned on its own.

``make fuzz`` (tests/fuzz/__main__.py) sends 10,000+ inputs to a server process; this sends a few hundred
to a server in this process, through the same harness, and holds it to the same rules: no 5xx, no error in
the server's log, and a bystander call that keeps flowing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import ClientConnectionResetError

from server.config import SETTINGS, Settings
from server.http.accesslog import quiet_client_errors
from server.http.openapi import document
from server.http.pages import WEB_CLIENT
from server.storage.api_keys import API_KEYS
from tests.fuzz.harness import (
    QUIET_WARNINGS,
    Budget,
    Bystander,
    ErrorRecords,
    Target,
    Wire,
    exchange,
    provision,
    routes_of,
    run,
    static_files,
)
from tests.support.clients import MediaClient, SignalingError
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.fuzz

# A few hundred inputs: about half a minute, every route and every message type at least once.
SHORT = Budget(http=250, ws=120, sdp=50)
BODY_TIMEOUT_S = 1.0


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[Rapport, ErrorRecords]]:
    # Mutated offers should reach aiortc's parser, not the per-participant offer cap (tested on its own); a
    # stalled body is cut off after a second rather than fifteen.
    rapport = await start_rapport(replace(settings, offers_per_minute=0, body_timeout_s=BODY_TIMEOUT_S))
    records = ErrorRecords()
    logging.getLogger().addHandler(records)
    try:
        yield rapport, records
    finally:
        logging.getLogger().removeHandler(records)
        await rapport.stop()
        await asyncio.sleep(0)


@pytest.mark.webrtc
@pytest.mark.filterwarnings(*(f"ignore:{message}" for message in QUIET_WARNINGS))
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
        answer = await exchange(host, port, "127.0.0.1", Wire((request,)))
        assert answer.status == 400, (request, answer)
    assert records.take() == []
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == len(bad), [r.getMessage() for r in lines]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
    assert all(r.getMessage().startswith("bad request from 127.0.0.1 (400)") for r in lines)
    assert all("\n" not in r.getMessage() for r in lines)


async def test_a_json_body_in_two_packets_is_read_to_its_end(server: tuple[Rapport, ErrorRecords]) -> None:
    """Found while fuzzing: read_json took the first packet of a body for all of it (400 "not valid JSON")."""
    rapport, records = server
    host, port = rapport.server.host, rapport.server.port
    assert port is not None
    body = b'{"reason": "order",' + b" " * 3000 + b'"name": "Ada"}'  # JSON's own whitespace makes it long
    head = f"POST /api/v1/calls HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    answer = await exchange(host, port, "127.0.0.1", Wire((head.encode() + body[:100], body[100:]), pause_s=0.2))
    assert answer.status == 201, answer
    assert json.loads(answer.body)["token"]
    assert records.take() == []


async def test_a_body_that_ends_early_stalls_or_breaks_its_chunks_is_a_400_not_a_500_or_a_hang(
    server: tuple[Rapport, ErrorRecords],
) -> None:
    """Found by make fuzz: a client leaving mid-body was a logged 500 ("internal error"); a broken chunk after
    the headers, or a body that never comes, held the handler for ever (aiohttp has no body timeout)."""
    rapport, records = server
    host, port = rapport.server.host, rapport.server.port
    assert port is not None
    head = f"POST /api/v1/calls HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    # Announces 100 bytes, sends 10, then closes its side: the server reads to an early end.
    gone = Wire(((head + "Content-Length: 100\r\n\r\n").encode() + b'{"reason":',), half_close=True)
    broken = Wire(((head + "Transfer-Encoding: chunked\r\n\r\n").encode(), b"zz\r\n{}\r\n0\r\n\r\n"))
    stalled = Wire(((head + "Content-Length: 100\r\n\r\n").encode() + b'{"reason":',))
    answers = await asyncio.wait_for(
        asyncio.gather(*(exchange(host, port, "127.0.0.1", wire) for wire in (gone, broken, stalled))),
        BODY_TIMEOUT_S + 5,
    )
    assert answers[0].status in (400, None), answers[0]  # the answer may find the client gone
    for answer in answers[1:]:
        assert answer.status == 400 and json.loads(answer.body)["error"]["code"] == "bad_request", answer
    await asyncio.sleep(0.2)
    assert records.take() == []


async def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400_and_one_info_line(
    server: tuple[Rapport, ErrorRecords], caplog: pytest.LogCaptureFixture
) -> None:
    """Found by make fuzz: "Content-Encoding: gzip" on bytes that are not was a logged 500 where the handler
    reads the body, and an ERROR with a traceback ("Unhandled exception") where it does not."""
    rapport, records = server
    host, port = rapport.server.host, rapport.server.port
    assert port is not None
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    junk = b"this is not gzip"
    answers = []
    for method, path in (("POST", "/api/v1/calls"), ("GET", "/api/v1/config")):
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
        head += f"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len(junk)}\r\n\r\n"
        answers.append(await exchange(host, port, "127.0.0.1", Wire((head.encode() + junk,))))
    posted, got = answers
    assert posted.status == 400 and json.loads(posted.body)["error"]["code"] == "bad_request", posted
    assert got.status == 200, got  # the config page never looks at the body
    await asyncio.sleep(0.2)
    assert records.take() == []
    assert any(r.getMessage().startswith("bad request from") for r in caplog.records if r.name == "aiohttp.server")


def test_a_client_gone_during_aiohttps_own_reply_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    """Found by make fuzz: "Expect: 100-continue" and a client that closed at once gave an ERROR with a traceback
    from aiohttp writing its "100 Continue". The race is too tight to stage; this is the record aiohttp writes."""
    quiet_client_errors()
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    try:
        raise ClientConnectionResetError("Cannot write to closing transport")
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.9")
    (record,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno == logging.INFO and record.exc_info is None
    assert record.getMessage().startswith("client 127.0.0.9 went away during the request")
    # A real failure inside aiohttp is still an error.
    caplog.clear()
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.9")
    (record,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno == logging.ERROR and record.exc_info is not None


async def test_numbers_past_what_the_database_or_the_calendar_holds_are_answers_not_500s(rapport: Rapport) -> None:
    """Found by make fuzz: an id past 64 bits overflowed SQLite's INTEGER (in a path, or a review's scorecard_id),
    and to=9999-12-31 has no next day; all were 500s."""
    await rapport.add_user("admin1", "admin")
    qa, qa_csrf = await rapport.staff_session("qa1")
    admin, admin_csrf = await rapport.staff_session("admin1")
    huge = str(2**64)
    for path in ("/api/v1/sessions", "/api/v1/qa/sessions"):
        async with qa.get(f"{rapport.url}{path}", params={"to": "9999-12-31", "from": "0001-01-01"}) as r:
            assert r.status == 200, (path, await r.text())
    async with qa.get(f"{rapport.url}/api/v1/recordings/{huge}/media") as r:
        assert r.status == 404, await r.text()
    routing = {"skills": ["order"], "languages": ["en"]}
    headers = {"X-CSRF-Token": admin_csrf}
    async with admin.put(f"{rapport.url}/api/v1/users/{huge}/routing", json=routing, headers=headers) as r:
        assert r.status == 404, await r.text()
    customer, call = await rapport.customer(reason="order")
    await customer.send({"type": "call.end"})
    for _ in range(100):
        record = await rapport.store.get_session(call["session_id"])
        if record is not None and record.state not in ("waiting", "active"):
            break
        await asyncio.sleep(0.05)
    review = {"scorecard_id": 2**64, "answers": {}}
    url = f"{rapport.url}/api/v1/qa/sessions/{call['session_id']}/reviews"
    async with qa.post(url, json=review, headers={"X-CSRF-Token": qa_csrf}) as r:
        assert r.status == 400 and "scorecard_id" in (await r.json())["error"]["message"], await r.text()


def _drop_lines(sdp: str, prefix: str, section: str | None = None) -> str:
    """``sdp`` without the lines starting with ``prefix`` (only in the ``section`` m-section, if given)."""
    out, current = [], None
    for line in sdp.splitlines():
        if line.startswith("m="):
            current = line[2:].split()[0]
        if line.startswith(prefix) and (section is None or current == section):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


OFFERS_AIORTC_CHOKES_ON = {
    # BUNDLE's first mid names no section: aiortc left the transceivers without a transport, then raised
    # AttributeError in its connect task ("Task exception was never retrieved") and again in close().
    "video section without a=mid": (lambda sdp: _drop_lines(sdp, "a=mid:", "video"), "a=mid"),
    "BUNDLE naming an unknown mid": (lambda sdp: sdp.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 7 1"), "BUNDLE"),
    # Accepted with an answer, then an AssertionError in aiortc's connect task once ICE was up.
    "no DTLS fingerprint": (lambda sdp: _drop_lines(sdp, "a=fingerprint:"), "fingerprint"),
}


@pytest.mark.webrtc
@pytest.mark.parametrize("case", sorted(OFFERS_AIORTC_CHOKES_ON))
async def test_an_offer_aiortc_would_choke_on_later_gets_bad_sdp_up_front_and_the_call_goes_on(
    rapport: Rapport, case: str
) -> None:
    """Found by make fuzz: offers that aiortc takes and then fails on in its own tasks."""
    mutate, says = OFFERS_AIORTC_CHOKES_ON[case]
    records = ErrorRecords()
    logging.getLogger().addHandler(records)
    try:
        rep = await rapport.rep("rep1")
        customer, call = await rapport.customer(reason="order")
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await customer.wait_for("call.accepted")
        media = MediaClient()
        rapport.media.append(media)
        offer = await media.offer()
        assert "a=group:BUNDLE 0 1" in offer and "a=fingerprint:" in offer and "a=mid:1" in offer
        with pytest.raises(SignalingError) as refused:
            await customer.request({"type": "offer", "sdp": mutate(offer)})
        assert refused.value.code == "bad_sdp"
        assert says in str(refused.value.message["message"])
        # The same participant's proper offer still works.
        await media.negotiate(customer)
        await asyncio.sleep(1.0)
        assert records.take() == []
    finally:
        logging.getLogger().removeHandler(records)
