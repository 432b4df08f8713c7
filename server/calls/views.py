"""What each audience sees of a call: the one place where call messages are filled in.

A customer holds nothing but a link, so every message for a customer socket is built
here, from named fields, as one of the customer's types in ``payloads`` (which have no
field for staff data). The rep's messages carry the customer card: CRM context, contact,
the customer reference and the history of earlier sessions with the reps' notes. They
are built by the ``rep_*`` functions and never go to a customer.

Over 500 lines because it is the one place where customer messages are filled in: split up, a customer
message could be built somewhere the payload tests do not look.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from ..storage.records import ChatRecord, SessionFile, SessionRecord, User, iso
from .payloads import (
    CUSTOMER_KEYS,
    AttentionEntry,
    Bye,
    CallHandler,
    CallMonitored,
    CallOffer,
    CallOfferCancelled,
    CallParty,
    CallTakenOver,
    CallTransferred,
    CustomerCallAccepted,
    CustomerCallEnded,
    CustomerCard,
    CustomerChatLine,
    CustomerChatMessage,
    CustomerFile,
    CustomerFileShared,
    CustomerSession,
    CustomerWelcome,
    EmotionStatusMessage,
    EmotionUpdateMessage,
    FloorUpdate,
    HelpState,
    HistoryEntry,
    IceServer,
    MediaFlags,
    MediaRestart,
    PeerMedia,
    PeerState,
    QueueItem,
    QueueNew,
    QueuePosition,
    RecordingState,
    RepAssistState,
    RepCallAccepted,
    RepCallEnded,
    RepCallTransferred,
    RepChatLine,
    RepChatMessage,
    RepEntry,
    RepFile,
    RepFileShared,
    RepName,
    RepStatusChanged,
    RepWelcome,
    SnapshotFailed,
    SnapshotRequest,
    StaffUser,
    SupervisorAssistState,
    SupervisorName,
    SupervisorWelcome,
    WhisperMessage,
    WrapUp,
)

if TYPE_CHECKING:
    from emotion import EmotionUpdate

    from .state import LiveSession

# The signalling protocol's version, in every welcome (and in GET /api/v1/config).
PROTOCOL_VERSION = 1

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
    """The keys anywhere in ``message`` (plain JSON values) that are not in ``allowed``."""
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


def recording_state(live: LiveSession) -> RecordingState:
    note = live.recording_note or "off"
    return RecordingState(session_id=live.id, recording=note == "recording", state=note)


def peer_state(session_id: str, who: str, state: str) -> PeerState:
    return PeerState(session_id=session_id, who=who, state=state)


def media_restart(session_id: str, reason: str = "media_node_lost") -> MediaRestart:
    return MediaRestart(session_id=session_id, reason=reason)


def peer_media(who: str, flags: Mapping[str, Any]) -> PeerMedia:
    return PeerMedia(who=who, **{k: flags[k] for k in ("audio", "video", "facing") if k in flags})


def bye(reason: str) -> Bye:
    return Bye(reason=reason)


# the customer


def browser_ice_servers(ice_servers: Iterable[Mapping[str, Any]]) -> list[IceServer]:
    """The ``iceServers`` a page's RTCPeerConnection gets (every welcome carries them)."""
    return [IceServer(**server) for server in ice_servers]


def staff_user(user: User) -> StaffUser:
    return StaffUser(id=user.id, username=user.username, display_name=user.display_name, role=user.role)


def customer_session(record: SessionRecord) -> CustomerSession:
    """The session as its customer may see it: its id, its state and the customer's own choices."""
    return CustomerSession(
        session_id=record.id,
        state=record.state,
        emotion_consent=record.emotion_consent,
        recording_consent=record.recording_consent,
    )


def customer_chat_line(record: ChatRecord, seq: int) -> CustomerChatLine:
    """A chat line numbered within its session (not the database's id), named only when the rep wrote it."""
    return CustomerChatLine(
        seq=seq,
        sender=record.sender,
        name=record.sender_name if record.sender == "rep" else None,
        text=record.text,
        at=iso(record.created_at),
    )


def customer_chat(records: Iterable[ChatRecord]) -> list[CustomerChatLine]:
    return [customer_chat_line(record, seq) for seq, record in enumerate(records, start=1)]


def customer_chat_message(record: ChatRecord, seq: int) -> CustomerChatMessage:
    line = customer_chat_line(record, seq)
    return CustomerChatMessage(seq=line.seq, sender=line.sender, name=line.name, text=line.text, at=line.at)


def customer_file_url(file: SessionFile) -> str:
    return f"/api/v1/calls/files/{file.id}"


def staff_file_url(file: SessionFile) -> str:
    return f"/api/v1/sessions/{file.session_id}/files/{file.id}"


def customer_file(file: SessionFile) -> CustomerFile:
    """A file as its customer sees it: no staff id, no sender name, their own URL (the call token opens it)."""
    return CustomerFile(
        file_id=file.id,
        sender=file.sender,
        kind=file.kind,
        name=file.name,
        media_type=file.media_type,
        size=file.size,
        width=file.width,
        height=file.height,
        url=customer_file_url(file),
        at=iso(file.created_at),
    )


def customer_file_shared(file: SessionFile) -> CustomerFileShared:
    return CustomerFileShared(session_id=file.session_id, file=customer_file(file))


def snapshot_request(session_id: str) -> SnapshotRequest:
    return SnapshotRequest(session_id=session_id)


def customer_accepted(live: LiveSession) -> CustomerCallAccepted:
    """A rep took the call: who (by display name), and what the page needs to run it."""
    rep_flags = live.media_flags.get("rep")
    return CustomerCallAccepted(
        session_id=live.id,
        answered_at=iso(live.record.answered_at),
        rep=RepName(display_name=live.rep.display_name if live.rep else None),
        # The rep's microphone and camera only: which camera they use is theirs.
        peer_media=MediaFlags(**{k: rep_flags[k] for k in ("audio", "video") if k in rep_flags}) if rep_flags else None,
        emotion_consent=live.record.emotion_consent,
        recording=recording_state(live),
    )


def customer_welcome(
    live: LiveSession,
    *,
    chat: list[CustomerChatLine],
    files: Iterable[SessionFile] = (),
    ice_servers: Iterable[Mapping[str, Any]],
) -> CustomerWelcome:
    return CustomerWelcome(
        protocol=PROTOCOL_VERSION,
        ice_servers=browser_ice_servers(ice_servers),
        session=customer_session(live.record),
        chat=chat,
        files=[customer_file(f) for f in files],
        call=customer_accepted(live) if live.state == "active" and live.rep is not None else UNSET,
    )


def queue_position(position: int, estimated_wait_s: int) -> QueuePosition:
    return QueuePosition(position=position, estimated_wait_s=estimated_wait_s)


def customer_transferred(session_id: str, to: str) -> CallTransferred:
    return CallTransferred(session_id=session_id, to=to)


def customer_ended(record: SessionRecord, known_reasons: frozenset[str] = frozenset()) -> CustomerCallEnded:
    """The end of the call; a wait that ran out offers a callback (POST /api/v1/calls/callback)."""
    reason = record.end_reason
    if record.ended_by == "rep" and reason not in SYSTEM_END_REASONS and reason not in known_reasons:
        # The rep's own words for why the call ended are for the staff.
        reason = "rep_hangup"
    return CustomerCallEnded(
        session_id=record.id,
        state=record.state,
        ended_by=record.ended_by,
        reason=reason,
        callback=True if record.end_reason == MAX_WAIT else UNSET,
    )


# the rep


def rep_chat_line(record: ChatRecord) -> RepChatLine:
    return RepChatLine(
        id=record.id,
        session_id=record.session_id,
        sender=record.sender,
        name=record.sender_name,
        text=record.text,
        at=iso(record.created_at),
    )


def rep_chat(records: Iterable[ChatRecord]) -> list[RepChatLine]:
    return [rep_chat_line(record) for record in records]


def rep_chat_message(record: ChatRecord) -> RepChatMessage:
    line = rep_chat_line(record)
    return RepChatMessage(
        id=line.id, session_id=line.session_id, sender=line.sender, name=line.name, text=line.text, at=line.at
    )


def rep_file(file: SessionFile) -> RepFile:
    return RepFile(
        file_id=file.id,
        session_id=file.session_id,
        sender=file.sender,
        kind=file.kind,
        name=file.name,
        media_type=file.media_type,
        size=file.size,
        width=file.width,
        height=file.height,
        url=staff_file_url(file),
        at=iso(file.created_at),
    )


def rep_files(files: Iterable[SessionFile]) -> list[RepFile]:
    return [rep_file(f) for f in files]


def rep_file_shared(file: SessionFile) -> RepFileShared:
    return RepFileShared(session_id=file.session_id, file=rep_file(file))


def snapshot_failed(session_id: str, reason: str) -> SnapshotFailed:
    message = {
        "timeout": "the customer's camera did not send a photo",
        "ended": "the call ended before the customer's camera sent a photo",
    }.get(reason, "no photo came from the customer's camera")
    return SnapshotFailed(session_id=session_id, reason=reason, message=message)


def rep_accepted(live: LiveSession) -> RepCallAccepted:
    """The rep's view of the call: the whole customer card, history with earlier notes included."""
    record = live.record
    return RepCallAccepted(
        session_id=live.id,
        answered_at=iso(record.answered_at),
        rep=RepName(display_name=live.rep.display_name if live.rep else None),
        customer=CustomerCard(
            name=record.customer_name,
            reason=record.reason,
            device=record.device,
            created_at=iso(record.created_at),
            language=record.language,
            contact=record.contact,
            ref=record.customer_ref,
            identified=live.identified,
            context=record.context,
            priority=record.priority,
            history=[HistoryEntry(**visit.to_json()) for visit in live.history],
        ),
        peer_media={role: MediaFlags(**flags) for role, flags in live.media_flags.items()},
        emotion_consent=record.emotion_consent,
        recording=recording_state(live),
    )


def queue_item(live: LiveSession) -> QueueItem:
    """A waiting call as reps and supervisors see it in the queue."""
    record = live.record
    return QueueItem(
        session_id=live.id,
        customer_name=record.customer_name,
        reason=record.reason,
        device=record.device,
        priority=record.priority,
        language=record.language,
        identified=live.identified,
        ringing=live.offer is not None,
        queued_at=_queued_at(record.queued_at),
        waited_s=int(time.time() - record.queued_at),
        connected=live.conns.get("customer") is not None,
    )


@functools.lru_cache(maxsize=4096)
def _queued_at(ts: float) -> str:
    """``iso`` for queue items: every send lists the same waiting calls, so each time is formatted once."""
    return iso(ts)


def queue_items(waiting: Iterable[LiveSession]) -> list[QueueItem]:
    return [queue_item(live) for live in waiting]


def rep_entries(reps: Iterable[tuple[User, str]]) -> list[RepEntry]:
    """Who a call can be transferred to right now."""
    return [RepEntry(id=user.id, display_name=user.display_name, status=status) for user, status in reps]


def queue_new(item: QueueItem) -> QueueNew:
    return QueueNew(item=item)


def rep_status(status: str) -> RepStatusChanged:
    return RepStatusChanged(status=status)


def call_offer(live: LiveSession, *, ring_timeout_s: float, transfer: bool, note: str | None) -> CallOffer:
    return CallOffer(
        session_id=live.id,
        ring_timeout_s=ring_timeout_s,
        item=queue_item(live),
        transfer=transfer,
        note=note if note else UNSET,
    )


def offer_cancelled(session_id: str, reason: str) -> CallOfferCancelled:
    return CallOfferCancelled(session_id=session_id, reason=reason)


def rep_transferred(session_id: str, to: str, note: str | None) -> RepCallTransferred:
    return RepCallTransferred(session_id=session_id, to=to, note=note)


def rep_welcome(
    user: User,
    *,
    status: str,
    call: RepCallAccepted | None,
    wrap_up: str | None,
    ice_servers: Iterable[Mapping[str, Any]],
) -> RepWelcome:
    return RepWelcome(
        protocol=PROTOCOL_VERSION,
        ice_servers=browser_ice_servers(ice_servers),
        user=staff_user(user),
        status=status,
        call=call,
        wrap_up=WrapUp(session_id=wrap_up) if wrap_up else None,
    )


def rep_ended(record: SessionRecord, *, wrap_up: bool) -> RepCallEnded:
    return RepCallEnded(
        session_id=record.id,
        state=record.state,
        ended_by=record.ended_by,
        reason=record.end_reason,
        wrap_up=wrap_up,
    )


def emotion_update(event: EmotionUpdate, session_id: str) -> EmotionUpdateMessage:
    fields = event.to_dict()
    del fields["type"]
    return EmotionUpdateMessage(**fields, session_id=session_id)


def emotion_status(status: str, message: str, session_id: str) -> EmotionStatusMessage:
    return EmotionStatusMessage(status=status, message=message, session_id=session_id)


# supervisor assist: the customer learns a name and whether someone is there, nothing else


def customer_party(session_id: str, *, present: bool, name: str | None) -> CallParty:
    return CallParty(session_id=session_id, present=present, name=name)


def customer_handler(session_id: str, user: User) -> CallHandler:
    return CallHandler(session_id=session_id, rep=RepName(display_name=user.display_name))


def customer_monitored(session_id: str, on: bool) -> CallMonitored:
    return CallMonitored(session_id=session_id, on=on)


def supervisor_name(user: User) -> SupervisorName:
    return SupervisorName(id=user.id, display_name=user.display_name)


def rep_assist_state(session_id: str, supervisor: User | None, mode: str | None) -> RepAssistState:
    return RepAssistState(
        session_id=session_id, supervisor=supervisor_name(supervisor) if supervisor else None, mode=mode
    )


def rep_whisper(session_id: str, supervisor: User, text: str) -> WhisperMessage:
    return WhisperMessage(session_id=session_id, name=supervisor.display_name, text=text, at=iso(time.time()))


def help_state(session_id: str, on: bool) -> HelpState:
    return HelpState(session_id=session_id, on=on)


def rep_taken_over(session_id: str, supervisor: User) -> CallTakenOver:
    return CallTakenOver(session_id=session_id, by=supervisor_name(supervisor))


def supervisor_welcome(
    user: User, *, ice_servers: Iterable[Mapping[str, Any]], floor: dict[str, Any]
) -> SupervisorWelcome:
    return SupervisorWelcome(
        protocol=PROTOCOL_VERSION,
        ice_servers=browser_ice_servers(ice_servers),
        user=staff_user(user),
        floor=floor,
    )


def floor_update(floor: dict[str, Any]) -> FloorUpdate:
    return FloorUpdate(floor=floor)


def supervisor_assist_state(
    session_id: str, mode: str | None, *, handler: bool = False, reason: str | None = None
) -> SupervisorAssistState:
    return SupervisorAssistState(
        session_id=session_id, mode=mode, handler=handler, reason=UNSET if reason is None else reason
    )


def attention_entry(live: LiveSession, *, why: list[str], urgency: int, since: float, talk_s: int) -> AttentionEntry:
    rep = live.rep
    return AttentionEntry(
        session_id=live.id,
        rep=supervisor_name(rep) if rep is not None else None,
        reason=live.record.reason,
        talk_s=talk_s,
        why=why,
        urgency=urgency,
        since=iso(since),
    )
