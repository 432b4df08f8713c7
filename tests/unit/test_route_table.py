"""The route table (server/http/api.py) on mocked requests: inputs decoded and checked, answers encoded."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, ClassVar
from unittest import mock

import msgspec
import pytest
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request
from msgspec import Meta

from server.config import SETTINGS, Settings
from server.http.api import PUBLIC, Operation, Routes
from server.http.models.common import Body, Query, Reply
from server.http.security import ApiError


class Contact(Body, kw_only=True):
    email: str | None = None
    phone: str | None = None


class Rating(Body, kw_only=True):
    rating: Annotated[int, Meta(ge=1, le=5)]
    contact: Contact | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.comment == "rude":
            raise ValueError("comment: be nice")


class Page(Query, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    state: str | None = None


class Thing(msgspec.Struct, kw_only=True):
    thing_id: Annotated[int, Meta(ge=1)]


class NamedThing(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such thing"
    thing_id: Annotated[int, Meta(ge=1)]


class Saved(Reply, kw_only=True):
    """What was saved."""

    rating: int
    limit: int


routes = Routes(tag="Test")


@routes.post(
    "/things/{thing_id}/rating", op="rate", auth=PUBLIC, body=Rating, query=Page, path_params=Thing, status=201
)
async def rate(request: web.Request, *, body: Rating, query: Page, path_params: Thing) -> Saved:
    """Rate a thing.

    Once a day,
    at most.
    """
    return Saved(rating=body.rating, limit=query.limit)


@routes.get("/teapot", op="teapot", auth=PUBLIC, summary="A teapot")
async def teapot(request: web.Request) -> web.Response:
    return web.Response(status=418, text="short and stout")


@routes.get("/named/{thing_id}", op="named", auth=PUBLIC, path_params=NamedThing, summary="A named thing")
async def named(request: web.Request, *, path_params: NamedThing) -> None:
    return None


@routes.delete("/things", op="forget", auth=PUBLIC, status=204)
async def forget(request: web.Request) -> None:
    """Forget everything."""


@routes.get("/maybe", op="maybe", auth=PUBLIC, response=Saved | None)
async def maybe(request: web.Request) -> Saved | None:
    """Nothing yet."""
    return None


def _op(op_id: str) -> Operation:
    return next(op for op in routes.operations if op.op_id == op_id)


def _request(method: str, url: str, body: bytes = b"", match_info: dict[str, str] | None = None) -> web.Request:
    app = web.Application()
    app[SETTINGS] = Settings()
    payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    headers = {"Content-Length": str(len(body))}
    return make_mocked_request(method, url, headers=headers, app=app, payload=payload, match_info=match_info or {})


async def call(op_id: str, url: str, body: Any = None, match_info: dict[str, str] | None = None) -> web.Response:
    """The operation's answer, an ApiError included (as aiohttp would send it)."""
    op = _op(op_id)
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    endpoint = next(r.handler for r in _app().router.routes() if r.resource and r.resource.canonical == op.path)
    try:
        answer = await endpoint(_request(op.method, url, raw, match_info))
    except ApiError as error:
        return error
    assert isinstance(answer, web.Response)
    return answer


def _app() -> web.Application:
    app = web.Application()
    routes.setup(app)
    return app


def error_of(answer: web.Response) -> tuple[int, str, str]:
    assert answer.body is not None
    error = json.loads(answer.text or "")["error"]
    return answer.status, error["code"], error["message"]


RATE = "/things/7/rating"
THING = {"thing_id": "7"}


async def test_a_struct_answer_is_encoded_with_the_tables_status() -> None:
    answer = await call("rate", RATE + "?limit=20", {"rating": 4}, THING)
    assert answer.status == 201 and answer.content_type == "application/json"
    assert json.loads(answer.text or "") == {"rating": 4, "limit": 20}


async def test_decode_errors_are_400_with_the_fields_path() -> None:
    cases = {
        "rating: expected int <= 5": {"rating": 6},
        "rating: required": {},
        "rating: expected int, got bool": {"rating": True},
        "contact.email: expected str | null, got int": {"rating": 1, "contact": {"email": 5}},
        "contact.fax: not a known field": {"rating": 1, "contact": {"fax": "1"}},
        "surprise: not a known field": {"rating": 1, "surprise": 1},
        "comment: be nice": {"rating": 1, "comment": "rude"},
        "body must be a JSON object": [1, 2],
        "body is not valid JSON": b"{not json",
    }
    for message, body in cases.items():
        answer = await call("rate", RATE, body, THING)
        assert error_of(answer) == (400, "bad_request", message), body
    # An empty body is an empty object: here, one without the required rating.
    assert error_of(await call("rate", RATE, b"", THING)) == (400, "bad_request", "rating: required")


async def test_the_query_is_converted_unknown_parameters_ignored() -> None:
    answer = await call("rate", RATE + "?limit=7&utm_source=mail&state=", {"rating": 2}, THING)
    assert answer.status == 201 and json.loads(answer.text or "")["limit"] == 7
    for query, message in (("limit=0", "limit: expected int >= 1"), ("limit=ten", "limit: expected int, got str")):
        assert error_of(await call("rate", f"{RATE}?{query}", {"rating": 2}, THING)) == (400, "bad_request", message)


async def test_path_parameters_that_do_not_fit_are_not_found() -> None:
    status, code, message = error_of(await call("rate", "/things/x/rating", {"rating": 2}, {"thing_id": "x"}))
    assert (status, code) == (404, "not_found") and message.startswith("thing_id:")
    # A path model may give the message an unknown id gets, so a malformed one looks the same.
    named_answer = await call("named", "/named/..", match_info={"thing_id": ".."})
    assert error_of(named_answer) == (404, "not_found", "no such thing")


async def test_other_answers_pass_through_and_none_is_no_content_or_null() -> None:
    teapot_answer = await call("teapot", "/teapot")
    assert teapot_answer.status == 418 and teapot_answer.text == "short and stout"
    nothing = await call("forget", "/things")
    assert nothing.status == 204 and not nothing.body
    null = await call("maybe", "/maybe")  # None where the answer may be null is JSON null, not no content
    assert null.status == 200 and null.text == "null" and null.content_type == "application/json"


def test_the_summary_and_description_come_from_the_docstring() -> None:
    assert (_op("rate").summary, _op("rate").description) == ("Rate a thing", "Once a day, at most.")
    assert (_op("teapot").summary, _op("teapot").description) == ("A teapot", "")


def test_a_table_refuses_what_it_cannot_describe() -> None:
    table = Routes(tag="Test")
    with pytest.raises(ValueError, match="path_params"):
        table.get("/things/{other_id}", op="x", auth=PUBLIC, path_params=Thing)
    with pytest.raises(ValueError, match="summary"):
        table.get("/nothing", op="y", auth=PUBLIC)(_bare)
    table.get("/a", op="z", auth=PUBLIC, summary="A")(teapot)
    with pytest.raises(ValueError, match="twice"):
        table.get("/b", op="z", auth=PUBLIC, summary="B")(teapot)


async def _bare(request: web.Request) -> None:
    return None


async def _typed(request: web.Request, *, body: Rating, query: Page, path_params: Thing) -> Saved:
    """Typed."""
    return Saved(rating=body.rating, limit=query.limit)


async def _own_answer(request: web.Request, *, query: Page) -> Saved | web.Response:
    """Its own answer."""
    return web.Response()


def test_inputs_and_answer_come_from_the_handlers_signature() -> None:
    table = Routes(tag="Test")
    table.post("/things/{thing_id}/rating", op="typed", auth=PUBLIC)(_typed)
    table.get("/own", op="own", auth=PUBLIC)(_own_answer)  # a handler's own web.Response: no answer type
    table.delete("/things", op="gone", auth=PUBLIC, status=204)(forget)
    typed, own, gone = table.operations
    assert (typed.body, typed.query, typed.path_params, typed.response) == (Rating, Page, Thing, Saved)
    assert (own.query, own.response, gone.response) == (Page, None, None)
    with pytest.raises(ValueError, match="signature"):
        table.post("/things/{thing_id}/rating", op="other", auth=PUBLIC, body=Contact)(_typed)
    with pytest.raises(ValueError, match="path_params"):
        table.get("/things/{other_id}", op="wrong", auth=PUBLIC)(_typed)
