"""Metadata queries of the advisory database: write imported records, read them back for
matching (by (ecosystem, name), through the index) and for the API.

Blocking (SQLAlchemy Core): callers on the event loop use `asyncio.to_thread`. `writes`
counts the rows this store wrote, so that tests (and the import summary) can show that a
re-import of unchanged records wrote nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select, tuple_

from moorage.db.schema import advisories, advisory_aliases, advisory_imports, advisory_packages
from moorage.scan.advisories import osv
from moorage.scan.model import Advisory

_A, _P, _L = advisories, advisory_packages, advisory_aliases
BATCH = 400  # keys per IN (...) query: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class Stored:
    """What a re-import compares."""

    modified: str
    content_hash: str


@dataclass(frozen=True)
class Prepared:
    """A checked record, ready to be written."""

    advisory: Advisory
    record: dict[str, Any]
    content_hash: str

    @property
    def ecosystems(self) -> list[str]:
        return sorted({a.ecosystem for a in self.advisory.affected})


class AdvisoryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writes = 0  # rows inserted, updated or deleted by this store

    # -- import ------------------------------------------------------------------------
    def stored(self, ids: Sequence[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), BATCH):
                rows = conn.execute(select(_A.c.id, _A.c.modified, _A.c.content_hash)
                                    .where(_A.c.id.in_(ids[start:start + BATCH])))
                found.update({r.id: Stored(r.modified, r.content_hash) for r in rows})
        return found

    def put(self, records: Sequence[Prepared], replace: set[str]) -> None:
        """Insert `records`, replacing those whose ids are in `replace`, in one transaction."""
        if not records:
            return
        now = time.time()
        with self.engine.begin() as conn:
            ids = [p.advisory.id for p in records if p.advisory.id in replace]
            if ids:
                self.writes += self._delete(conn, ids)[1]
            rows, packages, aliases = [], [], []
            for p in records:
                a = p.advisory
                rows.append({"id": a.id, "modified": a.modified[:64],
                             "content_hash": p.content_hash, "summary": a.summary,
                             "severity_level": a.severity.level,
                             "severity_score": a.severity.score,
                             "severity_vector": a.severity.vector,
                             "ecosystems": ",".join(p.ecosystems),
                             "record": orjson.dumps(p.record).decode(), "imported_at": now})
                keys = {(x.ecosystem, osv.normalize_name(x.ecosystem, x.name))
                        for x in a.affected}
                packages.extend({"advisory_id": a.id, "ecosystem": e, "name": n}
                                for e, n in sorted(keys))
                aliases.extend({"alias": x, "advisory_id": a.id}
                               for x in sorted(set(a.aliases) - {a.id}))
            conn.execute(insert(_A), rows)
            if packages:
                conn.execute(insert(_P), packages)
            if aliases:
                conn.execute(insert(_L), aliases)
            self.writes += len(rows) + len(packages) + len(aliases)

    @staticmethod
    def _delete(conn: Any, ids: Sequence[str]) -> tuple[int, int]:
        """(advisories deleted, rows deleted with their packages and aliases)"""
        count = rows = 0
        for start in range(0, len(ids), BATCH):
            chunk = list(ids[start:start + BATCH])
            for query in (delete(_P).where(_P.c.advisory_id.in_(chunk)),
                          delete(_L).where(_L.c.advisory_id.in_(chunk))):
                rows += conn.execute(query).rowcount or 0
            count += conn.execute(delete(_A).where(_A.c.id.in_(chunk))).rowcount or 0
        return count, count + rows

    def keys_of(self, ids: Sequence[str]) -> set[tuple[str, str]]:
        """The (ecosystem, normalised name) keys the stored records `ids` are filed under:
        what their images were matched by, before an update, withdrawal or removal."""
        found: set[tuple[str, str]] = set()
        ids = list(ids)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), BATCH):
                found.update((r.ecosystem, r.name) for r in conn.execute(
                    select(_P.c.ecosystem, _P.c.name)
                    .where(_P.c.advisory_id.in_(ids[start:start + BATCH]))))
        return found

    def remove(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self.engine.begin() as conn:
            removed, rows = self._delete(conn, ids)
        self.writes += rows
        return removed

    def ids_only_in(self, ecosystems: set[str]) -> list[str]:
        """Advisories every affected ecosystem of which is in `ecosystems` (what a full dump
        of those ecosystems must contain to keep them)."""
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(select(_A.c.id, _A.c.ecosystems)):
                mine = set(filter(None, row.ecosystems.split(",")))
                if mine and mine <= ecosystems:
                    out.append(row.id)
        return out

    def record_import(self, source: str, started: float, summary: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(advisory_imports).values(
                source=source[:1000], started_at=started, finished_at=time.time(),
                summary=json.dumps(summary)))

    # -- matching ----------------------------------------------------------------------
    def advisories_for(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[Advisory]]:
        keys = sorted(set(keys))
        hits: dict[tuple[str, str], list[str]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), BATCH):
                chunk = keys[start:start + BATCH]
                query = (select(_P.c.ecosystem, _P.c.name, _P.c.advisory_id)
                         .where(tuple_(_P.c.ecosystem, _P.c.name).in_(chunk)))
                for row in conn.execute(query):
                    hits.setdefault((row.ecosystem, row.name), []).append(row.advisory_id)
            ids = sorted({i for found in hits.values() for i in found})
            parsed: dict[str, Advisory] = {}
            for start in range(0, len(ids), BATCH):
                for row in conn.execute(select(_A.c.id, _A.c.record)
                                        .where(_A.c.id.in_(ids[start:start + BATCH]))):
                    parsed[row.id] = osv.parse(orjson.loads(row.record))
        return {key: [parsed[i] for i in found if i in parsed] for key, found in hits.items()}

    # -- reading -----------------------------------------------------------------------
    def get(self, ident: str) -> dict[str, Any] | None:
        """The stored record by its id or one of its aliases (the first by id if several)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_A).where(_A.c.id == ident)).first()
            if row is None:
                row = conn.execute(select(_A).join(_L, _L.c.advisory_id == _A.c.id)
                                   .where(_L.c.alias == ident).order_by(_A.c.id)).first()
            if row is None:
                return None
            return {"id": row.id, "modified": row.modified, "summary": row.summary,
                    "severity": {"level": row.severity_level, "score": row.severity_score,
                                 "vector": row.severity_vector},
                    "ecosystems": [e for e in row.ecosystems.split(",") if e],
                    "imported_at": row.imported_at, "record": orjson.loads(row.record)}

    def status(self) -> dict[str, Any]:
        """Advisory counts per ecosystem as records name them ("PyPI", "Debian:12") and the
        last import."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(_A)).scalar() or 0
            counts = {row.ecosystem: row.n for row in conn.execute(
                select(_P.c.ecosystem, func.count(func.distinct(_P.c.advisory_id)).label("n"))
                .group_by(_P.c.ecosystem))}
            last = conn.execute(select(advisory_imports)
                                .order_by(advisory_imports.c.id.desc()).limit(1)).first()
        return {"total": total, "ecosystems": dict(sorted(counts.items())),
                "last_import": None if last is None else {
                    "source": last.source, "started_at": last.started_at,
                    "finished_at": last.finished_at, "summary": json.loads(last.summary)}}


def prepare(record: dict[str, Any]) -> Prepared:
    """Check one record for writing. Raises osv.BadRecord."""
    return Prepared(osv.parse(record), record, osv.content_hash(record))


__all__ = ["AdvisoryStore", "Prepared", "Stored", "prepare"]
