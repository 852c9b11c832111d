"""A certificate authority and a server certificate for 127.0.0.1, made fresh for the
tests (with the `cryptography` package): the server certificate for a TLS endpoint
(fault_proxy.py's `tls`), the authority for the client to trust (`SSL_CERT_FILE`, which
the target's TLS stack reads as the system's trust store)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def certificates(folder: Path) -> tuple[str, str, str]:
    """Writes and returns (authority certificate, server certificate, server key) files."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("target-s3 test authority"))
          .issuer_name(_name("target-s3 test authority")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (_pem(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
            _pem(folder / "server.pem", leaf.public_bytes(serialization.Encoding.PEM)),
            _pem(folder / "server.key", key_pem))
