"""What checking a WebSocket message costs: the old hand-written validator, msgspec, and pydantic v2.

    .venv/bin/python bench/validation.py [--rounds 5] [--min-time 0.2]

Every text frame a client sends is checked on the server's one event loop before anything else
happens, so this is the hot path's fixed cost per message. Each validator gets the same frames
(an offer with a 4 KiB SDP, chat.send, media.state, ping, and a bad chat.send) and does the whole
job: the 64 KiB limit, the nesting-depth limit, the message's own checks, and on a bad frame the
ProtocolError a client reads. ``old`` is the validator that server/signalling/messages.py held
before msgspec (its code copied below as it was, its table of fields read from today's Structs);
``msgspec`` is today's ``parse``; ``pydantic`` (from the ``bench`` dependency group: ``uv sync --group
bench``) is the same protocol as pydantic v2 models made from the same Structs, skipped when pydantic is
not installed. Times are the best of ``--rounds`` rounds, per message.

The second table is the other direction: encoding the queue snapshot every rep gets when the queue
changes (the largest message the server sends often), as the old dict through ``json.dumps``, the
Struct through msgspec, and the pydantic model of that Struct through ``model_dump_json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import msgspec.inspect as mi

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.calls.errors import ProtocolError  # noqa: E402
from server.calls.payloads import QueueItem, QueueSnapshot, RepEntry  # noqa: E402
from server.signalling import messages  # noqa: E402
from tests.fuzz.inputs import Field, ws_schemas  # noqa: E402

# --- the old validator (server/signalling/messages.py before msgspec): its code as it was, but for names; its
# table of fields read from today's Structs (tests/fuzz/inputs.py), and the depth walk the server still uses ---

MAX_MESSAGE_BYTES = messages.MAX_MESSAGE_BYTES
MAX_JSON_DEPTH = messages.MAX_JSON_DEPTH
SCHEMAS: dict[str, dict[str, Field]] = ws_schemas()
_depth = messages._depth


@dataclass(frozen=True)
class OldClientMessage:
    type: str
    data: dict[str, Any]
    id: str | None


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


def pydantic_models(structs: tuple[type[msgspec.Struct], ...], *, strict: bool) -> list[Any]:
    """A pydantic model for each Struct, with its fields, types, limits and tag (nested Structs too)."""
    from pydantic import ConfigDict, create_model
    from pydantic import Field as P

    config = ConfigDict(strict=strict, frozen=True)
    made: dict[type, Any] = {}

    def annotation(kind: mi.Type) -> Any:
        if isinstance(kind, mi.Metadata):
            return annotation(kind.type)
        if isinstance(kind, mi.StrType):
            return Annotated[str, P(min_length=kind.min_length, max_length=kind.max_length, pattern=kind.pattern)]
        if isinstance(kind, mi.IntType):
            return Annotated[int, P(gt=kind.gt, ge=kind.ge, lt=kind.lt, le=kind.le)]
        if isinstance(kind, mi.UnionType):
            return Union[tuple(annotation(option) for option in kind.types)]  # noqa: UP007
        if isinstance(kind, mi.LiteralType):
            return Literal[kind.values]
        if isinstance(kind, mi.ListType):
            return list[annotation(kind.item_type)]  # type: ignore[misc]
        if isinstance(kind, mi.StructType):
            return model(kind)
        return {mi.BoolType: bool, mi.NoneType: None}[type(kind)]

    def model(info: mi.StructType) -> Any:
        if info.cls not in made:
            # The tag first, where msgspec writes it.
            fields: dict[str, Any] = {info.tag_field: (Literal[info.tag], ...)} if info.tag_field else {}
            fields.update({f.name: (annotation(f.type), ... if f.required else f.default) for f in info.fields})
            made[info.cls] = create_model(info.cls.__name__, __config__=config, **fields)
        return made[info.cls]

    return [model(mi.type_info(struct)) for struct in structs]  # type: ignore[arg-type]


def pydantic_parser() -> Callable[[str], Any] | None:
    """``parse`` built on pydantic: the same limits, strict types (no "1" for 1, no true for 1)."""
    try:
        import pydantic
    except ImportError:
        return None
    from pydantic import Field as P
    from pydantic import TypeAdapter

    models = pydantic_models(messages.CLIENT_MESSAGES, strict=True)
    any_message: Any = Annotated[Union[tuple(models)], P(discriminator="type")]  # noqa: UP007
    adapter: TypeAdapter[Any] = TypeAdapter(any_message)

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
        version=1,
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
        import pydantic  # noqa: F401
    except ImportError:
        return None
    (snapshot_model,) = pydantic_models((QueueSnapshot,), strict=False)
    model = snapshot_model.model_validate(data)
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
