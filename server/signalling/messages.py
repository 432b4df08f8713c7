"""What clients send (protocol v1): one Struct per message type, decoded and checked in one pass.

These Structs are the one description of the client's messages: ``parse`` decodes a frame straight into
them (msgspec checks types, lengths and choices as it reads), the endpoint's handlers read their
attributes, and the reference in docs/protocol.md is generated from them (``server.signalling.protocol_doc``).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from ..calls.errors import ProtocolError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP_CHARS = 48 * 1024
MAX_CHAT_CHARS = 2000
MAX_JSON_DEPTH = 8
MAX_ID_CHARS = 64

# Text that is not only whitespace: "   " is as empty as "" (the same characters str.strip() removes).
NOT_BLANK = r"\S"

RequestId = Annotated[
    str,
    Meta(
        max_length=MAX_ID_CHARS,
        description="Any string the client picks; direct replies and errors carry it back as `reply_to`.",
    ),
]
SessionId = Annotated[
    str,
    Meta(
        max_length=64,
        description="The call this is about; left out, the sender's current call. Another call is `session_not_found`.",
    ),
]
Reason = Annotated[str, Meta(max_length=64, description="A reason code (the deployment's codes, or free text).")]


class ClientMessage(Struct, tag_field="type", kw_only=True, frozen=True, gc=False):
    """Every client message may carry an ``id``; ``senders`` says who may send it ("none": before ``hello``)."""

    id: RequestId | None = None
    senders: ClassVar[frozenset[str]] = frozenset()


class Hello(ClientMessage, tag="hello", kw_only=True, frozen=True, gc=False):
    """The first message on every socket, within 10 s; answered by `welcome`.

    A customer sends their call token; staff send none (the login cookie says who they are). A token
    wins over a cookie.
    """

    token: Annotated[str, Meta(max_length=128, description="The customer's call token.")] | None = None
    protocol: Annotated[int, Meta(description="The protocol version the client speaks (1).")] | None = None
    senders = frozenset({"none"})


class Ping(ClientMessage, tag="ping", kw_only=True, frozen=True, gc=False):
    """Answered with `pong`."""

    senders = frozenset({"none", "customer", "rep", "supervisor"})


class Offer(ClientMessage, tag="offer", kw_only=True, frozen=True, gc=False):
    """Start or replace this participant's media; only while the call is active (a supervisor: the call they
    assist). Answered by `answer`."""

    sdp: Annotated[
        str,
        Meta(
            max_length=MAX_SDP_CHARS,
            pattern=NOT_BLANK,
            description="The SDP offer, with all ICE candidates (the server does not trickle).",
        ),
    ]
    session_id: SessionId | None = None
    senders = frozenset({"customer", "rep", "supervisor"})


class MediaState(ClientMessage, tag="media.state", kw_only=True, frozen=True, gc=False):
    """Mute, camera off, and which camera is in use; the other side gets `peer.media`."""

    audio: Annotated[bool, Meta(description="The microphone is on.")]
    video: Annotated[bool, Meta(description="The camera is on.")]
    facing: Annotated[Literal["user", "environment"], Meta(description="Which camera is in use.")] | None = None
    session_id: SessionId | None = None
    senders = frozenset({"customer", "rep"})


class ChatSend(ClientMessage, tag="chat.send", kw_only=True, frozen=True, gc=False):
    """Post a chat line in the call; both sides get it back as `chat.message`."""

    text: Annotated[
        str, Meta(max_length=MAX_CHAT_CHARS, pattern=NOT_BLANK, description="The line; not only whitespace.")
    ]
    session_id: SessionId | None = None
    senders = frozenset({"customer", "rep"})


class SnapshotTake(ClientMessage, tag="snapshot.take", kw_only=True, frozen=True, gc=False):
    """Take a full-resolution still of the customer's camera: their page gets `snapshot.request` and uploads one;
    you get it as `file.shared` (kind `snapshot`), or `snapshot.failed` after `snapshot_timeout_s`.

    Errors: `customer_absent`, `snapshot_pending` (one is on its way), `rate_limited` (`snapshots_per_minute`).
    """

    session_id: SessionId | None = None
    senders = frozenset({"rep"})


class CallEnd(ClientMessage, tag="call.end", kw_only=True, frozen=True, gc=False):
    """Leave or end the call: `abandoned` while waiting, `ended` in a call; answered by `call.ended`.
    A supervisor ends only a call they took over."""

    reason: Reason | None = None
    session_id: SessionId | None = None
    senders = frozenset({"customer", "rep", "supervisor"})


class RepStatus(ClientMessage, tag="rep.status", kw_only=True, frozen=True, gc=False):
    """The rep is at the desk or not; answered with `rep.status`."""

    status: Annotated[Literal["available", "away"], Meta(description="At the desk, or not.")]
    senders = frozenset({"rep"})


class QueueResync(ClientMessage, tag="queue.resync", kw_only=True, frozen=True, gc=False):
    """The console's copy of the queue is stale (a `queue.delta` did not follow its version): answered with a
    `queue.snapshot`, then the ack."""

    senders = frozenset({"rep"})


class CallAccept(ClientMessage, tag="call.accept", kw_only=True, frozen=True, gc=False):
    """Take a waiting call; the first accept wins, the others get `already_taken`."""

    session_id: Annotated[str, Meta(max_length=64, pattern=NOT_BLANK, description="The waiting call.")]
    senders = frozenset({"rep"})


class ConsentEmotion(ClientMessage, tag="consent.emotion", kw_only=True, frozen=True, gc=False):
    """Turn emotion cues off (or on) at once, also mid-call."""

    enabled: Annotated[bool, Meta(description="Emotion cues may run.")]
    senders = frozenset({"customer"})


class CallDecline(ClientMessage, tag="call.decline", kw_only=True, frozen=True, gc=False):
    """Not me: the ringing call rings at the next rep and is not offered to this one again."""

    session_id: Annotated[str, Meta(max_length=64, pattern=NOT_BLANK, description="The call ringing here.")]
    senders = frozenset({"rep"})


class CallTransfer(ClientMessage, tag="call.transfer", kw_only=True, frozen=True, gc=False):
    """Hand the live call to an available rep (it rings there) or back to a queue (optionally another reason's).

    Errors: `rep_unavailable`, `not_in_call`.
    """

    session_id: SessionId | None = None
    rep_id: Annotated[int, Meta(description="The rep to hand the call to (from `queue.snapshot`'s `reps`).")] | None = (
        None
    )
    reason: Reason | None = None
    note: Annotated[str, Meta(max_length=500, description="For the next rep; never shown to the customer.")] | None = (
        None
    )
    senders = frozenset({"rep"})


AssistModeName = Annotated[
    Literal["listen", "whisper", "barge"],
    Meta(description="`listen` (hear and see both sides), `whisper` (the rep alone hears you), `barge` (join openly)."),
]


class AssistStart(ClientMessage, tag="assist.start", kw_only=True, frozen=True, gc=False):
    """Open a live call from the floor; then send an `offer` for it. Errors: `session_not_found`,
    `already_assisted` (another supervisor is in it), `forbidden`."""

    session_id: Annotated[str, Meta(max_length=64, pattern=NOT_BLANK, description="The live call.")]
    mode: AssistModeName
    senders = frozenset({"supervisor"})


class AssistMode(ClientMessage, tag="assist.mode", kw_only=True, frozen=True, gc=False):
    """Listen, whisper or join openly, in the call you assist (no new offer). Error: `not_assisting`."""

    mode: AssistModeName
    senders = frozenset({"supervisor"})


class AssistLeave(ClientMessage, tag="assist.leave", kw_only=True, frozen=True, gc=False):
    """Leave the call you assist; it goes on without you."""

    senders = frozenset({"supervisor"})


class AssistTakeOver(ClientMessage, tag="assist.take_over", kw_only=True, frozen=True, gc=False):
    """Take the call over: you join openly, the rep drops out, and the call is yours to end (`call.end`)."""

    senders = frozenset({"supervisor"})


class WhisperSend(ClientMessage, tag="whisper.send", kw_only=True, frozen=True, gc=False):
    """A text whisper to the rep of the call you assist; the customer never sees it."""

    text: Annotated[
        str, Meta(max_length=MAX_CHAT_CHARS, pattern=NOT_BLANK, description="The line; not only whitespace.")
    ]
    senders = frozenset({"supervisor"})


class HelpAsk(ClientMessage, tag="help.ask", kw_only=True, frozen=True, gc=False):
    """Ask a supervisor for help with the call (or withdraw it); answered with `help.state`."""

    on: Annotated[bool, Meta(description="Help wanted.")]
    senders = frozenset({"rep"})


# Documentation order: the order of docs/protocol.md's reference.
CLIENT_MESSAGES: tuple[type[ClientMessage], ...] = (
    Hello,
    Ping,
    Offer,
    MediaState,
    ChatSend,
    SnapshotTake,
    CallEnd,
    ConsentEmotion,
    RepStatus,
    QueueResync,
    CallAccept,
    CallDecline,
    CallTransfer,
    HelpAsk,
    AssistStart,
    AssistMode,
    AssistLeave,
    AssistTakeOver,
    WhisperSend,
)
AnyClientMessage = (
    Hello
    | Ping
    | Offer
    | MediaState
    | ChatSend
    | SnapshotTake
    | CallEnd
    | ConsentEmotion
    | RepStatus
    | QueueResync
    | CallAccept
    | CallDecline
    | CallTransfer
    | HelpAsk
    | AssistStart
    | AssistMode
    | AssistLeave
    | AssistTakeOver
    | WhisperSend
)


def wire_type(cls: type[Struct]) -> str:
    """The ``type`` a message class has on the wire."""
    return str(cls.__struct_config__.tag)


MESSAGE_TYPES: dict[str, type[ClientMessage]] = {wire_type(cls): cls for cls in CLIENT_MESSAGES}

_DECODER = msgspec.json.Decoder(AnyClientMessage)


def _choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """(message type, field) -> the allowed values in their declared order, for "one of ..." errors."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for cls in CLIENT_MESSAGES:
        for name, hint in typing.get_type_hints(cls).items():
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            for kind in typing.get_args(hint) if union else (hint,):
                if typing.get_origin(kind) is Literal:
                    found[(wire_type(cls), name)] = tuple(str(v) for v in typing.get_args(kind))
    return found


_CHOICES = _choices()
_QUOTED = re.compile(r"`([^`]*)`")


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


def _too_large(text: str) -> bool:
    # A character is 1 to 4 bytes: only the frames in between need encoding to know.
    if len(text) * 4 <= MAX_MESSAGE_BYTES:
        return False
    return len(text) > MAX_MESSAGE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES


def _few_brackets(text: str) -> bool:
    """At most MAX_JSON_DEPTH of ``{`` and ``[`` in all (str.find is memchr; str.count is ten times slower)."""
    found = 0
    for bracket in "{[":
        at = text.find(bracket)
        while at >= 0:
            found += 1
            if found > MAX_JSON_DEPTH:
                return False
            at = text.find(bracket, at + 1)
    return True


def parse(text: str) -> AnyClientMessage:
    """Decode and check one text frame; raises ProtocolError with a precise message."""
    if _too_large(text):
        raise ProtocolError("too_large", f"message over {MAX_MESSAGE_BYTES} bytes")
    invalid: str | None = None
    # With no more brackets than the depth limit, the frame cannot nest too deep: decode it at once.
    shallow = _few_brackets(text)
    if shallow:
        try:
            return _DECODER.decode(text)
        except msgspec.ValidationError as exc:
            invalid = str(exc)
        except (msgspec.DecodeError, RecursionError, UnicodeError):
            pass
    # A bad frame, or one that may nest too deep: the checks in the protocol's order.
    raw = _plain(text, shallow=shallow)
    if invalid is None:
        try:
            return _DECODER.decode(text)
        except msgspec.ValidationError as exc:
            invalid = str(exc)
    raise _explain(invalid, raw, raw.get("id"))


def _plain(text: str, *, shallow: bool) -> dict[str, Any]:
    """The frame as plain JSON, for the checks before the message's own: JSON, an object, depth, ``id``."""
    try:
        raw = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object")
    if not shallow and _depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProtocolError("bad_json", "message nested too deep")
    msg_id = raw.get("id")
    if msg_id is not None and (not isinstance(msg_id, str) or len(msg_id) > MAX_ID_CHARS):
        raise ProtocolError("bad_message", f"id: must be a string of at most {MAX_ID_CHARS} characters")
    return raw


def _explain(error: str, raw: dict[str, Any], msg_id: str | None) -> ProtocolError:
    """msgspec's ValidationError in the protocol's words: ``<field>: <what is wrong>``."""
    msg_type = raw.get("type")
    if not isinstance(msg_type, str):
        return ProtocolError("bad_message", "type: required string", msg_id)
    if msg_type not in MESSAGE_TYPES:
        return ProtocolError("unknown_type", f"unknown message type {msg_type[:40]!r}", msg_id)
    # msgspec's "<what> - at `$.<field>`"; a missing field has no path.
    what, at, path = error.partition(" - at `$.")
    field = path.removesuffix("`") if at else None
    if field is None:
        # "Object missing required field `text`"
        quoted = _QUOTED.findall(what)
        return ProtocolError("bad_message", f"{quoted[-1]}: required" if quoted else what, msg_id)
    if "got `null`" in what:
        detail = "required"
    elif what.startswith("Expected `str` of length <= "):
        detail = f"at most {what.rsplit(' ', 1)[-1]} characters"
    elif what.startswith("Expected `str` matching regex"):
        detail = "must not be empty"
    elif what.startswith("Invalid enum value") and (msg_type, field) in _CHOICES:
        detail = f"one of {', '.join(_CHOICES[(msg_type, field)])}"
    elif what.startswith("Expected `"):
        # "Expected `int | null`, got `bool`": the kind without the null that stands for "left out".
        detail = f"must be a {_QUOTED.findall(what)[0].removesuffix(' | null')}"
    else:
        detail = what
    return ProtocolError("bad_message", f"{field}: {detail}", msg_id)
