"""The HTTP API's route table: each operation declared once, with who may call it and its typed input and answer.

A route module makes ``routes = Routes(tag="Sessions")`` and declares its operations on it::

    @routes.post("/api/v1/calls/rating", op="rateCall", auth=CUSTOMER, errors=(404, 409))
    async def rate_call(request: web.Request, *, body: Rating) -> Ok:
        \"\"\"Rate a call afterwards. ...\"\"\"

The handler's signature says the rest, once: the types of its ``body``, ``query`` and ``path_params``
parameters are the inputs, its return type the answer (``-> None``: no body). For each request the wrapper
checks who is calling (:class:`Auth`), then decodes and validates the path parameters (a failure is 404
not_found), the query string and the JSON body (400 bad_request ``"<field>: <what>"``) with msgspec, calls
the handler with ``path_params=``, ``query=`` and ``body=``, and encodes a Struct answer with the table's
status; a ``web.StreamResponse`` goes out as it is. The same table makes the OpenAPI document
(server/http/openapi.py): what is checked is what is documented.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
from aiohttp import web

from ..storage.records import User
from ..storage.users import ROLES
from .apikeys import Principal, require_principal
from .security import ApiError, read_body, require_staff

AuthKind = Literal["public", "customer", "staff", "api_key", "staff_or_key"]
Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Auth:
    """Who may call: anyone (public); a customer, by the call's token in the body (customer: the handler checks
    the token); staff with one of ``roles``; an API key with ``scopes`` (api_key); or either (staff_or_key)."""

    kind: AuthKind
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind in ("staff", "staff_or_key") and not self.roles:
            raise ValueError(f"{self.kind}: name the roles")
        if self.kind in ("api_key", "staff_or_key") and len(self.scopes) != 1:
            raise ValueError(f"{self.kind}: exactly one scope")

    @property
    def scope(self) -> str | None:
        return self.scopes[0] if self.scopes else None


PUBLIC = Auth("public")
CUSTOMER = Auth("customer")


def staff(*roles: str) -> Auth:
    """A staff login with one of ``roles`` (none named: any staff role)."""
    return Auth("staff", roles=roles or ROLES)


def staff_or_key(scope: str, *roles: str) -> Auth:
    """An API key with ``scope``, or a staff login with one of ``roles`` (none named: any staff role)."""
    return Auth("staff_or_key", roles=roles or ROLES, scopes=(scope,))


@dataclass(frozen=True)
class Answer:
    """An answer besides the success answer and the errors: another status, with its own body or none."""

    description: str
    model: Any = None
    media: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    op_id: str
    auth: Auth
    handler: Handler
    tag: str
    summary: str
    description: str
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None
    path_params: type[msgspec.Struct] | None = None
    response: Any = None
    status: int = 200
    answer: str | None = None
    errors: tuple[int, ...] = ()
    media: tuple[str, ...] = ()
    also: Mapping[int, Answer] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


# who is calling

CALLER = web.RequestKey("rapport_caller", Principal)


async def authorise(request: web.Request, auth: Auth) -> Principal | None:
    """The caller ``auth`` allows; 401 for nobody (or a wrong key), 403 for a wrong role or a key without the scope."""
    if auth.kind in ("public", "customer"):
        return None
    if auth.kind == "staff":
        user, _csrf, _login = await require_staff(request, auth.roles)
        return Principal(user=user)
    if auth.kind == "api_key" and "Authorization" not in request.headers:
        raise ApiError(401, "not_authenticated", "use Authorization: Bearer <API key>")
    return await require_principal(request, scope=auth.scopes[0], roles=auth.roles)


def caller(request: web.Request) -> Principal:
    """Who the table let in (a staff login or an API key); only for operations that are not public."""
    return request[CALLER]


def staff_user(request: web.Request) -> User:
    """The staff member calling an operation whose auth is ``staff(...)``."""
    user = request[CALLER].user
    if user is None:
        raise RuntimeError("staff_user() on an operation an API key may call")
    return user


# input: msgspec's errors as the API's

_WHERE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>[^`]+)`$")


def describe(error: msgspec.ValidationError, root: str = "body") -> str:
    """``"<field>: <what>"`` for a msgspec error (``$.a.b`` is ``a.b``); a ValueError's own message from a
    ``__post_init__`` (``"field: what"``) is kept, prefixed with the nested object's path."""
    match = _WHERE.match(str(error))
    what, path = (match["what"], (match["path"] or "").lstrip(".")) if match else (str(error), "")
    named = _FIELD.match(what)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
        what = "required" if named["kind"] == "missing required" else "not a known field"
    elif what[:1].isupper():  # msgspec's own wording
        what = what.replace("`", "")
        what = what[:1].lower() + what[1:]
    else:
        return f"{path}.{what}" if path else what
    return f"{path or root}: {what}"


@functools.cache
def _names(model: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.structs.fields(model))


def decode_query(request: web.Request, model: type[msgspec.Struct]) -> Any:
    """The query string as ``model``: unknown parameters are ignored, an empty one counts as absent."""
    values = {name: request.query[name] for name in _names(model) if request.query.get(name, "") != ""}
    try:
        return msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_request", describe(exc, "query")) from None


def decode_path(request: web.Request, model: type[msgspec.Struct]) -> Any:
    """The path parameters as ``model``; one that does not fit names nothing there is: 404, with the model's
    ``not_found`` message when it has one (the same answer as for an unknown id)."""
    try:
        return msgspec.convert(dict(request.match_info), model, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(404, "not_found", getattr(model, "not_found", None) or describe(exc, "path")) from None


async def decode_body(request: web.Request, decoder: msgspec.json.Decoder[Any]) -> Any:
    """The JSON body (size and time limits as security.read_body; an empty body is ``{}``), validated."""
    raw = await read_body(request)
    try:
        return decoder.decode(raw if raw.strip() else b"{}")
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `object`, got"):
            raise ApiError(400, "bad_request", "body must be a JSON object") from None
        raise ApiError(400, "bad_request", describe(exc)) from None
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "bad_request", "body is not valid JSON") from None


# output

_ENCODER = msgspec.json.Encoder()


def respond(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``value`` (a Struct, or a list of them) as a JSON answer; for a handler that sets cookies or headers."""
    return web.Response(
        body=_ENCODER.encode(value), status=status, content_type="application/json", charset="utf-8", headers=headers
    )


def _cell(value: Any) -> Any:
    # Spreadsheets run cells that start like a formula: neutralise them.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


# What an operation answering with respond_csv declares: ``@routes.get(path, ..., **CSV_EXPORT)``.
CSV_EXPORT: dict[str, Any] = {"media": "text/csv", "answer": "A CSV attachment."}


def respond_csv(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> web.Response:
    """A CSV attachment (an export): None is an empty cell, and no cell runs as a formula in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _endpoint(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    body_decoder = msgspec.json.Decoder(op.body) if op.body is not None else None

    @functools.wraps(op.handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = await authorise(request, op.auth)
        if principal is not None:
            request[CALLER] = principal
        inputs: dict[str, Any] = {}
        if op.path_params is not None:
            inputs["path_params"] = decode_path(request, op.path_params)
        if op.query is not None:
            inputs["query"] = decode_query(request, op.query)
        if body_decoder is not None:
            inputs["body"] = await decode_body(request, body_decoder)
        answer = await op.handler(request, **inputs)
        if isinstance(answer, web.StreamResponse):
            return answer
        if answer is None and op.response is None:
            return web.Response(status=op.status)
        return respond(answer, op.status)  # None here is a JSON null the response type allows

    return endpoint


# the table


def _check_path(op: str, path: str, path_params: type[msgspec.Struct] | None) -> None:
    if path_params is not None and set(_names(path_params)) != set(re.findall(r"\{(\w+)\}", path)):
        raise ValueError(f"{op}: path_params must be exactly the parameters of {path}")


def _summary_and_description(handler: Handler, summary: str | None) -> tuple[str, str]:
    doc = inspect.getdoc(handler) or ""
    if summary is not None:
        return summary, " ".join(doc.split())
    first, _, rest = doc.partition("\n\n")
    if not first:
        raise ValueError(f"{handler.__name__}: give a summary= or a docstring")
    return " ".join(first.split()).rstrip("."), " ".join(rest.split())


INPUTS = ("body", "query", "path_params")


def _streams(hint: Any) -> bool:
    """Whether a return type lets the handler answer with a web.StreamResponse of its own making."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return any(isinstance(part, type) and issubclass(part, web.StreamResponse) for part in parts)


def _signature(handler: Handler) -> dict[str, Any]:
    """The inputs and the answer a handler's annotations declare: ``body``, ``query`` and ``path_params`` by
    their types, ``response`` by the return type (not when the handler may build its own web.Response)."""
    hints = typing.get_type_hints(handler)
    declared = {name: hints[name] for name in INPUTS if name in hints}
    answer = hints.get("return", Any)
    if answer is not Any and not _streams(answer):
        declared["response"] = None if answer is type(None) else answer
    return declared


class Routes:
    """One route module's API operations; ``routes = Routes(tag="Sessions")`` at module level,
    ``routes.setup(app)`` in its ``setup_routes``; ``customers = routes.under("Customers")`` for a part of the
    module under another tag."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def under(self, tag: str) -> Routes:
        """This table, declaring operations under another tag (a module that serves several parts of the API)."""
        part = Routes(tag)
        part.operations = self.operations
        return part

    def route(
        self,
        method: str,
        path: str,
        *,
        op: str,
        auth: Auth,
        summary: str | None = None,
        tag: str | None = None,
        body: type[msgspec.Struct] | None = None,
        query: type[msgspec.Struct] | None = None,
        path_params: type[msgspec.Struct] | None = None,
        response: Any = None,
        status: int = 200,
        answer: str | None = None,
        errors: tuple[int, ...] = (),
        media: str | tuple[str, ...] | None = None,
        also: Mapping[int, Answer] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Callable[[H], H]:
        """Declare an operation. ``body``, ``query``, ``path_params`` and ``response`` default to what the
        handler's signature declares (give ``response`` for a handler that returns its own web.Response: the
        success answer's type, a Struct; None with status 204 or a non-JSON ``media``); ``answer``: what it
        means; ``errors``: statuses besides those the auth, body, query and path parameters already imply;
        ``also``: other answers (206, a 409 with a body); ``headers``: request headers it reads, with what they
        mean (documentation only)."""
        given = {"body": body, "query": query, "path_params": path_params, "response": response}
        _check_path(op, path, path_params)

        def register(handler: H) -> H:
            if any(o.op_id == op for o in self.operations):
                raise ValueError(f"operation {op} declared twice")
            text = _summary_and_description(handler, summary)
            declared = _signature(handler)
            for name, value in given.items():
                if value is not None and name in declared and declared[name] != value:
                    raise ValueError(f"{op}: {name}={value!r}, but the handler's signature says {declared[name]!r}")
            typed = {name: value if value is not None else declared.get(name) for name, value in given.items()}
            _check_path(op, path, typed["path_params"])
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    op_id=op,
                    auth=auth,
                    handler=handler,
                    tag=tag or self.tag,
                    summary=text[0],
                    description=text[1],
                    body=typed["body"],
                    query=typed["query"],
                    path_params=typed["path_params"],
                    response=typed["response"],
                    status=status,
                    answer=answer,
                    errors=errors,
                    media=(media,) if isinstance(media, str) else tuple(media or ()),
                    also=dict(also or {}),
                    headers=dict(headers or {}),
                )
            )
            return handler

        return register

    def get(self, path: str, **declared: Any) -> Callable[[H], H]:
        return self.route("GET", path, **declared)

    def post(self, path: str, **declared: Any) -> Callable[[H], H]:
        return self.route("POST", path, **declared)

    def put(self, path: str, **declared: Any) -> Callable[[H], H]:
        return self.route("PUT", path, **declared)

    def patch(self, path: str, **declared: Any) -> Callable[[H], H]:
        return self.route("PATCH", path, **declared)

    def delete(self, path: str, **declared: Any) -> Callable[[H], H]:
        return self.route("DELETE", path, **declared)

    def setup(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, _endpoint(op))
