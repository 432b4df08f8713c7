"""Client messages: msgspec's checks in the protocol's words, and the rules around them (size, depth, ids)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.calls.errors import ProtocolError
from server.signalling.messages import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    CallTransfer,
    ChatSend,
    Hello,
    MediaState,
    Offer,
    Ping,
    parse,
)


def refusal(message: dict[str, Any] | str) -> tuple[str, str, str | None]:
    with pytest.raises(ProtocolError) as caught:
        parse(message if isinstance(message, str) else json.dumps(message))
    return caught.value.code, caught.value.message, caught.value.reply_to


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "chat.send"}, "text: required"),
        ({"type": "chat.send", "text": None}, "text: required"),
        ({"type": "chat.send", "text": 5}, "text: must be a str"),
        ({"type": "chat.send", "text": ["hi"]}, "text: must be a str"),
        ({"type": "chat.send", "text": " \t\n "}, "text: must not be empty"),
        ({"type": "chat.send", "text": "x" * 2001}, "text: at most 2000 characters"),
        ({"type": "chat.send", "text": "hi", "session_id": 7}, "session_id: must be a str"),
        ({"type": "hello", "token": "x" * 129}, "token: at most 128 characters"),
        ({"type": "media.state", "audio": "yes", "video": True}, "audio: must be a bool"),
        ({"type": "media.state", "audio": True, "video": True, "facing": "back"}, "facing: one of user, environment"),
        ({"type": "rep.status", "status": "asleep"}, "status: one of available, away"),
        ({"type": "rep.status", "status": 1}, "status: must be a str"),
        ({"type": "call.accept", "session_id": ""}, "session_id: must not be empty"),
        ({"type": "call.transfer", "note": "n" * 501}, "note: at most 500 characters"),
        ({"no_type": 1}, "type: required string"),
        ({"type": 42}, "type: required string"),
    ],
)
def test_a_bad_field_is_named_with_what_is_wrong(message: dict[str, Any], expected: str) -> None:
    assert refusal(message) == ("bad_message", expected, None)


def test_a_bool_is_not_an_int() -> None:
    assert refusal({"type": "call.transfer", "rep_id": True})[:2] == ("bad_message", "rep_id: must be a int")
    assert refusal({"type": "hello", "protocol": False})[:2] == ("bad_message", "protocol: must be a int")
    assert refusal({"type": "call.transfer", "rep_id": 7.0})[:2] == ("bad_message", "rep_id: must be a int")
    assert parse(json.dumps({"type": "call.transfer", "rep_id": 7})) == CallTransfer(rep_id=7)


def test_errors_carry_the_id_back_unless_the_id_is_the_fault() -> None:
    assert refusal({"type": "chat.send", "text": 7, "id": "m1"}) == ("bad_message", "text: must be a str", "m1")
    assert refusal({"type": "teleport", "id": "m2"}) == ("unknown_type", "unknown message type 'teleport'", "m2")
    for bad_id in ({"x": 1}, 5, True, "i" * 65):
        assert refusal({"type": "ping", "id": bad_id}) == (
            "bad_message",
            "id: must be a string of at most 64 characters",
            None,
        )
    assert parse(json.dumps({"type": "ping", "id": "i" * 64})) == Ping(id="i" * 64)


def test_frames_that_are_not_a_json_object_or_nest_too_deep() -> None:
    assert refusal("{not json")[0] == "bad_json"
    assert refusal('{"type": "ping"} trailing')[0] == "bad_json"
    assert refusal("[1, 2, 3]")[:2] == ("bad_json", "a message must be a JSON object")
    assert refusal('"ping"')[:2] == ("bad_json", "a message must be a JSON object")
    # Deep nesting anywhere, in a field the type does not have too, and however deep.
    deep = {"type": "ping", "extra": [[[[[[[[[[[[1]]]]]]]]]]]]}
    assert refusal(deep)[:2] == ("bad_json", "message nested too deep")
    for depth in (20, 5_000, 30_000):
        assert refusal('{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}")[0] in ("bad_json", "too_large")
    # Seven levels below the message itself are fine, and so are brackets inside strings.
    assert parse(json.dumps({"type": "ping", "extra": [[[[[[[1]]]]]]]})) == Ping()
    sdp = "v=0\r\n" + "a=msid:{4b5b4f1c} {a5d6e7f8}\r\n" * 20
    assert parse(json.dumps({"type": "offer", "sdp": sdp})) == Offer(sdp=sdp)


def test_the_size_limit_counts_utf8_bytes() -> None:
    assert refusal({"type": "chat.send", "text": "x" * 70_000})[0] == "too_large"
    # 33,000 characters of two bytes each: under the limit in characters, over it in bytes.
    two_bytes = json.dumps({"type": "chat.send", "text": "é" * 33_000}, ensure_ascii=False)
    assert len(two_bytes) < MAX_MESSAGE_BYTES < len(two_bytes.encode())
    assert refusal(two_bytes)[0] == "too_large"
    just_under = json.dumps({"type": "offer", "sdp": "v" * (MAX_MESSAGE_BYTES - 100)})
    assert refusal(just_under)[:2] == ("bad_message", "sdp: at most 49152 characters")


def test_good_messages_decode_to_their_types() -> None:
    assert parse('{"type": "ping"}') == Ping()
    # Unknown fields are ignored, null stands for a field left out, and the type may come last.
    assert parse('{"text": "hi", "colour": "red", "session_id": null, "type": "chat.send"}') == ChatSend(text="hi")
    assert parse('{"type": "hello", "token": "t", "protocol": 1}') == Hello(token="t", protocol=1)
    assert parse('{"type": "media.state", "audio": true, "video": false, "facing": "user"}') == MediaState(
        audio=True, video=False, facing="user"
    )
    assert refusal('{"type": "teleport"}')[:2] == ("unknown_type", "unknown message type 'teleport'")


def test_every_message_type_has_a_handler_and_senders() -> None:
    from server.signalling.endpoint import HANDLERS

    assert set(HANDLERS) == set(MESSAGE_TYPES)
    assert all(
        cls.senders and cls.senders <= {"none", "customer", "rep", "supervisor"} for cls in MESSAGE_TYPES.values()
    )
