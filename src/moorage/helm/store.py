"""The chart metadata tables: one row per chart version, one generation per namespace.

Every write to a namespace's rows changes its generation in the same transaction, so that a
worker's cached index.yaml (index.py) is served only while nothing has changed, on any
worker or replica: reading the generation is one indexed single-row query, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from moorage.db.rawreads import RawReader
from moorage.db.schema import helm_charts, helm_index_state
from moorage.helm.chart import ChartMeta


_GENERATION_SQL = "SELECT generation FROM helm_index_state WHERE namespace = ?"


@dataclass(frozen=True)
class ChartRow:
    namespace: str
    name: str
    version: str
    repository: str
    manifest_digest: str
    chart_digest: str
    chart_size: int
    prov_digest: str | None
    api_version: str
    app_version: str
    description: str
    icon: str
    keywords: list[str]
    maintainers: list[dict[str, Any]]
    dependencies: list[dict[str, Any]]
    metadata: dict[str, Any]
    created: float

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"


def _row(r: Any) -> ChartRow:
    return ChartRow(r.namespace, r.name, r.version, r.repository, r.manifest_digest,
                    r.chart_digest, int(r.chart_size), r.prov_digest, r.api_version,
                    r.app_version or "", r.description or "", r.icon or "",
                    json.loads(r.keywords or "[]"), json.loads(r.maintainers or "[]"),
                    json.loads(r.dependencies or "[]"), json.loads(r.metadata or "{}"),
                    float(r.created))


class ChartStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes (each changes the namespace's generation) --------------------------------
    def _bump(self, conn: Connection, namespace: str) -> None:
        generation = os.urandom(8).hex()
        now = time.time()
        done = conn.execute(update(helm_index_state)
                            .where(helm_index_state.c.namespace == namespace)
                            .values(generation=generation, updated_at=now)).rowcount
        if not done:
            conn.execute(insert(helm_index_state).values(namespace=namespace,
                                                         generation=generation, updated_at=now))

    def put(self, namespace: str, repository: str, meta: ChartMeta, manifest_digest: str,
            chart: tuple[str, int], prov_digest: str | None, created: float) -> None:
        values = dict(repository=repository, manifest_digest=manifest_digest,
                      chart_digest=chart[0], chart_size=chart[1], prov_digest=prov_digest,
                      api_version=meta.api_version, app_version=meta.app_version[:255],
                      description=meta.description, icon=meta.icon,
                      keywords=json.dumps(meta.keywords),
                      maintainers=json.dumps(meta.maintainers, default=str),
                      dependencies=json.dumps(meta.dependencies, default=str),
                      metadata=json.dumps(meta.raw, default=str), created=created)
        key = and_(helm_charts.c.namespace == namespace, helm_charts.c.name == meta.name,
                   helm_charts.c.version == meta.version)
        with self.engine.begin() as conn:
            current = conn.execute(select(helm_charts.c.manifest_digest).where(key)).first()
            if current is not None and current[0] == manifest_digest:
                return  # the same manifest pushed again (another tag, a retry): no change
            if current is None:
                conn.execute(insert(helm_charts).values(namespace=namespace, name=meta.name,
                                                        version=meta.version, **values))
            else:
                conn.execute(update(helm_charts).where(key).values(**values))
            self._bump(conn, namespace)

    def remove(self, namespace: str, keys: Iterable[tuple[str, str]]) -> int:
        """Drop (name, version) rows of a namespace."""
        gone = 0
        with self.engine.begin() as conn:
            for name, version in keys:
                gone += conn.execute(delete(helm_charts).where(
                    helm_charts.c.namespace == namespace, helm_charts.c.name == name,
                    helm_charts.c.version == version)).rowcount
            if gone:
                self._bump(conn, namespace)
        return gone

    # -- reads --------------------------------------------------------------------------
    def generation(self, namespace: str) -> str:
        """Read on every index request: on SQLite, answered from memory until the next
        commit on the database by any process (db/rawreads.py); a plain indexed lookup on
        PostgreSQL."""
        value = RawReader.of(self.engine).cached_value(_GENERATION_SQL, (namespace,))
        return str(value) if value else "empty"

    def namespace_rows(self, namespace: str) -> list[ChartRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(helm_charts).where(helm_charts.c.namespace == namespace)
                                .order_by(helm_charts.c.name)).all()
        return [_row(r) for r in rows]

    def chart_rows(self, namespace: str, name: str) -> list[ChartRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(helm_charts).where(
                helm_charts.c.namespace == namespace, helm_charts.c.name == name)).all()
        return [_row(r) for r in rows]

    def repository_rows(self, repository: str) -> list[ChartRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(helm_charts).where(
                helm_charts.c.repository == repository)).all()
        return [_row(r) for r in rows]

    def one(self, namespace: str, name: str, version: str) -> ChartRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(helm_charts).where(
                helm_charts.c.namespace == namespace, helm_charts.c.name == name,
                helm_charts.c.version == version)).first()
        return _row(row) if row is not None else None

    def has_repository(self, repository: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(helm_charts.c.version).where(
                helm_charts.c.repository == repository).limit(1)).first() is not None

    def has_namespace(self, namespace: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(helm_charts.c.version).where(
                helm_charts.c.namespace == namespace).limit(1)).first() is not None

    def counts(self) -> tuple[int, int]:
        """(namespaces with charts, chart repositories) on the instance: the quotas' use."""
        with self.engine.connect() as conn:
            spaces = conn.execute(select(func.count(func.distinct(helm_charts.c.namespace))))\
                .scalar() or 0
            repos = conn.execute(select(func.count(func.distinct(helm_charts.c.repository))))\
                .scalar() or 0
        return int(spaces), int(repos)

    def namespaces(self) -> list[tuple[str, int, int]]:
        """(namespace, charts, versions) for every namespace with charts."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(helm_charts.c.namespace,
                                       func.count(func.distinct(helm_charts.c.name)),
                                       func.count()).group_by(helm_charts.c.namespace)
                                .order_by(helm_charts.c.namespace)).all()
        return [(r[0], int(r[1]), int(r[2])) for r in rows]
