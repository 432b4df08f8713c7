"""Signalling messages: parsing and validation of what clients send (protocol v1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..calls.errors import ProtocolError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP_CHARS = 48 * 1024
MAX_CHAT_CHARS = 2000
MAX_JSON_DEPTH = 8


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = True
    max_len: int | None = None
    min_len: int = 0
    choices: tuple[str, ...] | None = None


_ID = Field(str, required=False, max_len=64)
_SESSION = Field(str, required=False, max_len=64)

SCHEMAS: dict[str, dict[str, Field]] = {
    "hello": {"token": Field(str, required=False, max_len=128), "protocol": Field(int, required=False)},
    "ping": {},
    "offer": {"sdp": Field(str, max_len=MAX_SDP_CHARS, min_len=1), "session_id": _SESSION},
    "media.state": {
        "audio": Field(bool),
        "video": Field(bool),
        "facing": Field(str, required=False, choices=("user", "environment")),
        "session_id": _SESSION,
    },
    "chat.send": {"text": Field(str, max_len=MAX_CHAT_CHARS, min_len=1), "session_id": _SESSION},
    "call.end": {"reason": Field(str, required=False, max_len=64), "session_id": _SESSION},
    "rep.status": {"status": Field(str, choices=("available", "away"))},
    "call.accept": {"session_id": Field(str, max_len=64, min_len=1)},
    "consent.emotion": {"enabled": Field(bool)},
    "call.decline": {"session_id": Field(str, max_len=64, min_len=1)},
    "call.transfer": {
        "session_id": _SESSION,
        "rep_id": Field(int, required=False),
        "reason": Field(str, required=False, max_len=64),
        "note": Field(str, required=False, max_len=500),
    },
}


@dataclass(frozen=True)
class ClientMessage:
    type: str
    data: dict[str, Any]
    id: str | None

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def parse(text: str) -> ClientMessage:
    """Validate one text frame; raises ProtocolError with a precise message."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object")
    if _depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProtocolError("bad_json", "message nested too deep")
    msg_id = raw.get("id")
    if msg_id is not None and (not isinstance(msg_id, str) or len(msg_id) > 64):
        raise ProtocolError("bad_message", "id: must be a string of at most 64 characters")
    try:
        return _validate(raw, msg_id)
    except ProtocolError as exc:
        exc.reply_to = msg_id
        raise


def _validate(raw: dict[str, Any], msg_id: str | None) -> ClientMessage:
    msg_type = raw.get("type")
    if not isinstance(msg_type, str):
        raise ProtocolError("bad_message", "type: required string")
    schema = SCHEMAS.get(msg_type)
    if schema is None:
        raise ProtocolError("unknown_type", f"unknown message type {msg_type[:40]!r}")
    data: dict[str, Any] = {}
    for name, spec in schema.items():
        if name not in raw or raw[name] is None:
            if spec.required:
                raise ProtocolError("bad_message", f"{name}: required")
            continue
        value = raw[name]
        # bool is an int in Python; a protocol int field must not accept true/false.
        if (spec.kind is int and isinstance(value, bool)) or not isinstance(value, spec.kind):
            kind = spec.kind.__name__ if isinstance(spec.kind, type) else "value"
            raise ProtocolError("bad_message", f"{name}: must be a {kind}")
        if isinstance(value, str):
            if spec.max_len is not None and len(value) > spec.max_len:
                raise ProtocolError("bad_message", f"{name}: at most {spec.max_len} characters")
            if len(value.strip()) < spec.min_len:
                raise ProtocolError("bad_message", f"{name}: must not be empty")
            if spec.choices is not None and value not in spec.choices:
                raise ProtocolError("bad_message", f"{name}: one of {', '.join(spec.choices)}")
        data[name] = value
    return ClientMessage(type=msg_type, data=data, id=msg_id)


def error(code: str, message: str, reply_to: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if reply_to is not None:
        out["reply_to"] = reply_to
    return out
