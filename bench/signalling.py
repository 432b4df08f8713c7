"""Signalling under load: 1,000 concurrent WebSockets on one ``rapport serve`` process (bench/README.md).

900 waiting customers (``POST /api/v1/calls`` from their own loopback address, 127.0.x.y as different phones, then
the socket and ``hello`` with the token, as the customer page does) and 100 reps (staff logins made straight in the
database before the server starts; they stay ``away`` so the calls keep waiting, and hold a copy of the queue from
``queue.snapshot`` and ``queue.delta``s). Then, from ``/proc`` of the server process and the clients' clocks:

* memory and CPU per idle socket: the server's RSS before and after the 1,000 sockets (and their calls), divided;
  its CPU over an idle window;
* a queue update: one more customer joins; the time from their ``POST`` to each rep's socket holding a delta with
  the new call (p50/p99 over reps and joins), and per join the server's CPU time and the bytes sent to the reps;
  beside it what one whole ``queue.snapshot`` to every rep would be (what each change cost before deltas);
* a chat round trip: a few customers are taken into calls (``call.accept``, no media) and both sides send lines;
  from ``chat.send`` to the other side's ``chat.message`` (p50/p99).

Run it inside the network namespace (a private loopback with all of 127/8):
``unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' .venv/bin/python
bench/signalling.py``. It raises RLIMIT_NOFILE to its hard limit (the server inherits it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calls.procstat import rss_mb, session_cpu_seconds  # noqa: E402
from bench.common import (  # noqa: E402
    NETNS_COMMAND,
    PATHS,
    ServerProcess,
    create_reps,
    in_private_netns,
    machine,
    progress,
    rep_name,
    source_revision,
)
from server.calls.queue_feed import VersionGap, apply  # noqa: E402

SETTINGS = (
    ("max_waiting_per_address", "0"),
    ("max_waiting_calls", "0"),
    ("chat_per_minute", "6000"),
    ("chat_burst", "1000"),
    ("emotion_cues", "false"),
    ("login_concurrency", "4"),
)


def customer_address(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


@dataclass
class Socket:
    """One client WebSocket: every frame's arrival time and size; a rep also keeps the queue's copy."""

    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse | None = None
    inbox: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)
    queue: dict[str, Any] | None = None
    resyncs: int = 0
    waiters: list[tuple[Any, asyncio.Future[float]]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def open(self, url: str, hello: dict[str, Any]) -> None:
        self.ws = await self.http.ws_connect(f"{url}/ws/v1", heartbeat=None, autoping=True)
        self.reader = asyncio.create_task(self._read())
        await self.send(hello)
        await self.wait(lambda m: m["type"] == "welcome")

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            message = json.loads(frame.data)
            self.inbox.append((now, len(frame.data), message))
            if message.get("type") in ("queue.snapshot", "queue.delta"):
                try:
                    self.queue = apply(self.queue, message)
                except VersionGap:
                    if self.queue is not None:  # a real gap (before the first snapshot a delta is simply early)
                        self.resyncs += 1
                        self.queue = None
                        await self.send({"type": "queue.resync"})
            for predicate, future in list(self.waiters):
                if not future.done() and predicate(message):
                    future.set_result(now)
                    self.waiters.remove((predicate, future))

    async def wait(self, predicate: Any, timeout: float = 30.0, after: int = 0) -> float:
        for at, _, message in self.inbox[after:]:
            if predicate(message):
                return at
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((predicate, future))
        return await asyncio.wait_for(future, timeout)

    def bytes_since(self, t: float) -> int:
        return sum(size for at, size, _ in self.inbox if at >= t)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
        await self.http.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def rep_socket(url: str, index: int, password: str) -> Socket:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    answer = await http.post(f"{url}/api/v1/auth/login", json={"username": rep_name(index), "password": password})
    if answer.status != 200:
        raise RuntimeError(f"login {rep_name(index)}: {answer.status} {await answer.text()}")
    sock = Socket(http)
    await sock.open(url, {"type": "hello"})
    return sock


async def customer_socket(url: str, index: int) -> tuple[Socket, str, float]:
    """A customer as the page: POST /api/v1/calls from their own address, then the socket. Returns the socket,
    the session id and when the POST was sent (perf_counter)."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(customer_address(index), 0)))
    began = time.perf_counter()
    answer = await http.post(f"{url}/api/v1/calls", json={"reason": "other", "name": f"Customer {index + 1}"})
    body = await answer.json()
    if answer.status != 201:
        await http.close()
        raise RuntimeError(f"POST /api/v1/calls: {answer.status} {body}")
    sock = Socket(http)
    await sock.open(url, {"type": "hello", "token": body["token"]})
    return sock, str(body["session_id"]), began


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


def cpu_pct_over(pid: int, seconds: float) -> float:
    before = session_cpu_seconds(pid)
    time.sleep(seconds)
    return 100 * (session_cpu_seconds(pid) - before) / seconds


async def run(opts: argparse.Namespace, server: ServerProcess, password: str) -> dict[str, Any]:
    url, pid = server.url, server.pid
    out: dict[str, Any] = {}
    await asyncio.sleep(2)
    # A few sockets first, so that what the first ones set up once (caches, the allocator's arenas) is not
    # charged to every socket; the baseline is taken after them.
    warm = 10
    reps = await gather_limited([rep_socket(url, i, password) for i in range(warm)], 8)
    customers = await gather_limited([customer_socket(url, i) for i in range(warm)], 8)
    await asyncio.sleep(2)
    rss_before = rss_mb(pid)
    progress(f"server with {2 * warm} sockets: RSS {rss_before:.1f} MB; opening {opts.reps - warm} more rep sockets")
    reps += await gather_limited([rep_socket(url, i, password) for i in range(warm, opts.reps)], 8)
    progress(f"opening {opts.customers - warm} more customer sockets (each a waiting call)")
    began = time.monotonic()
    customers += await gather_limited([customer_socket(url, i) for i in range(warm, opts.customers)], 16)
    progress(f"  {len(customers)} customers waiting after {time.monotonic() - began:.0f} s")
    sockets = len(reps) + len(customers)
    for rep in reps:
        await rep.wait(lambda _m, r=rep: r.queue is not None and len(r.queue["items"]) >= opts.customers, 60)
    await asyncio.sleep(3)
    rss_after = rss_mb(pid)
    idle_cpu = await asyncio.to_thread(cpu_pct_over, pid, opts.idle_s)
    out["sockets"], out["customers"], out["reps"] = sockets, len(customers), len(reps)
    out["rss_before_mb"], out["rss_after_mb"] = round(rss_before, 1), round(rss_after, 1)
    out["kb_per_socket"] = round(1024 * (rss_after - rss_before) / (sockets - 2 * warm), 1)
    out["idle_cpu_pct"] = round(idle_cpu, 2)
    out["idle_cpu_pct_per_1000_sockets"] = round(idle_cpu * 1000 / sockets, 2)
    progress(
        f"RSS {rss_before:.1f} -> {rss_after:.1f} MB: {out['kb_per_socket']} KB per socket; idle CPU {idle_cpu:.1f} %"
    )

    # What one whole snapshot would cost each change (the old broadcast): its size, to every rep.
    probe = reps[0]
    mark = len(probe.inbox)
    await probe.send({"type": "queue.resync", "id": "probe"})
    await probe.wait(lambda m: m.get("reply_to") == "probe")
    snapshot_bytes = next(size for _, size, m in probe.inbox[mark:] if m["type"] == "queue.snapshot")
    out["snapshot_bytes"] = snapshot_bytes
    out["snapshot_bytes_to_all_reps"] = snapshot_bytes * len(reps)

    # Joins while the queue is full.
    latencies: list[float] = []
    cpu_per_join: list[float] = []
    bytes_per_join: list[int] = []
    cpu_began, joins_began = session_cpu_seconds(pid), time.perf_counter()
    for j in range(opts.joins):
        await asyncio.sleep(opts.join_gap_s)
        t_cpu = session_cpu_seconds(pid)
        t0 = time.perf_counter()
        marks = [len(rep.inbox) for rep in reps]
        sock, session_id, posted = await customer_socket(url, opts.customers + j)
        customers.append((sock, session_id, posted))

        arrived = []
        for rep, mark in zip(reps, marks, strict=True):
            arrived.append(
                await rep.wait(
                    lambda _m, r=rep, sid=session_id: (
                        r.queue is not None and any(i["session_id"] == sid for i in r.queue["items"])
                    ),
                    10,
                    after=mark,
                )
            )
        latencies += [1000 * (at - posted) for at in arrived]
        await asyncio.sleep(0.4)  # the coalesced second send (the customer's socket now connected) too
        cpu_per_join.append(1000 * (session_cpu_seconds(pid) - t_cpu))
        bytes_per_join.append(sum(rep.bytes_since(t0) for rep in reps))
    joins_s = time.perf_counter() - joins_began
    # CPU in jiffies (10 ms): over all joins, less what the server spends idle meanwhile.
    spent_ms = 1000 * (session_cpu_seconds(pid) - cpu_began) - idle_cpu / 100 * joins_s * 1000
    out["queue_update_ms"] = {"p50": round(pct(latencies, 0.5), 1), "p99": round(pct(latencies, 0.99), 1)}
    out["join_cpu_ms"] = round(spent_ms / opts.joins, 1)
    out["join_bytes_to_reps"] = round(statistics.median(bytes_per_join))
    out["resyncs"] = sum(rep.resyncs for rep in reps)
    progress(
        f"join: update p50/p99 {out['queue_update_ms']} ms; CPU {out['join_cpu_ms']} ms; {out['join_bytes_to_reps']} B"
    )

    # Chat: the first `pairs` reps take the first `pairs` customers' calls.
    pairs = []
    for k in range(opts.pairs):
        rep, (customer, session_id, _) = reps[k], customers[k]
        await rep.send({"type": "call.accept", "session_id": session_id, "id": f"a{k}"})
        await rep.wait(lambda m, k=k: m.get("reply_to") == f"a{k}")
        await customer.wait(lambda m: m["type"] == "call.accepted")
        pairs.append((customer, rep))
    trips: list[float] = []
    for n in range(opts.chat_rounds):
        for k, (customer, rep) in enumerate(pairs):
            sender, receiver = (customer, rep) if (n + k) % 2 == 0 else (rep, customer)
            text = f"line {n} pair {k} {secrets.token_hex(4)}"
            sent = time.perf_counter()
            await sender.send({"type": "chat.send", "text": text})
            got = await receiver.wait(lambda m, t=text: m["type"] == "chat.message" and m.get("text") == t, 10)
            trips.append(1000 * (got - sent))
        await asyncio.sleep(opts.chat_gap_s)
    out["chat_ms"] = {"p50": round(pct(trips, 0.5), 1), "p99": round(pct(trips, 0.99), 1), "n": len(trips)}
    progress(f"chat: p50/p99 {out['chat_ms']} ms")
    for sock in reps + [c for c, _, _ in customers]:
        await sock.close()
    return out


def report(out: dict[str, Any], info: dict[str, Any]) -> str:
    rows = [
        ("sockets open", f"{out['sockets']} ({out['customers']} waiting customers, {out['reps']} reps)"),
        ("server RSS before / after", f"{out['rss_before_mb']} / {out['rss_after_mb']} MB"),
        ("**memory per idle socket**", f"**{out['kb_per_socket']} KB** (goal <= 50 KB; with its waiting call)"),
        ("server CPU, all idle", f"{out['idle_cpu_pct']} % of a core"),
        ("**chat round trip p50 / p99**", f"**{out['chat_ms']['p50']} / {out['chat_ms']['p99']} ms** (goal p99 < 50)"),
        (
            "queue update p50 / p99 (join -> every rep)",
            f"{out['queue_update_ms']['p50']} / {out['queue_update_ms']['p99']} ms",
        ),
        ("one join: server CPU", f"{out['join_cpu_ms']} ms"),
        ("one join: bytes sent to the reps", f"{out['join_bytes_to_reps']:,} B"),
        (
            "a whole snapshot to every rep (before deltas)",
            f"{out['snapshot_bytes_to_all_reps']:,} B ({out['snapshot_bytes']:,} B each)",
        ),
        ("resyncs asked (version gaps)", str(out["resyncs"])),
    ]
    lines = [f"Rapport signalling, {info['date']}, {info['machine']['cpus']} cores, server code {info['source']}", ""]
    lines += ["| figure | value |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=900)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=10, help="customer-rep pairs in calls for the chat round trip")
    parser.add_argument("--chat-rounds", type=int, default=20)
    parser.add_argument("--chat-gap-s", type=float, default=0.2)
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--join-gap-s", type=float, default=0.6)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    if not in_private_netns():
        progress(f"run it inside a private network namespace:\n  {NETNS_COMMAND} .venv/bin/python bench/signalling.py")
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * (opts.customers + opts.reps) + 1024
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, need)), hard))
    info = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "source": source_revision()}
    password = secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="rapport-signalling-") as tmp:
        data_dir = Path(tmp) / "data"
        create_reps(data_dir, opts.reps, password)
        with ServerProcess(PATHS["forward"], data_dir, Path(tmp) / "server.log", None, SETTINGS) as server:
            try:
                out = asyncio.run(run(opts, server, password))
            except Exception:
                progress((Path(tmp) / "server.log").read_text()[-3000:])
                raise
    print(json.dumps({**info, **out}, indent=2) if opts.json else report(out, info), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
