"""The real-network tests' fixtures: the lab (tests/support/netlab.py), the test CA and coturn in its "turn" host
(tests/support/coturn.py); ``rapport serve`` and Chromium in the lab's hosts are tests/support/lab_calls.py.

One test CA signs the server's HTTPS certificate and coturn's TLS one. Chromium is told to accept exactly those
two leaf certificates (``--ignore-certificate-errors-spki-list`` with their SPKI hashes; Chromium reads that
flag only with a user data dir, which Playwright always gives it): it refuses a ``turns:`` server whose
certificate it cannot verify (test_chromium_turn.py), and the machine has no ``certutil`` to add the CA to an
NSS database. The server process trusts the CA through ``SSL_CERT_FILE`` (Python's default SSL context reads
it), should its own TURN client ever speak TLS to coturn; the test's own clients use ``TestCA.ssl_context()``.

Each fixture prints the tail of its log on the way out: pytest shows it when the test failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.coturn import Coturn, TestCA
from tests.support.netlab import NetLab


@pytest.fixture
async def lab() -> AsyncIterator[NetLab]:
    async with NetLab() as built:
        yield built


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA.make(tmp_path / "ca")


@pytest.fixture
async def coturn(lab: NetLab, test_ca: TestCA, tmp_path: Path) -> AsyncIterator[Coturn]:
    async with Coturn(lab.turn, tmp_path / "coturn", ca=test_ca) as turn:
        try:
            yield turn
        finally:
            print("---- coturn log (tail)\n" + turn.log[-6000:])
