"""TURN credentials in coturn's REST scheme (``use-auth-secret``), handed out per session.

The username is ``<expiry>:<label>`` and the password is base64(HMAC-SHA1(secret, username)): coturn checks
both against the same ``static-auth-secret`` without asking Rapport, and refuses the username once its expiry
has passed. Nobody holds a long-lived TURN password: every welcome (so every reconnect) carries fresh ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from ..config import IceServer, Settings


def turn_credential(secret: str, label: str, *, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """(username, password) valid for ``ttl_s`` seconds from ``now``."""
    expiry = int(now if now is not None else time.time()) + ttl_s
    username = f"{expiry}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(settings: Settings, label: str, *, now: float | None = None) -> tuple[IceServer, ...]:
    """The deployment's static ICE servers, plus its TURN relay with credentials of their own for ``label``."""
    if not settings.turn_secret or not settings.turn_urls:
        return settings.ice_servers
    username, password = turn_credential(settings.turn_secret, label, ttl_s=settings.turn_ttl_s, now=now)
    return (*settings.ice_servers, IceServer(urls=settings.turn_urls, username=username, credential=password))
