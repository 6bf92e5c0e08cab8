"""The `scanner_adapters` table: registered adapters, and the sealing of their secrets.

The secret Moorage calls an adapter with is sealed with the instance's active master key
(AES-256-GCM, the adapter's name as associated data, so a sealed secret cannot be moved to
another row) when encryption at rest is on; without it, it is stored as is, as private as the
database itself (as webhook secrets are). It leaves this module only towards the adapter:
rows handed to the API say whether there is a secret, never what it is.

Blocking (SQLAlchemy): call from worker threads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from moorage.db.schema import scanner_adapters as _T
from moorage.store import sealed
from moorage.store.keys import Keyring
from moorage.store.sealed import SealError  # noqa: F401 - the service catches it from here


def seal(secret: str, name: str, keyring: Keyring | None) -> bytes:
    """Sealed with the master key (store/sealed.py) when encryption at rest is on; as is
    otherwise."""
    if keyring is None:
        return secret.encode()
    return sealed.seal(secret.encode(), _aad(name), keyring)


def unseal(stored: bytes, name: str, keyring: Keyring | None) -> str:
    if not sealed.is_sealed(stored):
        return stored.decode()
    return sealed.unseal(stored, _aad(name), keyring,
                         f"the secret of scanner adapter {name}").decode()


def _aad(name: str) -> bytes:
    return b"moorage/scanner-adapter-secret\0" + name.encode()


@dataclass(frozen=True)
class AdapterRow:
    name: str
    url: str
    auth_kind: str
    has_secret: bool
    enabled: bool
    metadata: dict[str, Any]
    health: str
    health_detail: str
    checked_at: float
    created_at: float
    updated_at: float
    updated_by: str


_PUBLIC = (_T.c.name, _T.c.url, _T.c.auth_kind, _T.c.auth_secret.isnot(None).label("has_secret"),
           _T.c.enabled, _T.c.metadata, _T.c.health, _T.c.health_detail, _T.c.checked_at,
           _T.c.created_at, _T.c.updated_at, _T.c.updated_by)


def _row(r: Any) -> AdapterRow:
    try:
        meta = json.loads(r.metadata)
    except ValueError:
        meta = {}
    return AdapterRow(r.name, r.url, r.auth_kind, bool(r.has_secret), bool(r.enabled), meta,
                      r.health, r.health_detail, r.checked_at, r.created_at, r.updated_at,
                      r.updated_by)


class AdapterStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self) -> list[AdapterRow]:
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(select(*_PUBLIC).order_by(_T.c.name))]

    def get(self, name: str) -> AdapterRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(*_PUBLIC).where(_T.c.name == name)).first()
        return _row(r) if r else None

    def count(self) -> int:
        return len(self.list())

    def secret(self, name: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(select(_T.c.auth_secret).where(_T.c.name == name)).scalar()

    def add(self, name: str, url: str, auth_kind: str, secret: bytes | None, enabled: bool,
            meta: dict[str, Any], by: str) -> AdapterRow:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(_T).values(
                name=name, url=url, auth_kind=auth_kind, auth_secret=secret, enabled=enabled,
                metadata=json.dumps(meta), health="healthy", health_detail="", checked_at=now,
                created_at=now, updated_at=now, updated_by=by))
        found = self.get(name)
        assert found is not None
        return found

    def change(self, name: str, by: str, **values: Any) -> AdapterRow | None:
        if "metadata" in values:
            values["metadata"] = json.dumps(values["metadata"])
        with self.engine.begin() as conn:
            done = conn.execute(update(_T).where(_T.c.name == name).values(
                updated_at=time.time(), updated_by=by, **values)).rowcount
        return self.get(name) if done else None

    def checked(self, name: str, healthy: bool, detail: str,
                meta: dict[str, Any] | None) -> AdapterRow | None:
        """Record a health check (a ping, or a scan's metadata call): no `updated_*` change."""
        values: dict[str, Any] = {"health": "healthy" if healthy else "unhealthy",
                                  "health_detail": detail[:500], "checked_at": time.time()}
        if meta is not None:
            values["metadata"] = json.dumps(meta)
        with self.engine.begin() as conn:
            conn.execute(update(_T).where(_T.c.name == name).values(**values))
        return self.get(name)

    def delete(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(_T).where(_T.c.name == name)).rowcount)
