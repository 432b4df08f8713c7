"""The server's services start in dependency order and stop in reverse, also when one fails part-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import WSCloseCode, web

from server.app import create_app
from server.config import Settings
from server.media.pool import MediaWorkerPool
from server.storage.schema import create_engine
from server.storage.store import Store
from tests.support.server import start_rapport, with_settings


def _running(name: str) -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


async def test_a_service_failing_at_startup_leaves_the_earlier_ones_closed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_processes_left(self: MediaWorkerPool) -> None:
        # What a full process table looks like to create_subprocess_exec.
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(MediaWorkerPool, "start", no_processes_left)
    runner = web.AppRunner(create_app(with_settings(settings, media_workers=1)))
    with pytest.raises(BlockingIOError):
        await runner.setup()
    # The services before the media pool did start: the database and the webhook dispatcher's sender.
    wal = Path(str(settings.data_dir / "rapport.sqlite3") + "-wal")
    assert await asyncio.to_thread(wal.exists)
    assert len(_running("webhooks")) == 1

    await runner.cleanup()  # what `rapport serve` (web.run_app) does after a failed start

    assert _running("webhooks") == []
    # The last connection closing checkpoints and removes the WAL file: the engine was disposed.
    assert not await asyncio.to_thread(wal.exists)


async def test_shutdown_tells_sockets_going_away_then_closes_the_calls(settings: Settings) -> None:
    rapport = await start_rapport(settings)
    await rapport.add_user("rep1")
    rep = await rapport.rep("rep1")
    customer, call = await rapport.customer(reason="order")
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.wait_for("call.accepted")

    await rapport.server.close()
    await asyncio.wait_for(rapport.aclose(), 10)
    await rapport.http.close()

    # Both ends heard "going away" from the server, not a dropped connection.
    assert customer.closed_code == WSCloseCode.GOING_AWAY
    assert rep.closed_code == WSCloseCode.GOING_AWAY
    # The call was closed by the shutdown as interrupted, not treated as someone leaving (reconnect grace).
    engine = create_engine(settings.db_url)
    try:
        record = await Store(engine).get_session(call["session_id"])
    finally:
        await engine.dispose()
    assert record is not None
    assert (record.state, record.ended_by, record.end_reason) == ("interrupted", "system", "server_shutdown")
