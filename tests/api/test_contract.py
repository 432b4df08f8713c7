"""The OpenAPI document (server/http/openapi.py) against the running app.

- It describes exactly the /api routes the app registers, so a new route without docs fails here.
- It is well formed: unique operationIds, summaries, success and error answers, resolvable $refs.
- Contract: for every operation one real request succeeds with a documented status and an answer that
  validates against the documented schema (undocumented properties count as errors); every operation with
  a body or query parameters answers bad input with 400 and the Error shape; API-key routes answer a wrong
  key and a revoked key with 401 and a key without the scope with 403, and staff-only routes refuse keys.
- GET /api/docs is a self-contained page that names every operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from server.config import SETTINGS, Settings
from server.http import openapi
from server.http.apikeys import SCOPES
from server.recording.composer import COMPOSER
from server.storage.api_keys import ApiKeyStore
from server.storage.reviews import REVIEWS
from server.webhooks.dispatcher import WEBHOOKS
from tests.support.media import record_a_file
from tests.support.server import PASSWORD, Rapport, start_rapport, with_settings

METHODS = ("get", "put", "post", "delete", "patch")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
NO_BODY = object()


# a validator for the subset of JSON Schema the document uses


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}[kind])


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def check(doc: dict[str, Any], schema: Any, value: Any, where: str = "$") -> list[str]:
    """What is wrong with ``value`` under ``schema``: type, enum, format date-time, limits, properties,
    required, additionalProperties (properties not documented are errors), items, anyOf, oneOf, $ref."""
    schema = resolve(doc, schema)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        matches = sum(1 for option in options if not check(doc, option, value, where))
        ok = matches >= 1 if "anyOf" in schema else matches == 1
        return [] if ok else [f"{where}: {value!r} matches {matches} of {options}"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {value!r} is not {'/'.join(kinds)}"]
    errors = []
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if schema.get("format") == "date-time" and isinstance(value, str) and not DATE_TIME.match(value):
        errors.append(f"{where}: {value!r} is not a date-time")
    if _is(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{where}: {name} is missing" for name in schema.get("required", ()) if name not in value]
        extra = schema.get("additionalProperties", not properties)
        for name, item in value.items():
            if name in properties:
                errors += check(doc, properties[name], item, f"{where}.{name}")
            elif extra is False:
                errors.append(f"{where}: {name} is not documented")
            elif isinstance(extra, dict):
                errors += check(doc, extra, item, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += check(doc, schema["items"], item, f"{where}[{index}]")
    return errors


def test_the_validator_finds_what_is_wrong() -> None:
    doc = {"components": {"schemas": {"Rep": {"type": "object", "properties": {"id": {"type": "integer"}}}}}}
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "at": {"type": ["string", "null"], "format": "date-time"},
            "state": {"type": "string", "enum": ["on", "off"]},
            "rep": {"anyOf": [{"$ref": "#/components/schemas/Rep"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "state"],
        "additionalProperties": False,
    }
    good = {"id": 1, "at": "2026-01-01T10:00:00.000Z", "state": "on", "rep": {"id": 2}, "tags": ["a"]}
    assert check(doc, schema, good) == []
    assert check(doc, schema, {**good, "at": None, "rep": None}) == []
    for bad in (
        {**good, "id": True},
        {**good, "id": 0},
        {**good, "at": "yesterday"},
        {**good, "state": "maybe"},
        {**good, "rep": {"id": "2"}},
        {**good, "rep": {"id": 2, "name": "x"}},
        {**good, "tags": [1]},
        {**good, "surprise": 1},
        {"id": 1},
        [good],
    ):
        assert check(doc, schema, bad), bad


# the document itself


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId → (method, path, operation)."""
    return {op["operationId"]: (m, p, op) for p, item in doc["paths"].items() for m, op in item.items()}


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_describes_exactly_the_api_routes_the_app_registers(rapport: Rapport) -> None:
    registered = {
        (r.method, r.resource.canonical)
        for r in rapport.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    doc = openapi.document(rapport.app[SETTINGS])
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert not registered - documented, f"routes without docs in server/http/openapi.py: {registered - documented}"
    assert not documented - registered, f"documented routes the app does not have: {documented - registered}"


def test_every_operation_is_complete_and_every_ref_resolves(settings: Settings) -> None:
    doc = openapi.document(settings)
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == "1.0.0"
    assert doc["servers"] == [{"url": "/"}]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    tags = {t["name"] for t in doc["tags"]}
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"]["type"] == "http" and schemes["apiKey"]["scheme"] == "bearer"
    assert all(scope in schemes["apiKey"]["description"] for scope in SCOPES)
    assert (schemes["staffCookie"]["in"], schemes["staffCookie"]["name"]) == ("cookie", "rapport_session")
    for path, item in doc["paths"].items():
        assert set(item) <= set(METHODS), path
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op["summary"].strip() and op["tags"] and set(op["tags"]) <= tags, where
            statuses = set(op["responses"])
            assert any(s.startswith("2") for s in statuses), f"{where}: no success answer"
            assert any(s[0] in "45" or s == "default" for s in statuses), f"{where}: no error answer"
            declared = {resolve(doc, p)["name"] for p in op.get("parameters", ()) if resolve(doc, p)["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), f"{where}: path parameters"
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes), where
            scope = op.get("x-rapport-scope")
            assert scope is None or ({"apiKey": [scope]} in op["security"] and scope in SCOPES), where
            if scope or op.get("x-rapport-roles"):
                assert "401" in statuses, f"{where}: who may call is checked, so 401 is an answer"
            if scope:
                assert "403" in statuses, where
            if "requestBody" in op:
                assert {"400", "413"} <= statuses, f"{where}: a body can be bad or too large"
    for ref in refs(doc):
        assert ref.startswith("#/"), ref
        assert resolve(doc, {"$ref": ref}) is not None, ref
    error = resolve(doc, {"$ref": "#/components/schemas/Error"})
    assert check(doc, error, {"error": {"code": "not_found", "message": "no such session"}}) == []


def test_the_servers_entry_is_the_public_url_when_there_is_one(settings: Settings) -> None:
    doc = openapi.document(with_settings(settings, public_url="https://support.example.com/"))
    assert doc["servers"] == [{"url": "https://support.example.com"}]
    page = openapi.render_html(doc)
    assert "&quot;https://support.example.com/api/v1/sessions?customer_ref=crm-77&amp;" in page


# the world the contract cases run in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks to the server itself (loopback) are internal: allowed here, as an operator would allow them."""
    return with_settings(settings, webhook_allowed_hosts=("127.0.0.1",))


@dataclass
class World:
    rapport: Rapport
    doc: dict[str, Any]
    actors: dict[str, tuple[aiohttp.ClientSession, dict[str, str]]]
    ids: dict[str, Any]

    def fill(self, value: Any) -> Any:
        """Put the world's ids into ``"{name}"`` placeholders (a whole-string placeholder keeps the id's type)."""
        if isinstance(value, str):
            whole = re.fullmatch(r"\{(\w+)\}", value)
            if whole and whole.group(1) in self.ids:
                return self.ids[whole.group(1)]
            return re.sub(r"\{(\w+)\}", lambda m: str(self.ids.get(m.group(1), m.group(0))), value)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value


@dataclass
class Answer:
    status: int
    media: str
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.raw)


async def send(
    world: World,
    actor: str,
    op_id: str,
    *,
    path: dict[str, Any] | None = None,
    query: dict[str, str] | None = None,
    body: Any = NO_BODY,
    headers: dict[str, str] | None = None,
) -> Answer:
    method, template, _op = operations(world.doc)[op_id]
    url = world.rapport.url + template.format(**{k: str(v) for k, v in world.fill(path or {}).items()})
    fresh = actor == "fresh"
    http, actor_headers = (aiohttp.ClientSession(), {}) if fresh else world.actors[actor]
    data: bytes | None = None
    if isinstance(body, bytes | str):
        data = body.encode() if isinstance(body, str) else body  # sent as it is: broken on purpose
    elif body is not NO_BODY:
        data = json.dumps(world.fill(body)).encode()
    all_headers = {**actor_headers, **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    try:
        async with http.request(
            method.upper(), url, params=world.fill(query or {}), data=data, headers=all_headers
        ) as r:
            media = r.headers.get("Content-Type", "").split(";")[0].strip()
            return Answer(r.status, media, await r.read(), dict(r.headers))
    finally:
        if fresh:
            await http.close()


def answer_errors(world: World, op_id: str, answer: Answer) -> list[str]:
    """What in ``answer`` the document does not describe."""
    _method, _path, op = operations(world.doc)[op_id]
    documented = op["responses"].get(str(answer.status))
    if documented is None:
        return [f"status {answer.status} is not documented: {answer.raw[:300]!r}"]
    content = resolve(world.doc, documented).get("content")
    if not content:
        return [] if not answer.raw else [f"{answer.status} should have no body"]
    if answer.media not in content:
        return [f"{answer.status}: {answer.media} is not one of {sorted(content)}"]
    if answer.media != "application/json":
        return [] if answer.raw else [f"{answer.status}: empty {answer.media}"]
    return check(world.doc, content[answer.media]["schema"], answer.json())


async def closed_session(rapport: Rapport, **fields: Any) -> str:
    """A session that waited and was abandoned, written straight to the store (no live call)."""
    record, _token = await rapport.store.create_session(
        reason="other", customer_name="Cy", device=None, token_ttl_s=3600, **fields
    )
    await rapport.store.finish_session(record.id, state="abandoned", ended_by="customer", reason="customer_left")
    return record.id


@pytest.fixture
async def world(rapport: Rapport) -> AsyncIterator[World]:
    """Staff of every role, API keys, an answered and ended call with chat, a recording, an emotion timeline
    and a webhook delivery, a live call, a waiting call, an invite, and closed sessions to erase."""
    await rapport.add_user("sup1", "supervisor")
    await rapport.add_user("adm1", "admin")
    actors: dict[str, tuple[aiohttp.ClientSession, dict[str, str]]] = {"anon": (rapport.http, {})}
    for actor, username in (("rep", "rep1"), ("spare", "rep2"), ("qa", "qa1"), ("sup", "sup1"), ("admin", "adm1")):
        http, csrf = await rapport.staff_session(username)
        actors[actor] = (http, {"X-CSRF-Token": csrf})
    _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", SCOPES)
    actors["key"] = (rapport.http, {"Authorization": f"Bearer {secret}"})

    webhooks = rapport.app[WEBHOOKS]
    endpoint, _secret = await webhooks.create_endpoint(f"{rapport.url}/hook-sink", ("session.ended",))

    rep1 = await rapport.rep("rep1")
    customer, call = await rapport.customer(
        reason="order", name="Ada", language="nl", contact={"email": "ada@example.com"}, emotion_consent=True
    )
    ended = call["session_id"]
    await rep1.request({"type": "call.accept", "session_id": ended})
    await customer.request({"type": "chat.send", "text": "My charger broke"})
    await rep1.request({"type": "chat.send", "text": "I will send a new one"})
    await rep1.send({"type": "call.end"})
    await rep1.wait_for("call.ended")
    await webhooks.emit("session.ended", {"session": {"session_id": ended}})
    timeline = [
        {"second": s, "samples": 5, "face_present": True, "mean_frustration": f, "max_frustration": f + 0.05}
        | {"dominant": "angry" if f > 0.5 else "neutral", "flag": f > 0.5}
        for s, f in enumerate((0.1, 0.7, 0.8, 0.2))
    ]
    await rapport.store.add_timeline(ended, timeline)
    await rapport.store.summarize_emotion(ended)
    recording = await record_a_file(rapport, ended)

    rep2 = await rapport.rep("rep2")
    _customer2, live_call = await rapport.customer(reason="complaint", name="Bo")
    await rep2.request({"type": "call.accept", "session_id": live_call["session_id"]})
    await rapport.customer(reason="other", name="Cy")  # waits: one rep is busy, the other wrapping up

    async with rapport.http.post(
        f"{rapport.url}/api/v1/invites",
        json={"customer": {"id": "crm-77", "name": "Di"}, "reason": "not_working"},
        headers=actors["key"][1],
    ) as r:
        assert r.status == 201, await r.text()
        invite_json = await r.json()
        invite, invite_id = invite_json["code"], invite_json["id"]

    scorecard = await rapport.app[REVIEWS].current_scorecard()
    assert scorecard is not None
    rep1_user = await rapport.store.user_with_hash("rep1")
    assert rep1_user is not None
    # Composing runs in a subprocess; the contract only needs the job queued, so nothing is started.
    rapport.app[COMPOSER].enabled = True
    ids = {
        "ended": ended,
        "live": live_call["session_id"],
        "token": call["token"],
        "recording": recording,
        "invite": invite,
        "invite_id": invite_id,
        "scorecard_id": scorecard["id"],
        "answers": {c["id"]: 4 if c["type"] == "scale" else True for c in scorecard["criteria"]},
        "rep1_id": rep1_user[0].id,
        "webhook_id": endpoint.id,
        "closed": await closed_session(rapport),
        "erase_ref": "crm-erase",
        "today": datetime.now(UTC).strftime("%Y-%m-%d"),
        "base": rapport.url,
    }
    await closed_session(rapport, customer_ref="crm-erase")
    # A call whose wait ran out (max_wait): its customer may ask for a callback.
    waited, waited_token = await rapport.store.create_session(
        reason="other", customer_name="Ed", device=None, token_ttl_s=3600
    )
    await rapport.store.finish_session(waited.id, state="abandoned", ended_by="system", reason="max_wait")
    ids["waited_token"] = waited_token
    yield World(rapport, openapi.document(rapport.app[SETTINGS]), actors, ids)


# contract: one success per operation


@dataclass(frozen=True)
class Case:
    op: str
    actor: str
    status: int = 200
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = NO_BODY
    headers: dict[str, str] = field(default_factory=dict)
    # Lists in the answer that must not be empty, so their items are checked against the schema too.
    nonempty: tuple[str, ...] = ()


ENDED = {"session_id": "{ended}"}
SCORECARD = {
    "criteria": [
        {"id": "greeting", "label": "Greets the customer", "type": "scale"},
        {"id": "resolved", "label": "Issue resolved", "type": "yesno"},
    ]
}
# In order: the cases that change or remove things come after those that read them.
SUCCESS = (
    Case("getOpenApi", "anon"),
    Case("getApiDocs", "anon"),
    Case("getConfig", "anon", query={"lang": "nl"}, nonempty=("languages", "reasons")),
    Case("login", "fresh", body={"username": "rep2", "password": PASSWORD}),
    Case("logout", "spare", 204),
    Case("getMe", "rep"),
    Case(
        "startCall",
        "anon",
        201,
        body={"reason": "order", "name": "Ed", "language": "en", "contact": {"phone": "+31 6 1234 5678"}},
    ),
    Case("rateCall", "anon", body={"token": "{token}", "rating": 5, "comment": "Quick and friendly"}),
    Case("requestCallback", "anon", body={"token": "{waited_token}", "contact": {"phone": "+31 6 1234 5678"}}),
    Case(
        "createInvite",
        "key",
        201,
        body={
            "customer": {"id": "crm-78", "name": "Fay", "email": "fay@example.com"},
            "context": {"order": "A-1001"},
            "reason": "not_working",
            "language": "nl",
            "priority": "high",
            "ttl_s": 3600,
        },
    ),
    Case("redeemInvite", "anon", 201, path={"code": "{invite}"}, body={"device": "Pixel · Chrome"}),
    Case("getInviteQr", "anon", path={"token": "{invite}"}),
    Case("revokeInvite", "key", 204, path={"invite_id": "{invite_id}"}),
    Case(
        "listSessions",
        "key",
        query={"state": "ended", "reason": "order", "from": "{today}", "to": "{today}", "limit": "10"},
        nonempty=("items",),
    ),
    Case("getSession", "key", path=ENDED, nonempty=("chat", "events", "emotion_timeline")),
    Case("listSessionRecordings", "qa", path=ENDED, nonempty=("items",)),
    Case("getRecordingMedia", "qa", path={"recording_id": "{recording}"}),
    Case("getRecordingMedia", "qa", 206, path={"recording_id": "{recording}"}, headers={"Range": "bytes=0-99"}),
    Case("listDispositions", "rep", nonempty=("items",)),
    Case("wrapUp", "rep", path=ENDED, body={"disposition": "resolved", "notes": "Sent a new charger"}),
    Case("getScorecard", "qa", nonempty=("criteria",)),
    Case("addReview", "qa", 201, path=ENDED, body={"scorecard_id": "{scorecard_id}", "answers": "{answers}"}),
    Case(
        "listQaSessions",
        "qa",
        query={"reason": "order", "flagged": "true", "qa_status": "scored", "min_frustration": "0.5"},
        nonempty=("items", "reps"),
    ),
    Case("exportQaSessions", "qa", query={"qa_status": "scored", "from": "{today}"}),
    Case("composeSession", "qa", 202, path=ENDED),
    Case("getQaSession", "qa", path=ENDED, nonempty=("recordings", "chat", "timeline", "flags", "reviews")),
    Case("setLegalHold", "sup", path=ENDED, body={"hold": True, "note": "dispute #42"}),
    Case("putScorecard", "admin", 201, body=SCORECARD),
    Case("getFloor", "sup", nonempty=("queue", "reps", "calls")),
    Case("getReport", "sup", query={"group": "reason", "from": "{today}", "to": "{today}"}, nonempty=("rows",)),
    Case("exportReport", "sup", query={"group": "day"}),
    Case("listUsers", "admin", nonempty=("items",)),
    Case("setRouting", "admin", path={"user_id": "{rep1_id}"}, body={"skills": ["order"], "languages": ["en", "nl"]}),
    Case("getAuditLog", "admin", nonempty=("items",)),
    Case("listWebhooks", "key", nonempty=("items",)),
    Case("listDeliveries", "key", path={"webhook_id": "{webhook_id}"}, query={"limit": "10"}, nonempty=("items",)),
    Case(
        "createWebhook",
        "key",
        201,
        body={"url": "{base}/hook-sink", "events": ["session.created"], "description": "contract test"},
    ),
    Case("deleteWebhook", "key", 204, path={"webhook_id": "{webhook_id}"}),
    Case("eraseSession", "admin", path={"session_id": "{closed}"}),
    Case("eraseCustomer", "admin", path={"customer_ref": "{erase_ref}"}, nonempty=("erased",)),
)


def test_every_operation_has_a_success_case(settings: Settings) -> None:
    assert {c.op for c in SUCCESS} == set(operations(openapi.document(settings)))


async def test_every_operation_answers_as_documented(world: World) -> None:
    problems = []
    for case in SUCCESS:
        answer = await send(
            world, case.actor, case.op, path=case.path, query=case.query, body=case.body, headers=case.headers
        )
        where = f"{case.op} ({case.actor})"
        if answer.status != case.status:
            problems.append(f"{where}: {answer.status}, expected {case.status}: {answer.raw[:300]!r}")
            continue
        problems += [f"{where}: {e}" for e in answer_errors(world, case.op, answer)]
        problems += [f"{where}: {name} is empty" for name in case.nonempty if not answer.json()[name]]
    assert not problems, "\n".join(problems)


async def test_the_served_document_is_the_document(rapport: Rapport) -> None:
    async with rapport.http.get(f"{rapport.url}/api/v1/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        assert await r.json() == json.loads(json.dumps(openapi.document(rapport.app[SETTINGS])))


# contract: bad input is 400 with the Error shape


def bad(op: str, actor: str, **request: Any) -> Case:
    return Case(op, actor, 400, **request)


BAD = (
    bad("login", "fresh", body={"username": "", "password": "x"}),
    bad("login", "fresh", body={"username": "rep1"}),
    bad("login", "fresh", body={"username": "rep1", "password": "x" * 1025}),
    bad("startCall", "anon", body={"language": "klingon"}),
    bad("startCall", "anon", body={"reason": "../../etc"}),
    bad("startCall", "anon", body={"contact": {"email": "not-an-address"}}),
    bad("startCall", "anon", body={"contact": {"fax": "123"}}),
    bad("startCall", "anon", body={"emotion_consent": "yes"}),
    bad("startCall", "anon", body={"name": "x" * 201}),
    bad("rateCall", "anon", body={"token": "short", "rating": 5}),
    bad("rateCall", "anon", body={"token": "{token}", "rating": 6}),
    bad("rateCall", "anon", body={"token": "{token}", "rating": True}),
    bad("requestCallback", "anon", body={"token": "{waited_token}"}),
    bad("requestCallback", "anon", body={"token": "{waited_token}", "contact": {"email": "not-an-address"}}),
    bad("requestCallback", "anon", body={"token": "short", "contact": {"phone": "+31 6 1234 5678"}}),
    bad("createInvite", "key", body={"ttl_s": 10}),
    bad("createInvite", "key", body={"priority": "urgent"}),
    bad("createInvite", "key", body={"priority": 101}),
    bad("createInvite", "key", body={"customer": {"id": 77}}),
    bad("createInvite", "key", body={"context": "A-1001"}),
    bad("createInvite", "key", body={"customer_ref": "x" * 129}),
    bad("redeemInvite", "anon", path={"code": "{invite}"}, body={"emotion_consent": "yes"}),
    bad("redeemInvite", "anon", path={"code": "{invite}"}, body={"device": 7}),
    bad("redeemInvite", "anon", path={"code": "tampered.token"}, body={}),
    bad("listSessions", "key", query={"state": "gone"}),
    bad("listSessions", "key", query={"limit": "0"}),
    bad("listSessions", "key", query={"limit": "ten"}),
    bad("listSessions", "key", query={"reason": "nope"}),
    bad("listSessions", "key", query={"from": "2026-13-45"}),
    bad("listSessions", "key", query={"customer_ref": "x" * 129}),
    bad("wrapUp", "rep", path=ENDED, body={"disposition": "nonsense"}),
    bad("wrapUp", "rep", path=ENDED, body={"disposition": "resolved", "notes": "x" * 4001}),
    bad("setLegalHold", "sup", path=ENDED, body={"hold": "yes"}),
    bad("setLegalHold", "sup", path=ENDED, body={"hold": True, "note": "x" * 201}),
    bad("listQaSessions", "qa", query={"rep_id": "0"}),
    bad("listQaSessions", "qa", query={"reason": "nope"}),
    bad("listQaSessions", "qa", query={"outcome": "x" * 65}),
    bad("listQaSessions", "qa", query={"min_duration_s": "long"}),
    bad("listQaSessions", "qa", query={"max_duration_s": "-1"}),
    bad("listQaSessions", "qa", query={"min_frustration": "2"}),
    bad("listQaSessions", "qa", query={"flagged": "maybe"}),
    bad("listQaSessions", "qa", query={"qa_status": "done"}),
    bad("listQaSessions", "qa", query={"limit": "501"}),
    bad("listQaSessions", "qa", query={"to": "yesterday"}),
    bad("exportQaSessions", "qa", query={"flagged": "maybe"}),
    bad("addReview", "qa", path=ENDED, body={"scorecard_id": 99999, "answers": "{answers}"}),
    bad("addReview", "qa", path=ENDED, body={"scorecard_id": "{scorecard_id}", "answers": {"greeting": 9}}),
    bad("addReview", "qa", path=ENDED, body={"scorecard_id": "{scorecard_id}", "answers": []}),
    bad("putScorecard", "admin", body={"criteria": []}),
    bad("putScorecard", "admin", body={"criteria": [{"id": "a b", "label": "x", "type": "scale"}]}),
    bad("putScorecard", "admin", body={"criteria": [{"id": "a", "label": "x", "type": "stars"}]}),
    bad("putScorecard", "admin", body={"criteria": [SCORECARD["criteria"][0]] * 2}),
    bad("getReport", "sup", query={"group": "week"}),
    bad("getReport", "sup", query={"from": "2026-02-01", "to": "2026-01-01"}),
    bad("getReport", "sup", query={"from": "2020-01-01", "to": "2026-01-01"}),
    bad("exportReport", "sup", query={"group": "week"}),
    bad("setRouting", "admin", path={"user_id": "{rep1_id}"}, body={"skills": ["flying"]}),
    bad("setRouting", "admin", path={"user_id": "{rep1_id}"}, body={"languages": "en"}),
    bad("createWebhook", "key", body={"url": "ftp://example.com/h", "events": ["session.ended"]}),
    bad("createWebhook", "key", body={"url": "http://u:p@127.0.0.1/h", "events": ["session.ended"]}),
    bad("createWebhook", "key", body={"url": "http://169.254.169.254/latest/meta-data/", "events": ["session.ended"]}),
    bad("createWebhook", "key", body={"url": "{base}/h", "events": []}),
    bad("createWebhook", "key", body={"url": "{base}/h", "events": ["session.exploded"]}),
    bad("createWebhook", "key", body={"url": "{base}/h", "events": ["session.ended"], "description": "x" * 201}),
    bad("listDeliveries", "key", path={"webhook_id": "{webhook_id}"}, query={"limit": "0"}),
    bad("listDeliveries", "key", path={"webhook_id": "{webhook_id}"}, query={"limit": "many"}),
)
# Operations whose query or body can never be wrong, and why.
NEVER_REJECTED = {"getConfig": "an unknown lang falls back to Accept-Language"}


def test_every_operation_with_input_has_bad_input_cases(settings: Settings) -> None:
    doc = openapi.document(settings)
    with_input = {
        op_id
        for op_id, (_m, _p, op) in operations(doc).items()
        if "requestBody" in op or any(resolve(doc, p)["in"] == "query" for p in op.get("parameters", ()))
    }
    assert with_input == {case.op for case in BAD} | set(NEVER_REJECTED)


async def test_bad_input_is_400_with_the_error_shape(world: World) -> None:
    problems = []
    for case in BAD:
        answer = await send(world, case.actor, case.op, path=case.path, query=case.query, body=case.body)
        where = f"{case.op} {case.query or case.body}"
        if answer.status != 400:
            problems.append(f"{where}: {answer.status} {answer.raw[:200]!r}")
        else:
            problems += [f"{where}: {e}" for e in answer_errors(world, case.op, answer)]
    async with world.rapport.http.get(f"{world.rapport.url}/api/v1/config?lang=klingon") as r:
        assert r.status == 200 and (await r.json())["language"] == "en", NEVER_REJECTED["getConfig"]
    assert not problems, "\n".join(problems)


async def test_every_body_that_is_not_a_json_object_or_too_large_is_refused(world: World) -> None:
    """Derived from the document: every operation with a request body, with the path of its success case."""
    problems = []
    first = {c.op: c for c in reversed(SUCCESS)}
    for op_id, (_m, _p, op) in operations(world.doc).items():
        if "requestBody" not in op:
            continue
        case = first[op_id]
        for body, status in (("{not json", 400), ("[1, 2]", 400), (b"{}" + b" " * 70_000, 413)):
            answer = await send(world, case.actor, op_id, path=case.path, body=body)
            if answer.status != status:
                problems.append(f"{op_id} {body[:10]!r}: {answer.status}, expected {status}")
            else:
                problems += [f"{op_id}: {e}" for e in answer_errors(world, op_id, answer)]
    assert not problems, "\n".join(problems)


async def test_a_full_server_refuses_new_calls_with_the_documented_503(settings: Settings) -> None:
    rapport = await start_rapport(with_settings(settings, max_calls=1))
    try:
        await rapport.add_user("rep1")
        rep = await rapport.rep("rep1")
        _customer, call = await rapport.customer()
        await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        await rapport.customer()  # one call live and one waiting: full
        _key, secret = await ApiKeyStore(rapport.store.engine).create("crm", ("invites:write",))
        async with rapport.http.post(
            f"{rapport.url}/api/v1/invites", json={}, headers={"Authorization": f"Bearer {secret}"}
        ) as r:
            invite = (await r.json())["code"]
        world = World(rapport, openapi.document(rapport.app[SETTINGS]), {"anon": (rapport.http, {})}, {})
        for op_id, path in (("startCall", {}), ("redeemInvite", {"code": invite})):
            answer = await send(world, "anon", op_id, path=path, body={})
            assert answer.status == 503 and answer.json()["error"]["code"] == "all_lines_busy", op_id
            assert answer_errors(world, op_id, answer) == [] and int(answer.headers["Retry-After"]) > 0, op_id
    finally:
        await rapport.stop()


# contract: who may call


async def test_api_key_routes_refuse_wrong_revoked_and_unscoped_keys(world: World) -> None:
    rapport = world.rapport
    keys = ApiKeyStore(rapport.store.engine)
    revoked, revoked_secret = await keys.create("old", SCOPES)
    assert await keys.revoke(revoked.id)
    ops = operations(world.doc)
    scoped = [case for case in SUCCESS if "x-rapport-scope" in ops[case.op][2] and case.actor == "key"]
    assert {c.op for c in scoped} == {op_id for op_id, (_m, _p, op) in ops.items() if "x-rapport-scope" in op}
    assert {ops[c.op][2]["x-rapport-scope"] for c in scoped} == set(SCOPES)
    problems = []
    for case in scoped:  # in the order of SUCCESS: what deletes comes last
        op_id, scope = case.op, ops[case.op][2]["x-rapport-scope"]
        _other, other_secret = await keys.create("other", tuple(s for s in SCOPES if s != scope))
        _only, only_secret = await keys.create("only", (scope,))
        for label, authorization, expected in (
            ("a wrong key", "Bearer rk_" + "x" * 43, 401),
            ("not a bearer", "Basic cmVwMTpwYXNzd29yZA==", 401),
            ("a revoked key", f"Bearer {revoked_secret}", 401),
            ("a key without the scope", f"Bearer {other_secret}", 403),
        ):
            answer = await send(world, "anon", op_id, path=case.path, body={}, headers={"Authorization": authorization})
            if answer.status != expected:
                problems.append(f"{op_id} with {label}: {answer.status}, expected {expected}")
            else:
                problems += [f"{op_id} with {label}: {e}" for e in answer_errors(world, op_id, answer)]
        # The documented scope is enough on its own.
        answer = await send(
            world,
            "anon",
            op_id,
            path=case.path,
            query=case.query,
            body=case.body,
            headers={"Authorization": f"Bearer {only_secret}"},
        )
        if answer.status != case.status:
            problems.append(f"{op_id} with only {scope}: {answer.status}, expected {case.status}")
    assert not problems, "\n".join(problems)


async def test_routes_documented_without_an_api_key_refuse_one(world: World) -> None:
    staff_only = [
        op_id
        for op_id, (_m, _p, op) in operations(world.doc).items()
        if "x-rapport-roles" in op and "x-rapport-scope" not in op
    ]
    first = {c.op: c for c in reversed(SUCCESS)}
    problems = []
    for op_id in staff_only:
        answer = await send(world, "key", op_id, path=first[op_id].path, body={})
        if answer.status != 401:
            problems.append(f"{op_id}: {answer.status} for an API key, documented as staff only")
    assert not problems, "\n".join(problems)


# the readable page


async def test_the_docs_page_names_every_operation_and_keeps_to_the_csp(rapport: Rapport) -> None:
    doc = openapi.document(rapport.app[SETTINGS])
    async with rapport.http.get(f"{rapport.url}/api/docs") as r:
        assert r.status == 200 and r.content_type == "text/html"
        csp = r.headers["Content-Security-Policy"]
        page = await r.text()
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert page.startswith("<!doctype html>") and '<link rel="stylesheet" href="/static/css/app.css">' in page
    assert "<script" not in page and "<style" not in page and " style=" not in page
    assert " src=" not in page and 'href="http' not in page
    for op_id, (_method, path, op) in operations(doc).items():
        assert f'id="{op_id}"' in page and f"<code>{path}</code>" in page, op_id
        if "x-rapport-scope" in op:
            assert f"$RAPPORT_URL{path.split('{')[0]}" in page, op_id
    assert page.count("curl -H &quot;Authorization: Bearer $RAPPORT_KEY&quot;") == sum(
        1 for _m, _p, op in operations(doc).values() if "x-rapport-scope" in op
    )


def test_the_docs_page_escapes_what_it_shows(settings: Settings) -> None:
    evil = '<img src=x onerror="alert(1)">'
    doc = openapi.document(with_settings(settings, reasons=((evil, "Evil"), ("order", "An order"))))
    page = openapi.render_html(doc)
    assert evil not in page and "&lt;img src=x onerror=" in page
