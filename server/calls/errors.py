"""The error a participant's request ends in; signalling turns it into ``{"type": "error", code, message}``."""

from __future__ import annotations


class ProtocolError(Exception):
    """A client mistake, with a code the client can act on and a message a person can read."""

    def __init__(self, code: str, message: str, reply_to: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reply_to = reply_to
