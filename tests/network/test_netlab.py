"""The test network itself (tests/support/netlab.py): its NATs, its firewall rules and their removal, and that it
leaves nothing behind. The relay tests lean on all of it: a lab that let UDP through would prove nothing."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest

from tests.support.netlab import (
    IP_FORWARD,
    PHONE_PUBLIC,
    PROBE_PY,
    SERVER_PUBLIC,
    TABLE,
    TURN_PUBLIC,
    NetLab,
    Proto,
)

pytestmark = pytest.mark.webrtc  # a private network namespace (make test's unshare -rn)

PORT, OTHER_PORT = 7000, 7001
PROTOCOLS: tuple[Proto, ...] = ("udp", "tcp")


def link_names() -> list[str]:
    return [name for _i, name in socket.if_nameindex()]


async def probe_from_router(proto: str, address: str, port: int) -> str | None:
    """The test process's own view: it sits on the router."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", PROBE_PY, proto, address, str(port), "0.5"], capture_output=True
    )
    answer = done.stdout.decode().strip()
    return answer.removeprefix("probe from ") if answer else None


async def test_the_phone_and_the_server_meet_only_through_their_nats(lab: NetLab) -> None:
    for host in lab.hosts.values():
        host.echo(PORT)
    phone, office, server = lab.phone, lab.office, lab.server

    # In through the server's 1:1 NAT, out through the phone's carrier NAT.
    for proto in PROTOCOLS:
        seen = await phone.probe(proto, SERVER_PUBLIC, PORT)
        assert seen is not None and seen.startswith(f"{PHONE_PUBLIC}:"), (proto, seen)
    seen = await office.probe("udp", SERVER_PUBLIC, PORT)
    assert seen is not None and seen.startswith(f"{office.address}:"), seen
    # The server's own flows leave as its public address.
    seen = await server.probe("udp", office.address, PORT)
    assert seen is not None and seen.startswith(f"{SERVER_PUBLIC}:"), seen
    seen = await server.probe("udp", TURN_PUBLIC, PORT)
    assert seen is not None and seen.startswith(f"{SERVER_PUBLIC}:"), seen
    # The test process reaches the public address too (its own output goes through the same DNAT).
    assert await probe_from_router("udp", SERVER_PUBLIC, PORT) is not None

    # No route to a private address behind a NAT, and nobody opens a flow towards the phone.
    for proto in PROTOCOLS:
        assert await phone.probe(proto, server.address, PORT) is None, proto
        assert await office.probe(proto, server.address, PORT) is None, proto
    for source in (office, server, lab.turn):
        assert await source.probe("udp", phone.address, PORT) is None, source.name
        assert await source.probe("udp", PHONE_PUBLIC, PORT) is None, source.name


async def test_a_rule_cuts_a_path_and_removing_it_restores_the_path(lab: NetLab) -> None:
    for host in (lab.server, lab.turn):
        host.echo(PORT)
        host.echo(OTHER_PORT)
    phone, office = lab.phone, lab.office
    assert await phone.probe("udp", SERVER_PUBLIC, PORT) is not None

    no_udp = await lab.block(phone, lab.server, proto="udp")
    assert await phone.probe("udp", SERVER_PUBLIC, PORT) is None
    assert await phone.probe("tcp", SERVER_PUBLIC, PORT) is not None
    assert await phone.probe("udp", TURN_PUBLIC, PORT) is not None
    assert await office.probe("udp", SERVER_PUBLIC, PORT) is not None
    await no_udp.remove()
    assert await phone.probe("udp", SERVER_PUBLIC, PORT) is not None

    cut = await lab.block(phone, lab.server)
    assert await phone.probe("tcp", SERVER_PUBLIC, PORT) is None
    assert await phone.probe("udp", SERVER_PUBLIC, PORT) is None
    await cut.remove()
    await cut.remove()  # twice is harmless
    assert await phone.probe("tcp", SERVER_PUBLIC, PORT) is not None

    one_port = await lab.block(phone, lab.turn, proto="udp", port=PORT)
    assert await phone.probe("udp", TURN_PUBLIC, PORT) is None
    assert await phone.probe("udp", TURN_PUBLIC, OTHER_PORT) is not None
    assert await phone.probe("tcp", TURN_PUBLIC, PORT) is not None
    await one_port.remove()


async def test_a_hotel_firewall_lets_out_only_tcp_to_the_named_ports(lab: NetLab) -> None:
    for host in (lab.server, lab.turn):
        host.echo(PORT)
        host.echo(OTHER_PORT)
    phone = lab.phone
    await lab.only_tcp(phone, [(lab.turn, PORT), (lab.server, OTHER_PORT)])

    assert await phone.probe("tcp", TURN_PUBLIC, PORT) is not None
    assert await phone.probe("tcp", SERVER_PUBLIC, OTHER_PORT) is not None
    assert await phone.probe("udp", TURN_PUBLIC, PORT) is None
    assert await phone.probe("udp", SERVER_PUBLIC, OTHER_PORT) is None
    assert await phone.probe("tcp", TURN_PUBLIC, OTHER_PORT) is None
    assert await phone.probe("tcp", SERVER_PUBLIC, PORT) is None
    # Only the phone is in the hotel.
    assert await lab.office.probe("udp", TURN_PUBLIC, PORT) is not None


async def test_the_lab_leaves_nothing_behind_even_when_the_test_fails() -> None:
    forward_before = await asyncio.to_thread(IP_FORWARD.read_text)
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="the test failed"):
        async with NetLab() as lab:
            lab.server.echo(PORT)
            pids = [host.pid for host in lab.hosts.values()]
            pids += [p.pid for host in lab.hosts.values() for p in host._processes]
            await lab.block(lab.phone, lab.server, proto="udp")
            assert await asyncio.to_thread(IP_FORWARD.read_text) == "1\n"
            raise RuntimeError("the test failed")

    assert len(pids) == 4 + 4 + 1
    assert link_names() == ["lo"]
    tables = await asyncio.to_thread(subprocess.run, ["nft", "list", "tables"], capture_output=True, text=True)
    assert TABLE not in tables.stdout
    assert await asyncio.to_thread(IP_FORWARD.read_text) == forward_before
    still_there = [pid for pid in pids if await asyncio.to_thread(os.path.exists, f"/proc/{pid}")]
    assert not still_there, f"processes {still_there} are still there"


async def test_the_lab_refuses_a_namespace_that_has_interfaces_it_did_not_make() -> None:
    # Only ever in a namespace of the test's own: checked before anything is added to it.
    assert link_names() == ["lo"], "not a private network namespace: refusing to add an interface"
    subprocess.run(["ip", "link", "add", "not-ours", "type", "veth", "peer", "name", "not-ours-peer"], check=True)
    try:
        with pytest.raises(RuntimeError, match="private network namespace"):
            async with NetLab():
                pass
        assert "not-ours" in link_names()  # untouched
        tables = await asyncio.to_thread(subprocess.run, ["nft", "list", "tables"], capture_output=True, text=True)
        assert TABLE not in tables.stdout
    finally:
        subprocess.run(["ip", "link", "del", "not-ours"], check=True)
