"""Per-address sliding-window limits for unauthenticated HTTP endpoints."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from aiohttp import web


class AddressLimiter:
    """At most ``limit`` hits per address in ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, address: str) -> float:
        """Record a hit; returns 0 if allowed, else the seconds until one is."""
        now = time.monotonic()
        q = self._hits[address]
        while q and q[0] < now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return q[0] + self.window_s - now
        q.append(now)
        if len(self._hits) > 10_000:
            # Forget idle addresses so a scan cannot grow this without bound.
            for key in [k for k, v in self._hits.items() if not v]:
                del self._hits[key]
        return 0.0


# Calls started per client address (POST /api/v1/calls and invite redeems).
CALL_LIMITER = web.AppKey("call_limiter", AddressLimiter)
