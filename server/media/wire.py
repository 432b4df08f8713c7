"""Framing between the front door and its media workers: a JSON header and an optional binary body."""

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


async def read(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """The next message; ``asyncio.IncompleteReadError`` at the end of the stream."""
    header_len, body_len = HEADER.unpack(await reader.readexactly(HEADER.size))
    if header_len > MAX_HEADER or body_len > MAX_BODY:
        raise ValueError("message too large")
    header = json.loads(await reader.readexactly(header_len))
    body = await reader.readexactly(body_len) if body_len else b""
    return header, body
