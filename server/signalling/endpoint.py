"""The WebSocket endpoint: one reader loop, and the one place where errors become replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from msgspec import UNSET

from ..calls import views
from ..calls.center import CallCenter
from ..calls.errors import ProtocolError
from ..calls.participant import TokenBucket
from ..calls.payloads import Ack, Answer, Error, Pong
from ..config import SETTINGS
from ..http.security import client_address, current_login, origin_allowed
from ..storage.health import database_unreachable
from ..storage.store import STORE, Store
from .connection import ClientSocket, Connection
from .messages import (
    AnyClientMessage,
    AssistLeave,
    AssistMode,
    AssistStart,
    AssistTakeOver,
    CallAccept,
    CallDecline,
    CallEnd,
    CallTransfer,
    ChatSend,
    ConsentEmotion,
    Hello,
    HelpAsk,
    MediaState,
    Offer,
    Ping,
    QueueResync,
    RepStatus,
    SnapshotTake,
    WhisperSend,
    parse,
    wire_type,
)

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
# aiohttp closes with 1009 above this; smaller oversize frames get a polite error instead.
HARD_FRAME_LIMIT = 1024 * 1024
FLOOD_CLOSE_AFTER = 200
# A staff login that takes no part in calls (QA) said hello: clients do not reconnect after this code.
NOT_A_REP_CLOSE = 4004
SUPERVISOR_ROLES = ("supervisor", "admin")
# Every open socket, so shutdown can tell each client "going away" before the calls close.
WEBSOCKETS = web.AppKey("websockets", set[web.WebSocketResponse])

Reply = Pong | Ack | Answer
# Each handler takes its own message type (HANDLERS pairs them).
Handler = Callable[[CallCenter, ClientSocket, Any], Awaitable[Reply | None]]


def error(code: str, message: str, reply_to: str | None = None) -> Error:
    return Error(code=code, message=message, reply_to=UNSET if reply_to is None else reply_to)


async def _hello(center: CallCenter, conn: ClientSocket, msg: Hello) -> None:
    if conn.authenticated:
        raise ProtocolError("bad_message", "already said hello")
    if msg.token:
        # A call token wins over a staff cookie: a customer page opened beside the console is a customer.
        await center.customer_hello(conn, msg.token)
    elif conn.user is not None:
        if conn.user.role in SUPERVISOR_ROLES:
            center.assists.hello(conn, conn.user)
            return None
        if conn.user.role != "rep":
            # Only reps and supervisors take part in calls; a retry would fail the same way, so the socket
            # closes (no reconnect).
            conn.send(error("forbidden", f"only reps take calls; this is a {conn.user.role} login", msg.id))
            conn.close(NOT_A_REP_CLOSE, "only reps take calls")
            return None
        await center.rep_hello(conn, conn.user)
    else:
        raise ProtocolError("not_authenticated", "customers must send their call token; staff must log in")
    return None


async def _ping(center: CallCenter, conn: ClientSocket, msg: Ping) -> Pong:
    return Pong()


async def _offer(center: CallCenter, conn: ClientSocket, msg: Offer) -> None:
    # Claimed before any await, so a second offer on this socket sees it at once.
    media, role = center.claim_negotiation(conn, msg.session_id, msg.sdp)

    async def negotiate() -> Answer:
        return Answer(sdp=await center.answer_offer(media, role, msg.sdp))

    # Negotiation takes up to seconds (ICE gathering): run it beside the reader so
    # chat and hang-ups are not held up.
    conn.spawn(_run(center, conn, lambda _c, _n, _m: negotiate(), msg))


async def _media_state(center: CallCenter, conn: ClientSocket, msg: MediaState) -> None:
    flags: dict[str, Any] = {"audio": msg.audio, "video": msg.video}
    if msg.facing is not None:
        flags["facing"] = msg.facing
    center.media_flags(conn, flags, msg.session_id)


async def _chat(center: CallCenter, conn: ClientSocket, msg: ChatSend) -> None:
    await center.chat(conn, msg.text, msg.session_id)


async def _snapshot(center: CallCenter, conn: ClientSocket, msg: SnapshotTake) -> None:
    center.take_snapshot(conn, msg.session_id)


async def _end(center: CallCenter, conn: ClientSocket, msg: CallEnd) -> None:
    await center.end(conn, msg.reason, msg.session_id)


async def _rep_status(center: CallCenter, conn: ClientSocket, msg: RepStatus) -> None:
    center.set_rep_status(conn, msg.status)


async def _queue_resync(center: CallCenter, conn: ClientSocket, msg: QueueResync) -> None:
    conn.send(center.queue.snapshot())


async def _accept(center: CallCenter, conn: ClientSocket, msg: CallAccept) -> None:
    await center.accept(conn, msg.session_id)


async def _consent(center: CallCenter, conn: ClientSocket, msg: ConsentEmotion) -> None:
    await center.set_emotion_consent(conn, msg.enabled)


async def _decline(center: CallCenter, conn: ClientSocket, msg: CallDecline) -> None:
    center.decline(conn, msg.session_id)


async def _transfer(center: CallCenter, conn: ClientSocket, msg: CallTransfer) -> None:
    await center.transfer(conn, msg.session_id, to_rep=msg.rep_id, to_reason=msg.reason, note=msg.note)


async def _help(center: CallCenter, conn: ClientSocket, msg: HelpAsk) -> None:
    await center.ask_help(conn, msg.on)


async def _assist_start(center: CallCenter, conn: ClientSocket, msg: AssistStart) -> None:
    await center.assists.start(conn, msg.session_id, msg.mode)


async def _assist_mode(center: CallCenter, conn: ClientSocket, msg: AssistMode) -> None:
    await center.assists.change(conn, msg.mode)


async def _assist_leave(center: CallCenter, conn: ClientSocket, msg: AssistLeave) -> None:
    await center.assists.leave(conn)


async def _take_over(center: CallCenter, conn: ClientSocket, msg: AssistTakeOver) -> None:
    await center.assists.take_over(conn)


async def _whisper(center: CallCenter, conn: ClientSocket, msg: WhisperSend) -> None:
    await center.assists.whisper(conn, msg.text)


# By wire type (the metrics' labels too); who may send each type is the message's own ``senders``.
HANDLERS: dict[str, Handler] = {
    "hello": _hello,
    "ping": _ping,
    "offer": _offer,
    "media.state": _media_state,
    "chat.send": _chat,
    "snapshot.take": _snapshot,
    "call.end": _end,
    "rep.status": _rep_status,
    "queue.resync": _queue_resync,
    "call.accept": _accept,
    "consent.emotion": _consent,
    "call.decline": _decline,
    "call.transfer": _transfer,
    "help.ask": _help,
    "assist.start": _assist_start,
    "assist.mode": _assist_mode,
    "assist.leave": _assist_leave,
    "assist.take_over": _take_over,
    "whisper.send": _whisper,
}


async def dispatch(center: CallCenter, conn: ClientSocket, text: str) -> None:
    """One client frame, start to end: parsed, checked, handled, answered, counted."""
    started = time.perf_counter()
    message_type = await _handle(center, conn, text)
    center.metrics.handled(message_type, time.perf_counter() - started)


async def _handle(center: CallCenter, conn: ClientSocket, text: str) -> str:
    """Handles one message; returns its type for the metrics ("other" unless it is one of the protocol's)."""
    msg_id: str | None = None
    message_type = "other"
    try:
        msg = parse(text)
        msg_id = msg.id
        message_type = wire_type(type(msg))
        handler = HANDLERS[message_type]
        role = conn.role or "none"
        if role not in msg.senders:
            if role == "none":
                raise ProtocolError("not_authenticated", "say hello first")
            raise ProtocolError("forbidden", f"{role}s may not send {message_type}")
    except ProtocolError as exc:
        center.metrics.error_sent(exc.code)
        conn.send(error(exc.code, exc.message, msg_id or exc.reply_to))
        return message_type
    await _run(center, conn, handler, msg, ack=not isinstance(msg, Offer))
    return message_type


async def _run(
    center: CallCenter, conn: ClientSocket, handler: Handler, msg: AnyClientMessage, *, ack: bool = True
) -> None:
    """The one place where handler outcomes become replies and errors."""
    try:
        reply = await handler(center, conn, msg)
        if reply is None and ack and msg.id is not None:
            reply = Ack(reply_to=msg.id)
        if reply is not None:
            if msg.id is not None:
                reply.reply_to = msg.id
            conn.send(reply)
    except ProtocolError as exc:
        center.metrics.error_sent(exc.code)
        conn.send(error(exc.code, exc.message, msg.id))
    except Exception:
        ref = uuid.uuid4().hex[:12]
        conn.log.exception("internal error %s", ref)
        center.metrics.error_sent("internal")
        conn.send(error("internal", f"internal error, reference {ref}", msg.id))


class SocketSink(Protocol):
    """Where a socket's frames go: the call centre in this process, or a cluster's leader (``cluster.door``)."""

    async def opened(self, conn: Connection) -> None: ...

    async def received(self, conn: Connection, text: str) -> None: ...

    async def closed(self, conn: Connection) -> None:
        """The client left (not at shutdown): reconnect grace starts."""


class CenterSink:
    """One box: every frame is handled here, one at a time per socket."""

    def __init__(self, center: CallCenter) -> None:
        self.center = center

    async def opened(self, conn: Connection) -> None:
        return None

    async def received(self, conn: Connection, text: str) -> None:
        await dispatch(self.center, conn, text)

    async def closed(self, conn: Connection) -> None:
        await self.center.disconnected(conn)


SOCKET_SINK = web.AppKey("socket_sink", SocketSink)


async def _watch_login(store: Store, conn: Connection, every_s: float) -> None:
    """A login can end in another process (``rapport users disable``, a password reset): notice it here."""
    while conn.login_id is not None and conn.close_code is None:
        await asyncio.sleep(every_s)
        try:
            state = await store.login_state(conn.login_id)
        except Exception:
            conn.log.exception("could not re-check the login; trying again later")
            continue
        if state != "live":
            conn.log.info("login ended (%s): closing", state)
            conn.send(views.bye(state))
            conn.close(4001, state.replace("_", " "))
            return


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if not origin_allowed(request, settings):
        raise web.HTTPForbidden(text="origin not allowed")
    try:
        login = await current_login(request)
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        # An outage: the client's reconnect backoff tries again; no traceback for every attempt.
        raise web.HTTPServiceUnavailable(text="the database is unavailable; try again shortly") from None
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=HARD_FRAME_LIMIT)
    await ws.prepare(request)
    conn = Connection(ws, max_pending=settings.ws_max_pending, remote=client_address(request))
    if login is not None:
        conn.user, _csrf, conn.login_id = login
    sink = request.app[SOCKET_SINK]
    sockets = request.app[WEBSOCKETS]
    sockets.add(ws)
    conn.start()
    if conn.login_id is not None:
        conn.spawn(_watch_login(request.app[STORE], conn, settings.login_recheck_s))
    bucket = TokenBucket(settings.ws_rate_per_s, settings.ws_rate_burst)
    dropped = 0
    hello_deadline = asyncio.get_running_loop().call_later(
        HELLO_TIMEOUT_S, lambda: None if conn.authenticated else conn.close(1008, "no hello")
    )
    try:
        await sink.opened(conn)
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                if not bucket.take():
                    dropped += 1
                    if dropped > FLOOD_CLOSE_AFTER:
                        conn.close(1008, "message flood")
                        break
                    conn.send(error("rate_limited", "too many messages; this one was dropped"))
                    continue
                await sink.received(conn, frame.data)
            elif frame.type == WSMsgType.BINARY:
                conn.send(error("bad_message", "binary frames are not part of the protocol"))
                conn.close(1003, "binary not supported")
                break
            elif frame.type == WSMsgType.ERROR:
                conn.log.info("socket error: %s", ws.exception())
                break
    finally:
        hello_deadline.cancel()
        # Not in the set any more: close_sockets took it at shutdown, and the call centre closes its call.
        left = ws in sockets
        sockets.discard(ws)
        await conn.finish()
        if not ws.closed:
            await ws.close()
        if left:
            await sink.closed(conn)
    return ws


async def close_sockets(app: web.Application) -> None:
    """On shutdown, before the cleanups: every client hears "going away"; then the call centre closes the calls."""
    sockets = app[WEBSOCKETS]
    # Taken out first, so a socket closed here is not a participant leaving (no reconnect grace, no re-offer).
    closing = list(sockets)
    sockets.clear()
    for ws in closing:
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/ws/v1", websocket_handler)
