"""How the server's peers gather ICE candidates: on which addresses, inside which UDP ports, announcing which
public address.

aioice (0.13) binds every host candidate's socket with ``local_addr=(address, 0)`` inside
``Connection.get_component_candidates`` and offers no hook for it, so ``install`` replaces that method once per
process: host sockets are bound here, inside ``rtc_ports`` when set, and aioice's own code still gathers the
relayed candidate (and this module the server-reflexive one) for them. Sockets to a TURN server are outbound, like
any client's, and not in the range (docs/networking.md).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from dataclasses import dataclass

import aioice.ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, server_reflexive_candidate

from ..config import Settings

log = logging.getLogger(__name__)

# aioice's own receive buffer for host sockets (turn.UDP_SOCKET_BUFFER_SIZE).
RECEIVE_BUFFER = aioice.turn.UDP_SOCKET_BUFFER_SIZE
WILDCARDS = ("", "0.0.0.0", "::")


class PortsExhausted(OSError):
    """Every port of ``rtc_ports`` is taken on an address: no more peers until a call ends."""


@dataclass(frozen=True)
class IcePolicy:
    """``address``: host candidates on this address only (a media node's); None: every interface (aioice's way).
    ``ports``: the inclusive UDP port range host sockets bind. ``public_ip``: announced beside each host candidate.
    """

    address: str | None = None
    ports: tuple[int, int] | None = None
    public_ip: str | None = None

    @classmethod
    def of(cls, settings: Settings, address: str | None = None) -> IcePolicy:
        return cls(address=address, ports=settings.rtc_ports, public_ip=settings.public_ip)

    def args(self) -> list[str]:
        """The policy as ``rapport`` media worker flags."""
        out: list[str] = []
        if self.ports is not None:
            out += ["--rtc-ports", f"{self.ports[0]}-{self.ports[1]}"]
        if self.public_ip is not None:
            out += ["--public-ip", self.public_ip]
        return out


# aioice's own behaviour: every interface, any port, nothing announced.
ANY_PORT = IcePolicy()
_policy = ANY_PORT
# A call holds one host socket per participant per address (BUNDLE and rtcp-mux: one ICE component each).
PORTS_PER_CALL = 2


def ports_capacity(ports: tuple[int, int] | None) -> int:
    """Calls a port range has room for (ports are per address, so more addresses do not need more)."""
    if ports is None:
        return 1 << 30
    return (ports[1] - ports[0] + 1) // PORTS_PER_CALL


_aioice_gather = Connection.get_component_candidates
_aioice_host_addresses = aioice.ice.get_host_addresses


def install(policy: IcePolicy) -> IcePolicy:
    """Make every aioice connection in this process gather by ``policy``; returns the one it replaces."""
    global _policy
    previous, _policy = _policy, policy
    if policy.address is None or policy.address in WILDCARDS:
        aioice.ice.get_host_addresses = _aioice_host_addresses
    else:
        address = policy.address

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [address] if (":" in address and use_ipv6) or (":" not in address and use_ipv4) else []

        aioice.ice.get_host_addresses = host_addresses
    Connection.get_component_candidates = _gather  # type: ignore[method-assign]
    return previous


def current() -> IcePolicy:
    return _policy


async def _gather(self: Connection, component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
    policy = _policy
    if policy.ports is None and policy.public_ip is None:
        return await _aioice_gather(self, component, addresses, timeout)
    candidates: list[Candidate] = []
    protocols: list[StunProtocol] = []
    for address in addresses:
        protocol = await _bind(self, component, address, policy.ports)
        if protocol is None:
            continue
        protocols.append(protocol)
        candidates.append(protocol.local_candidate)
        announced = _announced(protocol.local_candidate, policy.public_ip)
        if announced is not None:
            candidates.append(announced)
    self._protocols += protocols
    # aioice's own code with no host addresses gathers just the relayed candidate.
    relayed = _aioice_gather(self, component, [], timeout)
    reflexive = [
        server_reflexive_candidate(p, self.stun_server)
        for p in protocols
        if self.stun_server and ipaddress.ip_address(p.local_candidate.host).version == 4
    ]
    gathered = await asyncio.gather(relayed, *(asyncio.wait_for(r, timeout) for r in reflexive), return_exceptions=True)
    for result in gathered:
        if isinstance(result, BaseException):
            log.info("ICE candidate not gathered: %r", result)
        elif isinstance(result, tuple):
            candidates.append(result[0])
        elif isinstance(result, list):
            candidates += result
    return candidates


async def _bind(
    connection: Connection, component: int, address: str, ports: tuple[int, int] | None
) -> StunProtocol | None:
    """A host socket on ``address``, inside ``ports``; None if the address cannot be bound at all."""
    loop = asyncio.get_running_loop()
    if ports is None:
        choices = [0]
    else:
        # From a random start, so concurrent peers (and worker processes) do not all race for the lowest port.
        span = ports[1] - ports[0] + 1
        start = random.randrange(span)
        choices = [ports[0] + (start + i) % span for i in range(span)]
    for port in choices:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), local_addr=(address, port)
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and port != 0:
                continue
            log.info("could not bind %s:%d for ICE: %s", address, port, exc)
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        host, bound_port = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=bound_port,
            type="host",
        )
        return protocol
    assert ports is not None
    raise PortsExhausted(errno.EADDRINUSE, f"every UDP port in {ports[0]}-{ports[1]} is in use on {address}")


def _announced(host: Candidate, public_ip: str | None) -> Candidate | None:
    """The host candidate as peers outside a 1:1 NAT reach it: the same socket on ``public_ip``."""
    if public_ip is None or public_ip == host.host:
        return None
    if ipaddress.ip_address(public_ip).version != ipaddress.ip_address(host.host).version:
        return None
    return Candidate(
        foundation=candidate_foundation("host", "udp", public_ip),
        component=host.component,
        transport="udp",
        priority=host.priority - 1,
        host=public_ip,
        port=host.port,
        type="host",
    )
