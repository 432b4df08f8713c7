"""What the call centre needs of a participant's socket, so calls never import signalling.

``server.signalling.connection.Connection`` is the real one; the call centre only sends, closes and
reads who is on the other end.
"""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from ..storage.records import User
from .payloads import ServerMessage

# A message as every socket sends it (JSON text): encode once, then ``send_encoded`` the same bytes to many sockets.
encode_message = msgspec.json.Encoder().encode


class Participant(Protocol):
    """One customer's or rep's live socket, as the call centre sees it."""

    role: str | None  # "customer" or "rep" once it said hello
    user: User | None  # staff only
    session_id: str | None  # customers: their one session
    login_id: str | None  # staff only: the login the socket belongs to

    def send(self, message: ServerMessage) -> None:
        """Queue one message; never blocks (a slow client is disconnected instead).

        A customer's socket sends only the types ``payloads`` gives a customer audience.
        """

    def send_encoded(self, message: ServerMessage, frame: bytes) -> None:
        """``send`` with ``message`` already encoded as ``frame`` (``encode_message``): a message that goes to every
        rep is encoded once, not once a socket. The same rules apply (``message`` says whose socket may carry it)."""

    def close(self, code: int, reason: str = "") -> None:
        """Flush what is queued, then close with ``code``."""


class TokenBucket:
    """``rate_per_s`` on average with bursts of ``burst``: chat lines per participant, frames per socket."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
