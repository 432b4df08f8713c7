"""Real calls through coturn: a customer whose phone cannot reach the server directly, and one behind a hotel
firewall that lets only TCP out, talk to a rep on an office network; the server runs behind a cloud's 1:1 NAT.

Each side's Chromium shows its own colour and plays its own tone, so each page must show and play the other's
(checked per side). The customer page's ``getStats()`` says which path carried the call: its selected candidate
pair's local candidate must be a relay candidate, over the transport the firewall left open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import CUSTOMER, REP
from tests.support.coturn import TURN_PORT, TURNS_PORT, Coturn, TestCA
from tests.support.lab_calls import (
    RELAY_ONLY_JS,
    assert_relayed_both_ways,
    call_through_the_lab,
    chromium_in,
    rapport_in_lab,
    selected_pair,
)
from tests.support.netlab import NetLab

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]


async def test_a_relay_only_customer_talks_to_the_rep_through_coturn(
    lab: NetLab, coturn: Coturn, test_ca: TestCA, tmp_path: Path
) -> None:
    # No direct UDP between the phone and the server, either way: only the relay can carry the media.
    await lab.block(lab.phone, lab.server, proto="udp")
    async with (
        rapport_in_lab(lab, tmp_path / "rapport", test_ca, coturn) as rapport,
        chromium_in("phone", lab, tmp_path / "phone", CUSTOMER, [rapport.cert_file]) as customer_side,
        chromium_in("office", lab, tmp_path / "office", REP, [rapport.cert_file]) as rep_side,
    ):
        _rep, customer = await call_through_the_lab(rapport, customer_side, rep_side, customer_script=RELAY_ONLY_JS)

        stats = await selected_pair(customer)
        assert stats["configured"] == "relay", stats
        assert stats["locals"] and all(c["type"] == "relay" for c in stats["locals"]), stats
        pair = stats["pair"]
        assert pair is not None and pair["state"] == "succeeded", stats
        assert pair["local"]["type"] == "relay", stats
        assert pair["local"]["address"] == lab.turn.public, stats
        assert pair["local"]["relayProtocol"] == "udp", stats
        assert_relayed_both_ways(stats)


@pytest.mark.parametrize(
    ("port", "relay_protocol"), [(TURN_PORT, "tcp"), (TURNS_PORT, "tls")], ids=["turn-tcp", "turns-tls"]
)
async def test_behind_a_hotel_firewall_turn_over_tcp_carries_the_call(
    lab: NetLab, coturn: Coturn, test_ca: TestCA, tmp_path: Path, port: int, relay_protocol: str
) -> None:
    async with rapport_in_lab(lab, tmp_path / "rapport", test_ca, coturn) as rapport:
        # The phone may open TCP to the server's HTTPS port (the page and its WebSocket) and to one TURN port;
        # no UDP leaves it at all, not even to coturn.
        await lab.only_tcp(lab.phone, [(lab.server, rapport.process.port), (lab.turn, port)])
        trusted = [rapport.cert_file, coturn.cert_file]
        async with (
            chromium_in("phone", lab, tmp_path / "phone", CUSTOMER, trusted) as customer_side,
            chromium_in("office", lab, tmp_path / "office", REP, trusted) as rep_side,
        ):
            _rep, customer = await call_through_the_lab(rapport, customer_side, rep_side)

            stats = await selected_pair(customer)
            pair = stats["pair"]
            assert pair is not None and pair["state"] == "succeeded", stats
            assert pair["local"]["type"] == "relay", stats
            assert pair["local"]["relayProtocol"] == relay_protocol, stats
            assert_relayed_both_ways(stats)
