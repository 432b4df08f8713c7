"""``make fuzz``: at least 10,000 hostile inputs against a Rapport server process, with a bystander call.

Three kinds of process take part, like the calls bench (bench/calls/):

* the conductor (this file): provisions accounts in a temporary data dir, starts the server, sends the inputs,
  reads the server's log for errors, and prints what it sent, what crashed and the bystander's frame rate;
* the server: ``python -m server.cli serve`` with its defaults (media worker processes and all), except that
  demo accounts, emotion cues and composing are off, the per-participant offer cap is lifted so mutated
  offers reach aiortc rather than the rate limiter, and a stalled request body is cut off after 2 s, not 15;
* the bystander (this file with ``--bystander``): a real call of two aiortc peers, printing the video frames
  each side decoded, so its frame rate is measured outside the fuzzer's own process.

WebRTC needs 127.0.0.2 and no way out, so run it in a private network namespace (the Makefile does)::

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python -m tests.fuzz --inputs 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.common import in_private_netns
from server.app import create_app
from server.cli import migrated_engine
from server.config import load_settings
from server.http.openapi import document
from server.http.pages import WEB_CLIENT
from server.storage.api_keys import ApiKeyStore
from server.storage.store import Store
from tests.fuzz.harness import (
    QUIET_WARNINGS,
    Budget,
    Bystander,
    Credentials,
    StderrRecords,
    Target,
    provision,
    routes_of,
    run,
    static_files,
)

PASSWORD_ENV = "RAPPORT_FUZZ_PASSWORD"
SERVER_ENV = {
    "RAPPORT_CREATE_DEMO_ACCOUNTS": "false",
    "RAPPORT_EMOTION_CUES": "false",
    "RAPPORT_COMPOSE_RECORDINGS": "false",
    # Mutated offers should reach aiortc's parser, not the per-participant offer cap.
    "RAPPORT_OFFERS_PER_MINUTE": "0",
    # A stalled or broken body is cut off after 2 s, not 15: the fuzz sends hundreds of them.
    "RAPPORT_BODY_TIMEOUT_S": "2",
}
ROOT = Path(__file__).resolve().parents[2]
LINE_CAP = 16 * 1024  # of a log line, for reading it


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bystander_main(url: str) -> int:
    """The child: hold a call and print both sides' decoded video frames four times a second until stdin closes."""
    bystander = Bystander(url, os.environ[PASSWORD_ENV])
    await bystander.start()
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wait_stdin() -> None:
        await reader.read()
        closed.set()

    waiter = asyncio.create_task(wait_stdin())
    try:
        while not closed.is_set():
            print(json.dumps(bystander.frames()), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), 0.25)
    finally:
        waiter.cancel()
        await bystander.close()
    return 0


class Child:
    """A child process whose output is read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, on_line: Callable[[str], None], log_file: Path) -> None:
        self.proc = proc
        self.on_line = on_line
        self.log = log_file.open("w")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        # By chunks, not readline(): one overlong line must not stop the reading (a child blocked on a full
        # pipe would stop serving).
        assert self.proc.stdout is not None
        pending = b""
        while chunk := await self.proc.stdout.read(1 << 16):
            self.log.write(chunk.decode(errors="replace"))
            self.log.flush()
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.on_line(line[:LINE_CAP].decode(errors="replace"))
            pending = pending[-LINE_CAP:]
        if pending:
            self.on_line(pending.decode(errors="replace"))

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 5)
        self.log.close()


async def wait_healthy(url: str, server: Child) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if server.proc.returncode is not None:
                raise RuntimeError("the server exited during start-up; see its log")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.3)
    raise RuntimeError("the server did not come up in 60 s")


async def conduct(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="rapport-fuzz-"))
    logs = Path(args.logs) if args.logs else workdir
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **SERVER_ENV, "RAPPORT_DATA_DIR": str(workdir / "data"), "RAPPORT_PORT": str(port)}
    settings = load_settings(env=env)
    async with migrated_engine(settings) as engine:
        credentials: Credentials = await provision(Store(engine), ApiKeyStore(engine))

    errors = StderrRecords()
    server = Child(
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        ),
        errors.feed,
        logs / "server.log",
    )
    bystander: Child | None = None
    try:
        await wait_healthy(url, server)
        progress(f"server up at {url} (log: {logs / 'server.log'}); starting the bystander call")
        latest = [(0, 0)]

        def on_frames(line: str) -> None:
            with contextlib.suppress(ValueError, TypeError):
                rep, customer = json.loads(line)
                latest[0] = (int(rep), int(customer))

        bystander = Child(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.fuzz",
                "--bystander",
                url,
                cwd=ROOT,
                env={**os.environ, PASSWORD_ENV: credentials.password},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            ),
            on_frames,
            logs / "bystander.log",
        )
        deadline = time.monotonic() + 60
        while latest[0][0] < 30 or latest[0][1] < 30:
            if time.monotonic() > deadline or bystander.proc.returncode is not None:
                raise RuntimeError(f"the bystander call did not start; see {logs / 'bystander.log'}")
            await asyncio.sleep(0.2)
        errors.take()  # start-up is not the fuzzer's doing (and is checked by the other tests)

        app = create_app(settings)  # only for its router: nothing starts until it runs
        target = Target(
            url=url,
            routes=routes_of(app, document(settings)),
            doc=document(settings),
            static_files=static_files(WEB_CLIENT),
            credentials=credentials,
            errors=errors.take,
        )
        budget = Budget.split(args.inputs, tuple(float(x) for x in args.share.split(",")))  # type: ignore[arg-type]
        progress(f"fuzzing: {budget.http} HTTP, {budget.ws} WebSocket, {budget.sdp} SDP inputs")
        report = await run(
            target, budget, lambda: latest[0], seed=args.seed, progress=progress, journal=logs / "sdp-offers.jsonl"
        )
    finally:
        if bystander is not None:
            if bystander.proc.stdin is not None:
                bystander.proc.stdin.close()
            await bystander.stop(signal.SIGTERM)
        await server.stop()
        errors.close()
    for record in errors.take():
        report.tally.crash("server log (shutdown)", "server", record, "")
    print(report.text())
    print(
        f"  Frames (rep, customer) at start {report.frames_at['start']}, end {report.frames_at['end']}, "
        f"3 s after {report.frames_at['after']}"
    )
    # Without --logs the logs live in the work dir: kept when there is a crash to look into.
    keep = bool(report.crashes) and not args.logs
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.logs or keep:
        print(f"  Logs: {logs}")
    short = report.tally.total < args.inputs
    if short:
        print(f"  only {report.tally.total} of {args.inputs} inputs were sent")
    return 1 if report.crashes or short else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="hostile inputs in all (default 10000)")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: a fixed, derandomized run)")
    parser.add_argument("--share", default="0.6,0.25,0.15", help="HTTP,WebSocket,SDP shares of the inputs")
    parser.add_argument("--logs", help="keep the server's and bystander's logs in this folder")
    parser.add_argument("--bystander", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    if args.bystander:
        return asyncio.run(bystander_main(args.bystander))
    if not in_private_netns():
        progress(
            "make fuzz needs a private network namespace with 127.0.0.2 on lo; run it as\n"
            '  unshare -rn sh -c \'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"\' '
            ".venv/bin/python -m tests.fuzz"
        )
        return 2
    return asyncio.run(conduct(args))


if __name__ == "__main__":
    sys.exit(main())
