"""Hypothesis strategies for hostile inputs: JSON shapes, SDP mutations, header and cookie junk, raw paths.

The strategies are built from what the server declares, so a new route or message type is fuzzed without a
change here: HTTP routes come from the app's router, their bodies and query parameters from the OpenAPI
document (server/http/openapi.py), WebSocket messages from the Structs in ``server.signalling.messages``.

Values that must be big (64 KiB bodies, thousands of candidates) are drawn as a small unit and a repeat count,
so hypothesis's own size limits do not cap them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from server.signalling.messages import MESSAGE_TYPES

# --- what the run has learnt ---


@dataclass
class Known:
    """Real values seen while running (ids, tokens), so some inputs get past the lookups to the code behind them.

    The lists grow during a run; strategies index into them when they draw.
    """

    session_ids: list[str] = field(default_factory=list)
    call_tokens: list[str] = field(default_factory=list)
    invite_tokens: list[str] = field(default_factory=list)
    recording_ids: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    webhook_ids: list[str] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    customer_refs: list[str] = field(default_factory=list)
    static_files: list[str] = field(default_factory=list)

    def pool(self, name: str) -> list[str] | None:
        """The list of real values for a field, path or query parameter called ``name``, if there is one."""
        pools = {
            "session_id": self.session_ids,
            "token": self.call_tokens + self.invite_tokens,
            "code": self.invite_tokens,
            "invite": self.invite_tokens,
            "recording_id": self.recording_ids,
            "user_id": self.user_ids,
            "rep_id": self.user_ids,
            "webhook_id": self.webhook_ids,
            "username": self.usernames,
            "customer_ref": self.customer_refs,
        }
        return pools.get(name)


def _from_pool(known: Known, name: str) -> SearchStrategy[str] | None:
    if known.pool(name) is None:
        return None

    def pick(index: int) -> str:
        values = known.pool(name) or [""]
        return values[index % len(values)]

    return st.integers(0, 1 << 16).map(pick)


def mostly(valid: SearchStrategy[Any], junk: SearchStrategy[Any], junk_in: int = 4) -> SearchStrategy[Any]:
    """``valid`` most of the time, ``junk`` one time in ``junk_in``: inputs that look right, and then don't."""
    return st.integers(0, junk_in - 1).flatmap(lambda n: junk if n == 0 else valid)


# --- leaves ---

LIMIT_INTS = (
    0,
    -1,
    1,
    2**15,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**100,
)
# Past every limit the server has (64 KiB bodies and messages, 48 KiB SDP), not past the fuzzer's memory.
MAX_BODY = 256 * 1024
MAX_SDP = 128 * 1024
MAX_SDP_LINES = 6000
SIZES = (63, 64, 65, 127, 128, 129, 200, 201, 500, 501, 1024, 2000, 2001, 8193, 49_153, 65_537, 300_000)

NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "null",
    "true",
    "NaN",
    "-0",
    "1e309",
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "%00",
    "%2e%2e%2f%2e%2e%2f",
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "' OR '1'='1",
    "'; DROP TABLE sessions; --",
    "${jndi:ldap://x.invalid/a}",
    "{{7*7}}",
    "\u202egnp.exe",
    "\ufeff",
    "\ud800",
    "\udfff",
    "\U0001f600" * 3,
    "Ω≈ç√∫˜µ≤≥÷",
    "ﷺ",
    "\r\nSet-Cookie: x=1",
    "a\nb",
    "\t",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "rk_",
    "s_",
    "admin",
    "available",
)

ints: SearchStrategy[int] = st.one_of(st.integers(), st.sampled_from(LIMIT_INTS))
floats: SearchStrategy[float] = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from((1e308, -1e308, 5e-324, -0.0, 0.5, 1.0))
)
odd_chars = st.characters(categories=["Cs", "Cc", "Cf", "Co", "Zs", "Zl", "Zp", "Mn", "So"])
huge_text: SearchStrategy[str] = st.builds(
    lambda unit, n: (unit * n)[: max(n, 1)],
    st.one_of(st.sampled_from(("a", "é", "\U0001f600", "\x00", "\ud800", " ", "<")), st.text(min_size=1, max_size=3)),
    st.sampled_from(SIZES),
)
hostile_text: SearchStrategy[str] = st.one_of(
    st.text(max_size=40),
    st.text(odd_chars, max_size=12),
    st.sampled_from(NASTY_STRINGS),
    huge_text,
)
short_text: SearchStrategy[str] = st.one_of(st.text(max_size=12), st.sampled_from(NASTY_STRINGS[:20]))

scalars: SearchStrategy[Any] = st.one_of(st.none(), st.booleans(), ints, floats, hostile_text)
json_values: SearchStrategy[Any] = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(short_text, kids, max_size=4)),
    max_leaves=10,
)


def dumps(value: Any, ascii_only: bool = True) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


def _nested(depth: int, as_list: bool, inner: str) -> str:
    # Written by hand: json.dumps itself recurses and gives up long before a hostile client does.
    if as_list:
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


BROKEN_JSON = (
    "",
    "{",
    "}",
    "[",
    "{'type': 'ping'}",
    '{"type": "ping",}',
    '{"type": "ping"} trailing',
    '{"type": "ping"}{"type": "ping"}',
    '{"type": /* c */ "ping"}',
    '{"type": "ping", "type": "hello"}',
    "\ufeff{}",
    "NaN",
    "Infinity",
    "-Infinity",
    "[NaN, Infinity]",
    '"just a string"',
    "12345",
    "true",
    "null",
    '{"a": 1e999999}',
    '{"\\ud800": "\\udfff"}',
    '{"type": "\\u0000"}',
    "9" * 5000,
    '{"x": ' + "9" * 5000 + "}",
)

json_text: SearchStrategy[str] = st.one_of(
    st.builds(dumps, json_values, st.booleans()),
    st.builds(_nested, st.sampled_from((7, 8, 9, 33, 500, 5000, 100_000)), st.booleans(), st.builds(dumps, scalars)),
    st.sampled_from(BROKEN_JSON),
    st.text(max_size=60),
)

# --- values from a JSON schema (the OpenAPI document) ---

URLS = (
    "http://127.0.0.1:9/hook",
    "http://127.0.0.2/",
    "http://localhost/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.0.1/",
    "http://224.0.0.1/",
    "http://user:pass@hooks.invalid/",
    "https://hooks.invalid/rapport",
    "https://hooks.test:0/",
    "https://hooks.test:65536/",
    "http://" + "a" * 300 + ".invalid/",
    "http://xn--/",
    "ftp://hooks.invalid/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://127.0.0.1:25/_HELO",
    "//hooks.invalid/",
    "http://hooks.invalid/%00",
    "http://hooks.invalid/\r\nX: y",
)
DATES = ("2026-01-01", "2026-02-30", "0000-00-00", "9999-12-31", "2026-1-1", "2026-13-01", "1970-01-01", "-001-01-01")


def _deref(doc: Mapping[str, Any], schema: Any) -> Any:
    while isinstance(schema, Mapping) and "$ref" in schema:
        node: Any = doc
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def schema_values(
    doc: Mapping[str, Any], schema: Any, known: Known, name: str = "", depth: int = 0
) -> SearchStrategy[Any]:
    """Values that fit ``schema`` most of the time, and junk of any type otherwise."""
    return mostly(_fitting(doc, schema, known, name, depth), json_values, junk_in=5)


def _fitting(doc: Mapping[str, Any], schema: Any, known: Known, name: str, depth: int) -> SearchStrategy[Any]:
    schema = _deref(doc, schema)
    if not isinstance(schema, Mapping) or depth > 5:
        return json_values
    pool = _from_pool(known, name) if name else None
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return st.one_of([_fitting(doc, s, known, name, depth + 1) for s in schema[combinator]])
    if "enum" in schema:
        options = st.sampled_from(list(schema["enum"]))
        return st.one_of(options, pool) if pool is not None else options
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return st.one_of([_fitting(doc, {**schema, "type": k}, known, name, depth) for k in kinds])
    strategy = _of_type(doc, schema, str(kinds), known, depth)
    return st.one_of(pool, strategy) if pool is not None else strategy


def _of_type(doc: Mapping[str, Any], schema: Mapping[str, Any], kind: str, known: Known, depth: int) -> Any:
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = {k: schema_values(doc, v, known, k, depth + 1) for k, v in props.items() if k in required}
        optional = {k: schema_values(doc, v, known, k, depth + 1) for k, v in props.items() if k not in required}
        extra_schema = schema.get("additionalProperties")
        extra = (
            st.dictionaries(short_text, schema_values(doc, extra_schema, known, "", depth + 1), max_size=4)
            if isinstance(extra_schema, Mapping)
            else st.dictionaries(short_text, json_values, max_size=2)
        )
        return st.builds(lambda a, b: {**b, **a}, st.fixed_dictionaries(fixed, optional=optional), extra)
    if kind == "array":
        items = schema_values(doc, schema.get("items", {}), known, "", depth + 1)
        low = min(int(schema.get("minItems", 0)), 4)
        high = min(int(schema.get("maxItems", 6)), 6)
        normal = st.lists(items, min_size=low, max_size=max(low, high))
        # Past the limit, or far past it.
        many = st.builds(
            lambda v, n: [v] * n,
            scalars.filter(lambda v: not isinstance(v, str) or len(v) < 100),
            st.sampled_from((int(schema.get("maxItems", 30)) + 1, 1000)),
        )
        return mostly(normal, many, junk_in=6)
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return st.one_of(st.dates().map(str), st.sampled_from(DATES))
        if fmt in ("uri", "url"):
            return st.sampled_from(URLS)
        limit = int(schema.get("maxLength", 100))
        edge = st.builds(
            lambda c, n: c * n, st.sampled_from(("x", "é", "\U0001f600")), st.sampled_from((limit, limit + 1))
        )
        return st.one_of(st.text(min_size=int(schema.get("minLength", 0)), max_size=min(limit, 60)), edge)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v for v in (low, high) if v is not None]
        edges += [v + d for v in edges for d in (-1, 1)]
        inside = st.integers(min_value=low, max_value=high) if kind == "integer" else st.floats(low, high)
        return st.one_of(inside, st.sampled_from(edges or [0]), ints if kind == "integer" else floats)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values


# --- HTTP ---

PERSONAS = ("anonymous", "customer", "rep", "qa", "supervisor", "admin", "api-key")
STAFF = ("rep", "qa", "supervisor", "admin")


@dataclass(frozen=True)
class Route:
    """One route of the app's router, with its OpenAPI operation when it has one."""

    method: str
    path: str  # the canonical path, with {params}, or the static prefix
    operation: Mapping[str, Any] | None = None
    static: bool = False

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}{'*' if self.static else ''}"


@dataclass(frozen=True)
class HttpInput:
    target: str  # what it was made for: a route label, or "raw request"
    persona: str
    csrf: str  # "valid", "missing", "wrong": how the persona's CSRF header is sent
    method: bytes
    path: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    framing: str  # one of FRAMINGS: how the body is delimited and sent
    source: int  # which client address it comes from

    def describe(self) -> str:
        text = f"{self.persona} {self.method[:20]!r} {self.path[:200]!r} framing={self.framing}"
        return f"{text} headers={list(self.headers)[:6]!r} body={self.body[:300]!r}"


METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS")
ODD_METHODS = (b"TRACE", b"CONNECT", b"PROPFIND", b"get", b"G ET", b"GET\x00", b"X" * 100, b"", b"\xff\xfe", b"PRI")

JUNK_SEGMENTS = (
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%5c%2e%2e%5c",
    "%00",
    "%ff",
    "%",
    "%zz",
    "%c0%ae%c0%ae",
    "a%2fb",
    "..\\..\\",
    "~",
    ";jsessionid=1",
    "%20",
    "%0d%0aX:%20y",
    "x" * 65,
    "x" * 129,
    "x" * 513,
    "1" * 30,
    "-1",
    "0",
    "1e3",
    "0x10",
    "%F0%9F%98%80",
    "%ED%A0%80",
)


def _encoded(text: str) -> bytes:
    return quote(text, safe="", errors="surrogatepass").encode()


def _segment(known: Known, name: str, clean: bool = False) -> SearchStrategy[bytes]:
    options: list[SearchStrategy[bytes]] = [
        st.sampled_from(JUNK_SEGMENTS).map(str.encode),
        hostile_text.map(_encoded),
        ints.map(lambda i: str(i).encode()),
    ]
    if not clean:
        options.append(st.binary(min_size=1, max_size=8))  # raw bytes, not encoded at all
    pool = _from_pool(known, name)
    if pool is not None:
        options.append(pool.map(_encoded))
        options.append(pool.map(_encoded))
    return st.one_of(options)


def _static_path(known: Known, prefix: str) -> SearchStrategy[bytes]:
    def pick(index: int) -> bytes:
        files = known.static_files or ["css/app.css"]
        return files[index % len(files)].encode()

    tails = st.one_of(
        st.integers(0, 1 << 16).map(pick),
        st.sampled_from(
            (
                b"../server/config.py",
                b"..%2fserver%2fconfig.py",
                b"%2e%2e/%2e%2e/etc/passwd",
                b"..%5c..%5cserver",
                b"js/../../server/app.py",
                b"/etc/passwd",
                b"//etc/passwd",
                b"",
                b"css/",
                b"css/app.css%00.js",
                b"customer.html/.",
            )
        ),
        st.lists(_segment(known, ""), min_size=1, max_size=4).map(b"/".join),
    )
    return tails.map(lambda tail: prefix.rstrip("/").encode() + b"/" + tail)


def _route_path(route: Route, known: Known, clean: bool) -> SearchStrategy[bytes]:
    if route.static:
        return _static_path(known, route.path)
    parts: list[SearchStrategy[bytes]] = []
    for part in route.path.strip("/").split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append(_segment(known, part[1:-1], clean))
        else:
            parts.append(st.just(part.encode()))
    path = st.tuples(*parts).map(lambda ps: b"/" + b"/".join(ps)) if parts else st.just(b"/")
    return st.builds(_mangle_path, path, st.integers(0, 39))


def _mangle_path(path: bytes, how: int) -> bytes:
    """The path as routed most of the time; otherwise what a proxy or an attacker might make of it."""
    return {
        0: b"/" + path,
        1: path + b"/",
        2: path.replace(b"/", b"/./", 1),
        3: path.replace(b"/", b"/x/../", 1),
        4: path.upper(),
        5: path + b"#frag",
        6: b"http://127.0.0.1" + path,
        7: path.replace(b"/", b"%2f"),
        8: path.replace(b"/", b"\\"),
    }.get(how, path)


def _query(route: Route, doc: Mapping[str, Any], known: Known, clean: bool) -> SearchStrategy[bytes]:
    params = [_deref(doc, p) for p in (route.operation or {}).get("parameters", ())]
    declared = [p for p in params if isinstance(p, Mapping) and p.get("in") == "query"]
    pairs: list[SearchStrategy[tuple[str, Any]]] = [
        st.tuples(st.just(str(p["name"])), schema_values(doc, p.get("schema", {}), known, str(p["name"])))
        for p in declared
    ]
    pairs.append(st.tuples(short_text, scalars))
    pairs.append(st.tuples(st.sampled_from(("lang", "invite", "limit", "state", "from", "to", "id")), scalars))

    def encode(items: list[tuple[str, Any]], raw: bool) -> bytes:
        out = []
        for key, value in items:
            text = value if isinstance(value, str) else dumps(value)
            if raw:
                out.append(key.encode("utf-8", "surrogatepass") + b"=" + text.encode("utf-8", "surrogatepass"))
            else:
                out.append(_encoded(key) + b"=" + _encoded(text))
        return b"&".join(out)

    raw = st.just(False) if clean else st.integers(0, 7).map(lambda n: n == 0)
    query = st.builds(encode, st.lists(st.one_of(pairs), max_size=5), raw)
    odd = st.sampled_from((b"", b"&&&", b"=", b"a", b"a=1&a=2&a=3", b"%", b"%zz=%zz", b"x=" + b"y" * 9000, b"?"))
    return mostly(query, odd, junk_in=6).map(lambda q: b"?" + q if q else b"")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# Header values by name, odd and hostile; flattened to (name, value) pairs below.
HEADER_JUNK_BY_NAME: dict[bytes, tuple[bytes, ...]] = {
    b"Content-Type": (
        b"application/json",
        b"application/json; charset=utf-16",
        b"text/plain",
        b"multipart/form-data; boundary=--x",
        b"application/x-www-form-urlencoded",
        b";;;",
    ),
    b"Accept": (b"*/*",),
    b"Accept-Encoding": (b"gzip, deflate, br, zstd, x" * 20,),
    b"Origin": (b"null", b"http://evil.invalid", b"http://127.0.0.1", b"\xff\xfe"),
    b"Referer": (b"javascript:alert(1)",),
    b"Range": (
        b"bytes=0-",
        b"bytes=-1",
        b"bytes=5-1",
        b"bytes=99999999999999999999999-",
        b"bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13",
        b"bits=0-1",
    ),
    b"If-Modified-Since": (b"Thu, 01 Jan 1970 00:00:00 GMT", b"yesterday"),
    b"If-None-Match": (b'"*", W/"x"',),
    b"If-Range": (b"garbage",),
    b"If-Unmodified-Since": (b"Mon, 99 Foo 9999 99:99:99 GMT",),
    b"Accept-Language": (b"*", b"nl;q=1e309, fa;q=nan, cs;q=-1, nb;q=inf", b"x-" + b"a," * 4000),
    b"X-Forwarded-For": (b"127.0.0.1, 10.0.0.1, ::1, garbage, , ,", b"1.2.3.4" + b", 1.2.3.4" * 500),
    b"X-Forwarded-Proto": (b"https", b"javascript"),
    b"X-Forwarded-Host": (b"evil.invalid",),
    b"Forwarded": (b'for="[::1]";proto=https;by=x, for=unknown',),
    b"X-Real-IP": (b"127.0.0.1",),
    b"Expect": (b"100-continue", b"999-nope"),
    b"Upgrade": (b"websocket",),
    b"Connection": (b"Upgrade",),
    b"Sec-WebSocket-Key": (b"dGhlIHNhbXBsZSBub25jZQ==", b"!!"),
    b"Sec-WebSocket-Version": (b"13", b"99"),
    b"Sec-WebSocket-Protocol": (b"x, y, , \xff",),
    b"Sec-WebSocket-Extensions": (b"permessage-deflate; client_max_window_bits=99",),
    b"Transfer-Encoding": (b"gzip", b"chunked, identity"),
    b"Content-Encoding": (b"gzip", b"br"),
    b"Authorization": (
        b"Bearer ",
        b"Bearer rk_" + b"A" * 40,
        b"Basic YWRtaW46YWRtaW4=",
        b"Bearer \xff\x00",
        b"bearer" + b" x" * 2000,
    ),
    b"X-CSRF-Token": (b"", b"\xff" * 40),
    b"Cookie": (
        b"rapport_session=",
        b"rapport_session=" + b"A" * 127,
        b"rapport_session=" + b"A" * 128,
        b"rapport_session=a; rapport_session=b; rapport_session=c",
        b'rapport_session="\\"quoted\\""',
        b"=; ;;; =x; a",
        b"rapport_session=%00%ff",
        b"x=" + b"y" * 8000,
    ),
    b"Host": (b"", b"evil.invalid", b"127.0.0.1:99999", b"[::1"),
    b"X-Junk": (b"\x00", b"a\r\nInjected: 1"),
    b"X-Junk\xff": (b"x",),
    b"X Junk": (b"x",),
    b"X-Long": (b"z" * 9000,),
}
HEADER_JUNK: tuple[tuple[bytes, bytes], ...] = tuple(
    (name, value) for name, values in HEADER_JUNK_BY_NAME.items() for value in values
)


printable = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
    st.sampled_from([t for t in NASTY_STRINGS if t.isprintable() and t.isascii()]),
)
INTERESTING_HEADERS = (b"Cookie", b"Authorization", b"X-CSRF-Token", b"Origin", b"Accept-Language", b"Range")


def _header(known: Known, clean: bool) -> SearchStrategy[tuple[bytes, bytes]]:
    if clean:
        # Values any HTTP parser takes: the junk then reaches the application.
        fine = [h for h in HEADER_JUNK if all(0x20 <= c < 0x7F for c in h[0] + h[1]) and len(h[1]) < 4000]
        return st.one_of(
            st.sampled_from(fine),
            st.tuples(st.sampled_from(INTERESTING_HEADERS), printable.map(str.encode)),
        )
    return st.one_of(
        st.sampled_from(HEADER_JUNK),
        st.tuples(st.sampled_from(INTERESTING_HEADERS), hostile_text.map(_bytes)),
        st.tuples(short_text.map(_bytes), hostile_text.map(_bytes)),
    )


def _body(route: Route, doc: Mapping[str, Any], known: Known) -> SearchStrategy[bytes]:
    content = (route.operation or {}).get("requestBody", {}).get("content", {}).get("application/json")
    options: list[SearchStrategy[bytes]] = [json_text.map(_bytes), st.binary(max_size=64)]
    if content is not None:
        fitting = schema_values(doc, content.get("schema", {}), known)
        shaped = st.builds(dumps, fitting, st.integers(0, 5).map(lambda n: n > 0)).map(_bytes)
        options += [shaped, shaped, shaped, shaped]
    big = st.builds(
        lambda unit, n: unit * n, st.sampled_from((b"{", b"[", b"a", b" ")), st.sampled_from((65_536, 65_537))
    )
    options.append(big)
    body = st.one_of(options).map(lambda b: b[:MAX_BODY])
    # Bodies on a GET, and none on a POST, are part of the game too.
    return mostly(body, st.just(b""), junk_in=8)


CLEAN_FRAMINGS = ("length", "length", "chunked", "split")
FRAMINGS = (
    *("length",) * 4,
    "chunked",
    "bad-chunked",
    "late-bad-chunk",
    "split",
    "short",
    "long",
    "both",
    "none",
)


def http_inputs(routes: Sequence[Route], doc: Mapping[str, Any], known: Known) -> list[SearchStrategy[HttpInput]]:
    """Requests for each route of the router, and raw requests that match none: one strategy each."""

    def for_route(route: Route) -> SearchStrategy[HttpInput]:
        # Two in three requests are clean on the wire (method, URL, header bytes and framing any server takes),
        # so their junk reaches the application; the third is dirty down to the bytes.
        return mostly(wired(route, clean=True), wired(route, clean=False), junk_in=3)

    def wired(route: Route, clean: bool) -> SearchStrategy[HttpInput]:
        methods = METHODS if clean else METHODS + ODD_METHODS
        return st.builds(
            HttpInput,
            target=st.just(route.label),
            persona=st.sampled_from(PERSONAS),
            csrf=st.sampled_from(("valid", "valid", "valid", "missing", "wrong")),
            method=mostly(st.just(route.method.encode()), st.sampled_from(methods), junk_in=6),
            path=st.builds(lambda p, q: p + q, _route_path(route, known, clean), _query(route, doc, known, clean)),
            headers=st.lists(_header(known, clean), max_size=3 if clean else 4).map(tuple),
            body=_body(route, doc, known),
            framing=st.sampled_from(CLEAN_FRAMINGS if clean else FRAMINGS),
            source=st.integers(0, 3),
        )

    raw_paths = st.one_of(
        st.binary(max_size=40).map(lambda b: b"/" + b),
        st.lists(_segment(known, ""), max_size=6).map(lambda ps: b"/" + b"/".join(ps)),
        st.sampled_from((b"*", b"", b"//", b"/%", b"/..", b"/api/v1/../../etc/passwd", b"/" + b"a" * 9000, b"http://")),
    )
    raw = st.builds(
        HttpInput,
        target=st.just("raw request"),
        persona=st.sampled_from(PERSONAS),
        csrf=st.sampled_from(("valid", "missing", "wrong")),
        method=st.sampled_from(METHODS + ODD_METHODS),
        path=raw_paths,
        headers=st.lists(_header(known, clean=False), max_size=6).map(tuple),
        body=st.one_of(st.just(b""), json_text.map(_bytes), st.binary(max_size=64)),
        framing=st.sampled_from(FRAMINGS),
        source=st.integers(0, 3),
    )
    return [*(for_route(r) for r in routes), raw]


# --- WebSocket ---

WS_PERSONAS = ("anonymous", "customer", "rep", "qa", "supervisor", "admin")


@dataclass(frozen=True)
class WsInput:
    persona: str
    kind: str  # "text", "binary", "bad-utf8", "ping", "oversize"
    payload: str | bytes
    msg_type: str  # the message type it pretends to be, for counting

    def describe(self) -> str:
        return f"ws {self.persona} {self.kind} {self.payload[:300]!r}"


@dataclass(frozen=True)
class Field:
    """One field of a client message, as the strategies draw it."""

    kind: type | tuple[type, ...]
    required: bool = True
    max_len: int | None = None
    min_len: int = 0
    choices: tuple[str, ...] | None = None


def ws_schemas() -> dict[str, dict[str, Field]]:
    """Each client message type's fields (``id`` aside), read from its Struct in server/signalling/messages.py."""
    schemas: dict[str, dict[str, Field]] = {}
    for msg_type, struct in MESSAGE_TYPES.items():
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        fields: dict[str, Field] = {}
        for spec in info.fields:
            if spec.encode_name == "id":
                continue
            kind = spec.type
            while not isinstance(kind, msgspec.inspect.StrType | msgspec.inspect.LiteralType):
                if isinstance(kind, msgspec.inspect.Metadata):
                    kind = kind.type
                elif isinstance(kind, msgspec.inspect.UnionType):
                    kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
                else:
                    break
            if isinstance(kind, msgspec.inspect.StrType):
                fields[spec.encode_name] = Field(
                    str, spec.required, kind.max_length, max(kind.min_length or 0, 1 if kind.pattern else 0)
                )
            elif isinstance(kind, msgspec.inspect.LiteralType):
                fields[spec.encode_name] = Field(str, spec.required, choices=tuple(map(str, kind.values)))
            else:
                python = {msgspec.inspect.BoolType: bool, msgspec.inspect.IntType: int}[type(kind)]
                fields[spec.encode_name] = Field(python, spec.required)
        schemas[msg_type] = fields
    return schemas


def _field_values(spec: Field, known: Known, name: str) -> SearchStrategy[Any]:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    options: list[SearchStrategy[Any]] = []
    for kind in kinds:
        if kind is str:
            limit = spec.max_len or 100
            options.append(st.text(min_size=spec.min_len, max_size=min(limit, 60)))
            options.append(
                st.builds(
                    lambda c, n: c * n,
                    st.sampled_from(("x", "é", "\U0001f600", " ")),
                    st.sampled_from((limit, limit + 1)),
                )
            )
            if spec.choices:
                options += [st.sampled_from(spec.choices)] * 3
        elif kind is bool:
            options.append(st.booleans())
        elif kind is int:
            options.append(ints)
        else:
            options.append(json_values)
    pool = _from_pool(known, name)
    if pool is not None:
        options += [pool, pool]
    return mostly(st.one_of(options), json_values, junk_in=5)


def ws_messages(schemas: Mapping[str, Mapping[str, Field]], known: Known) -> list[SearchStrategy[tuple[str, str]]]:
    """(type, JSON text), one strategy per protocol type (fields right, wrong, missing or extra), and junk."""

    def typed(msg_type: str, fields: Mapping[str, Field]) -> SearchStrategy[tuple[str, str]]:
        present = {name: _field_values(spec, known, name) for name, spec in fields.items() if spec.required}
        optional = {name: _field_values(spec, known, name) for name, spec in fields.items() if not spec.required}
        optional["id"] = mostly(st.text(max_size=64), json_values, junk_in=6)
        optional["protocol"] = ints
        message = st.builds(
            lambda a, b, extra, drop: {k: v for k, v in {"type": msg_type, **extra, **b, **a}.items() if k != drop},
            st.fixed_dictionaries(present),
            st.fixed_dictionaries({}, optional=optional),
            st.dictionaries(short_text, json_values, max_size=2),
            st.sampled_from(("", "", "", "", "type", *fields)),
        )
        return st.builds(
            lambda m, ascii_only: (msg_type, dumps(m, ascii_only)), message, st.integers(0, 9).map(lambda n: n > 0)
        )

    junk_type = st.builds(lambda t: ("(junk type)", dumps({"type": t})), json_values)
    raw = json_text.map(lambda text: ("(not a message)", text))
    return [*(typed(t, f) for t, f in schemas.items()), junk_type, raw]


def ws_inputs(schemas: Mapping[str, Mapping[str, Field]], known: Known) -> list[SearchStrategy[WsInput]]:
    """One strategy per persona and message type (and odd frames), so a short run sends each type as each persona."""
    odd = st.builds(
        lambda persona, kind, payload: WsInput(persona, kind, payload, "(frame)"),
        st.sampled_from(WS_PERSONAS),
        st.sampled_from(("binary", "bad-utf8", "ping", "oversize", "oversize-hard")),
        st.binary(max_size=32),
    )
    out: list[SearchStrategy[WsInput]] = []
    for message in ws_messages(schemas, known):
        for persona in WS_PERSONAS:
            text = message.map(lambda typed, p=persona: WsInput(p, "text", typed[1], typed[0]))
            out.append(mostly(text, odd, junk_in=25))
    return out


# --- SDP ---

# Both bundled sections of the Chrome offer carry the same ICE and DTLS lines.
_CHROME_ICE_DTLS = """a=ice-ufrag:Fz0V
a=ice-pwd:Z5bJ2wVUhAwfx9Xm3J4z2EXd
a=ice-options:trickle
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass"""

# A Chrome offer (audio and video, bundled), as browsers send it; the other base is a live aiortc offer.
CHROME_OFFER = f"""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 3c6c9a5e-1b2f-4a5e-9d8b-0f6a2c1e7d44
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 127.0.0.2 46243 typ host generation 0 network-id 1
a=candidate:1853887674 1 tcp 1518280447 127.0.0.2 9 typ host tcptype active generation 0 network-id 1
{_CHROME_ICE_DTLS}
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:3c6c9a5e-1b2f-4a5e-9d8b-0f6a2c1e7d44 8d3f0a52-5a4b-4d0b-9f5e-2b7e8c9d1a36
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:1132357580 cname:2Qd0vEw8kJX5pLqN
a=ssrc:1132357580 msid:3c6c9a5e-1b2f-4a5e-9d8b-0f6a2c1e7d44 8d3f0a52-5a4b-4d0b-9f5e-2b7e8c9d1a36
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 98 99 45 46 116 117 118
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
{_CHROME_ICE_DTLS}
a=mid:1
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:13 urn:3gpp:video-orientation
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendrecv
a=msid:3c6c9a5e-1b2f-4a5e-9d8b-0f6a2c1e7d44 5e1c0b9a-7d2f-4c3e-8a6b-1f0e9d8c7b6a
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:104 H264/90000
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:105 rtx/90000
a=fmtp:105 apt=104
a=rtpmap:98 VP9/90000
a=fmtp:98 profile-id=0
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=98
a=rtpmap:45 AV1/90000
a=fmtp:45 level-idx=5;profile=0;tier=0
a=rtpmap:46 rtx/90000
a=fmtp:46 apt=45
a=rtpmap:116 red/90000
a=rtpmap:117 rtx/90000
a=fmtp:117 apt=116
a=rtpmap:118 ulpfec/90000
a=ssrc-group:FID 2231627014 632943048
a=ssrc:2231627014 cname:2Qd0vEw8kJX5pLqN
a=ssrc:632943048 cname:2Qd0vEw8kJX5pLqN
""".splitlines()

# Only loopback, documentation, private, link-local, multicast and broadcast addresses: run in a private netns,
# none of them leaves the machine; aiortc will try STUN checks to whatever survives the server's checks.
CANDIDATE_ADDRESSES = (
    "127.0.0.2",
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.251",
    "10.255.255.1",
    "192.0.2.1",
    "169.254.169.254",
    "::1",
    "::",
    "fe80::1%lo",
    "2001:db8::1",
    "rapport-fuzz.local",
    "256.256.256.256",
    "1.2.3",
    "",
    "x" * 300,
)
PORTS = ("0", "9", "1", "65535", "65536", "-1", "99999999999999999999", "x", "")


def _candidate(
    foundation: str, component: str, transport: str, priority: str, address: str, port: str, kind: str, tail: str
) -> str:
    return f"a=candidate:{foundation} {component} {transport} {priority} {address} {port} typ {kind}{tail}"


candidate_lines: SearchStrategy[str] = st.builds(
    _candidate,
    st.one_of(st.integers(0, 2**32).map(str), short_text),
    st.sampled_from(("1", "2", "0", "-1", "256", "99999999999")),
    st.sampled_from(("udp", "UDP", "tcp", "sctp", "", "udp udp")),
    st.one_of(ints.map(str), st.just("2122260223")),
    st.sampled_from(CANDIDATE_ADDRESSES),
    st.sampled_from(PORTS),
    st.sampled_from(("host", "srflx", "prflx", "relay", "", "typ", "x" * 50)),
    st.sampled_from(
        ("", " generation 0", " raddr 0.0.0.0 rport 0", " tcptype active", " tcptype bogus", " raddr", " ufrag")
    ),
)

SDP_LINES = (
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=video 0 UDP/TLS/RTP/SAVPF",
    "m=video -1 UDP/TLS/RTP/SAVPF 96",
    "m=video 9 RTP/AVP 96",
    "m=video 9 UDP/TLS/RTP/SAVPF " + " ".join(str(n) for n in range(96, 128)),
    "m=video 9 UDP/TLS/RTP/SAVPF 999999",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=text 9 RTP/AVP 0",
    "m=",
    "a=rtpmap:96 VP8/0",
    "a=rtpmap:96 /",
    "a=rtpmap:96 H264/90000/2/3",
    "a=rtpmap:999999 opus/48000/2",
    "a=rtpmap:111 opus/-48000/0",
    "a=fmtp:96 profile-level-id=zzzzzz;packetization-mode=-1",
    "a=fmtp:97 apt=999",
    "a=fmtp:97 apt=x",
    "a=fmtp:111 maxplaybackrate=99999999999999999999;stereo=2",
    "a=fmtp:96 " + "k=v;" * 2000,
    "a=rtcp-fb:96 nack pli fir remb " + "x " * 100,
    "a=fingerprint:sha-256 ZZ",
    "a=fingerprint:md5 00:11",
    "a=fingerprint:sha-512",
    "a=setup:holdconn",
    "a=setup:",
    "a=ice-ufrag:",
    "a=ice-pwd:x",
    "a=ice-ufrag:" + "u" * 600,
    "a=mid:",
    "a=mid:0",
    "a=group:BUNDLE 0 1 2 3 9 x",
    "a=group:BUNDLE",
    "a=ssrc:4294967296 cname:x",
    "a=ssrc:-1 msid:a b",
    "a=ssrc-group:FID 1",
    "a=ssrc-group:SIM 1 2 3 4 5 6 7 8",
    "a=extmap:0 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:99999 urn:x",
    "a=extmap:15/sendrecv urn:ietf:params:rtp-hdrext:toffset",
    "a=msid:",
    "a=rid:h send",
    "a=simulcast:send h;m;l",
    "a=inactive",
    "a=sendonly",
    "a=recvonly",
    "a=sctp-port:0",
    "a=max-message-size:-1",
    "a=rtcp:0 IN IP6 ::",
    "c=IN IP6 ::",
    "c=IN IP4 999.1.1.1",
    "c=",
    "o=- x x IN IP4",
    "t=a b",
    "b=AS:-1",
    "b=TIAS:99999999999999999999",
    "a=end-of-candidates",
    "a=ice-lite",
    "a=ice-options:trickle renomination",
    "a=",
    "=",
    "v=1",
    "\x00",
    "\ufeff",
)


def _mutation() -> SearchStrategy[Callable[[list[str]], list[str]]]:
    index = st.integers(0, 1 << 16)
    count = st.sampled_from((1, 2, 3, 9, 33, 100, 1000, 5000))

    def delete(i: int) -> Callable[[list[str]], list[str]]:
        return lambda lines: lines[: i % len(lines)] + lines[i % len(lines) + 1 :] if lines else lines

    def duplicate(i: int, n: int) -> Callable[[list[str]], list[str]]:
        return lambda lines: (
            lines[: i % len(lines)] + [lines[i % len(lines)]] * n + lines[i % len(lines) :] if lines else lines
        )

    def insert(i: int, line: str, n: int) -> Callable[[list[str]], list[str]]:
        return lambda lines: lines[: i % (len(lines) + 1)] + [line] * n + lines[i % (len(lines) + 1) :]

    def candidates(i: int, lines_in: list[str]) -> Callable[[list[str]], list[str]]:
        return lambda lines: lines[: i % (len(lines) + 1)] + lines_in + lines[i % (len(lines) + 1) :]

    def swap(i: int, j: int) -> Callable[[list[str]], list[str]]:
        def apply(lines: list[str]) -> list[str]:
            if not lines:
                return lines
            out = list(lines)
            a, b = i % len(out), j % len(out)
            out[a], out[b] = out[b], out[a]
            return out

        return apply

    def token(i: int, j: int, value: str) -> Callable[[list[str]], list[str]]:
        def apply(lines: list[str]) -> list[str]:
            if not lines:
                return lines
            out = list(lines)
            line = out[i % len(out)]
            head, sep, rest = line.partition("=")
            words = rest.replace(":", " ").split(" ") if sep else [line]
            words[j % len(words)] = value
            out[i % len(out)] = head + sep + " ".join(words) if sep else value
            return out

        return apply

    def truncate(i: int) -> Callable[[list[str]], list[str]]:
        def apply(lines: list[str]) -> list[str]:
            text = "\n".join(lines)
            return text[: i % (len(text) + 1)].split("\n")

        return apply

    return st.one_of(
        st.builds(delete, index),
        st.builds(duplicate, index, count),
        st.builds(insert, index, st.one_of(st.sampled_from(SDP_LINES), candidate_lines, hostile_text), count),
        st.builds(candidates, index, st.lists(candidate_lines, min_size=1, max_size=40)),
        st.builds(swap, index, index),
        st.builds(token, index, index, st.one_of(hostile_text, ints.map(str), st.sampled_from(("", "0", "-1")))),
        st.builds(truncate, index),
    )


@dataclass(frozen=True)
class SdpInput:
    role: str  # "customer" or "rep": which side of the fuzz call offers it
    sdp: str
    session_id: Any  # usually absent (None); sometimes junk

    def describe(self) -> str:
        return f"sdp {self.role} ({len(self.sdp)} chars) {self.sdp[:400]!r}"


def sdp_inputs(bases: Sequence[Sequence[str]]) -> SearchStrategy[SdpInput]:
    """Offers made from a real aiortc offer or a Chrome one, mutated line by line."""

    def build(base: int, mutations: list[Callable[[list[str]], list[str]]], ending: str) -> str:
        lines = list(bases[base % len(bases)])
        for mutate in mutations:
            lines = mutate(lines)[:MAX_SDP_LINES]  # a duplication of a duplication must not eat the fuzzer
        return (ending.join(lines) + ending)[:MAX_SDP]

    sdp = st.builds(
        build,
        st.integers(0, len(bases) - 1),
        st.lists(_mutation(), max_size=4),
        st.sampled_from(("\r\n", "\r\n", "\r\n", "\n", "\r", "\r\r\n", " \r\n")),
    )
    session = mostly(st.none(), json_values, junk_in=12)
    return st.builds(SdpInput, st.sampled_from(("customer", "rep")), sdp, session)
