"""Fixtures for the emotion tests: services that always get closed, and no stray worker processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from emotion.detector import fer_available
from emotion.pipeline import EmotionService, EmotionStream
from emotion.types import EmotionEvent, EmotionStatus, EmotionUpdate

FER_OK, FER_REASON = fer_available()
requires_fer = pytest.mark.skipif(not FER_OK, reason=FER_REASON)

MakeService = Callable[..., EmotionService]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes only once reaped.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
async def make_service() -> AsyncIterator[MakeService]:
    """Builds services; closes them after the test and checks no worker process outlived them."""
    made: list[EmotionService] = []
    pids: set[int] = set()

    def make(*args: Any, **kwargs: Any) -> EmotionService:
        service = EmotionService(*args, **kwargs)
        made.append(service)
        return service

    def note_pids() -> None:
        for service in made:
            pids.update(service.worker_pids)

    yield make
    note_pids()
    for service in made:
        await service.aclose()
    assert multiprocessing.active_children() == []
    assert [pid for pid in pids if pid_alive(pid)] == []


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class EventLog:
    """Reads a stream's events in the background so tests can wait for one."""

    def __init__(self, stream: EmotionStream) -> None:
        self.stream = stream
        self.events: list[EmotionEvent] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    @property
    def updates(self) -> list[EmotionUpdate]:
        return [e for e in self.events if isinstance(e, EmotionUpdate)]

    @property
    def statuses(self) -> list[EmotionStatus]:
        return [e for e in self.events if isinstance(e, EmotionStatus)]

    async def wait_for(self, predicate: Callable[[EmotionEvent], bool], timeout: float = 10.0) -> EmotionEvent:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            if self._task.done():
                raise AssertionError(f"stream ended without the expected event; got {self.events}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; events so far: {self.events}")
            await asyncio.sleep(0.01)

    async def status(self, status: str, timeout: float = 10.0) -> EmotionStatus:
        event = await self.wait_for(lambda e: isinstance(e, EmotionStatus) and e.status == status, timeout)
        assert isinstance(event, EmotionStatus)
        return event

    async def update(self, predicate: Callable[[EmotionUpdate], bool], timeout: float = 10.0) -> EmotionUpdate:
        event = await self.wait_for(lambda e: isinstance(e, EmotionUpdate) and predicate(e), timeout)
        assert isinstance(event, EmotionUpdate)
        return event

    async def finished(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._task, timeout)
