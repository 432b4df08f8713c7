"""Webhook signatures: ``Rapport-Signature: t=<unix seconds>,v1=<hex>``, HMAC-SHA256 of ``f"{t}.{body}"``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
EVENT_ID_PREFIX = "evt_"
SIGNATURE_HEADER = "Rapport-Signature"
SIGNATURE_TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Rapport-Signature`` header value: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header_value: str | None,
    body: bytes,
    *,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header_value`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of now.

    For receivers: pass the raw request body, byte for byte. Several ``v1=`` values
    are accepted (any may match); the comparison is constant-time.
    """
    if not header_value or len(header_value) > 1000:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header_value.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2].encode("ascii")
    matched = False
    for candidate in candidates:
        # Compare every candidate (no early exit) so timing says nothing about which one matched.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_event_id() -> str:
    return EVENT_ID_PREFIX + secrets.token_urlsafe(16)
