"""A real TURN relay for the real-network tests: Debian's coturn (``/usr/bin/turnserver``) in the lab's "turn" host.

``async with Coturn(lab.turn, folder) as turn:`` writes a config and runs ``turnserver -c <config>`` in the host
(as our child, with a parent-death signal) and returns once it answers a STUN binding request on UDP 3478 and
accepts TCP on 3478 and TLS on 5349. What it is set to, and why:

- ``use-auth-secret`` + ``static-auth-secret``: coturn's REST scheme, as Rapport hands out credentials
  (``server/media/turn.py``): username ``<expiry>:<label>``, password base64(HMAC-SHA1(secret, username)).
  ``credential(label, ttl_s)`` makes one the same way, for the tests that talk to coturn themselves.
- ``listening-ip`` and ``relay-ip`` the host's own public address; UDP and TCP on 3478, TLS on 5349 with a
  certificate for that address signed by a test CA (``TestCA``) that the fixture makes (DTLS off: no browser
  speaks it to a TURN server).
- ``denied-peer-ip`` for every IPv4 and IPv6 address, then ``allowed-peer-ip`` for the lab's public ranges only
  (an allowed address wins over a denied one in coturn): the relay never reaches loopback, the lab's private
  10.13/16 addresses or anything else, as a deployment must refuse private ranges it does not mean to serve.
- ``no-cli`` (no telnet admin port), ``no-multicast-peers``, ``fingerprint``, ``simple-log`` + ``log-file``
  kept in the test's folder (``log`` reads it), its own ``userdb`` and ``pidfile`` there too, nothing in /var.

A missing ``turnserver`` skips the test, which under ``RAPPORT_STRICT_TESTS=1`` is a failure (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import ipaddress
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.tls import subject_alt_names

from .netlab import PUBLIC_RANGES, Host
from .processes import stop_process

TURNSERVER = "/usr/bin/turnserver"
TURN_PORT = 3478
TURNS_PORT = 5349
REALM = "rapport.test"
START_TIMEOUT_S = 15.0


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class TestCA:
    """A throwaway certificate authority: ``issue()`` signs leaf certificates for the lab's addresses."""

    __test__ = False  # not a pytest test class, whatever its name says

    cert_file: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, folder: Path) -> TestCA:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rapport test CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_file = folder / "test-ca.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert_file, key, cert)

    def issue(self, folder: Path, name: str, hosts: list[str]) -> tuple[Path, Path]:
        """(cert.pem, key.pem) for ``hosts`` (addresses or names), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(subject_alt_names(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return cert_file, key_file

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def spki_sha256(cert_file: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


# ---------------------------------------------------------------- credentials


def rest_credential(secret: str, label: str, *, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """coturn's REST scheme, written out here on purpose (not imported from the server): (username, password)."""
    username = f"{int(time.time() if now is None else now) + ttl_s}:{label}"
    return username, rest_password(secret, username)


def rest_password(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)): the password coturn expects for any username, well-formed or not."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


# ---------------------------------------------------------------- the server


def _range(cidr: str) -> str:
    network = ipaddress.ip_network(cidr)
    return f"{network[0]}-{network[-1]}"


class Coturn:
    """One ``turnserver`` in ``host``; ``secret`` is its static-auth-secret, ``urls`` what a client is given."""

    def __init__(
        self,
        host: Host,
        folder: Path,
        *,
        ca: TestCA | None = None,
        secret: str | None = None,
        allowed_peers: tuple[str, ...] = PUBLIC_RANGES,
    ) -> None:
        self.host = host
        self.folder = folder
        self.address = host.public
        self.secret = secret or secrets.token_urlsafe(24)
        self.allowed_peers = allowed_peers
        self.ca = ca
        self.log_path = folder / "turnserver.log"
        self.config_path = folder / "turnserver.conf"
        self.process: subprocess.Popen[bytes] | None = None
        self._cert_file: Path | None = None

    @property
    def cert_file(self) -> Path:
        """Its TLS certificate (made when it starts)."""
        assert self._cert_file is not None, "coturn has not started"
        return self._cert_file

    def url(self, transport: str) -> str:
        """``udp`` / ``tcp``: turn:ADDRESS:3478?transport=..., ``tls``: turns:ADDRESS:5349?transport=tcp."""
        if transport == "tls":
            return f"turns:{self.address}:{TURNS_PORT}?transport=tcp"
        return f"turn:{self.address}:{TURN_PORT}?transport={transport}"

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url("udp"), self.url("tcp"), self.url("tls"))

    def credential(self, label: str = "test", *, ttl_s: int = 600, now: float | None = None) -> tuple[str, str]:
        return rest_credential(self.secret, label, ttl_s=ttl_s, now=now)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _config(self, cert: Path, key: Path) -> str:
        lines = [
            f"listening-ip={self.address}",
            f"relay-ip={self.address}",
            f"listening-port={TURN_PORT}",
            f"tls-listening-port={TURNS_PORT}",
            f"cert={cert}",
            f"pkey={key}",
            "no-dtls",
            "no-tlsv1",
            "no-tlsv1_1",
            f"realm={REALM}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            "fingerprint",
            "no-cli",
            "no-rfc5780",
            "no-multicast-peers",
            "min-port=49152",
            "max-port=65535",
            "denied-peer-ip=0.0.0.0-255.255.255.255",
            "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            *(f"allowed-peer-ip={_range(cidr)}" for cidr in self.allowed_peers),
            f"log-file={self.log_path}",
            "simple-log",
            "no-stdout-log",
            "verbose",
            f"userdb={self.folder / 'turndb'}",
            f"pidfile={self.folder / 'turnserver.pid'}",
        ]
        return "\n".join(lines) + "\n"

    async def __aenter__(self) -> Coturn:
        if shutil.which(TURNSERVER) is None:
            pytest.skip(f"{TURNSERVER} is not installed (make test installs Debian's coturn)")
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        ca = self.ca or TestCA.make(self.folder)
        self.ca = ca
        cert, key = ca.issue(self.folder, "turn", [self.address, "turn.rapport.test"])
        self._cert_file = cert
        self.config_path.write_text(self._config(cert, key))
        self.config_path.chmod(0o600)  # it holds the secret
        with (self.folder / "turnserver.stdout").open("ab") as out:
            self.process = self.host.popen(
                [TURNSERVER, "-c", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"turnserver did not start:\n{self.log[-4000:]}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        """A STUN binding answered on UDP, and TCP and TLS connections accepted (the TLS handshake done)."""
        if not stun_binding(self.address, TURN_PORT, timeout=0.2):
            return False
        try:
            with socket.create_connection((self.address, TURN_PORT), timeout=0.5):
                pass
            assert self.ca is not None
            with (
                socket.create_connection((self.address, TURNS_PORT), timeout=0.5) as raw,
                self.ca.ssl_context().wrap_socket(raw, server_hostname=self.address),
            ):
                pass
        except OSError:
            return False
        return True

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def stun_binding(address: str, port: int, *, timeout: float) -> tuple[str, int] | None:
    """Send a STUN binding request over UDP; the XOR-MAPPED-ADDRESS of the answer, or None without one."""
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (address, port))
            data, _ = sock.recvfrom(2048)
        except OSError:
            return None
    if len(data) < 20 or data[:2] != b"\x01\x01" or data[8:20] != transaction:
        return None
    offset = 20
    while offset + 4 <= len(data):
        kind, length = struct.unpack("!HH", data[offset : offset + 4])
        value = data[offset + 4 : offset + 4 + length]
        if kind == 0x0020 and len(value) >= 8:  # XOR-MAPPED-ADDRESS, IPv4
            mapped_port = struct.unpack("!H", value[2:4])[0] ^ 0x2112
            raw = struct.unpack("!I", value[4:8])[0] ^ 0x2112A442
            return socket.inet_ntoa(struct.pack("!I", raw)), mapped_port
        offset += 4 + length + (-length % 4)
    return None
