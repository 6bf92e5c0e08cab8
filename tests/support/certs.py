"""A certificate authority made in the test, and server certificates it signs (PEM files,
the key as unencrypted PKCS#8, as `moorage serve` reads them)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Authority:
    folder: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def context(self) -> ssl.SSLContext:
        """A client's TLS context that trusts this authority (for httpx's `verify`)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @classmethod
    def make(cls, folder: Path) -> "Authority":
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name("Moorage test CA"))
                .issuer_name(_name("Moorage test CA")).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        authority = cls(folder, key, cert)
        authority.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return authority

    def issue(self, stem: str, names: list[str], days: float = 10, start_days: float = -1,
              key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Path, Path, int]:
        """Write STEM.crt and STEM.key for these DNS names (and 127.0.0.1); returns the
        paths and the certificate's serial number."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        serial = x509.random_serial_number()
        alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]
        cert = (x509.CertificateBuilder().subject_name(_name(names[0]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(now + dt.timedelta(days=start_days))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = self.folder / f"{stem}.crt", self.folder / f"{stem}.key"
        # Written aside, then renamed: a reader never sees half a file.
        for path, data in ((key_path, _pkcs8(key)),
                           (cert_path, cert.public_bytes(serialization.Encoding.PEM))):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.rename(path)
        return cert_path, key_path, serial
