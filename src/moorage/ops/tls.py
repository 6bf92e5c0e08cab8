"""HTTPS: the certificate and key `moorage serve` hands to granian, checked at start and
watched while it runs.

granian reads the two files when a worker starts. So a renewed certificate (certbot, an ACME
client, a secret mounted by Kubernetes) is taken up without a restart by respawning the
workers one after another (granian's SIGHUP reload), once the new pair has been checked:
a half-written or mismatched pair is logged and the workers keep serving the old one.

A pair is refused at start with one line saying why: a file missing or unreadable, not PEM,
a key that is not PKCS#8 (the only form granian reads: `openssl pkcs8 -topk8 -nocrypt`), a
key that does not belong to the certificate, or a certificate outside its validity period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("moorage.tls")


class CertificateError(ValueError):
    """A certificate and key that cannot be served; the message says why."""


@dataclass(frozen=True)
class Certificate:
    subject: str
    names: tuple[str, ...]
    not_after: dt.datetime


def check_pair(cert: Path, key: Path, now: dt.datetime | None = None) -> Certificate:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    for label, path in (("tls_cert", cert), ("tls_key", key)):
        if not path.is_file():
            raise CertificateError(f"setting {label!r}: {path} is not a file")
    try:
        pem = cert.read_bytes()
        key_pem = key.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read the certificate or key: {exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateError(f"setting 'tls_cert': {cert} holds no PEM certificate")
    if b"-----BEGIN PRIVATE KEY-----" not in key_pem:
        raise CertificateError(
            f"setting 'tls_key': {key} is not an unencrypted PKCS#8 key (BEGIN PRIVATE KEY); "
            f"convert it with: openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW")
    try:
        leaf = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"setting 'tls_cert': {cert} cannot be read: {exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        reason = "the key does not belong to the certificate" \
            if "KEY_VALUES_MISMATCH" in str(exc) or "mismatch" in str(exc).lower() else str(exc)
        raise CertificateError(f"{cert} and {key} cannot be served together: {reason}") \
            from None
    now = now or dt.datetime.now(dt.timezone.utc)
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now >= not_after:
        raise CertificateError(f"setting 'tls_cert': the certificate expired on "
                               f"{not_after:%Y-%m-%d %H:%M} UTC")
    if now < not_before:
        raise CertificateError(f"setting 'tls_cert': the certificate is not valid before "
                               f"{not_before:%Y-%m-%d %H:%M} UTC")
    try:
        names = tuple(leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(common[0].value) if common else leaf.subject.rfc4514_string()
    return Certificate(subject, names, not_after)


def _stamp(*paths: Path) -> tuple[tuple[int, int], ...]:
    found = []
    for path in paths:
        try:
            st = path.stat()
            found.append((st.st_mtime_ns, st.st_size))
        except OSError:
            found.append((0, 0))
    return tuple(found)


class CertificateWatcher:
    """Checks the two files every `interval` seconds; a changed, usable pair calls
    `on_change` (by default: SIGHUP to this process, granian's graceful worker reload)."""

    def __init__(self, cert: Path, key: Path, interval: float = 5.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.cert, self.key = cert, key
        self.interval = interval
        self.on_change = on_change or (lambda: os.kill(os.getpid(), signal.SIGHUP))
        self._seen = _stamp(cert, key)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="moorage-tls-watch",
                                        daemon=True)

    def start(self) -> "CertificateWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check_once(self) -> bool:
        """True when a new, usable pair was found (and on_change called)."""
        stamp = _stamp(self.cert, self.key)
        if stamp == self._seen:
            return False
        try:
            found = check_pair(self.cert, self.key)
        except CertificateError as exc:
            log.error("the changed certificate is not usable, the old one is still served: "
                      "%s", exc)
            self._seen = stamp  # said once; a further change is looked at again
            return False
        self._seen = stamp
        log.info("certificate for %s changed (valid until %s): reloading the workers",
                 found.subject, f"{found.not_after:%Y-%m-%d}")
        self.on_change()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise
                log.exception("certificate watch failed")
