"""What each audience sees of a call: the one place where call messages are built.

A customer holds nothing but a link, so every message for a customer socket is built
here from named fields, and ``CUSTOMER_KEYS`` lists every key such a message may hold
(``Connection`` refuses anything else). The rep's messages carry the customer card:
CRM context, contact, the customer reference and the history of earlier sessions with
the reps' notes. They are built by the ``rep_*`` functions and never go to a customer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..storage.store import ChatRecord, SessionRecord, User, iso

if TYPE_CHECKING:
    from .center import LiveSession

# The signalling protocol's version, in every welcome (and in GET /api/v1/config).
PROTOCOL_VERSION = 1

# Every key a message to a customer may hold, at any depth. A new customer field is added
# here on purpose, after asking whether the customer may know it.
CUSTOMER_KEYS: frozenset[str] = frozenset(
    {
        # envelope, replies and errors
        "type",
        "reply_to",
        "code",
        "message",
        "sdp",
        # welcome
        "protocol",
        "role",
        "ice_servers",
        "urls",
        "username",
        "credential",
        "session",
        "chat",
        "call",
        # the session, as the customer knows it
        "session_id",
        "state",
        "emotion_consent",
        "recording_consent",
        "answered_at",
        "rep",
        "display_name",
        "recording",
        "peer_media",
        "audio",
        "video",
        "facing",
        # chat lines
        "seq",
        "from",
        "name",
        "text",
        "at",
        # queue, peers, endings
        "position",
        "estimated_wait_s",
        "who",
        "to",
        "ended_by",
        "reason",
        "callback",
    }
)

# End reasons the server gives; a rep's free-text reason is not repeated to the customer.
SYSTEM_END_REASONS = frozenset(
    {
        "customer_hangup",
        "customer_left",
        "customer_lost",
        "rep_hangup",
        "rep_lost",
        "media_failed",
        "server_shutdown",
        "max_wait",
    }
)
MAX_WAIT = "max_wait"


def stray_keys(message: Any, allowed: frozenset[str] = CUSTOMER_KEYS) -> set[str]:
    """The keys anywhere in ``message`` that are not in ``allowed``."""
    stray: set[str] = set()
    stack = [message]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stray.update(str(k) for k in item if k not in allowed)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return stray


# both audiences: nothing in these is about the customer or the staff


def recording_state(live: LiveSession) -> dict[str, Any]:
    note = live.recording_note or "off"
    return {"type": "recording.state", "session_id": live.id, "recording": note == "recording", "state": note}


def peer_state(session_id: str, who: str, state: str) -> dict[str, Any]:
    return {"type": "peer.state", "session_id": session_id, "who": who, "state": state}


def peer_media(who: str, flags: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "peer.media", "who": who, **{k: flags[k] for k in ("audio", "video", "facing") if k in flags}}


def bye(reason: str) -> dict[str, str]:
    return {"type": "bye", "reason": reason}


# the customer


def customer_session(record: SessionRecord) -> dict[str, Any]:
    """The session as its customer may see it: its id, its state and the customer's own choices."""
    return {
        "session_id": record.id,
        "state": record.state,
        "emotion_consent": record.emotion_consent,
        "recording_consent": record.recording_consent,
    }


def customer_chat_line(record: ChatRecord, seq: int) -> dict[str, Any]:
    """A chat line numbered within its session (not the database's id), named only when the rep wrote it."""
    return {
        "seq": seq,
        "from": record.sender,
        "name": record.sender_name if record.sender == "rep" else None,
        "text": record.text,
        "at": iso(record.created_at),
    }


def customer_chat(records: Iterable[ChatRecord]) -> list[dict[str, Any]]:
    return [customer_chat_line(record, seq) for seq, record in enumerate(records, start=1)]


def customer_chat_message(record: ChatRecord, seq: int) -> dict[str, Any]:
    return {"type": "chat.message", **customer_chat_line(record, seq)}


def customer_accepted(live: LiveSession) -> dict[str, Any]:
    """A rep took the call: who (by display name), and what the page needs to run it."""
    rep_flags = live.media_flags.get("rep")
    return {
        "type": "call.accepted",
        "session_id": live.id,
        "answered_at": iso(live.record.answered_at),
        "rep": {"display_name": live.rep.display_name if live.rep else None},
        "peer_media": {k: rep_flags[k] for k in ("audio", "video") if k in rep_flags} if rep_flags else None,
        "emotion_consent": live.record.emotion_consent,
        "recording": recording_state(live),
    }


def customer_welcome(
    live: LiveSession, *, chat: list[dict[str, Any]], ice_servers: list[dict[str, Any]]
) -> dict[str, Any]:
    welcome: dict[str, Any] = {
        "type": "welcome",
        "protocol": PROTOCOL_VERSION,
        "role": "customer",
        "ice_servers": ice_servers,
        "session": customer_session(live.record),
        "chat": chat,
    }
    if live.state == "active" and live.rep is not None:
        welcome["call"] = customer_accepted(live)
    return welcome


def queue_position(position: int, estimated_wait_s: int) -> dict[str, Any]:
    return {"type": "queue.position", "position": position, "estimated_wait_s": estimated_wait_s}


def customer_transferred(session_id: str, to: str) -> dict[str, Any]:
    return {"type": "call.transferred", "session_id": session_id, "to": to}


def customer_ended(record: SessionRecord, known_reasons: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The end of the call; a wait that ran out offers a callback (POST /api/v1/calls/callback)."""
    reason = record.end_reason
    if record.ended_by == "rep" and reason not in SYSTEM_END_REASONS and reason not in known_reasons:
        # The rep's own words for why the call ended are for the staff.
        reason = "rep_hangup"
    message: dict[str, Any] = {
        "type": "call.ended",
        "session_id": record.id,
        "state": record.state,
        "ended_by": record.ended_by,
        "reason": reason,
    }
    if record.end_reason == MAX_WAIT:
        message["callback"] = True
    return message


# the rep


def rep_chat_message(record: ChatRecord) -> dict[str, Any]:
    return {"type": "chat.message", **record.to_json()}


def rep_accepted(live: LiveSession) -> dict[str, Any]:
    """The rep's view of the call: the whole customer card, history with earlier notes included."""
    record = live.record
    return {
        "type": "call.accepted",
        "session_id": live.id,
        "answered_at": iso(record.answered_at),
        "rep": {"display_name": live.rep.display_name if live.rep else None},
        "customer": {
            "name": record.customer_name,
            "reason": record.reason,
            "device": record.device,
            "created_at": iso(record.created_at),
            "language": record.language,
            "contact": record.contact,
            "ref": record.customer_ref,
            "identified": live.identified,
            "context": record.context,
            "priority": record.priority,
            "history": live.history,
        },
        "peer_media": live.media_flags,
        "emotion_consent": record.emotion_consent,
        "recording": recording_state(live),
    }


def queue_item(live: LiveSession) -> dict[str, Any]:
    """A waiting call as reps and supervisors see it in the queue."""
    record = live.record
    return {
        "session_id": live.id,
        "customer_name": record.customer_name,
        "reason": record.reason,
        "device": record.device,
        "priority": record.priority,
        "language": record.language,
        "identified": live.identified,
        "ringing": live.offer is not None,
        "queued_at": iso(record.queued_at),
        "waited_s": int(time.time() - record.queued_at),
        "connected": live.conns.get("customer") is not None,
    }


def queue_snapshot(
    waiting: Iterable[LiveSession], *, available_reps: int, reps: Iterable[tuple[User, str]]
) -> dict[str, Any]:
    return {
        "type": "queue.snapshot",
        "items": [queue_item(live) for live in waiting],
        "available_reps": available_reps,
        # Who a call can be transferred to right now.
        "reps": [{"id": user.id, "display_name": user.display_name, "status": status} for user, status in reps],
    }


def rep_welcome(
    user: User,
    *,
    status: str,
    call: dict[str, Any] | None,
    wrap_up: str | None,
    ice_servers: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "type": "welcome",
        "protocol": PROTOCOL_VERSION,
        "role": "rep",
        "ice_servers": ice_servers,
        "user": user.to_json(),
        "status": status,
        "call": call,
        "wrap_up": {"session_id": wrap_up} if wrap_up else None,
    }


def rep_ended(record: SessionRecord, *, wrap_up: bool) -> dict[str, Any]:
    return {
        "type": "call.ended",
        "session_id": record.id,
        "state": record.state,
        "ended_by": record.ended_by,
        "reason": record.end_reason,
        "wrap_up": wrap_up,
    }
