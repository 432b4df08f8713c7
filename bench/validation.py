"""What checking a WebSocket message costs: the old hand-written validator, msgspec, and pydantic v2.

    .venv/bin/python bench/validation.py [--rounds 5] [--min-time 0.2]

Every text frame a client sends is checked on the server's one event loop before anything else
happens, so this is the hot path's fixed cost per message. Each validator gets the same frames
(an offer with a 4 KiB SDP, chat.send, media.state, ping, and a bad chat.send) and does the whole
job: the 64 KiB limit, the nesting-depth limit, the message's own checks, and on a bad frame the
ProtocolError a client reads. ``old`` is the validator that server/signalling/messages.py held
before msgspec (copied below as it was); ``msgspec`` is today's ``parse``; ``pydantic`` (from the
``bench`` dependency group: ``uv sync --group bench``) is the same protocol as pydantic v2 models,
skipped when pydantic is not installed. Times are the best of ``--rounds`` rounds, per message.

The second table is the other direction: encoding the queue snapshot every rep gets when the queue
changes (the largest message the server sends often), as the old dict through ``json.dumps``, the
Struct through msgspec, and a pydantic model through ``model_dump_json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.calls.errors import ProtocolError  # noqa: E402
from server.calls.payloads import QueueItem, QueueSnapshot, RepEntry  # noqa: E402
from server.signalling import messages  # noqa: E402

# --- the old validator (server/signalling/messages.py before msgspec), unchanged but for names ---

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
class OldClientMessage:
    type: str
    data: dict[str, Any]
    id: str | None


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


def old_parse(text: str) -> OldClientMessage:
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
        return _old_validate(raw, msg_id)
    except ProtocolError as exc:
        exc.reply_to = msg_id
        raise


def _old_validate(raw: dict[str, Any], msg_id: str | None) -> OldClientMessage:
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
    return OldClientMessage(type=msg_type, data=data, id=msg_id)


# --- the same protocol as pydantic v2 models ---


def pydantic_parser() -> Callable[[str], Any] | None:
    """``parse`` built on pydantic: the same limits, strict types (no "1" for 1, no true for 1)."""
    try:
        import pydantic
    except ImportError:
        return None
    from pydantic import BaseModel, ConfigDict, TypeAdapter
    from pydantic import Field as P

    class Base(BaseModel):
        model_config = ConfigDict(strict=True, frozen=True)
        id: Annotated[str, P(max_length=64)] | None = None

    Session = Annotated[str, P(max_length=64)] | None
    NotBlank = r"\S"

    class Hello(Base):
        type: Literal["hello"]
        token: Annotated[str, P(max_length=128)] | None = None
        protocol: int | None = None

    class Ping(Base):
        type: Literal["ping"]

    class Offer(Base):
        type: Literal["offer"]
        sdp: Annotated[str, P(max_length=MAX_SDP_CHARS, pattern=NotBlank)]
        session_id: Session = None

    class MediaState(Base):
        type: Literal["media.state"]
        audio: bool
        video: bool
        facing: Literal["user", "environment"] | None = None
        session_id: Session = None

    class ChatSend(Base):
        type: Literal["chat.send"]
        text: Annotated[str, P(max_length=MAX_CHAT_CHARS, pattern=NotBlank)]
        session_id: Session = None

    class CallEnd(Base):
        type: Literal["call.end"]
        reason: Annotated[str, P(max_length=64)] | None = None
        session_id: Session = None

    class RepStatus(Base):
        type: Literal["rep.status"]
        status: Literal["available", "away"]

    class CallAccept(Base):
        type: Literal["call.accept"]
        session_id: Annotated[str, P(max_length=64, pattern=NotBlank)]

    class ConsentEmotion(Base):
        type: Literal["consent.emotion"]
        enabled: bool

    class CallDecline(Base):
        type: Literal["call.decline"]
        session_id: Annotated[str, P(max_length=64, pattern=NotBlank)]

    class CallTransfer(Base):
        type: Literal["call.transfer"]
        session_id: Session = None
        rep_id: int | None = None
        reason: Annotated[str, P(max_length=64)] | None = None
        note: Annotated[str, P(max_length=500)] | None = None

    AnyMessage = Annotated[
        Hello
        | Ping
        | Offer
        | MediaState
        | ChatSend
        | CallEnd
        | RepStatus
        | CallAccept
        | ConsentEmotion
        | CallDecline
        | CallTransfer,
        P(discriminator="type"),
    ]
    adapter: TypeAdapter[Any] = TypeAdapter(AnyMessage)

    def parse(text: str) -> Any:
        if len(text) * 4 > MAX_MESSAGE_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
            raise ProtocolError("too_large", f"message over {MAX_MESSAGE_BYTES} bytes")
        if not messages._few_brackets(text):
            raw = json.loads(text)  # the depth check needs the whole tree (rare: few frames have brackets)
            if isinstance(raw, dict) and _depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
                raise ProtocolError("bad_json", "message nested too deep")
        try:
            return adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"][1:]) or "type"
            raise ProtocolError("bad_message", f"{where}: {first['msg']}") from None

    return parse


# --- frames and measurement ---


def sdp_of(size: int) -> str:
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1"]
    n = 0
    while sum(len(line) + 2 for line in lines) < size:
        lines.append(f"a=candidate:{n} 1 udp 2122260223 192.168.1.{n % 250} {50000 + n} typ host generation 0")
        n += 1
    return "\r\n".join(lines) + "\r\n"


FRAMES: dict[str, str] = {
    "offer (4 KiB SDP)": json.dumps({"type": "offer", "sdp": sdp_of(4096), "id": "o1"}),
    "chat.send": json.dumps({"type": "chat.send", "text": "Could you look at order 5521, please?", "id": "c7"}),
    "media.state": json.dumps({"type": "media.state", "audio": True, "video": False, "facing": "user"}),
    "ping": json.dumps({"type": "ping"}),
    "bad chat.send (text: 5)": json.dumps({"type": "chat.send", "text": 5, "id": "b1"}),
}


def per_call_s(fn: Callable[[str], Any], text: str, *, rounds: int, min_time: float) -> float:
    """The best of ``rounds`` rounds, each long enough to measure, in seconds per call."""

    def call() -> None:
        try:
            fn(text)
        except ProtocolError:
            pass

    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            call()
        if time.perf_counter() - started >= min_time / 5:
            break
        loops *= 2
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def snapshot(items: int) -> QueueSnapshot:
    now = "2024-05-01T12:00:00.000Z"
    return QueueSnapshot(
        items=[
            QueueItem(
                session_id=f"s_{i:022d}",
                customer_name=f"Customer {i}",
                reason="order",
                device="iPhone · Safari",
                priority=i % 3,
                language="nl",
                identified=i % 2 == 0,
                ringing=False,
                queued_at=now,
                waited_s=i * 7,
                connected=True,
            )
            for i in range(items)
        ],
        available_reps=3,
        reps=[RepEntry(id=i, display_name=f"Rep {i}", status="available") for i in range(10)],
    )


def pydantic_snapshot_encoder(data: dict[str, Any]) -> Callable[[], bytes] | None:
    try:
        from pydantic import BaseModel
    except ImportError:
        return None

    class Item(BaseModel):
        session_id: str
        customer_name: str | None
        reason: str | None
        device: str | None
        priority: int
        language: str | None
        identified: bool
        ringing: bool
        queued_at: str
        waited_s: int
        connected: bool

    class Rep(BaseModel):
        id: int
        display_name: str
        status: str

    class Snapshot(BaseModel):
        type: Literal["queue.snapshot"] = "queue.snapshot"
        items: list[Item]
        available_reps: int
        reps: list[Rep]

    model = Snapshot.model_validate(data)
    return lambda: model.model_dump_json().encode()


def encode_per_call_s(fn: Callable[[], Any], *, rounds: int, min_time: float) -> float:
    return per_call_s(lambda _text: fn(), "", rounds=rounds, min_time=min_time)


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per round and validator, about")
    args = parser.parse_args(argv)
    validators: dict[str, Callable[[str], Any]] = {"old": old_parse, "msgspec": messages.parse}
    pydantic_parse = pydantic_parser()
    if pydantic_parse is not None:
        validators["pydantic"] = pydantic_parse

    versions = [f"python {sys.version.split()[0]}", f"msgspec {msgspec.__version__}"]
    if pydantic_parse is not None:
        import pydantic

        versions.append(f"pydantic {pydantic.VERSION}")
    else:
        versions.append("pydantic not installed (uv sync --group bench)")
    print("Checking one client message (µs per message, messages per second; best of", args.rounds, "rounds)")
    print(", ".join(versions))
    print()
    names = list(validators)
    widths = [30] + [22] * len(names)
    print(row(["message", *names], widths))
    for label, text in FRAMES.items():
        cells = [f"{label} ({len(text.encode())} B)"]
        for name in names:
            seconds = per_call_s(validators[name], text, rounds=args.rounds, min_time=args.min_time)
            cells.append(f"{seconds * 1e6:7.2f} µs {1 / seconds:10,.0f}/s")
        print(row(cells, widths))

    print()
    print("Encoding a queue snapshot (µs per message, messages per second)")
    print()
    encoders = ["json.dumps(dict)", "msgspec(Struct)", "pydantic(model)"]
    print(row(["waiting calls", *encoders], [30] + [22] * len(encoders)))
    encode = msgspec.json.Encoder().encode
    for items in (10, 50, 200):
        struct = snapshot(items)
        data = msgspec.to_builtins(struct)
        timed: dict[str, Callable[[], Any] | None] = {
            "json.dumps(dict)": lambda data=data: json.dumps(data, separators=(",", ":")),
            "msgspec(Struct)": lambda struct=struct: encode(struct),
            "pydantic(model)": pydantic_snapshot_encoder(data),
        }
        size = len(encode(struct))
        cells = [f"{items} ({size:,} B)"]
        for name in encoders:
            fn = timed[name]
            if fn is None:
                cells.append("n/a")
                continue
            seconds = encode_per_call_s(fn, rounds=args.rounds, min_time=args.min_time)
            cells.append(f"{seconds * 1e6:7.2f} µs {1 / seconds:10,.0f}/s")
        print(row(cells, [30] + [22] * len(encoders)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
