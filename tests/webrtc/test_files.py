"""Files: the data folder is 0700 and everything in it 0600, each created so (not chmod'ed after).

The real `rapport serve` runs from a shell-like umask (022) with HTTPS (its self-signed key), demo
accounts, a media worker process recording a real call, and the composer process; then every path
under the data folder is stat'ed while the server still runs (so SQLite's -wal and -shm are there).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from server.storage.files import private_dir
from server.storage.schema import create_engine
from server.tls import make_self_signed
from tests.support.clients import CUSTOMER, REP, MediaClient, login, start_call, welcomed
from tests.support.serve import ServeProcess


def modes_under(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


async def recorded_call(url: str, rep_password: str, qa_password: str) -> str:
    """A call with media through the running server; returns its session id once the QA file is composed."""
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as rep_http:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as customer_http:
            await login(rep_http, url, "rep1", rep_password)
            rep = await welcomed(rep_http, url)
            call = await start_call(customer_http, url, name="Ada")
            customer = await welcomed(customer_http, url, call["token"])
            await rep.request({"type": "call.accept", "session_id": call["session_id"]})
            customer_media, rep_media = MediaClient(identity=CUSTOMER), MediaClient(identity=REP)
            try:
                await customer_media.negotiate(customer)
                await rep_media.negotiate(rep)
                await rep_media.wait_to_see(CUSTOMER, timeout=20.0)
                await customer_media.wait_to_see(REP, timeout=20.0)
                await asyncio.sleep(1.5)  # a little of the call on disk
                await rep.request({"type": "call.end"})
                await rep.wait_for("call.ended")
            finally:
                await customer_media.close()
                await rep_media.close()
                await customer.close()
                await rep.close()
    session_id = str(call["session_id"])
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as qa_http:
        await login(qa_http, url, "qa1", qa_password)
        for _ in range(1200):  # the composer is a background process at low priority
            async with qa_http.get(f"{url}/api/v1/qa/sessions/{session_id}") as r:
                player = (await r.json())["player"]
            if player is not None and player["state"] in ("complete", "failed"):
                break
            await asyncio.sleep(0.1)
        assert player is not None and player["state"] == "complete", player
    return session_id


@pytest.mark.webrtc
async def test_everything_under_the_data_folder_is_the_owners_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        "RAPPORT_EMOTION_CUES": "false",
        "RAPPORT_RECORDING_POLICY": "always",
        "RAPPORT_COMPOSE_RECORDINGS": "true",
        "RAPPORT_MEDIA_WORKERS": "1",  # recordings written by a worker process, not the server's own
    }
    async with ServeProcess(data, "--demo", env=env, https=True) as server:
        passwords = {
            u: p for u, _r, p in (line.split() for line in (data / "demo-accounts.txt").read_text().splitlines())
        }
        session_id = await recorded_call(server.url, passwords["rep1"], passwords["qa1"])
        modes = modes_under(data)
    expected = {
        ".",
        "rapport.sqlite3",
        "rapport.sqlite3-wal",
        "rapport.sqlite3-shm",
        "secret.key",
        "demo-accounts.txt",
        "tls",
        "tls/key.pem",
        "recordings",
        f"recordings/{session_id}",
        f"recordings/{session_id}/customer-video.mkv",
        f"recordings/{session_id}/rep-audio.mka",
        f"recordings/{session_id}/composed.webm",
    }
    assert expected <= set(modes), sorted(set(modes))
    loose = {name: oct(mode) for name, mode in modes.items() if mode != (0o700 if (data / name).is_dir() else 0o600)}
    assert loose == {}, "everything is the owner's only: folders 0700, files 0600"


async def test_a_data_folder_others_can_read_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    private_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    fresh = tmp_path / "fresh" / "data"
    private_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """A umask that would leave files 0644: what is 0600 below was made so by the code, not the umask."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_the_database_and_its_wal_and_shm_are_created_0600(tmp_path: Path, shell_umask: None) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rapport.sqlite3'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalar_one() == 1
            modes = modes_under(tmp_path)
    finally:
        await engine.dispose()
    assert {k: oct(v) for k, v in modes.items() if k != "."} == {
        "rapport.sqlite3": "0o600",
        "rapport.sqlite3-wal": "0o600",
        "rapport.sqlite3-shm": "0o600",
    }


def test_the_self_signed_key_is_created_0600(tmp_path: Path, shell_umask: None) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    make_self_signed(cert, key, ["localhost"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    # Made again over a planted link: the link is replaced, the file behind it untouched.
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    key.unlink()
    key.symlink_to(victim)
    make_self_signed(cert, key, ["localhost"])
    assert victim.read_text() == "keep me" and not key.is_symlink() and stat.S_IMODE(key.stat().st_mode) == 0o600
