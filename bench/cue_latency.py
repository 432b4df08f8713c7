"""Cue latency in wall-clock time: from the angry frame leaving the customer to the flag reaching the rep.

Each run is one call through a real server process (``python -m server.cli serve``,
emotion cues on: the real fer fast path in its worker process). The customer's
aiortc client shows a happy face (a fixture photo, swaying like a hand-held phone)
for a few seconds, then an angry one. The clock starts when the first RTP packet
of the first angry frame leaves the customer's client and stops when the rep's
WebSocket reads the ``emotion.update`` that raises the flag. The flag's own media
time is printed beside it (the aggregator's view, which leaves out network,
decoding, queueing and the worker round trip).

WebRTC needs 127.0.0.2 and no way out, so run it in a private network namespace::

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/cue_latency.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

# `python bench/cue_latency.py` puts bench/ first on sys.path; server/ and tests/ live at the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    NETNS_COMMAND,
    PATHS,
    ServerProcess,
    create_reps,
    in_private_netns,
    machine,
    progress,
    rep_name,
    source_revision,
    tail,
)
from emotion import fer_available
from tests.support.clients import (
    MediaClient,
    SignalingClient,
    SwitchingVideoTrack,
    VideoSendLog,
    login,
    start_call,
    wrap_up,
)
from tests.support.faces import make_clip

MODEL_LOAD_TIMEOUT_S = 240.0  # the first call waits for the server's worker to load the model
FLAG_TIMEOUT_S = 30.0


@dataclass
class Run:
    index: int
    wall_s: float | None  # angry frame's first packet leaves the customer -> flag read at the rep
    media_s: float | None  # the flag's media time minus the angry frame's
    happy_updates: int
    flagged_while_happy: bool


async def one_call(url: str, password: str, index: int, happy_s: float) -> Run:
    rep_http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    customer_http = aiohttp.ClientSession()
    rep, customer = SignalingClient(rep_http, url), SignalingClient(customer_http, url)
    media: list[MediaClient] = []
    session_id: str | None = None
    try:
        await login(rep_http, url, rep_name(0), password)
        await rep.connect()
        await rep.send({"type": "hello"})
        await rep.wait_for("welcome")
        await rep.request({"type": "rep.status", "status": "available"})
        call = await start_call(customer_http, url, reason="complaint", emotion_consent=True)
        session_id = str(call["session_id"])
        await customer.connect()
        await customer.send({"type": "hello", "token": call["token"]})
        await customer.wait_for("welcome")
        await rep.request({"type": "call.accept", "session_id": session_id})

        happy, angry = make_clip([("happy", 1.0)]), make_clip([("angry", 1.0)])
        camera = SwitchingVideoTrack(happy.frame_at, angry.frame_at)
        customer_media, rep_media = MediaClient(video=camera), MediaClient()
        media += [customer_media, rep_media]
        await customer_media.negotiate(customer)
        await rep_media.negotiate(rep)
        sent = VideoSendLog(customer_media)

        first = await rep.wait_for("emotion.update", timeout=MODEL_LOAD_TIMEOUT_S)
        await rep.wait_for(
            lambda m: m["type"] == "emotion.update" and m["media_time"] >= first["media_time"] + happy_s,
            timeout=happy_s + FLAG_TIMEOUT_S,
        )
        before = len(rep.inbox)
        happy_updates = [m for m in rep.inbox if m["type"] == "emotion.update"]
        camera.switch()
        try:
            flag = await rep.wait_for(
                lambda m: m["type"] == "emotion.update" and m["flag"] == "raised", after=before, timeout=FLAG_TIMEOUT_S
            )
        except TimeoutError:
            return Run(index, None, None, len(happy_updates), any(u["flag_active"] for u in happy_updates))
        assert camera.switched_at is not None and camera.switched_media_time is not None
        left = sent.first_sent_after(camera.switched_at)
        wall = None if left is None else rep.arrival_of(flag) - left
        return Run(
            index,
            wall,
            float(flag["media_time"]) - camera.switched_media_time,
            len(happy_updates),
            any(u["flag_active"] for u in happy_updates),
        )
    finally:
        if rep.ws is not None and not rep.ws.closed:
            await rep.send({"type": "call.end", "reason": "resolved"})
            await rep.wait_for("call.ended")
            if session_id is not None:
                await wrap_up(rep_http, url, session_id)
        for m in media:
            await m.close()
        for client in (rep, customer):
            await client.close()
        await rep_http.close()
        await customer_http.close()


async def measure(url: str, password: str, runs: int, happy_s: float) -> list[Run]:
    results = []
    for index in range(runs):
        result = await one_call(url, password, index, happy_s)
        wall = "never" if result.wall_s is None else f"{result.wall_s:.2f} s"
        media = "-" if result.media_s is None else f"{result.media_s:.2f} s"
        progress(f"  run {index + 1}: wall clock {wall}, media time {media}")
        results.append(result)
    return results


def summary(values: list[float]) -> str:
    if not values:
        return "no flags"
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="calls, one after another")
    parser.add_argument("--happy-seconds", type=float, default=5.0, help="happy face before the switch")
    parser.add_argument("--path", choices=sorted(PATHS), default="forward", help="the server's media path")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    if not in_private_netns():
        raise SystemExit(f"run inside a private network namespace with 127.0.0.2 on lo:\n  {NETNS_COMMAND} ...")
    available, why = fer_available()
    if not available:
        raise SystemExit(f"needs the emotion stack: {why}")

    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="rapport-cues-") as tmp:
        data_dir = Path(tmp) / "data"
        create_reps(data_dir, 1, password)
        extra = tuple(tuple(item.split("=", 1)) for item in args.set if "=" in item)
        settings = (("emotion_cues", "true"), ("recording_policy", "never"), *extra)
        log = Path(tmp) / "server.log"
        with ServerProcess(PATHS[args.path], data_dir, log, None, settings) as server:
            started = time.monotonic()
            try:
                results = asyncio.run(measure(server.url, password, args.runs, args.happy_seconds))
            except BaseException:
                print(f"the server's log ends:\n{tail(log, 40)}", file=sys.stderr)
                raise
            elapsed = time.monotonic() - started
    wall = [r.wall_s for r in results if r.wall_s is not None]
    media = [r.media_s for r in results if r.media_s is not None]
    info: dict[str, Any] = {"machine": machine(), "server": source_revision(), "path": args.path}
    if args.json:
        print(json.dumps({**info, "runs": [asdict(r) for r in results], "seconds": round(elapsed, 1)}, indent=2))
    else:
        print(f"cue latency, happy -> angry face, {args.runs} calls, media path {args.path}, server {info['server']}")
        print(f"  wall clock (angry frame leaves the customer -> flag at the rep): {summary(wall)}")
        print(f"  media time (the aggregator's view):                              {summary(media)}")
        missed = sum(r.wall_s is None for r in results)
        early = sum(r.flagged_while_happy for r in results)
        print(f"  calls without a flag: {missed}; flags while happy: {early}")
    return 0 if len(wall) == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
