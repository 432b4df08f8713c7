"""The root of the test tree: the markers' parts (skip, or fail under strict mode) for every folder.

Layers: unit/ (no server socket), api/ (a real server over HTTP and WebSocket, no media), webrtc/ (real aiortc
peers), browser/ (real Chromium), emotion/ and fuzz/. Shared code lives in support/: the server fixtures
(``settings``, ``rapport``, ``served``) in support/server.py and the Chromium fixtures in support/browser.py,
both registered here so every folder has them.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from emotion import fer_available

pytest_plugins = (
    "tests.support.server",
    "tests.support.browser",
    "tests.support.postgres",
    "tests.support.redis",
    "tests.support.haproxy",
    "tests.support.cluster",
)

# CI sets this (.ci/run): then a test skipped for a missing part (Chromium, fer, the netns) fails the run.
STRICT_ENV = "RAPPORT_STRICT_TESTS"


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing_parts() -> dict[str, str]:
    """Marker -> why its tests cannot run here (empty when everything is installed)."""
    # Here, not at the top: pytest_plugins must import these first.
    from tests.support.browser import CHROMIUM
    from tests.support.clients import loopback_webrtc_available

    missing = {}
    if not loopback_webrtc_available():
        why = "needs 127.0.0.2 on lo: run through `make test` (private netns)"
        missing["webrtc"] = missing["browser"] = why
    if not os.path.exists(CHROMIUM):
        missing.setdefault("browser", f"{CHROMIUM} is not installed (make test installs Debian's chromium)")
    fer_ok, fer_why = fer_available()
    if not fer_ok:
        missing["fer"] = fer_why
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_parts()
    for item in items:
        for marker, why in missing.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))
                break


def _strict_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Turn a skip into a failure that says why it was skipped."""
    longrepr = report.longrepr
    why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under {STRICT_ENV}=1, which makes every skip a failure: {why}\n"
        "Install the missing part (.ci/system-deps, uv sync --all-extras) or deselect the test (-m/-k)."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    # xfail is reported as a skip too; it is a different promise, so it stays as it is.
    if strict_mode() and report.skipped and not hasattr(report, "wasxfail"):
        _strict_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    # A module-level pytest.skip / importorskip skips a whole file at collection.
    if strict_mode() and report.skipped:
        _strict_failure(report)
    return report
