"""Strict mode (RAPPORT_STRICT_TESTS=1, which .ci/run sets): a skipped test fails the run.

Each case runs pytest in a subprocess on a small test file that skips the ways the suite does
(pytest.skip in a test or in a fixture, a skipif marker, a whole module at import), with tests/conftest.py loaded
as a plugin: the hooks under test are the ones the real suite runs with.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import STRICT_ENV

ROOT = Path(__file__).resolve().parents[2]

SKIPS = """
import pytest

def test_skips_in_its_body():
    pytest.skip("fake-part is not installed")

@pytest.mark.skipif(True, reason="marker: fake-part is not installed")
def test_skips_by_marker():
    pass

@pytest.mark.webrtc
def test_needs_a_part_the_conftest_checks():
    pass

@pytest.mark.xfail(reason="a known bug, not a missing part", strict=True)
def test_xfails():
    assert False

def test_passes():
    pass

@pytest.fixture
def fake_server():
    # As tests/support/{postgres,redis,haproxy}.py skip when Debian's binary is missing.
    pytest.skip("fixture: fake-server is not installed")

def test_needs_a_server_from_a_fixture(fake_server):
    pass
"""

MODULE_SKIP = """
import pytest

pytest.skip("fake-module-part is not installed", allow_module_level=True)

def test_never_collected():
    pass
"""


def run_pytest(directory: Path, strict: str | None) -> tuple[int, str]:
    ini = "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    webrtc: as in the suite\n"
    (directory / "pytest.ini").write_text(ini)
    (directory / "test_skips.py").write_text(SKIPS)
    (directory / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != STRICT_ENV}
    if strict is not None:
        env[STRICT_ENV] = strict
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    command += ["-c", str(directory / "pytest.ini"), "--rootdir", str(directory), "--continue-on-collection-errors"]
    command += ["-rA", "-q", str(directory)]
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout


def summary(output: str) -> dict[str, int]:
    """The counts on pytest's last line: {"passed": 1, "failed": 2, ...}."""
    last = [line for line in output.splitlines() if line.strip()][-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


def webrtc_available_here() -> bool:
    from tests.support.clients import loopback_webrtc_available

    return loopback_webrtc_available()


def test_without_strict_mode_missing_parts_skip_and_the_run_passes(tmp_path: Path) -> None:
    code, output = run_pytest(tmp_path, strict=None)
    assert code == 0, output
    counts = summary(output)
    skipped = 4 if webrtc_available_here() else 5
    assert counts.get("skipped") == skipped, output
    assert counts.get("passed") == (2 if skipped == 4 else 1), output
    assert counts.get("xfailed") == 1, output
    assert "failed" not in counts and "error" not in counts and "errors" not in counts, output


def test_strict_mode_set_to_0_is_off(tmp_path: Path) -> None:
    code, output = run_pytest(tmp_path, strict="0")
    assert code == 0, output
    assert "skipped" in summary(output), output


def test_strict_mode_turns_every_skip_into_a_failure_that_says_why(tmp_path: Path) -> None:
    code, output = run_pytest(tmp_path, strict="1")
    assert code == 1, output
    counts = summary(output)
    # A skip in the test body fails the test; one at setup (a marker) or collection is reported as an error.
    broken = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    assert broken == (4 if webrtc_available_here() else 5), output
    assert counts.get("xfailed") == 1, output
    assert "skipped" not in counts, output
    # Each names strict mode and the part that was missing.
    assert output.count(f"skipped under {STRICT_ENV}=1") >= broken, output
    for why in (
        "fake-part is not installed",
        "marker: fake-part is not installed",
        "fixture: fake-server is not installed",
        "fake-module-part is not installed",
    ):
        assert why in output, (why, output)
    assert re.search(r"^FAILED .*test_skips_in_its_body", output, re.M), output
    assert re.search(r"^ERROR .*test_skips_by_marker", output, re.M), output
    assert re.search(r"^ERROR .*test_needs_a_server_from_a_fixture", output, re.M), output
    assert re.search(r"^ERROR .*test_module_skip\.py", output, re.M), output
    assert re.search(r"^PASSED .*test_passes", output, re.M), output
