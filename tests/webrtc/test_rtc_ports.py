"""``rtc_ports``: every media socket of the server (front door and workers) binds inside the range, and a range
that runs out refuses calls clearly while the calls it carries go on."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from tests.support.clients import (
    CUSTOMER,
    REP,
    MediaClient,
    SignalingClient,
    SignalingError,
    login,
    start_call,
    welcomed,
)
from tests.support.serve import ROOT, ServeProcess

pytestmark = pytest.mark.webrtc

PASSWORD = "rtc-ports-test-password"


def add_reps(data_dir: Path, count: int) -> list[str]:
    """``rapport users add`` for rep1..repN, run side by side (each is a Python start)."""
    names = [f"rep{i}" for i in range(1, count + 1)]
    # The first one creates the database; the rest may then run at once.
    procs = []
    for index, name in enumerate(names):
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "users", "add", name, "--role", "rep", "--data-dir", str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert proc.stdin is not None
        proc.stdin.write(PASSWORD.encode() + b"\n")
        proc.stdin.close()
        if index == 0:
            assert proc.wait(60) == 0
        procs.append(proc)
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    return names


def free_port_range(size: int) -> tuple[int, int]:
    """``size`` consecutive UDP ports nobody here holds (checked on 127.0.0.2, where aioice binds)."""
    for _ in range(50):
        low = random.randrange(20000, 30000)
        try:
            held = []
            for port in range(low, low + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.2", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return low, low + size - 1
    raise RuntimeError("no free port range")


def udp_ports_of(pids: set[int]) -> list[int]:
    """Local ports of the UDP sockets these processes hold (their fds matched against /proc/net/udp*)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.append(int(fields[1].split(":")[1], 16))
    return ports


def children_of(pid: int) -> set[int]:
    found = {pid}
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found |= children_of(int(child))
    return found


class Call:
    """One call through the served process: a customer and a rep, each an aiortc peer with its own colour."""

    def __init__(self, customer: SignalingClient, rep: SignalingClient, session_id: str) -> None:
        self.customer, self.rep, self.session_id = customer, rep, session_id
        self.customer_media = MediaClient(identity=CUSTOMER)
        self.rep_media = MediaClient(identity=REP)

    async def connect(self) -> None:
        await self.customer_media.negotiate(self.customer)
        await self.rep_media.negotiate(self.rep)

    async def close(self) -> None:
        await self.customer_media.close()
        await self.rep_media.close()


async def answered_call(stack: AsyncExitStack, url: str, rep_name: str, customer_http: aiohttp.ClientSession) -> Call:
    rep_http = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
    await login(rep_http, url, rep_name, PASSWORD)
    rep = await welcomed(rep_http, url)
    stack.push_async_callback(rep.close)
    await rep.request({"type": "rep.status", "status": "available"})
    started = await start_call(customer_http, url, name=f"Customer of {rep_name}")
    customer = await welcomed(customer_http, url, started["token"])
    stack.push_async_callback(customer.close)
    await rep.request({"type": "call.accept", "session_id": started["session_id"]})
    return Call(customer, rep, started["session_id"])


def serve_env(ports: tuple[int, int], workers: int) -> dict[str, str]:
    return {
        "RAPPORT_EMOTION_CUES": "false",
        "RAPPORT_COMPOSE_RECORDINGS": "false",
        "RAPPORT_RECORDING_POLICY": "never",
        "RAPPORT_MEDIA_WORKERS": str(workers),
        "RAPPORT_MAX_WAITING_PER_ADDRESS": "0",
        "RAPPORT_RTC_PORTS": f"{ports[0]}-{ports[1]}",
    }


async def test_ten_calls_hold_every_server_media_socket_inside_rtc_ports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    reps = add_reps(data, 10)
    ports = free_port_range(30)
    server = ServeProcess(data, env={**serve_env(ports, workers=2), "RAPPORT_MAX_CALLS": "10"})
    await server.start()
    try:
        async with AsyncExitStack() as stack:
            customer_http = await stack.enter_async_context(aiohttp.ClientSession())
            calls = [await answered_call(stack, server.url, name, customer_http) for name in reps]
            stack.push_async_callback(lambda: asyncio.gather(*(c.close() for c in calls)))
            await asyncio.gather(*(c.connect() for c in calls))
            # Who sees what, on every call: the rep the customer's colour, the customer the rep's.
            await asyncio.gather(
                *(c.rep_media.wait_to_see(CUSTOMER, timeout=60.0) for c in calls),
                *(c.customer_media.wait_to_see(REP, timeout=60.0) for c in calls),
            )
            assert server.proc is not None
            held = udp_ports_of(children_of(server.proc.pid))
            # Two peers a call, one host socket each (BUNDLE, rtcp-mux), and none outside the range.
            assert len(held) >= 2 * len(calls), held
            outside = [p for p in held if not ports[0] <= p <= ports[1]]
            assert outside == [], f"media sockets outside {ports}: {outside}"
    finally:
        server.stop()


async def test_a_range_that_runs_out_refuses_new_calls_and_the_call_it_carries_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    reps = add_reps(data, 3)
    ports = free_port_range(4)  # room for two calls
    server = ServeProcess(data, env=serve_env(ports, workers=1))
    await server.start()
    try:
        async with AsyncExitStack() as stack:
            customer_http = await stack.enter_async_context(aiohttp.ClientSession())
            first = await answered_call(stack, server.url, reps[0], customer_http)
            stack.push_async_callback(first.close)
            await first.connect()
            await first.rep_media.wait_to_see(CUSTOMER, timeout=30.0)

            # Another program takes the rest of the range: the next call's offer is refused, clearly.
            squatters = []
            for port in range(ports[0], ports[1] + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    s.bind(("127.0.0.2", port))
                    squatters.append(s)
                except OSError:
                    s.close()
            assert len(squatters) == 2, "the first call should hold exactly two ports of the four"
            second = await answered_call(stack, server.url, reps[1], customer_http)
            stack.push_async_callback(second.close)
            with pytest.raises(SignalingError) as refused:
                await second.customer_media.negotiate(second.customer)
            assert refused.value.code == "at_capacity" and "media port" in str(refused.value)
            assert "PortsExhausted" not in server.log and "Traceback" not in server.log

            # The first call never noticed.
            before = first.rep_media.frames("video")
            await first.rep_media.wait_frames("video", before + 30)
            await first.customer_media.wait_to_see(REP)

            # The ports come free: the same customer offers again and the call goes on (nothing was lost).
            for s in squatters:
                s.close()
            await second.customer_media.restart()
            await second.rep_media.negotiate(second.rep)
            await second.rep_media.wait_to_see(CUSTOMER, timeout=30.0)
            await second.customer_media.wait_to_see(REP, timeout=30.0)

            # Now the range is full: a third rep may not answer (admission), and their customer keeps waiting.
            third_rep_http = await stack.enter_async_context(
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            )
            await login(third_rep_http, server.url, reps[2], PASSWORD)
            third_rep = await welcomed(third_rep_http, server.url)
            stack.push_async_callback(third_rep.close)
            waiting = await start_call(customer_http, server.url, name="Third")
            with pytest.raises(SignalingError) as full:
                await third_rep.request({"type": "call.accept", "session_id": waiting["session_id"]})
            assert full.value.code == "at_capacity"
    finally:
        server.stop()
