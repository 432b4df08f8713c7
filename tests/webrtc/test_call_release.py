"""A call's end gives back what it held: UDP sockets, fds and asyncio tasks, in the front door and in a media
worker (what bench/soak.py watches over a thousand calls, pinned here for one call at a time)."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from server.config import Settings
from server.media.worker import WorkerHost
from tests.support.clients import CUSTOMER, REP, MediaClient, wrap_up
from tests.support.server import Rapport, start_rapport

pytestmark = pytest.mark.webrtc

SETTLE_S = 15.0


def udp_sockets(pid: int) -> int:
    """The process's fds that are UDP sockets (their inodes in this namespace's /proc/net/udp and udp6)."""
    inodes = set()
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            inodes.add(line.split()[9])
    count = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def settles_to(read: Callable[[], int], baseline: int, what: str) -> None:
    """Until ``read()`` is back to ``baseline`` (a call's teardown takes a moment); fails with the last value."""
    deadline = time.monotonic() + SETTLE_S
    while (now := read()) > baseline:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {now} after the call, {baseline} before it")
        await asyncio.sleep(0.2)


async def one_call(rapport: Rapport, during: Callable[[], None] = lambda: None) -> None:
    """A whole call: media both ways, chat, end, wrap-up; every client closed after it. ``during`` runs while
    media flows."""
    rep, customer, call, customer_media, rep_media = await rapport.media_call()
    await rep_media.wait_to_see(CUSTOMER)
    await customer_media.wait_to_see(REP)
    during()
    await customer.request({"type": "chat.send", "text": "hello"})
    await rep.wait_for("chat.message")
    await rep.request({"type": "call.end"})
    await customer.wait_for("call.ended")
    http, _csrf = await rapport.staff_session("rep1")
    await wrap_up(http, rapport.url, str(call["session_id"]))
    await rapport.aclose()  # the clients go: their peers, sockets and sessions
    rapport.media.clear()
    rapport._clients.clear()
    rapport._extra.clear()


async def test_a_call_in_the_front_door_gives_back_its_udp_sockets_fds_and_tasks(settings: Settings) -> None:
    # media_workers=0: the call's peers run in this process, beside the test's own clients.
    rapport = await start_rapport(settings)
    try:
        await rapport.add_user("rep1")
        pid = os.getpid()
        # A first call, so lazy set-up (database connections, thread pools) is not counted as the call's.
        await one_call(rapport)
        await asyncio.sleep(1.0)
        udp, tasks, open_fds = udp_sockets(pid), len(asyncio.all_tasks()), fds(pid)
        for _ in range(2):
            await one_call(rapport)
            await settles_to(lambda: udp_sockets(pid), udp, "UDP sockets")
            await settles_to(lambda: len(asyncio.all_tasks()), tasks, "asyncio tasks")
            await settles_to(lambda: fds(pid), open_fds, "open fds")
    finally:
        await rapport.stop()


async def test_a_call_in_a_media_worker_gives_back_its_udp_sockets_fds_and_tasks(settings: Settings) -> None:
    rapport = await start_rapport(replace(settings, media_workers=1))
    try:
        await rapport.add_user("rep1")
        pool = rapport.center.pool
        assert pool is not None
        worker = pool.workers[0]
        pid = worker.pid
        assert pid is not None
        # Its memory in few glibc arenas (short-lived threads would each add one: bench/soak.py).
        assert b"MALLOC_ARENA_MAX=2\0" in environ(pid)
        await one_call(rapport)
        await asyncio.sleep(2.5)  # the worker reports its tasks once a second
        udp, open_fds = udp_sockets(pid), fds(pid)
        assert worker.tasks is not None
        tasks = worker.tasks
        for _ in range(2):

            def in_the_worker() -> None:
                assert udp_sockets(pid) > udp, "the call's peers have no UDP sockets in the worker: wrong process?"

            await one_call(rapport, in_the_worker)
            await settles_to(lambda: udp_sockets(pid), udp, "the worker's UDP sockets")
            await settles_to(lambda: fds(pid), open_fds, "the worker's open fds")
            await settles_to(lambda: worker.tasks or 0, tasks, "the worker's asyncio tasks")
        assert worker.pid == pid, "the worker was replaced"
    finally:
        await rapport.stop()


class Discard:
    """A media host's writer that drops what it is sent (no front door here)."""

    def write(self, data: bytes) -> None:
        pass


async def test_a_worker_frees_a_closed_calls_peers_without_waiting_for_the_collectors_thresholds(
    settings: Settings,
) -> None:
    # A call's aiortc peers are reference cycles: only a full collection frees them. With automatic collection off
    # (as when its thresholds are far away), the worker host must still free them soon after the call closes.
    host = WorkerHost(Discard(), "sqlite+aiosqlite:///" + str(settings.data_dir / "unused.sqlite3"))
    clients = {role: MediaClient(identity=identity) for role, identity in (("customer", CUSTOMER), ("rep", REP))}
    gc.collect()
    gc.disable()
    try:
        await host.handle({"op": "open", "session": "s1", "forward": True})
        media = host.calls["s1"]
        for role, client in clients.items():
            await client.accept_answer(await media.answer(role, await client.offer()))
        await clients["rep"].wait_to_see(CUSTOMER)
        refs: list[weakref.ref[object]] = [weakref.ref(peer) for peer in media.peers.values() if peer is not None]
        assert len(refs) == 2
        refs.append(weakref.ref(media))
        del media
        await host.handle({"op": "close", "session": "s1"})
        for client in clients.values():
            await client.close()
        deadline = time.monotonic() + SETTLE_S
        while any(ref() is not None for ref in refs):
            assert time.monotonic() < deadline, "the closed call's media and peers are still in memory"
            await asyncio.sleep(0.2)
    finally:
        gc.enable()
        for client in clients.values():
            await client.close()
        await host.aclose()
