"""Random secrets and their stored form."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe secret; 32 bytes = 256 bits."""
    return secrets.token_urlsafe(nbytes)


def new_session_id() -> str:
    # 128 random bits: ids are not credentials, but must not be guessable either.
    return "s_" + secrets.token_urlsafe(16)


def digest(secret: str) -> str:
    """What the database keeps instead of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
