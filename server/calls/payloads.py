"""Every message the server sends, one Struct per type and audience: the one description of them.

A type a customer socket may carry (``audience`` "customer" or "both") has no field for staff data
(the CRM context, contact, notes, history, staff ids), so a customer message cannot hold them whatever
its builder does; ``CUSTOMER_KEYS`` is derived from these types, and a customer socket refuses any type
meant for reps. ``views`` fills them in from a call's live state, ``Connection`` encodes them, and the
reference in docs/protocol.md is generated from them (``python -m server.signalling.protocol_doc``).

Over 500 lines because it is the one description of every message and audience: split up, the customer's
allow-list (``CUSTOMER_KEYS``) would be derived from more than one place.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

Audience = Literal["customer", "rep", "supervisor", "both"]

SessionId = Annotated[str, Meta(description="The session (call) id.")]
Time = Annotated[str, Meta(description="UTC, ISO 8601 (`2024-05-01T12:00:00Z`).")]
ReplyTo = Annotated[str, Meta(description="The `id` of the message this answers.")]
Who = Annotated[str, Meta(description="Which side of the call: `customer` or `rep`.")]


class ServerMessage(Struct, tag_field="type", kw_only=True):
    """A message the server sends; ``audience`` says whose sockets may carry it."""

    audience: ClassVar[Audience] = "both"


class ToCustomer(ServerMessage, kw_only=True):
    audience = "customer"


class ToRep(ServerMessage, kw_only=True):
    audience = "rep"


class ToSupervisor(ServerMessage, kw_only=True):
    audience = "supervisor"


# both audiences: replies, and nothing that is about the customer or the staff


class Error(ServerMessage, tag="error", kw_only=True):
    """A message could not be handled; the socket carries on (codes in the table above)."""

    code: Annotated[str, Meta(description="What went wrong, for programs (see the table of codes).")]
    message: Annotated[str, Meta(description="What went wrong, for people; names the field at fault.")]
    reply_to: ReplyTo | UnsetType = UNSET


class Ack(ServerMessage, tag="ack", kw_only=True):
    """The answer to a message with an `id` and no natural reply."""

    reply_to: ReplyTo


class Pong(ServerMessage, tag="pong", kw_only=True):
    """The answer to `ping`."""

    reply_to: ReplyTo | UnsetType = UNSET


class Answer(ServerMessage, tag="answer", kw_only=True):
    """The server's answer to an `offer`, with all its ICE candidates."""

    sdp: Annotated[str, Meta(description="The SDP answer.")]
    reply_to: ReplyTo | UnsetType = UNSET


class Bye(ServerMessage, tag="bye", kw_only=True):
    """Just before the server closes this socket."""

    reason: Annotated[str, Meta(description="`replaced` (a newer socket took over), `logged_out`, and the like.")]


class RecordingState(ServerMessage, tag="recording.state", kw_only=True):
    """The call's recording changed (also inside `call.accepted`); the call goes on whatever happens to it."""

    session_id: SessionId
    recording: Annotated[bool, Meta(description="Pages show a recording indicator while true.")]
    state: Annotated[
        str, Meta(description="`recording`, `declined`, `off`, `no_space`, or `truncated` after a disk error.")
    ]


class PeerState(ServerMessage, tag="peer.state", kw_only=True):
    """The other side dropped (`reconnecting`), came back (`connected`) or left."""

    session_id: SessionId
    who: Who
    state: Annotated[str, Meta(description="`connected` or `reconnecting`.")]


class MediaRestart(ServerMessage, tag="media.restart", kw_only=True):
    """The server moved the call's media (the media node carrying it was lost): send a new `offer` now.

    Chat and the call go on; until the new offer is answered, each side sees the other `reconnecting`.
    """

    session_id: SessionId
    reason: Annotated[str, Meta(description="`media_node_lost`.")]


class PeerMedia(ServerMessage, tag="peer.media", kw_only=True):
    """The other side muted, turned its camera off, or switched cameras (what it said in `media.state`)."""

    who: Who
    audio: Annotated[bool, Meta(description="Their microphone is on.")] | UnsetType = UNSET
    video: Annotated[bool, Meta(description="Their camera is on.")] | UnsetType = UNSET
    facing: Annotated[str, Meta(description="`user` or `environment`.")] | UnsetType = UNSET


# the parts of messages


class IceServer(Struct, kw_only=True):
    """One entry of `RTCPeerConnection`'s `iceServers`."""

    urls: Annotated[list[str], Meta(description="`stun:` and `turn:` URLs.")]
    username: Annotated[str, Meta(description="For a TURN server.")] | UnsetType = UNSET
    credential: Annotated[str, Meta(description="For a TURN server.")] | UnsetType = UNSET


class MediaFlags(Struct, kw_only=True):
    """What a participant last said in `media.state`."""

    audio: Annotated[bool, Meta(description="The microphone is on.")] | UnsetType = UNSET
    video: Annotated[bool, Meta(description="The camera is on.")] | UnsetType = UNSET
    facing: Annotated[str, Meta(description="`user` or `environment`.")] | UnsetType = UNSET


class RepName(Struct, kw_only=True):
    """The rep, as the customer may know them."""

    display_name: str | None


class CustomerSession(Struct, kw_only=True):
    """The session as its customer may see it: its id, its state and the customer's own choices."""

    session_id: SessionId
    state: Annotated[str, Meta(description="`waiting`, `active`, `ended`, `abandoned` or `interrupted`.")]
    emotion_consent: Annotated[bool | None, Meta(description="The customer allows emotion cues.")]
    recording_consent: Annotated[bool | None, Meta(description="The customer allows recording; null: not asked.")]


class CustomerChatLine(Struct, kw_only=True):
    """A chat line as the customer sees it: numbered within the call, named only when the rep wrote it."""

    seq: Annotated[int, Meta(description="The line's number in this call, from 1.")]
    sender: Who = field(name="from")
    name: Annotated[str | None, Meta(description="The rep's display name; null for the customer's own lines.")]
    text: str
    at: Time


class RepChatLine(Struct, kw_only=True):
    """A chat line as staff see it: the stored line with its id and session."""

    id: Annotated[int, Meta(description="The line's id in the database.")]
    session_id: SessionId
    sender: Who = field(name="from")
    name: Annotated[str | None, Meta(description="Who wrote it (the customer's name or the rep's).")]
    text: str
    at: Time


FileKind = Annotated[str, Meta(description="`file` (sent in the chat) or `snapshot` (the rep's still of the camera).")]


class CustomerFile(Struct, kw_only=True):
    """A photo, file or snapshot as the customer sees it: no staff ids, fetched with the call token."""

    file_id: Annotated[str, Meta(description="The file's random id.")]
    sender: Who = field(name="from")
    kind: FileKind
    name: Annotated[str, Meta(description="The file's name, with the extension of what it really is.")]
    media_type: Annotated[str, Meta(description="`image/jpeg`, `image/png` or `application/pdf`.")]
    size: Annotated[int, Meta(description="Bytes.")]
    width: Annotated[int | None, Meta(description="An image's width in pixels; null for a PDF.")]
    height: Annotated[int | None, Meta(description="An image's height in pixels; null for a PDF.")]
    url: Annotated[str, Meta(description="GET it with the `X-Call-Token` header (docs/api.md).")]
    at: Time


class RepFile(Struct, kw_only=True):
    """A photo, file or snapshot as staff see it; the URL takes the login cookie."""

    file_id: Annotated[str, Meta(description="The file's random id.")]
    session_id: SessionId
    sender: Who = field(name="from")
    kind: FileKind
    name: Annotated[str, Meta(description="The file's name, with the extension of what it really is.")]
    media_type: Annotated[str, Meta(description="`image/jpeg`, `image/png` or `application/pdf`.")]
    size: Annotated[int, Meta(description="Bytes.")]
    width: Annotated[int | None, Meta(description="An image's width in pixels; null for a PDF.")]
    height: Annotated[int | None, Meta(description="An image's height in pixels; null for a PDF.")]
    url: Annotated[str, Meta(description="`/api/v1/sessions/{session_id}/files/{file_id}`.")]
    at: Time


class StaffUser(Struct, kw_only=True):
    """The logged-in staff member."""

    id: int
    username: str
    display_name: str
    role: str


class HistoryEntry(Struct, kw_only=True):
    """One earlier session of the same customer (by `customer_ref`)."""

    session_id: SessionId
    date: Time
    reason: str | None
    outcome: Annotated[str | None, Meta(description="The rep's disposition, else the session's state.")]
    notes: Annotated[str | None, Meta(description="The rep's wrap-up notes.")]
    rating: Annotated[int | None, Meta(description="The customer's rating, 1 to 5.")]


class CustomerCard(Struct, kw_only=True):
    """Who is calling, for the rep: what the customer typed and what the calling system said of them."""

    name: str | None
    reason: str | None
    device: str | None
    created_at: Time
    language: str | None
    contact: Annotated[dict[str, Any] | None, Meta(description="`email` and `phone`, as given.")]
    ref: Annotated[str | None, Meta(description="The calling system's customer reference.")]
    identified: Annotated[bool, Meta(description="Came through a signed invite: the identity is the CRM's.")]
    context: Annotated[dict[str, Any] | None, Meta(description="The calling system's context, as given.")]
    priority: int
    history: Annotated[list[HistoryEntry], Meta(description="Earlier sessions, newest first (at most 10).")]


class QueueItem(Struct, kw_only=True):
    """A waiting call as reps see it in the queue."""

    session_id: SessionId
    customer_name: str | None
    reason: str | None
    device: str | None
    priority: int
    language: str | None
    identified: bool
    ringing: Annotated[bool, Meta(description="The call rings at a rep right now.")]
    queued_at: Time
    waited_s: int
    connected: Annotated[bool, Meta(description="The customer's socket is open.")]


class RepEntry(Struct, kw_only=True):
    """A connected rep, for transfers."""

    id: Annotated[int, Meta(description="For `call.transfer`'s `rep_id`.")]
    display_name: str
    status: Annotated[str, Meta(description="`available`, `away`, `busy` or `wrap_up`.")]


class WrapUp(Struct, kw_only=True):
    """A call whose outcome the rep has not saved yet."""

    session_id: SessionId


# the customer


class CustomerCallAccepted(ToCustomer, tag="call.accepted", kw_only=True):
    """A rep accepted: who (by display name), and what the page needs to run the call. Now send an `offer`."""

    session_id: SessionId
    answered_at: Time | None
    rep: Annotated[RepName, Meta(description="Who answered.")]
    peer_media: Annotated[MediaFlags | None, Meta(description="The rep's microphone and camera, once known.")]
    emotion_consent: Annotated[bool | None, Meta(description="The customer allows emotion cues.")]
    recording: RecordingState


class CustomerWelcome(ToCustomer, tag="welcome", kw_only=True):
    """The answer to a customer's `hello`."""

    protocol: Annotated[int, Meta(description="The protocol version (1).")]
    role: Literal["customer"] = "customer"
    ice_servers: Annotated[list[IceServer], Meta(description="For `RTCPeerConnection`; empty by default.")]
    session: Annotated[CustomerSession, Meta(description="The customer's session.")]
    chat: Annotated[list[CustomerChatLine], Meta(description="The call's chat so far.")]
    files: Annotated[
        list[CustomerFile], Meta(description="The photos, files and snapshots shared in the call so far, in order.")
    ]
    call: (
        Annotated[CustomerCallAccepted, Meta(description="Back in a call in progress: its `call.accepted`.")]
        | UnsetType
    ) = UNSET


class QueuePosition(ToCustomer, tag="queue.position", kw_only=True):
    """On joining, and when the queue moves (at most `queue_updates_per_s`, 4 a second)."""

    position: Annotated[int, Meta(description="1 is next.")]
    estimated_wait_s: Annotated[int, Meta(description="From recent waits for the same reason and the free reps.")]


class CustomerChatMessage(ToCustomer, CustomerChatLine, tag="chat.message", kw_only=True):
    """A chat line from either side (your own come back too)."""


class CustomerFileShared(ToCustomer, tag="file.shared", kw_only=True):
    """A photo or file either side sent (yours come back too), or the rep's snapshot of your camera (`kind`
    `snapshot`: the page says "The agent took a photo")."""

    session_id: SessionId
    file: CustomerFile


class SnapshotRequest(ToCustomer, tag="snapshot.request", kw_only=True):
    """The rep asks for a still of your camera: take one at the camera's own resolution and upload it (kind
    `snapshot`, docs/api.md) within `snapshot_timeout_s`."""

    session_id: SessionId


class CallTransferred(ToCustomer, tag="call.transferred", kw_only=True):
    """The rep handed the call on; the customer waits again with media, chat and context kept."""

    session_id: SessionId
    to: Annotated[str, Meta(description="`rep` (another rep) or `queue` (back to the queue).")]


class CustomerCallEnded(ToCustomer, tag="call.ended", kw_only=True):
    """The session is over; the server then closes the socket with 4003.

    `reason` is one of the server's own (`customer_left`, `customer_lost`, `rep_lost`, `media_failed`,
    `server_shutdown`, `max_wait`), or a rep's when it is one of the deployment's disposition codes;
    any other words a rep gave become `rep_hangup`.
    """

    session_id: SessionId
    state: Annotated[str, Meta(description="`ended` or `abandoned`.")]
    ended_by: Annotated[str | None, Meta(description="`customer`, `rep` or `system`.")]
    reason: Annotated[str | None, Meta(description="Why it ended (see above).")]
    callback: Annotated[bool, Meta(description="The wait ran out: the page offers a callback.")] | UnsetType = UNSET


class CallParty(ToCustomer, tag="call.party", kw_only=True):
    """A supervisor joined the call openly (barge-in) or left it: the page names them and shows their video."""

    session_id: SessionId
    present: Annotated[bool, Meta(description="They are in the call now.")]
    name: Annotated[str | None, Meta(description="Their display name.")]
    role: Annotated[Literal["supervisor"], Meta(description="Who they are to the customer.")] = "supervisor"


class CallHandler(ToCustomer, tag="call.handler", kw_only=True):
    """Someone else handles the call now (a supervisor took it over): who, by display name."""

    session_id: SessionId
    rep: Annotated[RepName, Meta(description="Who handles the call now.")]


class CallMonitored(ToCustomer, tag="call.monitored", kw_only=True):
    """A supervisor listens to the call (sent only where the deployment discloses it: `disclose_listening`)."""

    session_id: SessionId
    on: Annotated[bool, Meta(description="Someone listens now.")]


# the rep


class RepCallAccepted(ToRep, tag="call.accepted", kw_only=True):
    """You accepted (or reloaded during) a call: the customer card and, in `welcome` or on accept, the chat and
    the files."""

    session_id: SessionId
    answered_at: Time | None
    rep: Annotated[RepName, Meta(description="You.")]
    customer: Annotated[CustomerCard, Meta(description="The customer card: for the rep only.")]
    peer_media: Annotated[dict[str, MediaFlags], Meta(description="Each side's `media.state`, by `customer`/`rep`.")]
    emotion_consent: Annotated[bool | None, Meta(description="The customer allows emotion cues.")]
    recording: RecordingState
    chat: Annotated[list[RepChatLine], Meta(description="The call's chat so far.")] | UnsetType = UNSET
    files: (
        Annotated[list[RepFile], Meta(description="The photos, files and snapshots shared so far, in order.")]
        | UnsetType
    ) = UNSET


class RepWelcome(ToRep, tag="welcome", kw_only=True):
    """The answer to a rep's `hello`."""

    protocol: Annotated[int, Meta(description="The protocol version (1).")]
    role: Literal["rep"] = "rep"
    ice_servers: Annotated[list[IceServer], Meta(description="For `RTCPeerConnection`; empty by default.")]
    user: Annotated[StaffUser, Meta(description="Who is logged in.")]
    status: Annotated[str, Meta(description="`available`, `away`, `busy` or `wrap_up`.")]
    call: Annotated[RepCallAccepted | None, Meta(description="The call in progress (after a reload).")]
    wrap_up: Annotated[WrapUp | None, Meta(description="The call that still waits for its outcome.")]


class QueueSnapshot(ToRep, tag="queue.snapshot", kw_only=True):
    """The whole queue: on connect and in answer to `queue.resync`. Changes come as `queue.delta`s after it."""

    version: Annotated[
        int, Meta(description="The queue's version: the next `queue.delta` to apply carries `version` + 1.")
    ]
    items: Annotated[list[QueueItem], Meta(description="The waiting calls, in the order they will be answered.")]
    available_reps: Annotated[int, Meta(description="Reps connected and available.")]
    reps: Annotated[list[RepEntry], Meta(description="The connected reps, for transfers.")]


class QueuePlace(Struct, kw_only=True):
    """A waiting call that joined, changed or moved, and where it now stands."""

    index: Annotated[int, Meta(ge=0, description="Its place in the new queue (0 is next).")]
    item: QueueItem


class QueueDelta(ToRep, tag="queue.delta", kw_only=True):
    """What changed since the last version, when the queue changes: the first change at once, then at most
    `queue_updates_per_s` (4) a second however many customers join. Apply it only to `version` - 1: drop the
    `removed` calls and every call in `upserts`, then insert each upsert at its `index` in ascending order of
    `index`. Any other version (a gap, or one seen already) means the copy is stale: send `queue.resync`.
    A call whose only change is `waited_s` is not sent again (count on from `queued_at`)."""

    version: Annotated[int, Meta(description="The version this delta makes.")]
    removed: Annotated[list[str], Meta(description="Session ids that left the queue (taken, ended, gone).")]
    upserts: Annotated[
        list[QueuePlace], Meta(description="Calls that joined, changed or moved, with their new places.")
    ]
    available_reps: Annotated[int, Meta(description="Reps connected and available (when it changed).")] | UnsetType = (
        UNSET
    )
    reps: Annotated[list[RepEntry], Meta(description="The connected reps (when the list changed).")] | UnsetType = UNSET


class QueueNew(ToRep, tag="queue.new", kw_only=True):
    """A customer joined the queue: the console alerts (sound and highlight)."""

    item: Annotated[QueueItem, Meta(description="The new call.")]


class RepStatusChanged(ToRep, tag="rep.status", kw_only=True):
    """The rep's state changed (also the answer to `rep.status`)."""

    status: Annotated[str, Meta(description="`available`, `away`, `busy` or `wrap_up`.")]


class RepChatMessage(ToRep, RepChatLine, tag="chat.message", kw_only=True):
    """A chat line from either side."""


class RepFileShared(ToRep, tag="file.shared", kw_only=True):
    """A photo or file either side sent, or the snapshot you asked for (`kind` `snapshot`)."""

    session_id: SessionId
    file: RepFile


class SnapshotFailed(ToRep, tag="snapshot.failed", kw_only=True):
    """The snapshot you asked for did not come: the customer's page did not answer in time (`timeout`), or the
    call ended first (`ended`)."""

    session_id: SessionId
    reason: Annotated[str, Meta(description="`timeout` or `ended`.")]
    message: Annotated[str, Meta(description="For the rep to read.")]


class CallOffer(ToRep, tag="call.offer", kw_only=True):
    """This waiting call rings at you (the longest-idle available rep whose skills and languages match);
    answer with `call.accept` or `call.decline`."""

    session_id: SessionId
    ring_timeout_s: Annotated[float, Meta(description="After this, the offer is cancelled and you are set away.")]
    item: Annotated[QueueItem, Meta(description="The call, as in the queue.")]
    transfer: Annotated[bool, Meta(description="A colleague transferred this call to you.")]
    note: Annotated[str, Meta(description="The colleague's transfer note.")] | UnsetType = UNSET


class CallOfferCancelled(ToRep, tag="call.offer.cancelled", kw_only=True):
    """The offer is over."""

    session_id: SessionId
    reason: Annotated[
        str,
        Meta(
            description="`timeout` (you are set `away`), `declined`, `taken` (another rep took it), `ended`, "
            "`rep_away`, `rep_left`."
        ),
    ]


class RepCallTransferred(ToRep, tag="call.transferred", kw_only=True):
    """The call left you: handed to another rep or back to the queue."""

    session_id: SessionId
    to: Annotated[str, Meta(description="`rep` or `queue`.")]
    note: Annotated[str | None, Meta(description="Your transfer note.")]


class RepCallEnded(ToRep, tag="call.ended", kw_only=True):
    """The call is over; the socket stays open and the rep is `wrap_up` until the outcome is saved over HTTP,
    then `available`."""

    session_id: SessionId
    state: Annotated[str, Meta(description="`ended` or `abandoned`.")]
    ended_by: Annotated[str | None, Meta(description="`customer`, `rep` or `system`.")]
    reason: Annotated[str | None, Meta(description="As given (the rep's own words included).")]
    wrap_up: Annotated[bool, Meta(description="This rep owes the call's outcome.")]


class EmotionUpdateMessage(ToRep, tag="emotion.update", kw_only=True):
    """The customer's expression, at most about twice a second while cues run (the rep's video is never analysed)."""

    media_time: Annotated[float, Meta(description="Seconds into the customer's video.")]
    face_present: Annotated[bool, Meta(description="A face was found in this sample.")]
    frustration: Annotated[float | None, Meta(description="This sample, 0 to 1; null without a face.")]
    smoothed: Annotated[float, Meta(description="Smoothed frustration, 0 to 1.")]
    dominant: Annotated[str | None, Meta(description="The strongest expression (`angry`, `happy`, ...).")]
    scores: Annotated[dict[str, float], Meta(description="Each expression's score, 0 to 1.")]
    flag: Annotated[str | None, Meta(description="`raised` or `cleared`, only on the update where the flag changes.")]
    flag_active: Annotated[bool, Meta(description="The frustration flag is up.")]
    flag_seconds: Annotated[float, Meta(description="How long it has been up.")]
    session_id: SessionId


class EmotionStatusMessage(ToRep, tag="emotion.status", kw_only=True):
    """On accept, on reconnect and whenever the state of emotion cues changes."""

    status: Annotated[str, Meta(description="`starting`, `ok`, `degraded`, `unavailable` or `off`.")]
    message: Annotated[str, Meta(description="Why, for the rep to read.")]
    session_id: SessionId


class SupervisorName(Struct, kw_only=True):
    """A supervisor, as the rep sees them."""

    id: int
    display_name: str


class RepAssistState(ToRep, tag="assist.state", kw_only=True):
    """A supervisor listens, whispers (the rep alone hears them), joined openly, or left (`mode` null)."""

    session_id: SessionId
    supervisor: Annotated[SupervisorName | None, Meta(description="Who; null once they left.")]
    mode: Annotated[str | None, Meta(description="`listen`, `whisper` or `barge`; null: nobody assists.")]


class WhisperMessage(ToRep, tag="whisper.message", kw_only=True):
    """A text whisper from the supervisor: shown to the rep only, never to the customer."""

    session_id: SessionId
    name: Annotated[str, Meta(description="The supervisor's display name.")]
    text: str
    at: Time


class HelpState(ToRep, tag="help.state", kw_only=True):
    """The rep's "ask for help" is up or down (also when a supervisor answers it)."""

    session_id: SessionId
    on: bool


class CallTakenOver(ToRep, tag="call.taken_over", kw_only=True):
    """A supervisor took the call over: it is theirs now, and no outcome is owed for it."""

    session_id: SessionId
    by: Annotated[SupervisorName, Meta(description="The supervisor who handles it now.")]


# the supervisor


class AttentionEntry(Struct, kw_only=True):
    """A live call that needs a supervisor, most urgent first. It names the call and its rep; it never scores
    the rep."""

    session_id: SessionId
    rep: Annotated[SupervisorName | None, Meta(description="The rep in the call.")]
    reason: str | None
    talk_s: int
    why: Annotated[
        list[str], Meta(description="`help` (the rep asked), `frustration` (the customer's flag is up), `long_call`.")
    ]
    urgency: Annotated[int, Meta(description="Higher first: help 4, frustration 2, a long call 1, summed.")]
    since: Annotated[Time, Meta(description="When the oldest of these reasons started.")]


class SupervisorWelcome(ToSupervisor, tag="welcome", kw_only=True):
    """The answer to a supervisor's (or admin's) `hello`."""

    protocol: Annotated[int, Meta(description="The protocol version (1).")]
    role: Literal["supervisor"] = "supervisor"
    ice_servers: Annotated[list[IceServer], Meta(description="For `RTCPeerConnection`; empty by default.")]
    user: Annotated[StaffUser, Meta(description="Who is logged in.")]
    floor: Annotated[dict[str, Any], Meta(description="The live floor, as `GET /api/v1/floor` answers it.")]


class FloorUpdate(ToSupervisor, tag="floor.update", kw_only=True):
    """The live floor changed (a flag, a request for help, a call starting or ending): at most 4 a second."""

    floor: Annotated[dict[str, Any], Meta(description="As `GET /api/v1/floor` answers it, with `attention`.")]


class SupervisorAssistState(ToSupervisor, tag="assist.state", kw_only=True):
    """How you take part in a call now; `mode` null: you left it (or it ended: `reason`)."""

    session_id: SessionId
    mode: Annotated[str | None, Meta(description="`listen`, `whisper` or `barge`; null: not in it.")]
    handler: Annotated[bool, Meta(description="You took the call over: it is yours to end.")] = False
    reason: Annotated[str, Meta(description="Why you are out of it: `left`, `ended`.")] | UnsetType = UNSET


# Documentation order: the order of docs/protocol.md's reference.
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = (
    CustomerWelcome,
    RepWelcome,
    SupervisorWelcome,
    Error,
    Ack,
    Pong,
    Answer,
    Bye,
    QueuePosition,
    QueueSnapshot,
    QueueDelta,
    QueueNew,
    RepStatusChanged,
    CallOffer,
    CallOfferCancelled,
    CustomerCallAccepted,
    RepCallAccepted,
    PeerState,
    PeerMedia,
    MediaRestart,
    CustomerChatMessage,
    RepChatMessage,
    CustomerFileShared,
    RepFileShared,
    SnapshotRequest,
    SnapshotFailed,
    RecordingState,
    EmotionUpdateMessage,
    EmotionStatusMessage,
    CallTransferred,
    RepCallTransferred,
    CustomerCallEnded,
    RepCallEnded,
    FloorUpdate,
    SupervisorAssistState,
    RepAssistState,
    WhisperMessage,
    HelpState,
    CallTakenOver,
    CallParty,
    CallHandler,
    CallMonitored,
)


def field_names(types: tuple[type[Struct], ...]) -> frozenset[str]:
    """Every key the encoded ``types`` can hold, at any depth (tag fields included)."""
    names: set[str] = set()
    stack: list[msgspec.inspect.Type] = list(msgspec.inspect.multi_type_info(types))
    seen: set[type] = set()
    while stack:
        info = stack.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                continue
            seen.add(info.cls)
            if info.tag_field is not None:
                names.add(info.tag_field)
            names.update(f.encode_name for f in info.fields)
            stack.extend(f.type for f in info.fields)
        elif isinstance(info, msgspec.inspect.Metadata):
            stack.append(info.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            stack.extend(info.types)
        elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.DictType):
            stack.append(info.item_type if isinstance(info, msgspec.inspect.ListType) else info.value_type)
    return frozenset(names)


CUSTOMER_MESSAGES: tuple[type[ServerMessage], ...] = tuple(
    m for m in SERVER_MESSAGES if m.audience in ("customer", "both")
)
# Every key a message to a customer may hold, at any depth: the fields of the types above.
CUSTOMER_KEYS: frozenset[str] = field_names(CUSTOMER_MESSAGES)
