"""HTTPS for phones: a given certificate, or a self-signed one made on first run."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .storage.files import write_private

log = logging.getLogger(__name__)


def lan_address() -> str | None:
    """The first non-loopback IPv4 address of this host's interfaces (Linux), or None.

    Read from the interfaces themselves: nothing is sent anywhere.
    """
    try:
        import fcntl
    except ImportError:
        return None
    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                return address
    return None


def subject_alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    """Addresses as IP entries, anything else as a DNS name."""
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(alt)


def make_self_signed(cert_file: Path, key_file: Path, hosts: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rapport (self-signed)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(subject_alt_names(hosts), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file.unlink(missing_ok=True)  # a half-made pair from an earlier run: start afresh
    # Created 0600, never chmod'ed afterwards: no moment in which another user could read the key.
    write_private(
        key_file,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ssl_context(cert_file: Path | None, key_file: Path | None, data_dir: Path) -> tuple[ssl.SSLContext, Path]:
    """Load the given pair, or make (once) and load a self-signed pair under ``data_dir/tls``."""
    if cert_file is None or key_file is None:
        cert_file, key_file = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
        if not cert_file.exists() or not key_file.exists():
            hosts = ["localhost", "127.0.0.1"]
            lan = lan_address()
            if lan:
                hosts.append(lan)
            make_self_signed(cert_file, key_file, hosts)
            log.warning("made a self-signed certificate for %s in %s", ", ".join(hosts), cert_file.parent)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def terminal_qr(url: str) -> str:
    import io

    import segno

    buffer = io.StringIO()
    segno.make(url, error="m").terminal(out=buffer, compact=True)
    return buffer.getvalue()
