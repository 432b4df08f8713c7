"""The call desk: what HTTP routes ask of the live call centre, wherever it runs.

On one box the call centre is in this process (:class:`LocalDesk`). In a cluster it runs on the front door
that holds the leader lease, and the other front doors reach it over Redis (``server.cluster.door``): the
routes do not care which, so they take a :class:`CallDesk`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from aiohttp import web

from ..storage.records import NewCall
from .center import CallCenter


class QueuedCall(NamedTuple):
    session_id: str
    token: str
    token_expires_at: float


class CallDesk(Protocol):
    async def create_call(self, call: NewCall, *, address: str | None) -> QueuedCall:
        """Queue a customer. Raises ``capacity.AtCapacity`` and its siblings."""

    async def wrapped_up(self, rep_id: int, session_id: str) -> None: ...

    async def floor(self) -> dict[str, Any]:
        """Waiting, active and available-rep counts (``/healthz``)."""

    async def live_floor(self) -> dict[str, Any]:
        """The supervisor's view."""

    async def next_waits(self) -> dict[str, int]:
        """The estimated wait of a customer who joins now, per reason code (``""``: no reason)."""

    async def close_login(self, login_id: str) -> None: ...

    async def update_routing(self, user_id: int, skills: frozenset[str], languages: frozenset[str]) -> None: ...

    async def reserve_file(self, session_id: str, role: str, user_id: int | None, kind: str) -> None:
        """Hold a place for one upload into a live call; raises ``attachments.FileRefused``."""

    async def release_file(self, session_id: str) -> None: ...

    async def file_shared(self, session_id: str, file_id: str) -> bool:
        """A reserved upload is stored: tell both sides; False when the call ended meanwhile."""


class LocalDesk:
    """The call centre in this process."""

    def __init__(self, center: CallCenter) -> None:
        self.center = center

    async def create_call(self, call: NewCall, *, address: str | None) -> QueuedCall:
        record, token = await self.center.create_call(call, address=address)
        return QueuedCall(record.id, token, record.token_expires_at)

    async def wrapped_up(self, rep_id: int, session_id: str) -> None:
        self.center.wrapped_up(rep_id, session_id)

    async def floor(self) -> dict[str, Any]:
        return self.center.floor()

    async def live_floor(self) -> dict[str, Any]:
        return self.center.live_floor()

    async def next_waits(self) -> dict[str, int]:
        return self.center.next_waits()

    async def close_login(self, login_id: str) -> None:
        await self.center.close_login(login_id)

    async def update_routing(self, user_id: int, skills: frozenset[str], languages: frozenset[str]) -> None:
        self.center.update_routing(user_id, skills, languages)

    async def reserve_file(self, session_id: str, role: str, user_id: int | None, kind: str) -> None:
        await self.center.attachments.reserve(session_id, role, user_id, kind)

    async def release_file(self, session_id: str) -> None:
        self.center.attachments.release(session_id)

    async def file_shared(self, session_id: str, file_id: str) -> bool:
        return await self.center.attachments.shared_file(session_id, file_id)


CALL_DESK = web.AppKey("call_desk", CallDesk)
