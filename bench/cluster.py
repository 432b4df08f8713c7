"""Two front doors and two media nodes on this box: call setup, cross-door signalling latency, and spread.

Inside the bench's own network namespace it starts a throwaway PostgreSQL (Debian's, as the tests do), a Redis,
two ``rapport media-node`` processes (127.0.0.5, 127.0.0.6) and two ``rapport serve`` front doors (127.0.0.3,
127.0.0.4). Every call has its customer on door A and its rep on door B, real aiortc peers both:

* **call setup**: from ``POST /api/v1/calls`` at door A to both sides decoding the other's first video frame
  (the customer says hello, the rep accepts at door B, both offer, the media node answers);
* **cross-door relay**: while those calls' media flows, chat lines from a customer on A to a rep on B, timed
  from the send to the rep's socket reading it. The probe runs in a process of its own, so its clock is not
  held up by the media clients' decoding: p50, p99 and max;
* **spread**: the calls per media node from the session -> node map in Redis.

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/cluster.py --calls 4 --chats 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.common import in_private_netns, machine, progress, source_revision  # noqa: E402
from tests.support.clients import CUSTOMER, REP, MediaClient, SignalingClient, start_call, welcomed  # noqa: E402
from tests.support.cluster import SECRET, Cluster, staff_session  # noqa: E402
from tests.support.media_nodes import MediaNodeProcess  # noqa: E402
from tests.support.postgres import PostgresServer, postgres_bindir  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

DOORS = (("door-a", "127.0.0.3"), ("door-b", "127.0.0.4"))
NODES = (("node-1", "127.0.0.5"), ("node-2", "127.0.0.6"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Call:
    def __init__(self, customer: SignalingClient, rep: SignalingClient, media: tuple[MediaClient, ...]) -> None:
        self.customer, self.rep, self.media = customer, rep, media
        self.session_id = ""
        self.rep_http: aiohttp.ClientSession | None = None


async def set_up_call(door_a: str, door_b: str, rep_name: str, http: aiohttp.ClientSession) -> tuple[Call, float]:
    rep_http = await staff_session(door_b, rep_name)
    rep = await welcomed(rep_http, door_b)
    started = time.perf_counter()
    created = await start_call(http, door_a, name="Bench")
    customer = await welcomed(http, door_a, created["token"])
    await rep.request({"type": "call.accept", "session_id": created["session_id"]})
    customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
    await asyncio.gather(customer_media.negotiate(customer), rep_media.negotiate(rep))
    await asyncio.gather(
        rep_media.wait_frames("video", 1, timeout=30), customer_media.wait_frames("video", 1, timeout=30)
    )
    took = time.perf_counter() - started
    call = Call(customer, rep, (customer_media, rep_media))
    call.session_id, call.rep_http = created["session_id"], rep_http
    return call, took


async def relay_probe(door_a: str, door_b: str, rep_name: str, lines: int, per_second: float) -> list[float]:
    """A signalling-only call in its own process (its event loop decodes no video, so its clock reads true):
    the customer on door A, the rep on door B."""
    async with aiohttp.ClientSession() as http, await staff_session(door_b, rep_name) as rep_http:
        rep = await welcomed(rep_http, door_b)
        created = await start_call(http, door_a, name="Probe")
        customer = await welcomed(http, door_a, created["token"])
        await rep.request({"type": "call.accept", "session_id": created["session_id"]})
        latencies = await relay_latencies(Call(customer, rep, ()), lines, per_second)
        await rep.request({"type": "call.end"})
        await customer.close()
        await rep.close()
    return latencies


def relay_probe_process(door_a: str, door_b: str, rep_name: str, lines: int, per_second: float) -> list[float]:
    return asyncio.run(relay_probe(door_a, door_b, rep_name, lines, per_second))


async def relay_latencies(call: Call, lines: int, per_second: float) -> list[float]:
    """Send ``lines`` chat lines from the customer (door A); each one's time until the rep (door B) reads it."""
    sent: dict[str, float] = {}
    start_index = len(call.rep.inbox)
    for i in range(lines):
        text = f"bench line {i}"
        sent[text] = time.monotonic()
        await call.customer.send({"type": "chat.send", "text": text})
        await asyncio.sleep(1 / per_second)
    last = f"bench line {lines - 1}"
    await call.rep.wait_for(lambda m: m.get("type") == "chat.message" and m.get("text") == last, timeout=30)
    latencies = []
    for message, arrived in zip(call.rep.inbox[start_index:], call.rep.arrived_at[start_index:], strict=True):
        if message.get("type") == "chat.message" and message.get("text") in sent:
            latencies.append((arrived - sent[message["text"]]) * 1000)
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bindir = postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (make test installs Debian's postgresql)")
    with tempfile.TemporaryDirectory(prefix="rapport-bench-cluster-") as folder:
        root = Path(folder)
        (root / "pg").mkdir()
        (root / "redis").mkdir()
        postgres = PostgresServer(bindir, root / "pg")
        postgres.init()
        postgres.start()
        redis_server = RedisServer("/usr/bin/redis-server", root / "redis")
        redis_server.start()
        cluster = Cluster(root, postgres.create_database("rapport"), redis_server)
        nodes: list[MediaNodeProcess] = []
        try:
            # Chat limits off: the bench measures the relay, not the flood guard.
            extra = {"RAPPORT_MEDIA_NODES": "true", "RAPPORT_CHAT_PER_MINUTE": "100000", "RAPPORT_CHAT_BURST": "1000",
                     "RAPPORT_WS_RATE_PER_S": "1000", "RAPPORT_WS_RATE_BURST": "1000",
                     "RAPPORT_MAX_CHAT_PER_SESSION": "100000"}  # fmt: skip
            progress("starting PostgreSQL, Redis, 2 media nodes and 2 front doors")
            for name, host in NODES:
                node = MediaNodeProcess(name, host, redis_url=redis_server.url, database_url=cluster.database_url,
                                        secret=SECRET, folder=root, capacity=args.capacity)  # fmt: skip
                nodes.append(node)
            doors = [cluster.door(name, host, **extra) for name, host in DOORS]
            await doors[0].start()
            for node in nodes:
                node.start()
            await doors[1].start()
            for node in nodes:
                await asyncio.to_thread(node.wait_registered)
            for i in range(args.calls + 1):
                cluster.add_user(f"rep{i + 1}", "rep")
            await cluster.leader()
            door_a, door_b = doors[0].url, doors[1].url

            calls: list[Call] = []
            setups: list[float] = []
            async with aiohttp.ClientSession() as http:
                for i in range(args.calls):
                    call, took = await set_up_call(door_a, door_b, f"rep{i + 1}", http)
                    calls.append(call)
                    setups.append(took * 1000)
                    progress(f"call {i + 1}: set up in {took * 1000:.0f} ms")
                progress(f"relaying {args.chats} chat lines from door A to door B at {args.rate:g}/s")
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as probe:
                    latencies = await asyncio.get_running_loop().run_in_executor(
                        probe, relay_probe_process, door_a, door_b, f"rep{args.calls + 1}", args.chats, args.rate
                    )
                async with aioredis.from_url(redis_server.url, decode_responses=True) as live:
                    placed = await live.hgetall("rapport:session-node")
                spread = {name: 0 for name, _host in NODES}
                for call in calls:
                    spread[placed.get(call.session_id, "?")] = spread.get(placed.get(call.session_id, "?"), 0) + 1
                for call in calls:
                    for media in call.media:
                        await media.close()
                    await call.customer.close()
                    await call.rep.close()
                    if call.rep_http is not None:
                        await call.rep_http.close()
        finally:
            cluster.stop()
            for node in nodes:
                node.stop()
            redis_server.stop()
            postgres.stop()
    counts = [spread.get(name, 0) for name, _host in NODES]
    return {
        "machine": machine(),
        "revision": source_revision(),
        "calls": args.calls,
        "setup_ms": {"p50": statistics.median(setups), "max": max(setups), "all": [round(s) for s in setups]},
        "relay_ms": {
            "lines": len(latencies),
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
        },
        "spread": spread,
        "spread_gap": max(counts) - min(counts),
    }


def report(result: dict[str, Any]) -> str:
    setup, relay = result["setup_ms"], result["relay_ms"]
    spread = ", ".join(f"{name} {n}" for name, n in result["spread"].items())
    return "\n".join(
        [
            f"cluster: 2 front doors, 2 media nodes, {result['calls']} calls "
            f"({result['machine']['cpus']} CPUs, {result['revision']})",
            f"call setup (POST to both sides' first frame): p50 {setup['p50']:.0f} ms, max {setup['max']:.0f} ms",
            f"cross-door relay, customer on A -> rep on B ({relay['lines']} chat lines, {result['calls']} calls' "
            "media flowing): "
            f"p50 {relay['p50']:.2f} ms, p99 {relay['p99']:.2f} ms, max {relay['max']:.2f} ms",
            f"spread over media nodes: {spread} (gap {result['spread_gap']})",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--chats", type=int, default=300, help="chat lines relayed for the latency figures")
    parser.add_argument("--rate", type=float, default=50.0, help="chat lines a second")
    parser.add_argument("--capacity", type=int, default=4, help="calls per media node")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not in_private_netns():
        raise SystemExit("run me inside a private network namespace (see the docstring)")
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
