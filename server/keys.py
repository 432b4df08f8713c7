"""Typed keys for application state (aiohttp's "no singletons")."""

from __future__ import annotations

from aiohttp import web

from .accounts import LoginThrottle
from .calls import CallCenter
from .config import Settings
from .ratelimit import AddressLimiter
from .store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CALL_CENTER = web.AppKey("call_center", CallCenter)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
CALL_LIMITER = web.AppKey("call_limiter", AddressLimiter)
WEBSOCKETS = web.AppKey("websockets", set[web.WebSocketResponse])
