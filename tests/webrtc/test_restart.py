"""Sessions and chat survive the server process: kill -9, start again, everything is there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.clients import SignalingClient, login, start_call, welcomed
from tests.support.serve import ServeProcess, add_user

PASSWORD = "restart-test-password"
# The server as it ships (cues, media workers), but no RAPPORT_* from the environment running the tests.
DEFAULTS: dict[str, str] = {}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServeProcess]:
    data = tmp_path / "data"
    add_user(data, "rep1", "rep", PASSWORD)
    add_user(data, "sup1", "supervisor", PASSWORD)
    proc = ServeProcess(data, env=DEFAULTS)
    yield proc
    proc.stop()


async def test_kill_9_then_restart_keeps_sessions_and_chat_and_interrupts_live_calls(server: ServeProcess) -> None:
    await server.start()
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP address
    async with aiohttp.ClientSession() as customer_http, aiohttp.ClientSession(cookie_jar=jar) as rep_http:
        await login(rep_http, server.url, "rep1", PASSWORD)
        rep = await welcomed(rep_http, server.url)
        await rep.request({"type": "rep.status", "status": "available"})

        active = await start_call(customer_http, server.url, name="Ada", reason="order")
        waiting = await start_call(customer_http, server.url, name="Bo", reason="complaint")
        customer = await welcomed(customer_http, server.url, active["token"])
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
    add_user(data, "rep1", "rep", PASSWORD)
    # The process that writes the files is the one killed here: media in the front door itself.
    # (A killed media worker is tests/webrtc/test_media_workers.py's case.)
    env = {**DEFAULTS, "RAPPORT_RECORDING_POLICY": "always", "RAPPORT_MEDIA_WORKERS": "0"}
    async with ServeProcess(data, env=env) as server:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession() as customer_http, aiohttp.ClientSession(cookie_jar=jar) as rep_http:
            await login(rep_http, server.url, "rep1", PASSWORD)
            rep = await welcomed(rep_http, server.url)
            await rep.request({"type": "rep.status", "status": "available"})
            call = await start_call(customer_http, server.url)
            customer = await welcomed(customer_http, server.url, call["token"])
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
