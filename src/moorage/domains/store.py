"""The `domains` table: queries, and the sealing of private keys.

A private key is sealed with the instance's active master key (AES-256-GCM, the host as
associated data, so a sealed key cannot be moved to another row) when encryption at rest is
on. Without it the key is stored as PEM, as private as the database itself (the embedded
database is a mode-0600 file in the private data folder; a shared PostgreSQL holds it like
the token signing key in `instance_secrets`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select, update

from moorage.db.schema import domains
from moorage.store.keys import Keyring

_SEALED = b"MKEY1"  # magic || key id (8) || nonce (12) || AES-GCM(key PEM)


class SealError(ValueError):
    """A stored key that the keys at hand cannot open (encryption turned off, key lost)."""


@dataclass(frozen=True)
class DomainRow:
    host: str
    cert_pem: str
    subject: str
    names: tuple[str, ...]
    not_before: float
    not_after: float
    created_at: float
    updated_at: float
    updated_by: str


def seal(key_pem: bytes, host: str, keyring: Keyring | None) -> bytes:
    if keyring is None:
        return key_pem
    master = keyring.active
    nonce = os.urandom(12)
    return _SEALED + master.id + nonce + master.aead.encrypt(nonce, key_pem, _aad(host))


def unseal(stored: bytes, host: str, keyring: Keyring | None) -> bytes:
    if not stored.startswith(_SEALED):
        return stored
    if keyring is None:
        raise SealError(f"the key of {host} is sealed with a master key, and encryption at "
                        f"rest is off here: turn it on with the same master key")
    rest = stored[len(_SEALED):]
    key_id, nonce, sealed = rest[:8], rest[8:20], rest[20:]
    try:
        return keyring.get(key_id).aead.decrypt(nonce, sealed, _aad(host))
    except Exception as exc:  # unknown key id, or a key that does not open it
        raise SealError(f"the key of {host} cannot be opened: {exc}") from None


def _aad(host: str) -> bytes:
    return b"moorage/domain-key\0" + host.encode()


class DomainStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self) -> list[DomainRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_PUBLIC).order_by(domains.c.host)).all()
        return [_row(r) for r in rows]

    def get(self, host: str) -> DomainRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_PUBLIC).where(domains.c.host == host)).first()
        return _row(row) if row else None

    def pairs(self) -> list[tuple[str, str, bytes]]:
        """(host, certificate PEM, stored key) of every domain, for the TLS front."""
        with self.engine.connect() as conn:
            return [(r.host, r.cert_pem, bytes(r.key_pem)) for r in conn.execute(
                select(domains.c.host, domains.c.cert_pem, domains.c.key_pem)
                .order_by(domains.c.host))]

    def version(self) -> tuple[int, float]:
        """Changes when a domain is added, renewed or removed: what the fronts poll."""
        with self.engine.connect() as conn:
            count, latest = conn.execute(select(func.count(), func.max(domains.c.updated_at))
                                         ).one()
        return int(count), float(latest or 0.0)

    def count(self) -> int:
        return self.version()[0]

    def put(self, host: str, cert_pem: str, key: bytes, subject: str, names: list[str],
            not_before: float, not_after: float, by: str) -> tuple[DomainRow, bool]:
        """Add or replace (a renewal); returns the row and whether it was new."""
        now = time.time()
        values = dict(cert_pem=cert_pem, key_pem=key, subject=subject[:255],
                      names=json.dumps(names), not_before=not_before, not_after=not_after,
                      updated_at=now, updated_by=by[:255])
        with self.engine.begin() as conn:
            changed = conn.execute(update(domains).where(domains.c.host == host)
                                   .values(**values)).rowcount
            if not changed:
                conn.execute(insert(domains).values(host=host, created_at=now, **values))
        row = self.get(host)
        assert row is not None
        return row, not changed

    def delete(self, host: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(domains).where(domains.c.host == host)).rowcount > 0


_PUBLIC = (domains.c.host, domains.c.cert_pem, domains.c.subject, domains.c.names,
           domains.c.not_before, domains.c.not_after, domains.c.created_at,
           domains.c.updated_at, domains.c.updated_by)


def _row(r: object) -> DomainRow:
    return DomainRow(r.host, r.cert_pem, r.subject, tuple(json.loads(r.names)),  # type: ignore[attr-defined]
                     r.not_before, r.not_after, r.created_at, r.updated_at, r.updated_by)  # type: ignore[attr-defined]
