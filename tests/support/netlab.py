"""A small routed network for the real-network tests, built inside the test's own network namespace.

``async with NetLab() as lab:`` makes four hosts, each a child network namespace (an ``unshare -n sleep
infinity`` process) joined to the test's own namespace by a veth pair. The test's namespace is the router
(``ip_forward=1``) and its nftables table ``ip rapport_lab`` is the firewall and the NAT between the hosts:

=========  ====================  ==================================================================
host       its own address       reached by the others as
=========  ====================  ==================================================================
phone      10.13.1.2             198.51.100.7: a carrier NAT (masquerade) in front of it
office     10.13.2.2             10.13.2.2 (the rep's browser on a routed office network)
server     10.13.3.2             203.0.113.10: a cloud VM's 1:1 NAT (DNAT in, SNAT out)
turn       203.0.113.5           203.0.113.5, on its own interface (coturn listens there)
=========  ====================  ==================================================================

A host behind NAT cannot be reached on its private address from another host: the router drops any new
forwarded flow to it, so the phone has no route to the server's 10.13.3.2 (as from the internet). The test
process itself sits on the router, so it reaches every address, the public ones through the same NAT.

Firewall rules come in groups (``Rule``), each an nft chain of its own that the forward hook jumps to; a group
only ever drops (what it lets pass it ``return``s, so another group may still drop it), and ``Rule.remove()``
takes it away again, e.g. to restore a path cut mid-call. ``NetLab.block`` drops traffic between hosts (all of
it, or one protocol, or one port); ``NetLab.only_tcp`` is a hotel firewall: the host may open TCP connections
to the given hosts' ports and nothing else goes out or comes in.

``Host.cmd(argv)`` is argv run inside the host (``nsenter -t PID -n --``), ``Host.popen`` starts a process
there that the lab stops on the way out, and ``Host.wrapper(binary, folder)`` writes a script that runs
``binary`` there, for Playwright's ``executable_path``: Playwright drives Chromium over a pipe, so its control
never crosses the network namespaces. ``Host.echo(port)`` and ``Host.probe(proto, address, port)`` check a path
by hand: the echo answers with the address it saw the probe come from, so a test sees the NAT at work too.

Everything is created by the lab and torn down on the way out whatever the test did: the host processes (and
their namespaces with them), the veth pairs, the nft table, ``ip_forward``. The lab refuses to start in a
namespace that has any interface but ``lo`` (the real machine's): it only runs inside ``unshare -rn``. Missing
``ip``, ``nft``, ``nsenter`` or ``unshare`` skips the test, which under ``RAPPORT_STRICT_TESTS=1`` is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from .processes import die_with_parent, stop_process

TABLE = "rapport_lab"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
TOOLS = ("ip", "nft", "nsenter", "unshare")

PHONE_PUBLIC = "198.51.100.7"  # RFC 5737 TEST-NET-2: the carrier's NAT address
SERVER_PUBLIC = "203.0.113.10"  # RFC 5737 TEST-NET-3: the cloud VM's public address
TURN_PUBLIC = "203.0.113.5"
# What coturn may relay to: the lab's public addresses, never its private 10.13/16 ones.
PUBLIC_RANGES = ("198.51.100.0/24", "203.0.113.0/24")

Nat = Literal["1:1", "masquerade"]
Proto = Literal["udp", "tcp"]

# An echo on one port, UDP and TCP: it answers "<what it got> from <address>:<port>", so the sender learns the
# address it was seen from (through the NAT). Run in a host by ``Host.echo``.
ECHO_PY = """
import socket, sys, threading
port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port))
tcp.listen()
def answer_datagrams():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data + b" from %s:%d" % (peer[0].encode(), peer[1]), peer)
threading.Thread(target=answer_datagrams, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    with conn:
        conn.sendall(conn.recv(2048) + b" from %s:%d" % (peer[0].encode(), peer[1]))
"""

# One probe from a host: send "probe", print the echo's answer, or nothing if none came in time.
PROBE_PY = """
import socket, sys
proto, address, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.sendto(b"probe", (address, port))
        print(s.recvfrom(2048)[0].decode())
    else:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.sendall(b"probe")
            print(s.recv(2048).decode())
except OSError:
    pass
"""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _check(argv: Sequence[str], *, input: str | None = None) -> str:
    done = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n{input or ''}")
    return done.stdout


@dataclass(eq=False)
class Host:
    """One host: a network namespace held open by a ``sleep`` process, behind its veth to the router."""

    name: str
    index: int
    pid: int
    # The router's end of the veth (the host's end is eth0 inside the host).
    link: str
    # The address on the host's own eth0; ``public`` is how the other hosts reach it (the same if routed).
    address: str
    gateway: str
    public: str
    nat: Nat | None
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address traffic of this host carries on the router (private and public)."""
        return tuple(dict.fromkeys((self.address, self.public)))

    def cmd(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host's network namespace."""
        return ["nsenter", "-t", str(self.pid), "-n", "--", *argv]

    def check(self, argv: Sequence[str]) -> str:
        return _check(self.cmd(argv))

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in this host; the lab stops it (SIGTERM, then SIGKILL) when it tears down."""
        kwargs.setdefault("preexec_fn", die_with_parent)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process: subprocess.Popen[bytes] = subprocess.Popen(self.cmd(argv), **kwargs)
        self._processes.append(process)
        return process

    def echo(self, port: int) -> subprocess.Popen[bytes]:
        """A UDP and TCP echo on ``port`` of every address of this host (see ``probe``), up when this returns."""
        process = self.popen([sys.executable, "-c", ECHO_PY, str(port)], stdout=subprocess.PIPE)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the echo in {self.name} did not start")
        return process

    async def probe(self, proto: Proto, address: str, port: int, timeout: float = 0.5) -> str | None:
        """From this host, send to an echo at (``address``, ``port``): the address:port it saw us come from, or None
        if no answer came (dropped, refused or unreachable)."""
        done = await asyncio.to_thread(
            subprocess.run,
            self.cmd([sys.executable, "-c", PROBE_PY, proto, address, str(port), str(timeout)]),
            capture_output=True,
            text=True,
        )
        answer = done.stdout.strip()
        return answer.removeprefix("probe from ") if answer.startswith("probe from ") else None

    def wrapper(self, binary: str, folder: Path) -> Path:
        """A script that runs ``binary`` (with its arguments) in this host, e.g. for Playwright's executable_path."""
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / f"{Path(binary).name}-in-{self.name}"
        script.write_text(f'#!/bin/sh\nexec {shlex.join(self.cmd([binary]))} "$@"\n')
        script.chmod(0o755)
        return script

    def stop_processes(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            stop_process(process)
        self._processes.clear()


@dataclass(eq=False)
class Rule:
    """A group of firewall rules (one nft chain, jumped to from the forward hook); ``remove()`` undoes it."""

    lab: NetLab
    chain: str
    handle: int | None

    async def remove(self) -> None:
        if self.handle is None:
            return
        handle, self.handle = self.handle, None
        await self.lab.nft(
            f"delete rule ip {TABLE} forward_filter handle {handle}\ndelete chain ip {TABLE} {self.chain}"
        )


def _set(addresses: Sequence[str]) -> str:
    return "{ " + ", ".join(addresses) + " }"


class NetLab:
    """The test network: ``phone``, ``office``, ``server`` and ``turn`` hosts and the router's firewall.

    Building and tearing down block (ip, nft, waiting for namespaces): they run in a thread, off the loop.
    """

    phone: Host
    office: Host
    server: Host
    turn: Host

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self._chains = itertools.count(1)
        self._ip_forward_before: str | None = None
        self._table_made = False

    async def __aenter__(self) -> NetLab:
        missing = missing_tools()
        if missing:
            pytest.skip(f"the test network needs {', '.join(missing)} (make test installs nftables and iproute2)")
        await asyncio.to_thread(self.open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def open(self) -> None:
        self._refuse_the_real_machine()
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _refuse_the_real_machine() -> None:
        # The lab adds routes, NAT and a firewall: only ever in a namespace of our own (unshare -rn), which has
        # nothing but lo (and links of an earlier lab of this run) when we arrive.
        names = [name for _i, name in socket.if_nameindex()]
        foreign = [name for name in names if name != "lo" and not name.startswith("lab-")]
        if foreign:
            raise RuntimeError(f"NetLab runs only inside a private network namespace (unshare -rn); found {foreign}")

    def _build(self) -> None:
        # Left by an earlier lab of this pytest run that died half-way: ours, in our own namespace.
        subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)
        for _i, name in socket.if_nameindex():
            if name.startswith("lab-"):
                subprocess.run(["ip", "link", "del", name], capture_output=True)
        self._ip_forward_before = IP_FORWARD.read_text().strip()
        IP_FORWARD.write_text("1\n")
        self._nft(
            f"""
            table ip {TABLE} {{
              chain forward_filter {{ type filter hook forward priority filter; policy accept; }}
              chain nat_prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
              chain nat_output {{ type nat hook output priority -100; policy accept; }}
              chain nat_postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
            }}
            """
        )
        self._table_made = True
        self.phone = self.add_host("phone", public=PHONE_PUBLIC, nat="masquerade")
        self.office = self.add_host("office")
        self.server = self.add_host("server", public=SERVER_PUBLIC, nat="1:1")
        self.turn = self.add_host("turn", address=TURN_PUBLIC)

    def add_host(
        self, name: str, *, address: str | None = None, public: str | None = None, nat: Nat | None = None
    ) -> Host:
        """A new host on link 10.13.<n>.0/24 (router .1, host .2), or on ``address`` itself if given (routed).

        ``nat="1:1"``: the others reach it on ``public`` (DNAT) and its traffic leaves as ``public`` (SNAT).
        ``nat="masquerade"``: its outgoing flows leave as ``public``; nobody can open one towards it.
        """
        if len(f"lab-{name}") > 15:
            raise ValueError(f"host name {name!r} is too long for an interface name")
        index = len(self.hosts) + 1
        process = subprocess.Popen(
            ["unshare", "-n", "sleep", "infinity"], stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        link = f"lab-{name}"
        gateway = f"10.13.{index}.1"
        own = address or f"10.13.{index}.2"
        host = Host(name, index, process.pid, link, own, gateway, public or own, nat)
        self.hosts[name] = host
        host._processes.append(process)  # the namespace's holder
        self._wait_for_namespace(process)
        _check(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", str(process.pid)])
        _check(["ip", "addr", "add", f"{gateway}/24", "dev", link])
        _check(["ip", "link", "set", link, "up"])
        on_link = f"{own}/24" if address is None else f"{own}/32"
        script = [
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", on_link, "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
        ]
        if address is not None:
            # A routed address of its own: the router reaches it through the link, and it the router.
            script.append(["ip", "route", "add", gateway, "dev", "eth0", "src", own])
            _check(["ip", "route", "add", f"{own}/32", "dev", link])
        script.append(["ip", "route", "add", "default", "via", gateway, "src", own])
        for argv in script:
            host.check(argv)
        if nat is not None:
            self._nat(host, nat)
        return host

    @staticmethod
    def _wait_for_namespace(process: subprocess.Popen[bytes]) -> None:
        # unshare makes the namespace, then execs sleep: until then the pid still shows our own.
        ours = os.readlink("/proc/self/ns/net")
        for _ in range(500):
            if process.poll() is not None:
                raise RuntimeError("unshare -n sleep infinity exited: cannot make a network namespace here")
            with contextlib.suppress(FileNotFoundError):
                if os.readlink(f"/proc/{process.pid}/ns/net") != ours:
                    return
            time.sleep(0.01)
        raise RuntimeError("the host's network namespace did not appear")

    def _nat(self, host: Host, nat: Nat) -> None:
        private, public = host.address, host.public
        rules = [f"add rule ip {TABLE} nat_postrouting ip saddr {private} snat to {public}"]
        if nat == "1:1":
            rules += [
                f"add rule ip {TABLE} nat_prerouting ip daddr {public} dnat to {private}",
                f"add rule ip {TABLE} nat_output ip daddr {public} dnat to {private}",
            ]
        self._nft("\n".join(rules))
        if nat == "1:1":
            # The router's own sockets (the test's clients) need a route before nat_output can rewrite them.
            _check(["ip", "route", "add", f"{public}/32", "via", private])
        # No new flow reaches the private address from another host: only the NAT's own (DNAT in, or the
        # answers to flows it SNATed out) get through.
        self._rule(
            f"private-{host.name}",
            [
                f"iifname != {host.link} ip daddr {private} ct status dnat return",
                f"iifname != {host.link} ip daddr {private} ct status snat return",
                f"iifname != {host.link} ip daddr {private} drop",
            ],
        )

    # ---------------------------------------------------------------- the firewall

    @staticmethod
    def _nft(script: str) -> str:
        return _check(["nft", "-e", "-a", "-f", "-"], input=script)

    async def nft(self, script: str) -> str:
        """Run an nft script (``add rule ip rapport_lab ...`` lines) on the router."""
        return await asyncio.to_thread(self._nft, script)

    async def rule(self, label: str, rules: Sequence[str]) -> Rule:
        """A group of ``rules`` (nft statements, in order) in a chain of its own, jumped to from the forward hook."""
        return await asyncio.to_thread(self._rule, label, rules)

    def _rule(self, label: str, rules: Sequence[str]) -> Rule:
        chain = f"g{next(self._chains)}_{re.sub(r'[^a-z0-9_]', '_', label.lower())}"[:60]
        body = "\n".join(f"add rule ip {TABLE} {chain} {r}" for r in rules)
        self._nft(f"add chain ip {TABLE} {chain}\n{body}")
        echoed = self._nft(f"add rule ip {TABLE} forward_filter jump {chain}")
        found = re.search(r"# handle (\d+)", echoed)
        if found is None:
            raise RuntimeError(f"nft did not say the jump's handle: {echoed!r}")
        return Rule(self, chain, int(found.group(1)))

    async def block(
        self, a: Host, b: Host | None = None, *, proto: Proto | None = None, port: int | None = None
    ) -> Rule:
        """Drop what ``a`` and ``b`` (anyone, if None) send each other: all of it, one ``proto``, or what goes to
        or comes from one ``port`` of it, in both directions."""
        if port is not None and proto is None:
            raise ValueError("block(port=...) needs proto")
        matches = [f"meta l4proto {proto}" if proto else ""]
        if port is not None:
            matches = [f"{proto} dport {port}", f"{proto} sport {port}"]
        rules = []
        for src, dst in ((a, b), (b, a)):
            where = " ".join(
                f"ip {side} {_set(host.addresses)}" for side, host in (("saddr", src), ("daddr", dst)) if host
            )
            rules += [f"{where} {match} drop" for match in matches]
        label = f"block-{a.name}-{b.name if b else 'all'}-{proto or 'ip'}"
        return await self.rule(label, rules)

    async def only_tcp(self, host: Host, to: Sequence[tuple[Host, int]]) -> Rule:
        """A hotel firewall for ``host``: it may open TCP connections to the (host, port)s ``to``; nothing else
        leaves (no UDP at all), and only the answers to those connections come back."""
        allowed = [f"iifname {host.link} ip daddr {_set(dst.addresses)} tcp dport {port} return" for dst, port in to]
        return await self.rule(
            f"hotel-{host.name}",
            [
                *allowed,
                f"iifname {host.link} drop",
                f"oifname {host.link} ct state established,related meta l4proto tcp return",
                f"oifname {host.link} drop",
            ],
        )

    # ---------------------------------------------------------------- teardown

    def close(self) -> None:
        """Stop every host's processes (their namespaces go with them), then the links, the table, ip_forward."""
        errors: list[str] = []
        for host in reversed(list(self.hosts.values())):
            try:
                host.stop_processes()
            except Exception as error:  # go on: the rest must still be cleaned
                errors.append(f"{host.name}: {error!r}")
            # The veth goes with the host's namespace; deleted anyway in case something still holds it open.
            subprocess.run(["ip", "link", "del", host.link], capture_output=True)
        self.hosts.clear()
        if self._table_made:
            subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)
            self._table_made = False
        if self._ip_forward_before is not None:
            IP_FORWARD.write_text(self._ip_forward_before + "\n")
            self._ip_forward_before = None
        if errors:
            raise RuntimeError("NetLab teardown: " + "; ".join(errors))
