"""Typed keys for application state (aiohttp's "no singletons")."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from emotion import EmotionService

from .calls.center import CallCenter
from .config import Settings
from .http.apikeys import ApiKeyStore
from .http.auth import LoginGuard
from .http.ratelimit import AddressLimiter
from .recording.composer import Composer
from .storage.reviews import ReviewStore
from .storage.store import Store


@dataclass(frozen=True)
class EmotionSetup:
    """The emotion service, or why there is none (said once in the log and to every rep)."""

    service: EmotionService | None
    message: str


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CALL_CENTER = web.AppKey("call_center", CallCenter)
LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)
CALL_LIMITER = web.AppKey("call_limiter", AddressLimiter)
WEBSOCKETS = web.AppKey("websockets", set[web.WebSocketResponse])
EMOTION = web.AppKey("emotion", EmotionSetup)
COMPOSER = web.AppKey("composer", Composer)
REVIEWS = web.AppKey("reviews", ReviewStore)
API_KEYS = web.AppKey("api_keys", ApiKeyStore)
# The server's secret for signing invite links (data/secret.key).
INVITE_KEY = web.AppKey("invite_key", bytes)
from .webhooks.dispatcher import WEBHOOKS as WEBHOOKS  # noqa: E402 - defined beside its dispatcher
