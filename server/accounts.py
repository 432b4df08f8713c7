"""Staff accounts: password hashing, login throttling, demo accounts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import tokens
from .store import Store, User

log = logging.getLogger(__name__)

DEMO_ACCOUNTS = (
    ("rep1", "Rep One", "rep"),
    ("rep2", "Rep Two", "rep"),
    ("qa1", "QA Reviewer", "qa"),
    ("super1", "Floor Supervisor", "supervisor"),
    ("admin", "Administrator", "admin"),
)

_hasher = PasswordHasher()
# Verifying against this keeps the timing of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def authenticate(store: Store, username: str, password: str) -> User | None:
    found = await store.user_with_hash(username)
    password_hash = found[1] if found else _DUMMY_HASH
    # argon2 costs ~50 ms of CPU: keep it off the event loop.
    ok = await asyncio.to_thread(_verify, password_hash, password)
    if not ok or found is None or not found[0].active:
        return None
    return found[0]


class LoginThrottle:
    """At most ``limit`` failed logins per (username, address) in ``window_s``."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def retry_after(self, username: str, address: str) -> float:
        q = self._failures.get((username, address))
        if not q:
            return 0.0
        cutoff = time.monotonic() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        if len(q) < self.limit:
            return 0.0
        return q[0] + self.window_s - time.monotonic()

    def failed(self, username: str, address: str) -> None:
        self._failures[(username, address)].append(time.monotonic())

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)


async def ensure_demo_accounts(store: Store) -> list[tuple[str, str, str]]:
    """Create demo staff on an empty database; returns (username, role, password) to print once."""
    if await store.count_users() > 0:
        return []
    created = []
    for username, display_name, role in DEMO_ACCOUNTS:
        password = tokens.new_secret(9)
        await store.create_user(username, display_name, role, await asyncio.to_thread(hash_password, password))
        created.append((username, role, password))
    return created
