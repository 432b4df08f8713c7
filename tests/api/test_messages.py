"""Message validation: any input gives a message or a ProtocolError, nothing else."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from server.calls.errors import ProtocolError
from server.signalling.messages import MESSAGE_TYPES, parse, wire_type
from tests.support.server import Rapport

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*MESSAGE_TYPES, "nope", ""]) | st.integers()},
    optional={
        "id": st.text(max_size=80) | st.integers(),
        "text": json_values,
        "sdp": json_values,
        "token": json_values,
        "status": json_values,
        "session_id": json_values,
        "audio": json_values,
        "video": json_values,
        "enabled": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | json_values.map(json.dumps) | message_like.map(json.dumps))
def test_any_text_parses_or_raises_a_protocol_error(text: str) -> None:
    try:
        msg = parse(text)
    except ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_message", "unknown_type", "too_large"}
        assert exc.message
    else:
        schema = MESSAGE_TYPES[wire_type(type(msg))]
        assert type(msg) is schema
        sent = json.loads(text)
        for name, kind in python_kinds(schema).items():
            value = getattr(msg, name)
            if value is None:
                continue
            assert name in sent
            # bool is an int in Python; a protocol int field must not take true/false.
            assert isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        # Every limit of the type holds: the message passes its own type's check again.
        assert msgspec.json.decode(msgspec.json.encode(msg), type=schema) == msg


def python_kinds(schema: type[msgspec.Struct]) -> dict[str, type]:
    """Each field's Python type (str for a choice of strings), from the message type's description."""
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    kinds: dict[str, type] = {}
    for field in info.fields:
        kind = field.type
        while True:
            if isinstance(kind, msgspec.inspect.Metadata):
                kind = kind.type
            elif isinstance(kind, msgspec.inspect.UnionType):
                (kind,) = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
            else:
                break
        simple = {msgspec.inspect.StrType: str, msgspec.inspect.IntType: int, msgspec.inspect.BoolType: bool}
        kinds[field.name] = str if isinstance(kind, msgspec.inspect.LiteralType) else simple[type(kind)]
    return kinds


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    for depth in (20, 5_000, 30_000):
        text = "[" * depth + "]" * depth
        try:
            parse(text)
        except ProtocolError as exc:
            assert exc.code in ("bad_json", "too_large")


async def test_random_message_sequences_never_break_the_server(rapport: Rapport) -> None:
    """Messages in any order, from both sides: only structured replies, and the server stays up."""
    rng = random.Random(1234)
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer()
    samples: list[dict[str, Any]] = [
        {"type": "offer", "sdp": "v=0\r\nm=audio 9 RTP 0\r\n"},
        {"type": "chat.send", "text": "hello"},
        {"type": "media.state", "audio": True, "video": False},
        {"type": "call.accept", "session_id": call["session_id"]},
        {"type": "call.accept", "session_id": "s_other"},
        {"type": "rep.status", "status": "away"},
        {"type": "rep.status", "status": "available"},
        {"type": "consent.emotion", "enabled": False},
        {"type": "hello", "token": call["token"]},
        {"type": "ping"},
        {"type": "chat.send", "text": "x", "session_id": "s_elsewhere"},
    ]
    for i in range(120):
        who = rep if rng.random() < 0.5 else customer
        await who.send({**rng.choice(samples), "id": f"q{i}"})
    await asyncio.sleep(2.5)  # let the rate limiter refill
    for who in (rep, customer):
        # Messages are answered in order: once this ping is answered, every earlier one was.
        assert (await who.request({"type": "ping"}))["type"] == "pong"
        replies = [m for m in who.inbox if str(m.get("reply_to", "")).startswith("q")]
        assert replies, "no replies at all"
        for m in replies:
            assert m["type"] in {"error", "ack", "pong", "answer"}
            if m["type"] == "error":
                assert m["code"] != "internal", m
