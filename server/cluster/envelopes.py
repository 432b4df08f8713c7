"""What travels on the bus between front doors and the leader: one Struct per message, tagged by kind.

A client's frame crosses as the text it sent (it may be garbage: the leader's one error boundary judges it);
a message for a client crosses as the encoded frame (``msgspec.Raw``), so nothing is encoded twice.
"""

from __future__ import annotations

from typing import Any

import msgspec


class SocketOpened(msgspec.Struct, tag="open", kw_only=True):
    """A client connected at ``door``; staff are known from their cookie, checked at the door."""

    door: str
    conn: int
    remote: str
    user_id: int | None = None
    login_id: str | None = None


class SocketText(msgspec.Struct, tag="text", kw_only=True):
    door: str
    conn: int
    text: str


class SocketClosed(msgspec.Struct, tag="closed", kw_only=True):
    door: str
    conn: int


class DeskCall(msgspec.Struct, tag="call", kw_only=True):
    """An HTTP route at ``door`` asks the call centre; the answer comes back as ``DeskReply``."""

    door: str
    id: int
    method: str
    args: dict[str, Any] = {}


ToLeader = SocketOpened | SocketText | SocketClosed | DeskCall


class Deliver(msgspec.Struct, tag="deliver", kw_only=True):
    conn: int
    frame: msgspec.Raw


class Seated(msgspec.Struct, tag="seated", kw_only=True):
    """The socket said hello: it is the ``role`` of a call (the door's hello timer stops)."""

    conn: int
    role: str


class CloseSocket(msgspec.Struct, tag="close", kw_only=True):
    conn: int
    code: int
    reason: str = ""


class DeskReply(msgspec.Struct, tag="reply", kw_only=True):
    id: int
    value: Any = None
    # The exception's class name and message, raised again at the door (``AtCapacity``...).
    error: str | None = None
    message: str = ""


class NewLeader(msgspec.Struct, tag="leader", kw_only=True):
    """Sent to every door when a leader takes over: sockets relayed to the last one start over."""

    name: str
    epoch: int


ToDoor = Deliver | Seated | CloseSocket | DeskReply | NewLeader

encode = msgspec.json.Encoder().encode
to_leader = msgspec.json.Decoder(ToLeader).decode
to_door = msgspec.json.Decoder(ToDoor).decode
