"""How Chromium treats a ``turns:`` relay (TURN over TLS): it checks coturn's certificate like a web page's, and
gathers no relay candidate through a certificate it cannot verify.

Chromium reports that as an ``icecandidateerror`` with code 701 and carries on without the relay; a phone behind
a firewall that lets only TLS out then has no path at all. The tests accept coturn's test certificate with
``--ignore-certificate-errors-spki-list`` (its SPKI hash): one certificate, not a blanket exception, as shown
here by a Chromium that accepts another certificate of the same test CA and still refuses coturn's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CUSTOMER
from tests.support.coturn import Coturn, TestCA
from tests.support.lab_calls import chromium_in
from tests.support.netlab import NetLab

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# Gather with only these ICE servers and only relay candidates; what came out, and the candidate errors.
GATHER_JS = """async (servers) => {
  const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: "relay" });
  pc.createDataChannel("probe");
  const candidates = [], errors = [];
  pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) candidates.push(e.candidate.candidate); };
  pc.onicecandidateerror = (e) => errors.push({ url: e.url, code: e.errorCode, text: e.errorText });
  const complete = new Promise((resolve) => {
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") resolve(); };
  });
  await pc.setLocalDescription(await pc.createOffer());
  await Promise.race([complete, new Promise((resolve) => setTimeout(resolve, 15000))]);
  const state = pc.iceGatheringState;
  pc.close();
  return { state, candidates, errors };
}"""


async def gather(lab: NetLab, folder: Path, trusted: list[Path], servers: list[dict[str, Any]]) -> dict[str, Any]:
    async with chromium_in("phone", lab, folder, CUSTOMER, trusted) as (_pw, browser):
        page = await browser.new_page()
        gathered: dict[str, Any] = await page.evaluate(GATHER_JS, servers)
        return gathered


async def test_chromium_refuses_a_turn_tls_certificate_it_cannot_verify(
    lab: NetLab, coturn: Coturn, test_ca: TestCA, tmp_path: Path
) -> None:
    username, password = coturn.credential("chromium")
    servers = [{"urls": [coturn.url("tls")], "username": username, "credential": password}]
    # Another certificate of the same CA (the server's, say): accepting it says nothing about coturn's.
    other_cert, _key = test_ca.issue(tmp_path, "other", ["203.0.113.10"])

    refused = await gather(lab, tmp_path / "untrusting", [other_cert], servers)
    assert refused["state"] == "complete", refused
    assert refused["candidates"] == [], refused
    assert [e["code"] for e in refused["errors"]] == [701], refused
    assert refused["errors"][0]["url"] == coturn.url("tls"), refused

    accepted = await gather(lab, tmp_path / "trusting", [coturn.cert_file], servers)
    assert accepted["errors"] == [], accepted
    (relay,) = accepted["candidates"]
    assert f" {lab.turn.public} " in relay and " typ relay " in relay, accepted
