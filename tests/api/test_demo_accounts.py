"""Demo accounts only when asked (`rapport serve --demo`, as `make run` does), printed once, kept 0600."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from server.config import Settings
from tests.support.serve import ROOT, ServeProcess
from tests.support.server import start_rapport


def users_in(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "rapport.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT username FROM users ORDER BY username")]


def demo_lines(data_dir: Path) -> list[tuple[str, str, str]]:
    lines = (data_dir / "demo-accounts.txt").read_text().splitlines()
    return [(u, r, p) for u, r, p in (line.split() for line in lines)]


async def test_a_bare_serve_creates_no_accounts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with ServeProcess(data) as server:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": "x" * 12}
            ) as r:
                assert r.status == 401
    assert users_in(data) == []
    assert not (data / "demo-accounts.txt").exists()
    assert "no staff accounts yet" in server.log


async def test_demo_accounts_are_made_once_printed_once_and_kept_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with ServeProcess(data, "--demo") as first:
        lines = demo_lines(data)
        login = next((u, p) for u, r, p in lines if u == "rep1")
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{first.url}/api/v1/auth/login", json={"username": login[0], "password": login[1]}
            ) as r:
                assert r.status == 200
    assert [(u, r) for u, r, _p in lines] == [
        ("rep1", "rep"),
        ("rep2", "rep"),
        ("qa1", "qa"),
        ("super1", "supervisor"),
        ("admin", "admin"),
        ("demo-key", "api-key"),
    ]
    assert users_in(data) == ["admin", "qa1", "rep1", "rep2", "super1"]
    assert stat.S_IMODE((data / "demo-accounts.txt").stat().st_mode) == 0o600
    secrets_ = [p for _u, _r, p in lines]
    assert all(p in first.log for p in secrets_), "the first start prints them"

    async with ServeProcess(data, "--demo") as second:
        pass
    assert not [p for p in secrets_ if p in second.log], "a later start never logs a password"
    assert f"demo accounts exist; their passwords are in {data / 'demo-accounts.txt'}" in second.log
    assert demo_lines(data) == lines and users_in(data) == ["admin", "qa1", "rep1", "rep2", "super1"]


def test_make_run_asks_for_demo_accounts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "rapport serve --demo" in run_recipe


async def test_a_planted_link_at_the_demo_file_is_not_followed(settings: Settings, tmp_path: Path) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (data / "demo-accounts.txt").symlink_to(victim)
    rapport = await start_rapport(replace(settings, create_demo_accounts=True))
    try:
        path = data / "demo-accounts.txt"
        assert victim.read_text() == "keep me\n", "the file behind the link is untouched"
        assert not path.is_symlink() and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert len(demo_lines(data)) == 6
    finally:
        await rapport.stop()


@pytest.mark.parametrize("flags", [(), ("--demo",)])
def test_the_serve_flag_sets_the_setting(flags: tuple[str, ...]) -> None:
    from server.cli import _serve_overrides, build_parser
    from server.config import load_settings

    args = build_parser().parse_args(["serve", *flags])
    assert load_settings(_serve_overrides(args), env={}).create_demo_accounts is bool(flags)
