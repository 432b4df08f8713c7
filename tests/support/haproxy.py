"""A real load balancer in front of Rapport's front doors: Debian's ``haproxy`` (.ci/system-deps installs it).

``HAProxy(backends=[("127.0.0.3", 8081), ("127.0.0.4", 8082)]).start()`` writes a config for those front doors
and runs ``haproxy -f <config> -db`` (foreground) as our child with a parent-death signal, listening on a free
port of 127.0.0.1; ``.url`` is where clients go, ``.stop()`` ends it. It is the configuration docs/scaling.md
shows, with test-speed health checks:

- ``balance roundrobin`` (or ``leastconn``), every request balanced on its own;
- WebSocket upgrades pass (haproxy's HTTP mode does them), and an upgraded socket lives by ``timeout tunnel``,
  not by the short client/server timeouts that bound ordinary requests;
- ``option httpchk`` GET ``/healthz``, expecting 200, every ``check_interval_ms`` (``fall``/``rise`` checks to
  take a door out of rotation and back): a door that lost its database or Redis answers 503 and gets no traffic;
- ``X-Forwarded-For`` (``option forwardfor``) and ``X-Forwarded-Proto`` for the doors, which believe them
  when ``trusted_proxies`` names haproxy's address (``source``: it connects from 127.0.0.1);
- ``X-Served-By: <server name>`` on every answer (tests only; ``served_by=False`` leaves it out), so a test
  can tell which door answered;
- an admin socket: ``server_states()`` reads ``show stat`` (``{"door1": "UP", "door2": "DOWN"}``), and
  ``command()`` sends anything else (``disable server doors/door1`` to drain one).

The ``haproxy`` fixture hands out a starter and stops everything it started after the test. A missing
``haproxy`` skips the test, which under ``RAPPORT_STRICT_TESTS=1`` is a failure (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from .processes import die_with_parent, stop_process
from .redis import free_port

START_TIMEOUT_S = 10.0
BACKEND = "doors"
Balance = Literal["roundrobin", "leastconn"]


class HAProxy:
    """One haproxy process in front of ``backends`` (host, port), named door1, door2 ... in that order."""

    def __init__(
        self,
        backends: Sequence[tuple[str, int]],
        *,
        balance: Balance = "roundrobin",
        host: str = "127.0.0.1",
        port: int | None = None,
        check_interval_ms: int = 200,
        fall: int = 2,
        rise: int = 2,
        client_timeout_s: float = 30.0,
        tunnel_timeout_s: float = 3600.0,
        served_by: bool = True,
        source: str | None = "127.0.0.1",
        tls_cert: str | None = None,
        folder: Path | None = None,
    ) -> None:
        if not backends:
            raise ValueError("haproxy needs at least one backend")
        self.backends = list(backends)
        self.balance = balance
        self.host = host
        self.port = port or free_port(host)
        self.check_interval_ms, self.fall, self.rise = check_interval_ms, fall, rise
        self.client_timeout_s, self.tunnel_timeout_s = client_timeout_s, tunnel_timeout_s
        self.served_by = served_by
        # The address haproxy connects to the doors from (their trusted_proxies); None: the system's choice.
        self.source = source
        # A PEM (certificate and key) to terminate TLS with; the doors then hear X-Forwarded-Proto: https.
        self.tls_cert = tls_cert
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="rapport-haproxy-"))
        self.config_path = self.folder / "haproxy.cfg"
        self.admin_socket = self.folder / "admin.sock"
        self.log_path = self.folder / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def server_names(self) -> list[str]:
        return [f"door{n}" for n in range(1, len(self.backends) + 1)]

    def config(self) -> str:
        """The haproxy.cfg for these backends (docs/scaling.md shows the same, with production timings)."""
        servers = "\n".join(
            f"    server {name} {host}:{port} check"
            for name, (host, port) in zip(self.server_names, self.backends, strict=True)
        )
        served_by = "    http-response set-header X-Served-By %s\n" if self.served_by else ""
        source = f"    source {self.source}\n" if self.source else ""
        tls = f" ssl crt {self.tls_cert}" if self.tls_cert else ""
        return f"""\
global
    stats socket {self.admin_socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client {_duration(self.client_timeout_s)}
    timeout server {_duration(self.client_timeout_s)}
    timeout http-request 10s
    # An upgraded WebSocket: idle this long before haproxy closes it (Rapport's heartbeat keeps it busy).
    timeout tunnel {_duration(self.tunnel_timeout_s)}
    timeout check 2s

frontend rapport
    bind {self.host}:{self.port}{tls}
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
    default_backend {BACKEND}

backend {BACKEND}
    balance {self.balance}
{source}    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host rapport
    http-check expect status 200
    default-server inter {_duration(self.check_interval_ms / 1000)} fall {self.fall} rise {self.rise}
{served_by}{servers}
"""

    def start(self) -> HAProxy:
        """Run haproxy and wait until it accepts connections and its admin socket answers."""
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (make test installs Debian's haproxy)")
        self.config_path.write_text(self.config())
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "-f", str(self.config_path), "-db"],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self._accepts() and self.admin_socket.exists()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not start:\n{self.log}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        # SIGUSR1 would wait for open connections (a soft stop); the test is over: SIGTERM, at once.
        stop_process(self.process)
        self.process = None
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def command(self, line: str) -> str:
        """One command on the admin socket (``show stat``, ``disable server doors/door1`` ...); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(str(self.admin_socket))
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict[str, Any]]:
        """``show stat`` as rows (the CSV's columns: pxname, svname, status, stot, chkfail ...)."""
        text = self.command("show stat").lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def server_states(self) -> dict[str, str]:
        """Each door's state as haproxy sees it: "UP", "DOWN" or "MAINT" (a transition in progress, such as
        "UP 1/2", one failed check of the two that take it down, counts as its current state)."""
        return {
            row["svname"]: row["status"].split()[0]
            for row in self.stats()
            if row["pxname"] == BACKEND and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_for_states(self, expected: dict[str, str], timeout: float = 10.0) -> None:
        """Until every door named in ``expected`` is in that state."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if all(states.get(name) == state for name, state in expected.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy sees {states}, expected {expected}")
            time.sleep(0.05)

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
            return True
        return False


def _duration(seconds: float) -> str:
    """haproxy's time format, in the largest whole unit (``1h``, ``30s``, ``200ms``)."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def haproxy_binary() -> str | None:
    # /usr/sbin is not on every user's PATH.
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")


def documented_config() -> str:
    """The production example in docs/scaling.md: the tested config with TLS, two doors on a private network and
    checks every 2 s (a door leaves after 3 failures, 6 s; comes back after 2 successes)."""
    return HAProxy(
        [("10.0.1.11", 8080), ("10.0.1.12", 8080)],
        host="",
        port=443,
        tls_cert="/etc/haproxy/rapport.pem",
        source=None,
        served_by=False,
        check_interval_ms=2000,
        fall=3,
        rise=2,
        folder=Path("/run/haproxy"),
    ).config()


StartHAProxy = Callable[..., HAProxy]


@pytest.fixture
def haproxy() -> Iterator[StartHAProxy]:
    """``haproxy(backends, **options)`` starts an :class:`HAProxy`; all of them are stopped after the test."""
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (make test installs Debian's haproxy)")
    started: list[HAProxy] = []

    def start(backends: Sequence[tuple[str, int]], **options: Any) -> HAProxy:
        balancer = HAProxy(backends, **options)
        started.append(balancer)
        return balancer.start()

    try:
        yield start
    finally:
        for balancer in reversed(started):
            balancer.stop()
