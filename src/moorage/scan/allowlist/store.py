"""The `cve_allowlist` table: entries per namespace, on SQLite and PostgreSQL alike
(SQLAlchemy Core). Ids compare without regard to case: adding "ghsa-…" when "GHSA-…" is listed
replaces that entry rather than listing the advisory twice.

Sync methods for the API's handlers (FastAPI runs them in its thread pool); `entries_for` is
the async face the scan service awaits, run in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.access.errors import Invalid, NotFound
from moorage.db.schema import cve_allowlist, namespaces
from moorage.scan.allowlist import MAX_ENTRIES, AllowlistEntry, id_key

_COLUMNS = (namespaces.c.name, cve_allowlist.c.advisory_id, cve_allowlist.c.reason,
            cve_allowlist.c.expires_at, cve_allowlist.c.created_at, cve_allowlist.c.created_by)


def _moment(stamp: float | None) -> datetime | None:
    if stamp is None:
        return None
    try:
        return datetime.fromtimestamp(stamp, timezone.utc)
    except (OverflowError, OSError, ValueError):  # out of datetime's range: never expires
        return datetime.max.replace(tzinfo=timezone.utc)


def _entry(row: object) -> AllowlistEntry:
    r = row
    return AllowlistEntry(namespace=r.name, id=r.advisory_id,  # type: ignore[attr-defined]
                          reason=r.reason, expires_at=_moment(r.expires_at),  # type: ignore[attr-defined]
                          created_at=_moment(r.created_at),  # type: ignore[attr-defined,arg-type]
                          created_by=r.created_by)  # type: ignore[attr-defined]


def _present(conn: Any, namespace_id: int, key: str) -> tuple[int, str | None]:
    """How many entries the namespace has, and the stored spelling of `key`'s id if listed
    (at most MAX_ENTRIES rows: ids compare without regard to case, on both databases)."""
    present = [r.advisory_id for r in conn.execute(
        select(cve_allowlist.c.advisory_id).where(cve_allowlist.c.namespace_id == namespace_id))]
    return len(present), next((p for p in present if id_key(p) == key), None)


class AllowlistStore:
    def __init__(self, engine: Engine, limit: int = MAX_ENTRIES) -> None:
        self.engine = engine
        self.limit = limit

    def _select(self):  # type: ignore[no-untyped-def]
        return (select(*_COLUMNS)
                .join(namespaces, namespaces.c.id == cve_allowlist.c.namespace_id))

    def list(self, namespace_id: int) -> list[AllowlistEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._select()
                                .where(cve_allowlist.c.namespace_id == namespace_id)
                                .order_by(cve_allowlist.c.advisory_id)).all()
        return [_entry(r) for r in rows]

    def by_namespace_name(self, namespace: str) -> list[AllowlistEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._select().where(namespaces.c.name == namespace)
                                .order_by(cve_allowlist.c.advisory_id)).all()
        return [_entry(r) for r in rows]

    async def entries_for(self, namespace: str) -> list[AllowlistEntry]:
        """The namespace's entries, expired ones included (apply_allowlist skips them)."""
        return await asyncio.to_thread(self.by_namespace_name, namespace)

    def put(self, namespace_id: int, ident: str, reason: str, expires_at: datetime | None,
            by: str) -> tuple[AllowlistEntry, bool]:
        """Add an entry, or replace the one for the same advisory; (entry, created). Refused
        when the namespace already holds `limit` entries. Two requests adding the same id at
        once: the second finds the first's row on its retry and replaces it."""
        try:
            return self._put(namespace_id, ident, reason, expires_at, by)
        except IntegrityError:
            try:
                return self._put(namespace_id, ident, reason, expires_at, by)
            except IntegrityError:  # the namespace went away meanwhile
                raise NotFound("the namespace no longer exists") from None

    def _put(self, namespace_id: int, ident: str, reason: str, expires_at: datetime | None,
             by: str) -> tuple[AllowlistEntry, bool]:
        key = id_key(ident)
        values = dict(reason=reason, created_at=time.time(), created_by=by[:255],
                      expires_at=None if expires_at is None else expires_at.timestamp())
        mine = cve_allowlist.c.namespace_id == namespace_id
        with self.engine.begin() as conn:
            present, same = _present(conn, namespace_id, key)
            if same is None:
                if present >= self.limit:
                    raise Invalid(f"a namespace's CVE allowlist holds at most {self.limit} "
                                  f"entries; remove some first")
                conn.execute(insert(cve_allowlist).values(
                    namespace_id=namespace_id, advisory_id=ident, **values))
            else:
                conn.execute(update(cve_allowlist)
                             .where(mine, cve_allowlist.c.advisory_id == same)
                             .values(advisory_id=ident, **values))
            row = conn.execute(self._select().where(
                mine, cve_allowlist.c.advisory_id == ident)).one()
        return _entry(row), same is None

    def delete(self, namespace_id: int, ident: str) -> bool:
        mine = cve_allowlist.c.namespace_id == namespace_id
        with self.engine.begin() as conn:
            same = _present(conn, namespace_id, id_key(ident))[1]
            if same is None:
                return False
            conn.execute(delete(cve_allowlist).where(mine, cve_allowlist.c.advisory_id == same))
        return True

    def count(self, namespace_id: int) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(cve_allowlist)
                                    .where(cve_allowlist.c.namespace_id == namespace_id))
                       .scalar_one())
