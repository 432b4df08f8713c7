"""Staff accounts: password hashing, what stands in front of argon2 at login, demo accounts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .. import tokens
from ..storage.records import User
from ..storage.store import Store

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


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins allowed per ``window_s``, and how many argon2 checks may run at once."""

    per_account: int = 5  # per (username, address): the old throttle
    per_address: int = 20  # per address, whatever the usernames
    server_wide: int = 100  # all addresses together
    window_s: float = 60.0
    concurrent: int = 2
    queue_s: float = 5.0  # longest wait for a free argon2 slot before 429


class LoginRefused(Exception):
    """A login turned away before any password was checked."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(retry_after, 0.0)
        self.message = message


VerifyFunction = Callable[[str, str], bool]
_Key = TypeVar("_Key")


class LoginGuard:
    """Limits in front of argon2 (about 50 ms of CPU per check), so random usernames cannot burn CPU or memory.

    An attempt reserves a place in its address's window and in the server-wide one before any hash is
    computed; a successful login gives the place back, so only failures (and attempts in flight) count.
    Every window holds at most its limit, and idle keys are pruned, so memory stays bounded.
    """

    def __init__(
        self,
        limits: LoginLimits | None = None,
        *,
        verify: VerifyFunction = verify_password,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or LoginLimits()
        self.verify = verify
        self.clock = clock
        self._per_account: dict[tuple[str, str], deque[float]] = {}
        self._per_address: dict[str, deque[float]] = {}
        self._server_wide: deque[float] = deque()
        self._slots = asyncio.Semaphore(self.limits.concurrent)
        self._pruned_at = float("-inf")

    def tracked(self) -> int:
        """Keys held in memory (for tests and metrics)."""
        return len(self._per_account) + len(self._per_address)

    def _trim(self, q: deque[float], now: float) -> deque[float]:
        cutoff = now - self.limits.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < min(1.0, self.limits.window_s):
            return
        self._pruned_at = now
        self._trim(self._server_wide, now)
        self._drop_idle(self._per_account, now)
        self._drop_idle(self._per_address, now)

    def _drop_idle(self, table: dict[_Key, deque[float]], now: float) -> None:
        for key in [k for k, q in table.items() if not self._trim(q, now)]:
            del table[key]

    def _full(self, q: deque[float] | None, limit: int, now: float) -> float:
        """Seconds until ``q`` has room again; 0 when it has room now."""
        if q is None or len(self._trim(q, now)) < limit:
            return 0.0
        return q[len(q) - limit] + self.limits.window_s - now

    def admit(self, username: str, address: str) -> float:
        """Reserve a place for one attempt or raise LoginRefused; returns the reservation's stamp."""
        now = self.clock()
        self._prune(now)
        limits = self.limits
        wait = self._full(self._per_account.get((username, address)), limits.per_account, now)
        if wait > 0:
            raise LoginRefused(wait, "too many failed logins for this username from your address")
        wait = self._full(self._per_address.get(address), limits.per_address, now)
        if wait > 0:
            raise LoginRefused(wait, "too many failed logins from your address")
        wait = self._full(self._server_wide, limits.server_wide, now)
        if wait > 0:
            raise LoginRefused(wait, "too many failed logins on this server; try again later")
        self._per_address.setdefault(address, deque()).append(now)
        self._server_wide.append(now)
        return now

    def settle(self, username: str, address: str, stamp: float, *, ok: bool | None) -> None:
        """``ok``: the password matched, did not, or was never checked (None: only give the place back)."""
        if ok is False:
            self._per_account.setdefault((username, address), deque()).append(stamp)
            return
        if ok:
            self._per_account.pop((username, address), None)
        for q in (self._per_address.get(address), self._server_wide):
            if q is not None and stamp in q:
                q.remove(stamp)
        if not self._per_address.get(address, True):
            del self._per_address[address]

    async def authenticate(self, store: Store, username: str, password: str, address: str) -> User | None:
        """The user, None for a wrong username or password, or LoginRefused (nothing was checked)."""
        stamp = self.admit(username, address)
        user: User | None = None
        checked = False
        try:
            found = await store.user_with_hash(username)
            password_hash = found[1] if found else _DUMMY_HASH
            try:
                async with asyncio.timeout(self.limits.queue_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise LoginRefused(1.0, "the server is busy checking other logins; try again") from None
            try:
                checked = True
                # argon2 costs ~50 ms of CPU: keep it off the event loop.
                ok = await asyncio.to_thread(self.verify, password_hash, password)
            finally:
                self._slots.release()
            if ok and found is not None and found[0].active:
                user = found[0]
        finally:
            self.settle(username, address, stamp, ok=(user is not None) if checked else None)
        return user


LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)


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
