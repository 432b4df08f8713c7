"""Typed keys for application state (aiohttp's "no singletons")."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from emotion import EmotionService

from .accounts import LoginGuard
from .apikeys import ApiKeyStore
from .calls import CallCenter
from .composing import Composer
from .config import Settings
from .ratelimit import AddressLimiter
from .review import ReviewStore
from .store import Store


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
from .webhooks import WEBHOOKS as WEBHOOKS  # noqa: E402 - defined beside its dispatcher
