"""The media node link's handshake: both ends prove they hold ``cluster_secret`` before any call crosses it.

1. The node sends ``{"event": "challenge", "node": <its name>, "nonce": <32 random bytes, hex>}``.
2. The front door answers ``{"op": "auth", "door": <its name>, "mac": HMAC-SHA256(secret, nonce + door name),
   "nonce": <32 random bytes of its own, hex>}``.
3. The node checks the MAC (constant time); a wrong one closes the link and is logged. A right one gets
   ``{"event": "welcome", "node": <name>, "mac": HMAC-SHA256(secret, door nonce + node name)}``, which the
   front door checks in turn, so a process that does not hold the secret cannot pose as a node either.

The secret never crosses the link, and a recorded handshake is worthless: every nonce is fresh.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

NONCE_BYTES = 32
# Handshake messages are small: a peer not yet trusted cannot make us buffer more.
MAX_HANDSHAKE_HEADER = 4096
HANDSHAKE_TIMEOUT_S = 5.0


class LinkRefused(Exception):
    """The other end of a media node link did not prove it holds the cluster secret."""


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def mac(secret: str, nonce: str, name: str) -> str:
    """HMAC-SHA256(secret, nonce + name), hex: what proves knowledge of ``secret`` for this nonce."""
    try:
        raw = bytes.fromhex(nonce)
    except ValueError:
        raise LinkRefused("the nonce is not hex") from None
    if len(raw) != NONCE_BYTES:
        raise LinkRefused("the nonce has the wrong length")
    return hmac.new(secret.encode(), raw + name.encode(), hashlib.sha256).hexdigest()


def check(secret: str, nonce: str, name: str, given: object) -> None:
    """LinkRefused unless ``given`` is the MAC of ``nonce`` + ``name`` under ``secret``."""
    if not isinstance(given, str) or not hmac.compare_digest(mac(secret, nonce, name), given):
        raise LinkRefused("wrong HMAC: the other end does not hold this cluster's secret")
