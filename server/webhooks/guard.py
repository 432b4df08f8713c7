"""Where webhooks may go: the SSRF guard, on the URL's literal host and again on each connected address."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Metadata services of cloud providers; the link-local and private ones are refused anyway, these by name.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), which is where it leads."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why webhooks may not go to ``ip`` ("loopback", "cloud metadata" ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.packed)  # without a %zone, which the checks below do not expect
        inner = _embedded_ipv4(ip)
        if inner is not None and (ip.ipv4_mapped is not None or ip in NAT64 or blocked_reason(inner)):
            return blocked_reason(inner)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    for reason, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("reserved", not ip.is_global),  # the other special-purpose ranges: shared (CGNAT), documentation ...
    ):
        if hit:
            return reason
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names without DNS: IPv4, IPv6, and the old forms (127.1, 0x7f000001 ...)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host) and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_blocked_reason(host: str) -> str | None:
    """Why a URL's host is refused before any lookup (a literal internal address, localhost), or None."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    ip = literal_address(host)
    return blocked_reason(ip) if ip is not None else None


class BlockedUrl(ValueError):
    """An endpoint's URL names an internal address literally (or localhost)."""


class BlockedAddress(OSError):
    """A webhook would have gone to an address it may not reach."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: a {reason} address")
        self.reason = reason


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses webhooks may reach; none left is BlockedAddress.

    aiohttp connects to exactly the addresses the resolver returns, so the check holds at connect time.
    """

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        reasons = [_address_reason(r["host"]) for r in results]
        allowed = [r for r, reason in zip(results, reasons, strict=True) if reason is None]
        if not allowed:
            raise BlockedAddress(host, next((r for r in reasons if r), "unknown"))
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def _address_reason(host: str) -> str | None:
    try:
        return blocked_reason(ipaddress.ip_address(host))
    except ValueError:
        return "unreadable"


def guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's socket factory: the last check, on the very address being connected to (literal hosts too)."""
    family, kind, proto, _canonical, address = addr_info
    reason = _address_reason(str(address[0]))
    if reason is not None:
        raise BlockedAddress(str(address[0]), reason)
    return socket.socket(family=family, type=kind, proto=proto)
