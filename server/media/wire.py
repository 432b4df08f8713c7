"""Framing between the front door and its media (worker pipes, media node links): a JSON header and a body."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEADER = struct.Struct("!II")
MAX_HEADER = 1 << 20
MAX_BODY = 16 << 20


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    data = json.dumps(header, separators=(",", ":")).encode()
    return HEADER.pack(len(data), len(body)) + data + body


async def read(
    reader: asyncio.StreamReader, *, max_header: int = MAX_HEADER, max_body: int = MAX_BODY
) -> tuple[dict[str, Any], bytes]:
    """The next message; ``asyncio.IncompleteReadError`` at the end of the stream, ``ValueError`` on garbage.

    A peer not yet trusted (a link before its handshake) gets smaller limits, so it cannot make us buffer much.
    """
    header_len, body_len = HEADER.unpack(await reader.readexactly(HEADER.size))
    if header_len > max_header or body_len > max_body:
        raise ValueError("message too large")
    header = json.loads(await reader.readexactly(header_len))
    if not isinstance(header, dict):
        raise ValueError("a message header must be a JSON object")
    body = await reader.readexactly(body_len) if body_len else b""
    return header, body
