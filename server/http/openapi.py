"""The OpenAPI 3.1 document of Rapport's HTTP API, made from the route table, and a readable page made from it.

:func:`document` walks every route module's ``routes`` table (server/http/api.py): schemas come from the
msgspec models, parameters from the path and query Structs, security and error answers from each operation's
Auth and inputs, and the reasons, languages and dispositions enums from one server's settings; nothing is
built at import time. ``GET /api/v1/openapi.json`` serves it and ``GET /api/docs`` renders it as one
self-contained HTML page: no scripts, no inline styles, only /static/css/app.css, so the page keeps to the
same Content-Security-Policy as every other page. ``python -m server.http.openapi`` prints it with the
default settings: docs/openapi.json (``make docs``; tests/api/test_contract.py fails when that file is stale).
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import msgspec.inspect
from aiohttp import web

from ..config import SETTINGS, Settings
from ..storage.api_keys import KEY_PREFIX
from ..storage.users import ROLES
from .api import PUBLIC, Operation, Routes
from .apikeys import SCOPES
from .docs_page import render_html
from .models.common import ENUM_MARKER, AnyObject, Error
from .routes import admin, callbacks, files, health, invites, qa, sessions, supervisor, webhooks
from .security import COOKIE, CSP, CSRF_HEADER, MAX_BODY_BYTES

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{name}"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
# Keys whose value maps names to schemas (or to things that hold them).
NAMED = frozenset({"properties", "schemas", "paths", "responses", "parameters", "content", "headers"})
STATUS_TEXT = {200: "OK.", 201: "Created.", 202: "Accepted.", 204: "No content."}
TAGS = (
    ("Auth", "Staff log in with a username and password; the cookie then authorises the console's requests."),
    ("Customers", "What the customer page uses: configuration, starting a call, rating it."),
    ("Invites", "Signed links for identified customers, made by staff or by another system."),
    ("Sessions", "Support sessions, for staff and for other systems."),
    ("Recordings", "Recorded tracks and the audit log (QA, supervisors and admins only)."),
    ("Files", "Photos, files and snapshots in a call: uploads by its two parties, downloads by who may read it."),
    ("Wrap-up", "The rep's outcome and notes after a call."),
    ("QA", "Review of closed sessions. Emotion scores describe the customer, never the rep."),
    ("Retention", "Legal hold and erasure."),
    ("Supervisor", "The live floor and reports."),
    ("Routing", "Which reps take which calls."),
    ("Webhooks", "Signed POSTs of call events to other systems."),
    ("Callbacks", "Business hours, customers' callback requests, and reps starting them."),
    ("Admin", "Staff accounts, API keys and the centre's settings (admins only; every change audited)."),
    ("Health", "Readiness for a load balancer's checks, and liveness (outside /api: no version, no login)."),
    ("Documentation", "This description of the API."),
)
# Error statuses and the component that describes each.
ERRORS = {
    400: ("BadRequest", "Not valid: a field, a query parameter or the JSON body (bad_request)."),
    401: ("Unauthorized", "Not logged in, or a missing, unknown or revoked API key (not_authenticated)."),
    403: (
        "Forbidden",
        "Not allowed: the staff role may not do this or the API key lacks the scope (forbidden); a missing or "
        f"wrong {CSRF_HEADER} with the staff cookie (csrf); a request from a foreign Origin (bad_origin).",
    ),
    404: ("NotFound", "No such thing, or not yours to see (not_found)."),
    409: ("Conflict", "Not now: the state of the thing does not allow it (conflict)."),
    410: (
        "Gone",
        "The invite link has expired (link_expired), opened its one call already (link_used) or was revoked "
        "(link_revoked).",
    ),
    413: (
        "TooLarge",
        f"The body is over {MAX_BODY_BYTES} bytes, or an upload over max_file_mb (too_large); a picture with too "
        "many pixels (image_too_large).",
    ),
    415: (
        "UnsupportedMedia",
        "An upload that is not a JPEG, PNG, WebP, GIF or PDF by its content (unsupported_type), an image that does "
        "not decode (unreadable_image), or an empty file (empty_file).",
    ),
    429: (
        "RateLimited",
        "Too many requests from this address or for this username (rate_limited); as many calls from this address "
        "already wait as one address may have waiting (too_many_waiting).",
    ),
    503: (
        "Unavailable",
        "Not now: every line is busy, the server carries all the calls it can and as many customers already wait "
        "(all_lines_busy), or the queue holds as many waiting calls as the server keeps (queue_full); or the "
        "service is not running on this server (unavailable).",
    ),
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}}
UNEXPECTED = "An unexpected error (internal, with a reference for the logs), or a wrong method (method_not_allowed)."

routes = Routes(tag="Documentation")


def tables() -> tuple[Routes, ...]:
    """Every route table of the API, in the order the document lists them."""
    return (
        sessions.routes,
        invites.routes,
        callbacks.routes,
        files.routes,
        qa.routes,
        supervisor.routes,
        webhooks.routes,
        admin.routes,
        health.routes,
        routes,
    )


# schemas


def _walk(node: Any, visit: Any, *, mapping: bool = False) -> None:
    """``visit`` every schema in ``node``; a mapping of names to schemas (properties, components) is not one
    itself, and examples are data, left alone."""
    if isinstance(node, dict):
        if not mapping:
            visit(node)
        for key, value in node.items():
            if key != "example":
                _walk(value, visit, mapping=not mapping and key in NAMED)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _tidy(settings: Settings) -> Any:
    """A visitor that puts the server's codes in for the enum markers, types enums, drops msgspec's titles and
    moves a nullable field's description up from its non-null branch (where msgspec leaves it)."""
    codes = {
        "reasons": [code for code, _label in settings.reasons],
        "languages": [code for code, _name, _dir in settings.languages],
        "dispositions": [code for code, _label, _category in settings.dispositions],
    }
    json_type = {str: "string", int: "integer", bool: "boolean"}

    def visit(schema: Schema) -> None:
        if ENUM_MARKER in schema:
            schema["enum"] = list(codes[schema.pop(ENUM_MARKER)])
        if "enum" in schema and "type" not in schema:
            kinds = {json_type.get(type(value)) for value in schema["enum"]}
            if len(kinds) == 1 and None not in kinds:
                schema["type"] = kinds.pop()
        if isinstance(schema.get("title"), str) and schema.get("type") == "object":
            del schema["title"]
        branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
        if len(branches) == 1:
            for key in ("description", "examples"):
                if key in branches[0] and key not in schema:
                    schema[key] = branches[0].pop(key)

    return visit


def _parameters(schema: Schema, where: str) -> list[Schema]:
    """A query or path Struct's fields as parameters (a parameter is absent rather than null)."""
    out = []
    for name, field in schema["properties"].items():
        field = dict(field)
        branches = [b for b in field.pop("anyOf", ()) if b != {"type": "null"}]
        if branches:
            field = {**branches[0], **field} if len(branches) == 1 else {**field, "anyOf": branches}
        if field.get("default", 0) is None:
            del field["default"]
        param: Schema = {"name": name, "in": where, "required": where == "path" or name in schema["required"]}
        if "description" in field:
            param["description"] = field.pop("description")
        if "examples" in field:
            param["example"] = field.pop("examples")[0]
        param["schema"] = field
        out.append(param)
    return out


def _may_refuse(model: type[msgspec.Struct]) -> bool:
    """Whether strings (a path, a query) can fail to decode as ``model``: not when every field takes any string."""

    def any_string(kind: msgspec.inspect.Type) -> bool:
        if isinstance(kind, msgspec.inspect.UnionType):
            return all(any_string(k) for k in kind.types)
        if isinstance(kind, msgspec.inspect.StrType):
            return kind.min_length is None and kind.max_length is None and kind.pattern is None
        return isinstance(kind, msgspec.inspect.NoneType)

    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return not all(any_string(field.type) for field in info.fields)


def _media_schema(media: str) -> Schema:
    return {"type": "string"} if media.startswith("text/") else {"type": "string", "format": "binary"}


def _answer(description: str, model: Any, media: tuple[str, ...], schema_of: dict[int, Schema]) -> Schema:
    out: Schema = {"description": description}
    if media:
        out["content"] = {m: {"schema": _media_schema(m)} for m in media}
    elif model is not None:
        out["content"] = {"application/json": {"schema": schema_of[id(model)]}}
    return out


def _auth_text(op: Operation) -> str:
    auth = op.auth
    if auth.kind == "public":
        return "Public: no login needed."
    if auth.kind == "customer":
        return "Public: no login; the call's own token (in the body, or the X-Call-Token header) authorises it."
    parts = []
    if auth.kind != "api_key":
        roles = "any staff role" if set(auth.roles) == set(ROLES) else "role " + ", ".join(auth.roles)
        parts.append(f"staff login ({roles})")
    if auth.scope is not None:
        parts.append(f"an API key with the {auth.scope} scope")
    return "Who: " + " or ".join(parts) + "."


def _operation(op: Operation, schema_of: dict[int, Schema], components: dict[str, Schema]) -> Schema:
    """One operation; the answers its auth and inputs imply (401, 403, 400, 413, 404) are added here."""
    auth, codes = op.auth, set(op.errors)
    if auth.kind not in ("public", "customer"):
        codes.add(401)
        if auth.scope is not None or set(auth.roles) != set(ROLES):
            codes.add(403)
    if op.method in UNSAFE:
        codes.add(403)  # a foreign Origin; with the cookie, a missing CSRF header
    if op.body is not None:
        codes.update((400, 413))
    if op.query is not None and _may_refuse(op.query):
        codes.add(400)
    if op.path_params is not None and _may_refuse(op.path_params):
        codes.add(404)
    if op.path_params is not None:
        parameters = _parameters(components[op.path_params.__name__], "path")
    else:
        names = [part[1:-1] for part in op.path.split("/") if part.startswith("{")]
        parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    if op.query is not None:
        parameters += _parameters(components[op.query.__name__], "query")
    parameters += [
        {"name": n, "in": "header", "description": d, "schema": {"type": "string"}} for n, d in op.headers.items()
    ]
    if op.method in UNSAFE and auth.kind in ("staff", "staff_or_key"):
        parameters.append({"$ref": "#/components/parameters/CsrfToken"})
    out: Schema = {
        "operationId": op.op_id,
        "summary": op.summary,
        "description": " ".join(p for p in (op.description, _auth_text(op)) if p),
        "tags": [op.tag],
    }
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content: Schema = {"schema": schema_of[id(op.body)]}
        if getattr(op.body, "example", None) is not None:
            content["example"] = op.body.example  # type: ignore[attr-defined]
        required = any(f.required for f in msgspec.structs.fields(op.body))
        out["requestBody"] = {"required": required, "content": {"application/json": content}}
    model_doc = (getattr(op.response, "__doc__", None) or "").split("\n")[0] if isinstance(op.response, type) else ""
    answer = op.answer or model_doc or STATUS_TEXT.get(op.status, "OK.")
    responses = {str(op.status): _answer(answer, op.response, op.media, schema_of)}
    for status, extra in sorted(op.also.items()):
        responses[str(status)] = _answer(extra.description, extra.model, extra.media, schema_of)
    for code in sorted(codes):
        responses.setdefault(str(code), {"$ref": f"#/components/responses/{ERRORS[code][0]}"})
    out["responses"] = {**dict(sorted(responses.items())), "default": {"$ref": "#/components/responses/Unexpected"}}
    security: list[Schema] = []
    if auth.scope is not None:
        security.append({"apiKey": [auth.scope]})
    if auth.kind in ("staff", "staff_or_key"):
        security.append({"staffCookie": list(auth.roles)})
        out["x-rapport-roles"] = list(auth.roles)
    out["security"] = security
    if auth.scope is not None:
        out["x-rapport-scope"] = auth.scope
    return out


def _security_schemes() -> Schema:
    scopes = ", ".join(SCOPES)
    return {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": f"{KEY_PREFIX}<43 characters>",
            "description": f"An API key for another system (a CRM, a device fleet): {KEY_PREFIX} and 43 URL-safe "
            "characters, created with `rapport api-keys create --name NAME --scopes SCOPES`, shown once, stored "
            f"hashed, revoked with `rapport api-keys revoke ID`. Scopes: {scopes}. A wrong or revoked key is 401 "
            "not_authenticated; a key without the route's scope is 403 forbidden. No CSRF header is needed with a key.",
        },
        "staffCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": "The staff login cookie set by POST /api/v1/auth/login (HttpOnly, SameSite=Strict, "
            "12 hours). Every unsafe request (POST, PUT, PATCH, DELETE) made with it must send the login's "
            f"csrf_token in the {CSRF_HEADER} header. The role names listed with an operation are the staff roles "
            "it allows.",
        },
    }


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server's HTTP API (a fresh copy: callers may change it)."""
    operations = [op for table in tables() for op in table.operations]
    models: list[Any] = [Error]
    for op in operations:
        models += [m for m in (op.body, op.query, op.path_params, op.response) if m is not None]
        models += [answer.model for answer in op.also.values() if answer.model is not None]
    unique = list({id(m): m for m in models}.values())
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    schema_of = {id(m): s for m, s in zip(unique, schemas, strict=True)}
    paths: dict[str, dict[str, Schema]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schema_of, components)
    for op in operations:  # a query or path Struct is parameters, not a schema
        for struct in (op.query, op.path_params):
            components.pop(getattr(struct, "__name__", ""), None)
    responses = {
        name: {"description": text, "content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}}}
        for name, text in ERRORS.values()
    }
    for name in ("RateLimited", "Unavailable"):
        responses[name]["headers"] = RETRY_AFTER
    responses["Unexpected"] = {**responses["BadRequest"], "description": UNEXPECTED}
    doc = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Rapport API",
            "version": API_VERSION,
            "summary": "Two-way video customer support: calls, invites, sessions, QA, reports and webhooks.",
            "description": "Staff use the console's login cookie; other systems use API keys "
            f"(Authorization: Bearer {KEY_PREFIX}…). Errors are JSON: "
            '{"error": {"code": "...", "message": "..."}}. Times are ISO 8601 in UTC.',
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": settings.public_url.rstrip("/") if settings.public_url else "/"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "parameters": {
                "CsrfToken": {
                    "name": CSRF_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "The csrf_token from login or /api/v1/me. Required with the staff cookie "
                    "(403 csrf without it); not used with an API key.",
                    "schema": {"type": "string"},
                }
            },
            "responses": responses,
            "securitySchemes": _security_schemes(),
        },
    }
    doc = copy.deepcopy(doc)  # examples and shared schemas must not be changed through the answer
    _walk(doc, _tidy(settings))
    return doc


# routes


@routes.get(
    "/api/v1/openapi.json", op="getOpenApi", auth=PUBLIC, response=AnyObject, answer="The OpenAPI 3.1 document."
)
async def openapi_json(request: web.Request) -> web.Response:
    """This document"""
    return web.json_response(document(request.app[SETTINGS]))


@routes.get("/api/docs", op="getApiDocs", auth=PUBLIC, media="text/html", answer="An HTML page.")
async def docs_page(request: web.Request) -> web.Response:
    """This document as a readable page"""
    page = render_html(document(request.app[SETTINGS]))
    # /api/ answers get no CSP from the middleware (they are JSON); this one is a page.
    return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": CSP})


def setup_routes(app: web.Application) -> None:
    routes.setup(app)


def main(argv: Sequence[str]) -> None:
    """Print the document with the default settings, or write it to the file named (``make docs``)."""
    text = json.dumps(document(Settings()), indent=2, ensure_ascii=False) + "\n"
    if argv:
        with open(argv[0], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
