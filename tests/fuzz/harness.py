"""The fuzzing run: personas, three lanes of hostile inputs, a bystander call, and what counts as a crash.

A crash is any of:

* an HTTP answer of 5xx, except the documented 503s (``all_lines_busy``, ``queue_full``, ``unavailable``);
* no HTTP answer within ``HANG_S`` (the server closing a malformed request without an answer is fine);
* a WebSocket ``error`` with code ``internal``, or a socket closed with 1011;
* no reply to an offer within ``HANG_S``;
* any server log record at ERROR or above (``log.exception`` of an "internal error", "Task exception was never
  retrieved", "Error handling request", a refused customer message), or a traceback written outside a record.

The same code drives an in-process server (tests/fuzz/test_fuzz.py) and a server process (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import faulthandler
import itertools
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis.strategies import SearchStrategy
from yarl import URL

from server.http.apikeys import SCOPES
from server.http.auth import hash_password
from server.storage.api_keys import ApiKeyStore
from server.storage.store import Store
from tests.fuzz.inputs import (
    CHROME_OFFER,
    STAFF,
    HttpInput,
    Known,
    Route,
    SdpInput,
    WsInput,
    http_inputs,
    sdp_inputs,
    ws_inputs,
    ws_schemas,
)
from tests.support.clients import MediaClient, SignalingClient, SignalingError, login, welcomed

log = logging.getLogger("fuzz")

# Harmless here: hypothesis runs in a thread while aiortc (in the loop's thread) uses the random module, and
# the strategies' reprs are big because they hold whole SDP offers and header lists.
QUIET_WARNINGS = ("Do not use the `random` module inside strategies", "Generating overly large repr")

HANG_S = 20.0
ALLOWED_503 = frozenset({"all_lines_busy", "queue_full", "unavailable"})
HTTP_WORKERS = 4
WS_SEND_PER_S = 12.0  # under the server's per-socket rate (20/s), so inputs reach the handlers
RESPONSE_CAP = 256 * 1024
STUCK_S = 60.0
BATCH = 25  # examples per hypothesis run

# Each kind of client comes from its own loopback address, so per-address limits hit by the fuzzer (calls,
# logins) do not lock out the personas or the bystander.
FUZZ_SOURCES = ("127.0.0.1", "127.0.0.10", "127.0.0.11", "127.0.0.12")
STAFF_SOURCE = "127.0.0.5"
CUSTOMER_SOURCES = ("127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9")
BYSTANDER_SOURCE = "127.0.0.3"

FUZZ_USERS = {"rep": "fuzz-rep", "qa": "fuzz-qa", "supervisor": "fuzz-supervisor", "admin": "fuzz-admin"}
SDP_REP = "fuzz-sdp-rep"
BYSTANDER_REP = "bystander-rep"


# --- what the server declares ---


def routes_of(app: web.Application, doc: Mapping[str, Any]) -> list[Route]:
    """Every route of the app's router (HEAD twins left out), with its OpenAPI operation where there is one."""
    routes: list[Route] = []
    for resource in app.router.resources():
        info = resource.get_info()
        if "prefix" in info:  # add_static
            routes.append(Route("GET", str(info["prefix"]), None, static=True))
            continue
        path = str(info.get("formatter") or info.get("path") or resource.canonical)
        for route in resource:
            if route.method == "HEAD":
                continue
            operation = doc.get("paths", {}).get(path, {}).get(route.method.lower())
            routes.append(Route(route.method, path, operation))
    return routes


def static_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:200]


# --- findings ---


@dataclass
class Finding:
    kind: str
    target: str
    detail: str
    evidence: str

    @property
    def signature(self) -> str:
        # One crash found a hundred times is one crash: strip ids, numbers and references.
        first = self.detail.splitlines()[0] if self.detail else ""
        return re.sub(r"[0-9a-f]{8,}|\d+", "#", f"{self.kind}|{self.target}|{first}")[:300]


@dataclass
class Tally:
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: list[Finding] = field(default_factory=list)
    # The last inputs of each lane: a log record cannot say which input caused it, only when it came.
    recent: dict[str, collections.deque[str]] = field(
        default_factory=lambda: collections.defaultdict(lambda: collections.deque(maxlen=3))
    )

    def latest(self) -> str:
        return "\n        ".join(f"[{lane}] {text}" for lane, texts in self.recent.items() for text in texts)

    def crash(self, kind: str, target: str, detail: str, evidence: str) -> None:
        self.findings.append(Finding(kind, target, detail, evidence))
        log.error("CRASH %s on %s: %s\n  input: %s", kind, target, detail[:500], evidence[:800])

    def distinct(self) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.signature, []).append(f)
        return groups

    @property
    def total(self) -> int:
        return sum(self.sent.values())


# --- the server's log ---


class ErrorRecords(logging.Handler):
    """Log records at ERROR and above, with their tracebacks: for a server in this process."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[str] = []
        self._taken = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == log.name:
            return  # the fuzzer's own crash reports
        self.records.append(self.format(record))

    def take(self) -> list[str]:
        new = self.records[self._taken :]
        self._taken = len(self.records)
        return new


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


class StderrRecords:
    """The same, read from a server process's stderr (``%(asctime)s %(levelname)s ...`` lines)."""

    def __init__(self) -> None:
        self.records: list[str] = []
        self._taken = 0
        self._current: list[str] | None = None
        self._current_is_error = False
        self.lines = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        match = LOG_LINE.match(line)
        if match:
            self._flush()
            self._current = [line]
            self._current_is_error = match.group(1) in ("ERROR", "CRITICAL")
            return
        if self._current is None:
            self._current = [line]
            self._current_is_error = False
        else:
            self._current.append(line)
        # A traceback printed outside a record ("Exception ignored in", a thread's excepthook) is one too.
        if line.startswith(("Traceback (most recent call last)", "Exception ignored", "Task exception")):
            self._current_is_error = True

    def _flush(self) -> None:
        if self._current is not None and self._current_is_error:
            self.records.append("\n".join(self._current))
        self._current = None
        self._current_is_error = False

    def take(self) -> list[str]:
        new = self.records[self._taken :]
        self._taken = len(self.records)
        return new

    def close(self) -> None:
        self._flush()


# --- accounts and personas ---


@dataclass
class Credentials:
    password: str
    api_key: str


async def provision(store: Store, keys: ApiKeyStore) -> Credentials:
    """The fuzzer's staff accounts (one per role, one rep for the SDP call, one for the bystander) and an API key."""
    password = secrets.token_urlsafe(18)
    digest = hash_password(password)
    for role, name in FUZZ_USERS.items():
        await store.create_user(name, name.title(), role, digest)
    await store.create_user(SDP_REP, "Sdp Rep", "rep", digest)
    await store.create_user(BYSTANDER_REP, "Bystander Rep", "rep", digest)
    _key, secret = await keys.create("fuzz", tuple(SCOPES))
    return Credentials(password, secret)


def http_session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=True),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def accepted_customer(
    http: aiohttp.ClientSession, url: str, call: Mapping[str, Any], rep: SignalingClient
) -> SignalingClient:
    """The customer's socket on ``call`` once it has said hello and ``rep`` has accepted the call."""
    customer = await welcomed(http, url, call["token"])
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.wait_for("call.accepted")
    return customer


@dataclass
class StaffLogin:
    cookie: str
    csrf: str


class Personas:
    """Who the fuzzer speaks as: anonymous, a customer with a live token, staff of each role, an API key."""

    def __init__(self, url: str, credentials: Credentials, known: Known) -> None:
        self.url = url
        self.credentials = credentials
        self.known = known
        self.staff: dict[str, StaffLogin] = {}
        self.customer_token = ""
        self._customer_source = 0
        self._relogin: dict[str, asyncio.Task[None]] = {}

    async def login(self, role: str, username: str | None = None) -> StaffLogin:
        async with http_session(STAFF_SOURCE) as http:
            for _attempt in range(20):
                try:
                    csrf = await login(http, self.url, username or FUZZ_USERS[role], self.credentials.password)
                    break
                except RuntimeError:
                    await asyncio.sleep(1.0)  # rate limited by the fuzzer's own failed logins: wait it out
            else:
                raise RuntimeError(f"could not log in as {role}")
            cookie = next(c.value for c in http.cookie_jar if c.key == "rapport_session")
        return StaffLogin(cookie, csrf)

    async def start(self) -> None:
        for role in STAFF:
            self.staff[role] = await self.login(role)
        call = await self.new_call()
        self.customer_token = call["token"]

    def relogin_soon(self, role: str) -> None:
        """The fuzzer logged this persona out (or its login ended): log in again, once."""
        if role not in STAFF or (role in self._relogin and not self._relogin[role].done()):
            return

        async def again() -> None:
            self.staff[role] = await self.login(role)

        self._relogin[role] = asyncio.create_task(again())

    async def new_call(self, **fields: Any) -> dict[str, Any]:
        """A waiting customer call, from the next customer address (so the per-address caps never bite)."""
        last: Exception | None = None
        for _attempt in range(4 * len(CUSTOMER_SOURCES)):
            source = CUSTOMER_SOURCES[self._customer_source % len(CUSTOMER_SOURCES)]
            self._customer_source += 1
            async with http_session(source) as http:
                async with http.post(f"{self.url}/api/v1/calls", json={"reason": "order", **fields}) as r:
                    body = await r.json()
                    if r.status == 201:
                        self.known.session_ids.append(body["session_id"])
                        self.known.call_tokens.append(body["token"])
                        return dict(body)
                    last = RuntimeError(f"{r.status} {body}")
            await asyncio.sleep(0.5)
        raise RuntimeError(f"could not start a customer call: {last}")

    async def learn(self) -> None:
        """Real ids to aim at: users, an invite, a webhook."""
        key = {"Authorization": f"Bearer {self.credentials.api_key}"}
        admin = self.staff["admin"]
        staff_headers = {"Cookie": f"rapport_session={admin.cookie}", "X-CSRF-Token": admin.csrf}
        async with http_session(STAFF_SOURCE) as http:
            async with http.get(f"{self.url}/api/v1/users", headers=staff_headers) as r:
                if r.status == 200:
                    users = (await r.json()).get("items", [])
                    self.known.user_ids += [str(u["id"]) for u in users if isinstance(u, dict) and "id" in u]
                    self.known.usernames += [str(u.get("username")) for u in users if isinstance(u, dict)]
            invite = {"customer": {"id": "crm-fuzz", "name": "Fuzz"}, "context": {"order": "A-1"}, "reason": "order"}
            async with http.post(f"{self.url}/api/v1/invites", json=invite, headers=key) as r:
                if r.status == 201:
                    self.known.invite_tokens.append((await r.json())["code"])
                    self.known.customer_refs.append("crm-fuzz")
            hook = {"url": "https://hooks.invalid/rapport", "events": ["session.created"]}
            async with http.post(f"{self.url}/api/v1/webhooks", json=hook, headers=staff_headers) as r:
                if r.status == 201:
                    body = await r.json()
                    if isinstance(body, dict) and "id" in body:
                        self.known.webhook_ids.append(str(body["id"]))


# --- HTTP lane ---


@dataclass(frozen=True)
class Wire:
    """A request as bytes on the wire, and how to send them."""

    parts: tuple[bytes, ...]  # sent with a pause between, so each comes in a packet of its own
    half_close: bool = False  # EOF after the last part: the server must not wait for bytes that never come
    pause_s: float = 0.05


def render_request(inp: HttpInput, personas: Personas, host: bytes) -> Wire:
    """The request's bytes, with the persona's credentials."""
    headers: list[tuple[bytes, bytes]] = []
    names = {name.lower() for name, _v in inp.headers}
    if b"host" not in names:
        headers.append((b"Host", host))
    body = inp.body
    if inp.persona in personas.staff:
        staff = personas.staff[inp.persona]
        headers.append((b"Cookie", b"rapport_session=" + staff.cookie.encode()))
        if inp.csrf == "valid":
            headers.append((b"X-CSRF-Token", staff.csrf.encode()))
        elif inp.csrf == "wrong":
            headers.append((b"X-CSRF-Token", secrets.token_urlsafe(16).encode()))
    elif inp.persona == "api-key":
        headers.append((b"Authorization", b"Bearer " + personas.credentials.api_key.encode()))
    elif inp.persona == "customer" and personas.customer_token:
        # A customer's only credential is the call token: put it where the routes read one.
        with contextlib.suppress(ValueError, UnicodeDecodeError, RecursionError):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                parsed["token"] = personas.customer_token
                body = json.dumps(parsed).encode()
    headers += list(inp.headers)
    if b"connection" not in names:
        headers.append((b"Connection", b"close"))
    half_close = False
    if inp.framing in ("length", "both") and (body or inp.method in (b"POST", b"PUT", b"PATCH", b"DELETE")):
        headers.append((b"Content-Length", str(len(body)).encode()))
    if inp.framing in ("chunked", "both"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    elif inp.framing in ("bad-chunked", "late-bad-chunk"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = b"zz\r\n" + body + b"\r\n-1\r\n\r\n"
    elif inp.framing == "short":
        headers.append((b"Content-Length", str(len(body) // 2).encode()))
    elif inp.framing == "long":
        headers.append((b"Content-Length", str(len(body) + 10).encode()))
        half_close = True  # the server must not wait for bytes that never come
    if inp.framing == "split" and (body or inp.method in (b"POST", b"PUT", b"PATCH", b"DELETE")):
        headers.append((b"Content-Length", str(len(body)).encode()))
    head = inp.method + b" " + inp.path + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    if inp.framing == "split":  # the body in two packets: a handler must read it to its end
        return Wire((head + body[: len(body) // 2], body[len(body) // 2 :]))
    if inp.framing == "late-bad-chunk":  # the broken chunk after the handler has started
        return Wire((head, body))
    return Wire((head + body,), half_close)


@dataclass
class HttpAnswer:
    status: int | None  # None: the server closed without an answer
    body: bytes = b""


async def exchange(host: str, port: int, source: str, wire: Wire, head_only: bool = False) -> HttpAnswer:
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20)
    try:
        with contextlib.suppress(ConnectionError):
            for index, part in enumerate(wire.parts):
                if index:
                    await asyncio.sleep(wire.pause_s)
                writer.write(part)
                await writer.drain()
            if wire.half_close:
                writer.write_eof()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_S)
        except (asyncio.IncompleteReadError, ConnectionError):
            return HttpAnswer(None)
        status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else -1
        if head_only or status in (101, 204, 304) or status < 200:
            return HttpAnswer(status)
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        body = b""
        with contextlib.suppress(TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            if match:
                body = await asyncio.wait_for(reader.readexactly(min(int(match.group(1)), RESPONSE_CAP)), 5.0)
            else:
                while len(body) < RESPONSE_CAP:
                    chunk = await asyncio.wait_for(reader.read(65536), 5.0)
                    if not chunk:
                        break
                    body += chunk
                    if body.endswith(b"0\r\n\r\n"):
                        break
        return HttpAnswer(status, body)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def error_code(body: bytes) -> str | None:
    """The ``error.code`` of an API error body (also found inside a chunked body)."""
    match = re.search(rb'"code":\s*"([a-z_]+)"', body)
    return match.group(1).decode() if match else None


async def send_http(inp: HttpInput, personas: Personas, host: str, port: int, tally: Tally) -> None:
    wire = render_request(inp, personas, f"{host}:{port}".encode())
    tally.sent[inp.target] += 1
    tally.recent["http"].append(inp.describe())
    source = FUZZ_SOURCES[inp.source % len(FUZZ_SOURCES)]
    try:
        answer = await asyncio.wait_for(
            exchange(host, port, source, wire, head_only=inp.method == b"HEAD"), HANG_S + 10
        )
    except TimeoutError:
        tally.crash("hang", inp.target, f"no answer in {HANG_S:.0f} s", inp.describe())
        return
    except OSError as exc:
        tally.outcomes[f"http connect error {type(exc).__name__}"] += 1
        return
    tally.outcomes[f"http {answer.status}" if answer.status is not None else "http closed, no answer"] += 1
    if answer.status is None:
        return
    if answer.status >= 500:
        code = error_code(answer.body)
        if not (answer.status == 503 and code in ALLOWED_503):
            tally.crash(f"http {answer.status}", inp.target, answer.body[:400].decode(errors="replace"), inp.describe())
    if inp.persona in STAFF and inp.target.endswith("/auth/logout") and answer.status == 204:
        personas.relogin_soon(inp.persona)


# --- WebSocket lane ---


class FuzzSocket:
    """One persona's socket: reopened whenever the fuzz gets it closed, and paced below the server's rate."""

    def __init__(self, persona: str, url: str, personas: Personas, tally: Tally, source: str) -> None:
        self.persona = persona
        self.url = url
        self.personas = personas
        self.tally = tally
        self.source = source
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sent: dict[str, WsInput] = {}
        self.last: WsInput | None = None
        self.reader: asyncio.Task[None] | None = None
        self.reopened = 0
        self.stale = False  # a customer whose call the fuzz ended: reopen with the new call's token
        self._ids = 0

    async def open(self) -> None:
        await self.close()
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(self.source, 0)))
        headers = {}
        if self.persona in self.personas.staff:
            headers["Cookie"] = f"rapport_session={self.personas.staff[self.persona].cookie}"
        ws_url = self.url.replace("http", "ws", 1) + "/ws/v1"
        self.ws = await self.http.ws_connect(ws_url, headers=headers, max_msg_size=4 << 20)
        self.reader = asyncio.create_task(self._read(self.ws))
        if self.persona == "customer":
            await self.ws.send_json({"type": "hello", "token": self.personas.customer_token})
        elif self.persona in self.personas.staff:
            await self.ws.send_json({"type": "hello"})

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                self.tally.crash("ws bad json out", f"ws {self.persona}", msg.data[:200], "")
                continue
            if not isinstance(data, dict):
                continue
            if data.get("type") == "error":
                code = str(data.get("code"))
                self.tally.outcomes[f"ws error {code}"] += 1
                if code == "internal":
                    cause = self.sent.get(str(data.get("reply_to"))) or self.last
                    self.tally.crash(
                        "ws internal", f"ws {self.persona}", str(data.get("message")), cause.describe() if cause else ""
                    )
                elif code == "token_invalid" and self.persona == "customer":
                    await self._new_customer_call()
            elif data.get("type") in ("ack", "pong", "welcome", "answer"):
                self.tally.outcomes[f"ws {data['type']}"] += 1
            elif data.get("type") == "call.ended" and self.persona == "customer":
                await self._new_customer_call()
        if ws.close_code == 1011:
            self.tally.crash(
                "ws 1011", f"ws {self.persona}", "socket closed with 1011", self.last.describe() if self.last else ""
            )
        self.tally.outcomes[f"ws closed {ws.close_code}"] += 1

    async def _new_customer_call(self) -> None:
        # The fuzz ended the customer's call (or its token): the persona gets a new one.
        with contextlib.suppress(Exception):
            self.personas.customer_token = (await self.personas.new_call())["token"]
            self.stale = True

    async def send(self, inp: WsInput) -> None:
        if self.ws is None or self.ws.closed or self.stale:
            self.reopened += 1
            self.stale = False
            await self.open()
        assert self.ws is not None
        self.last = inp
        self.tally.sent[f"ws {self.persona}"] += 1
        self.tally.outcomes[f"ws type {inp.msg_type}"] += 1
        self.tally.recent["ws"].append(inp.describe())
        try:
            if inp.kind == "text":
                assert isinstance(inp.payload, str)
                text = inp.payload
                with contextlib.suppress(ValueError, RecursionError):
                    parsed = json.loads(text)
                    if isinstance(parsed, dict) and "id" not in parsed and len(text) < 60_000:
                        self._ids += 1
                        parsed["id"] = f"f{self._ids}"
                        self.sent[parsed["id"]] = inp
                        text = json.dumps(parsed)
                    elif isinstance(parsed, dict) and isinstance(parsed.get("id"), str):
                        self.sent[parsed["id"]] = inp
                await self.ws.send_frame(text.encode("utf-8", "surrogatepass"), aiohttp.WSMsgType.TEXT)
            elif inp.kind == "binary":
                await self.ws.send_bytes(bytes(inp.payload) if isinstance(inp.payload, bytes) else b"")
            elif inp.kind == "bad-utf8":
                await self.ws.send_frame(b'{"type":"ping","x":"\xff\xfe\xed\xa0\x80"}', aiohttp.WSMsgType.TEXT)
            elif inp.kind == "ping":
                await self.ws.ping(bytes(inp.payload) if isinstance(inp.payload, bytes) else b"")
            elif inp.kind == "oversize":
                await self.ws.send_str(json.dumps({"type": "chat.send", "text": "x" * 70_000}))
            elif inp.kind == "oversize-hard":
                await self.ws.send_str("[" + "1," * 600_000 + "1]")
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            self.tally.outcomes["ws send on closed socket"] += 1
        if len(self.sent) > 5000:
            self.sent.clear()

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        if self.http is not None:
            await self.http.close()
        self.ws = self.http = self.reader = None


# --- SDP lane ---


class FuzzCall:
    """A live call between a fuzz customer and a fuzz rep, whose two sockets send the mutated offers."""

    def __init__(self, url: str, personas: Personas, tally: Tally, journal: Path | None = None) -> None:
        self.url = url
        self.personas = personas
        self.tally = tally
        # Every offer with its time and outcome, to find the one behind a log record that came later.
        self.journal = journal.open("w") if journal is not None else None
        self.sockets: dict[str, SignalingClient] = {}
        self.sessions: list[aiohttp.ClientSession] = []
        self.session_id: str | None = None
        self.rep_login: StaffLogin | None = None
        self.rebuilt = 0
        self._ids = 0
        self._sent_at: dict[str, float] = {}
        self._building = asyncio.Lock()
        # One offer in flight per participant: a second would only meet "negotiation_in_progress".
        self._offering = {"customer": asyncio.Lock(), "rep": asyncio.Lock()}

    async def _rep_socket(self) -> SignalingClient:
        assert self.rep_login is not None
        rep_http = http_session(STAFF_SOURCE)
        rep_http.cookie_jar.update_cookies({"rapport_session": self.rep_login.cookie}, URL(self.url))
        self.sessions.append(rep_http)
        return await welcomed(rep_http, self.url)

    async def build(self) -> None:
        if self.rep_login is None:
            self.rep_login = await self.personas.login("rep", SDP_REP)
        if self.session_id is not None:
            # The rep leaves the last call (it may only be waiting for the customer to come back),
            # and wraps it up, before taking another.
            old = self.sockets.get("rep")
            if old is None or old.closed_code is not None:
                old = await self._rep_socket()
            with contextlib.suppress(SignalingError, TimeoutError, ConnectionError):
                await old.request({"type": "call.end", "reason": "fuzz"}, timeout=10)
            await self._wrap_up(self.session_id)
            # An answered, ended call with a wrap-up: now a target for the QA and wrap-up routes too.
            self.personas.known.session_ids.append(self.session_id)
        await self.close()
        rep = await self._rep_socket()
        call = await self.personas.new_call(recording_consent=False)
        # The other lanes leave this call alone (a hello with its token would take the customer's place).
        self.personas.known.session_ids.remove(call["session_id"])
        self.personas.known.call_tokens.remove(call["token"])
        customer_http = http_session(CUSTOMER_SOURCES[0])
        self.sessions.append(customer_http)
        customer = await accepted_customer(customer_http, self.url, call, rep)
        self.sockets = {"customer": customer, "rep": rep}
        self.session_id = call["session_id"]

    async def _wrap_up(self, session_id: str) -> None:
        assert self.rep_login is not None
        headers = {"Cookie": f"rapport_session={self.rep_login.cookie}", "X-CSRF-Token": self.rep_login.csrf}
        body = {"disposition": "resolved", "notes": ""}
        async with http_session(STAFF_SOURCE) as http:
            async with http.post(f"{self.url}/api/v1/sessions/{session_id}/wrapup", json=body, headers=headers) as r:
                await r.read()

    def ended(self) -> str | None:
        """Why the call can no longer take offers, or None while it can."""
        for role, client in self.sockets.items():
            if client.closed_code is not None:
                assert client.ws is not None
                return f"{role} socket closed ({client.closed_code} {client.ws.exception()!r})"
            for m in client.inbox[-50:]:
                if m.get("type") == "call.ended":
                    return f"call ended ({m.get('reason')})"
        return None if self.sockets else "not started"

    async def offer(self, inp: SdpInput) -> None:
        async with self._offering[inp.role]:
            async with self._building:
                why = self.ended()
                if why is not None:
                    self.tally.outcomes[f"sdp call rebuilt: {why}"] += 1
                    self.rebuilt += 1
                    await self.build()
            await self._offer(self.sockets[inp.role], inp)

    async def _offer(self, client: SignalingClient, inp: SdpInput) -> None:
        # Under the socket's message rate, so offers reach the parser and not the rate limiter.
        wait = self._sent_at.get(inp.role, 0.0) + 1.0 / WS_SEND_PER_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._sent_at[inp.role] = time.monotonic()
        self.tally.sent[f"sdp offer ({inp.role})"] += 1
        self.tally.recent["sdp"].append(inp.describe())
        message: dict[str, Any] = {"type": "offer", "sdp": inp.sdp}
        if inp.session_id is not None:
            message["session_id"] = inp.session_id
        self._ids += 1
        message["id"] = msg_id = f"o{self._ids}"
        after = len(client.inbox)

        def is_reply(m: dict[str, Any]) -> bool:
            # A message too big to parse gets an error without reply_to: the server never read its id.
            return m.get("reply_to") == msg_id or (m.get("type") == "error" and "reply_to" not in m)

        try:
            await client.send(message)
            reply = await client.wait_for(is_reply, timeout=HANG_S, after=after)
        except TimeoutError:
            if client.closed_code is None:
                where = f"sdp offer ({inp.role})"
                self.tally.crash("hang", where, f"no reply to an offer in {HANG_S:.0f} s", inp.describe())
            return
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            self.tally.outcomes["sdp socket closed"] += 1
            return
        if reply.get("type") == "error":
            code = str(reply.get("code"))
            self.tally.outcomes[f"sdp error {code}"] += 1
            self._note(inp, f"error {code}: {reply.get('message')}")
            if code == "internal":
                self.tally.crash("ws internal", f"sdp offer ({inp.role})", str(reply.get("message")), inp.describe())
            return
        self.tally.outcomes[f"sdp {reply.get('type')}"] += 1
        self._note(inp, str(reply.get("type")))

    def _note(self, inp: SdpInput, outcome: str) -> None:
        if self.journal is not None:
            self.journal.write(json.dumps({"at": time.time(), "role": inp.role, "outcome": outcome, "sdp": inp.sdp}))
            self.journal.write("\n")
            self.journal.flush()
        # Keep the inboxes small: the run sends thousands of offers.
        for s in self.sockets.values():
            if len(s.inbox) > 400:
                del s.inbox[:200]
                del s.arrived_at[:200]

    async def close(self) -> None:
        for s in self.sockets.values():
            with contextlib.suppress(Exception):
                await s.close()
        for h in self.sessions:
            await h.close()
        self.sockets, self.sessions = {}, []

    def finish(self) -> None:
        if self.journal is not None:
            self.journal.close()


async def aiortc_offer() -> list[str]:
    """A real offer from aiortc (with its candidates on 127.0.0.2), the other base for SDP mutations."""
    client = MediaClient()
    try:
        return (await client.offer()).splitlines()
    finally:
        await client.close()


# --- the bystander ---


class Bystander:
    """A real call (two aiortc peers through the server) that must keep flowing while the fuzz runs."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.password = password
        self.customer: MediaClient | None = None
        self.rep: MediaClient | None = None
        self._sockets: list[SignalingClient] = []
        self._http: list[aiohttp.ClientSession] = []

    async def start(self) -> None:
        rep_http, customer_http = http_session(BYSTANDER_SOURCE), http_session(BYSTANDER_SOURCE)
        self._http += [rep_http, customer_http]
        await login(rep_http, self.url, BYSTANDER_REP, self.password)
        rep = await welcomed(rep_http, self.url)
        async with customer_http.post(f"{self.url}/api/v1/calls", json={"reason": "order"}) as r:
            call = await r.json()
            if r.status != 201:
                raise RuntimeError(f"bystander call: {r.status} {call}")
        customer = await accepted_customer(customer_http, self.url, call, rep)
        self._sockets += [rep, customer]
        self.customer, self.rep = MediaClient(), MediaClient()
        await self.customer.negotiate(customer)
        await self.rep.negotiate(rep)
        await self.rep.wait_frames("video", 30, timeout=30)
        await self.customer.wait_frames("video", 30, timeout=30)

    def frames(self) -> tuple[int, int]:
        """Video frames decoded so far: (the rep's, from the customer; the customer's, from the rep)."""
        assert self.customer is not None and self.rep is not None
        return self.rep.frames("video"), self.customer.frames("video")

    async def close(self) -> None:
        for m in (self.customer, self.rep):
            if m is not None:
                await m.close()
        for s in self._sockets:
            await s.close()
        for h in self._http:
            await h.close()


FrameSource = Callable[[], tuple[int, int]]


@dataclass
class FrameRate:
    """The bystander's decoded video frame rates, sampled each second (each direction separately)."""

    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def add(self, frames: tuple[int, int]) -> None:
        self.samples.append((time.monotonic(), *frames))

    def fps(self, start: float, end: float) -> tuple[float, float]:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        (t0, a0, b0), (t1, a1, b1) = inside[0], inside[-1]
        span = max(t1 - t0, 1e-6)
        return (a1 - a0) / span, (b1 - b0) / span

    def worst(self, start: float, end: float, window_s: float = 2.0) -> float:
        """The lowest rate of either direction over any ``window_s`` stretch in [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        worst = float("inf")
        for i, (t0, a0, b0) in enumerate(inside):
            later = [s for s in inside[i + 1 :] if s[0] - t0 >= window_s]
            if later:
                t1, a1, b1 = later[0]
                worst = min(worst, (a1 - a0) / (t1 - t0), (b1 - b0) / (t1 - t0))
        return 0.0 if worst == float("inf") else worst


# --- producing inputs ---


class Stop(Exception):
    pass


def produce(
    strategies: Sequence[SearchStrategy[Any]],
    count: int,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[Any],
    stopping: threading.Event,
    seed: int | None,
) -> None:
    """In a thread: draw ``count`` examples with hypothesis and hand them to the loop (blocking when it lags).

    The strategies take turns (one per route, say), so a short run still reaches every one of them.
    """
    # Round after round, each strategy gets a hypothesis run of its own (its own seed), so every route and
    # message type gets its share even in a short run, and the kinds of input stay mixed over time.
    try:
        left = [count // len(strategies) + (1 if i < count % len(strategies) else 0) for i in range(len(strategies))]
        for round_no in itertools.count():
            if stopping.is_set() or not any(left):
                return
            for index, strategy in enumerate(strategies):
                if left[index]:
                    left[index] -= _hypothesis_run(
                        strategy,
                        min(BATCH, left[index]),
                        loop,
                        queue,
                        stopping,
                        (seed or 0) * 1_000_003 + round_no * 7919 + index,
                    )
    finally:
        # Always the end marker, or the lane's workers would wait for ever; an error is raised by the lane.
        asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()


def _hypothesis_run(
    strategy: SearchStrategy[Any],
    wanted: int,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[Any],
    stopping: threading.Event,
    run_seed: int,
) -> int:
    """Hand ``wanted`` examples of ``strategy`` to the loop; returns how many it made."""
    seen = 0
    made = 0

    def one(example: Any) -> None:
        nonlocal seen, made
        seen += 1
        if seen == 1:
            return  # hypothesis starts each run with the simplest example: every run would repeat it
        if stopping.is_set() or made >= wanted:
            raise Stop
        asyncio.run_coroutine_threadsafe(queue.put(example), loop).result()
        made += 1

    test = hypothesis_settings(
        max_examples=wanted + 1,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(strategy)(one))
    with contextlib.suppress(Stop):
        hypothesis_seed(run_seed)(test)()
    return max(made, 1)  # a strategy hypothesis cannot draw from any more still counts down


async def lane(
    strategies: Sequence[SearchStrategy[Any]],
    count: int,
    workers: int,
    handle: Callable[[Any], Awaitable[None]],
    seed: int | None,
    stopping: threading.Event,
) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2 * workers + 8)
    loop = asyncio.get_running_loop()
    producer = loop.run_in_executor(None, produce, strategies, count, loop, queue, stopping, seed)

    async def worker() -> None:
        while True:
            item = await queue.get()
            if item is None:
                await queue.put(None)  # for the other workers
                return
            await handle(item)

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        stopping.set()
        while not producer.done():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)
        await producer


# --- the run ---


@dataclass(frozen=True)
class Budget:
    http: int
    ws: int
    sdp: int

    @classmethod
    def split(cls, total: int, shares: tuple[float, float, float] = (0.6, 0.25, 0.15)) -> Budget:
        whole = sum(shares)
        http, ws = int(total * shares[0] / whole), int(total * shares[1] / whole)
        return cls(http, ws, total - http - ws)

    @property
    def total(self) -> int:
        return self.http + self.ws + self.sdp


@dataclass
class Target:
    """The server under fuzz, however it runs."""

    url: str
    routes: list[Route]
    doc: Mapping[str, Any]
    static_files: list[str]
    credentials: Credentials
    errors: Callable[[], list[str]]


@dataclass
class Report:
    tally: Tally
    seconds: float
    fps_before: tuple[float, float]
    fps_during: tuple[float, float]
    fps_worst: float
    frames_at: dict[str, tuple[int, int]]
    routes: list[Route]
    sdp_rebuilt: int
    ws_reopened: int

    @property
    def crashes(self) -> dict[str, list[Finding]]:
        return self.tally.distinct()

    def text(self) -> str:
        t = self.tally
        lines = [f"Fuzzing: {t.total} hostile inputs in {self.seconds:.0f} s"]
        http = {k: v for k, v in t.sent.items() if not k.startswith(("ws ", "sdp "))}
        lines.append(f"  HTTP: {sum(http.values())} requests over {len(self.routes)} routes (and raw requests)")
        for route in self.routes:
            lines.append(f"    {t.sent.get(route.label, 0):6d}  {route.label}")
        lines.append(f"    {t.sent.get('raw request', 0):6d}  raw requests (any method, raw path)")
        ws = {k: v for k, v in t.sent.items() if k.startswith("ws ") and not k.startswith("ws type")}
        lines.append(
            f"  WebSocket: {sum(ws.values())} frames ({self.ws_reopened} reconnects after the fuzz closed one)"
        )
        for key in sorted(ws):
            lines.append(f"    {ws[key]:6d}  {key}")
        types = {k[8:]: v for k, v in t.outcomes.items() if k.startswith("ws type ")}
        lines.append("    message types: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
        sdp = {k: v for k, v in t.sent.items() if k.startswith("sdp ")}
        lines.append(f"  SDP: {sum(sdp.values())} mutated offers on a live call (rebuilt {self.sdp_rebuilt} times)")
        for key in sorted(sdp):
            lines.append(f"    {sdp[key]:6d}  {key}")
        outcome_keys = sorted(k for k in t.outcomes if not k.startswith("ws type "))
        lines.append("  Outcomes: " + ", ".join(f"{k}: {t.outcomes[k]}" for k in outcome_keys))
        before, during = self.fps_before, self.fps_during
        lines.append(
            f"  Bystander call (video fps, rep<-customer / customer<-rep): before {before[0]:.1f} / {before[1]:.1f}, "
            f"during {during[0]:.1f} / {during[1]:.1f}, worst 2 s window {self.fps_worst:.1f}"
        )
        crashes = self.crashes
        lines.append(f"  Crashes: {len(crashes)} distinct ({len(t.findings)} in all)")
        for signature, found in crashes.items():
            first = found[0]
            lines.append(f"    [{len(found)}x] {first.kind} on {first.target}: {first.detail[:1500]}")
            lines.append(f"        input: {first.evidence[:2500]}")
            del signature
        return "\n".join(lines)


async def run(
    target: Target,
    budget: Budget,
    frames: FrameSource,
    seed: int | None = None,
    progress: Callable[[str], None] = lambda _s: None,
    journal: Path | None = None,
) -> Report:
    """Fuzz ``target`` with ``budget`` inputs while sampling the bystander's ``frames``."""
    tally = Tally()
    known = Known(static_files=target.static_files)
    personas = Personas(target.url, target.credentials, known)
    await personas.start()
    await personas.learn()
    host, port = target.url.split("//", 1)[1].rsplit(":", 1)
    rate = FrameRate()
    sampling = True

    async def sample() -> None:
        while sampling:
            rate.add(frames())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    await asyncio.sleep(3.0)  # the bystander's rate before anything hostile happens
    before_end = time.monotonic()
    fps_before = rate.fps(before_end - 3.0, before_end)
    frames_at = {"start": frames()}

    bases = [await aiortc_offer(), CHROME_OFFER]
    fuzz_call = FuzzCall(target.url, personas, tally, journal)
    await fuzz_call.build()
    sockets = {
        persona: FuzzSocket(persona, target.url, personas, tally, FUZZ_SOURCES[i % len(FUZZ_SOURCES)])
        for i, persona in enumerate(("anonymous", "customer", "rep", "qa", "supervisor", "admin"))
    }
    for s in sockets.values():
        await s.open()
    paced: dict[str, asyncio.Lock] = {p: asyncio.Lock() for p in sockets}

    async def http_one(inp: HttpInput) -> None:
        await send_http(inp, personas, host, int(port), tally)

    async def ws_one(inp: WsInput) -> None:
        async with paced[inp.persona]:
            await sockets[inp.persona].send(inp)
            await asyncio.sleep(1.0 / WS_SEND_PER_S)

    async def sdp_one(inp: SdpInput) -> None:
        await fuzz_call.offer(inp)

    def check_log() -> None:
        for record in target.errors():
            tally.crash("server log", "server", record, "recent inputs:\n        " + tally.latest())

    started = time.monotonic()

    async def watch() -> None:
        last, still = -1, 0.0
        while True:
            check_log()
            if tally.total != last:
                progress(f"  {tally.total} inputs sent, {len(tally.findings)} crashes so far")
                last, still = tally.total, 0.0
            else:
                still += 2.0
                if still == STUCK_S:
                    # Nothing moved for a while: say where everyone is (a fuzzer bug, or a server that hangs).
                    progress(f"  no input sent for {STUCK_S:.0f} s; stacks follow")
                    faulthandler.dump_traceback(sys.stderr)
                    for task in asyncio.all_tasks():
                        task.print_stack(limit=6, file=sys.stderr)
            await asyncio.sleep(2.0)

    watcher = asyncio.create_task(watch())
    stopping = [threading.Event() for _ in range(3)]
    try:
        await asyncio.gather(
            lane(http_inputs(target.routes, target.doc, known), budget.http, HTTP_WORKERS, http_one, seed, stopping[0]),
            lane(ws_inputs(ws_schemas(), known), budget.ws, len(sockets), ws_one, seed, stopping[1]),
            lane([sdp_inputs(bases)], budget.sdp, 2, sdp_one, seed, stopping[2]),
        )
    finally:
        for event in stopping:
            event.set()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    ended = time.monotonic()
    frames_at["end"] = frames()
    await asyncio.sleep(3.0)  # and after: still flowing
    frames_at["after"] = frames()
    sampling = False
    await sampler
    for s in sockets.values():
        await s.close()
    await fuzz_call.close()
    await asyncio.sleep(1.0)
    check_log()
    fuzz_call.finish()
    return Report(
        tally=tally,
        seconds=ended - started,
        fps_before=fps_before,
        fps_during=rate.fps(started, ended),
        fps_worst=rate.worst(started, ended),
        frames_at=frames_at,
        routes=target.routes,
        sdp_rebuilt=fuzz_call.rebuilt,
        ws_reopened=sum(s.reopened for s in sockets.values()),
    )
