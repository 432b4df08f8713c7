"""Sessions and chat survive the server process: kill -9, start again, everything is there."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.clients import SignalingClient, login, start_call

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "restart-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir.parent / "server.log", "ab"),
            env={**os.environ, "RAPPORT_CREATE_DEMO_ACCOUNTS": "false"},
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # 30 s: a loaded CI box starts media workers and the emotion worker too
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    data = tmp_path / "data"
    for name, role in (("rep1", "rep"), ("sup1", "supervisor")):
        subprocess.run(
            [sys.executable, "-m", "server.cli", "users", "add", name, "--role", role, "--data-dir", str(data)],
            input=PASSWORD.encode() + b"\n",
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    proc = ServerProcess(data, free_port())
    yield proc
    proc.stop()


async def test_kill_9_then_restart_keeps_sessions_and_chat_and_interrupts_live_calls(server: ServerProcess) -> None:
    await server.start()
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP address
    async with aiohttp.ClientSession() as customer_http, aiohttp.ClientSession(cookie_jar=jar) as rep_http:
        await login(rep_http, server.url, "rep1", PASSWORD)
        rep = SignalingClient(rep_http, server.url)
        await rep.connect()
        await rep.send({"type": "hello"})
        await rep.wait_for("welcome")
        await rep.request({"type": "rep.status", "status": "available"})

        active = await start_call(customer_http, server.url, name="Ada", reason="order")
        waiting = await start_call(customer_http, server.url, name="Bo", reason="complaint")
        customer = SignalingClient(customer_http, server.url)
        await customer.connect()
        await customer.send({"type": "hello", "token": active["token"]})
        await customer.wait_for("welcome")
        await rep.request({"type": "call.accept", "session_id": active["session_id"]})
        await customer.request({"type": "chat.send", "text": "Before the crash"})
        await rep.request({"type": "chat.send", "text": "I hear you"})

        server.kill()
        await server.start()

        await login(rep_http, server.url, "rep1", PASSWORD)
        async with rep_http.get(f"{server.url}/api/v1/sessions/{active['session_id']}") as r:
            assert r.status == 200
            body = await r.json()
        assert body["state"] == "interrupted"
        assert body["ended_by"] == "system" and body["end_reason"] == "server_restart"
        assert [m["text"] for m in body["chat"]] == ["Before the crash", "I hear you"]
        assert [e["kind"] for e in body["events"]] == ["created", "answered", "interrupted"]

        # A rep reads only their own sessions; the supervisor reads the one nobody has taken yet.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as supervisor_http:
            await login(supervisor_http, server.url, "sup1", PASSWORD)
            async with supervisor_http.get(f"{server.url}/api/v1/sessions/{waiting['session_id']}") as r:
                assert (await r.json())["state"] == "waiting"

        # The waiting customer comes back to the same place in the queue.
        back = SignalingClient(customer_http, server.url)
        await back.connect()
        await back.send({"type": "hello", "token": waiting["token"]})
        welcome = await back.wait_for("welcome")
        assert welcome["session"]["session_id"] == waiting["session_id"]
        assert (await back.wait_for("queue.position"))["position"] == 1
        await back.close()

        # The interrupted call's token no longer opens anything.
        late = SignalingClient(customer_http, server.url)
        await late.connect()
        await late.send({"type": "hello", "token": active["token"]})
        assert (await late.wait_for("error"))["code"] == "token_invalid"
        await late.close()


@pytest.mark.webrtc
async def test_kill_9_mid_recording_leaves_playable_files_that_the_next_start_reconciles(tmp_path: Path) -> None:
    import time

    import av

    from tests.support.clients import MediaClient

    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "server.cli", "users", "add", "rep1", "--role", "rep", "--data-dir", str(data)],
        input=PASSWORD.encode() + b"\n",
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    os.environ["RAPPORT_RECORDING_POLICY"] = "always"
    # The process that writes the files is the one killed here: media in the front door itself.
    # (A killed media worker is tests/webrtc/test_media_workers.py's case.)
    os.environ["RAPPORT_MEDIA_WORKERS"] = "0"
    server = ServerProcess(data, free_port())
    try:
        await server.start()
    finally:
        del os.environ["RAPPORT_RECORDING_POLICY"]
        del os.environ["RAPPORT_MEDIA_WORKERS"]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession() as customer_http, aiohttp.ClientSession(cookie_jar=jar) as rep_http:
        await login(rep_http, server.url, "rep1", PASSWORD)
        rep = SignalingClient(rep_http, server.url)
        await rep.connect()
        await rep.send({"type": "hello"})
        await rep.wait_for("welcome")
        await rep.request({"type": "rep.status", "status": "available"})
        call = await start_call(customer_http, server.url)
        customer = SignalingClient(customer_http, server.url)
        await customer.connect()
        await customer.send({"type": "hello", "token": call["token"]})
        await customer.wait_for("welcome")
        accepted = await rep.request({"type": "call.accept", "session_id": call["session_id"]})
        assert accepted["type"] == "ack"
        cm, rm = MediaClient(), MediaClient()
        try:
            await cm.negotiate(customer)
            await rm.negotiate(rep)
            await rm.wait_frames("video", 30)
            started = time.monotonic()
            await asyncio.sleep(6.0)
            recorded_for = time.monotonic() - started
            server.kill()
        finally:
            await cm.close()
            await rm.close()
            await rep.close()
            await customer.close()

        folder = data / "recordings" / call["session_id"]
        parts = sorted(folder.glob("*.part"))
        assert len(parts) == 4, list(folder.iterdir())
        for part in parts:
            with av.open(str(part), format="matroska") as container:
                stream = container.streams[0]
                last = 0.0
                # The block being written at the kill is cut short: a player stops there, and so do we.
                with contextlib.suppress(av.error.InvalidDataError):
                    for frame in container.decode(stream):
                        if frame.time is not None:
                            last = max(last, frame.time)
            assert last >= recorded_for - 3.0, (part.name, last, recorded_for)

        await server.start()
        await login(rep_http, server.url, "rep1", PASSWORD)
        assert not list(folder.glob("*.part"))
        assert len(list(folder.glob("*.mk?"))) == 4
    server.stop()
