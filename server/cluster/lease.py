"""The leader lease: one front door at a time runs the call centre.

A Redis key set with NX and a time to live, renewed well inside it. Redis arbitrates; we write no consensus.
While Redis is away the holder keeps leading (nobody else can take the key meanwhile) and its calls go on.
When Redis answers again the holder takes the key back at its next renewal, while the others first wait out a
lease, so a Redis restart does not move the leader. A holder that finds someone else's name in the key (it was
cut off from Redis longer than a lease, and another front door took over) steps down without ending a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from .bus import Bus, key

log = logging.getLogger(__name__)

LEADER_KEY = key("leader")
EPOCH_KEY = key("leader-epoch")
# Renew or take the lease: 1 = ours now, 0 = someone else's.
RENEW_OR_TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLease:
    """Calls ``on_elected(epoch)`` when this process becomes leader and ``on_deposed()`` when it stops being one."""

    def __init__(
        self,
        bus: Bus,
        name: str,
        lease_s: float,
        on_elected: Callable[[int], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
    ) -> None:
        self.bus, self.name, self.lease_s = bus, name, lease_s
        self.on_elected, self.on_deposed = on_elected, on_deposed
        self.leading = False
        self._renewed_at = 0.0
        self._warned = False
        # After losing Redis, others wait out a lease before taking the key: the holder gets it back first.
        self._patient_until = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-lease")

    async def _run(self) -> None:
        interval = self.lease_s / 3
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader lease: unexpected error")
            await asyncio.sleep(interval)

    async def _tick(self) -> None:
        now = time.monotonic()
        may_take = self.leading or now >= self._patient_until
        try:
            held = await self.bus.redis.eval(
                RENEW_OR_TAKE, 1, LEADER_KEY, self.name, int(self.lease_s * 1000), "1" if may_take else "0"
            )
        except (RedisError, OSError) as exc:
            if not self.leading:
                self._patient_until = time.monotonic() + self.lease_s
            elif time.monotonic() - self._renewed_at > self.lease_s and not self._warned:
                self._warned = True
                log.warning("leader lease: Redis unreachable (%s); still leading until it answers", exc)
            return
        self._warned = False
        if held == 1:
            self._renewed_at = time.monotonic()
            if not self.leading:
                epoch = int(await self.bus.redis.incr(EPOCH_KEY))
                self.leading = True
                log.info("leader: this front door (%s) leads, epoch %d", self.name, epoch)
                await self.on_elected(epoch)
        elif self.leading:
            log.warning("leader lease: another front door holds it; stepping down")
            await self._depose()

    async def _depose(self) -> None:
        self.leading = False
        await self.on_deposed()

    async def stop(self) -> None:
        """Stop competing (a leader keeps the key until ``release``: it hands its calls over first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def release(self) -> None:
        if self.leading:
            self.leading = False
            with contextlib.suppress(RedisError, OSError):
                await self.bus.redis.eval(RELEASE, 1, LEADER_KEY, self.name)
