"""The chart metadata tables: one row per chart version, one generation per namespace.

Every write to a namespace's rows changes its generation in the same transaction, so that a
worker's cached index.yaml (index.py) is served only while nothing has changed, on any
worker or replica: reading the generation is one indexed single-row query, on SQLite and
PostgreSQL alike.

Claims (`helm_claims`) make the chart quotas and "one upload per new version" hold on many
workers and replicas: a claim on a chart version is written in its own transaction before the
push, and that transaction counts the chart repositories and namespaces in use (rows and
claims) after its own insert, under a table lock on PostgreSQL and SQLite's single writer,
and rolls back past a quota. Two uploads of distinct new charts cannot both take the last
place, and two uploads of one version cannot both hold its claim (the primary key).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Connection, Engine, and_, delete, exists, func, insert, select, text,
                        union, update)
from sqlalchemy.exc import IntegrityError

from moorage.db.rawreads import RawReader
from moorage.db.schema import helm_charts, helm_claims, helm_index_state
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


class VersionClaimed(Exception):
    """Another upload holds the claim on this chart version right now."""


class QuotaReached(Exception):
    """A claim would pass a chart quota: which one, and how many are in use without it."""

    def __init__(self, quota: str, in_use: int) -> None:
        super().__init__(quota, in_use)
        self.quota = quota
        self.in_use = in_use


@dataclass(frozen=True)
class Claim:
    namespace: str
    name: str
    version: str
    owner: str


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
            # the version is a row now: its claim (an upload's or a push's) has done its work
            conn.execute(delete(helm_claims).where(
                helm_claims.c.namespace == namespace, helm_claims.c.name == meta.name,
                helm_claims.c.version == meta.version))
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

    # -- claims -------------------------------------------------------------------------
    def claim(self, namespace: str, name: str, version: str, repository: str,
              quotas: dict[str, int | None], ttl: float) -> Claim:
        """Claim a chart version for `ttl` seconds, atomically with the quotas' check
        (`helm_namespaces`, `helm_repositories`: None is unlimited). Raises VersionClaimed
        when another upload holds it, QuotaReached (and writes nothing) past a quota."""
        owner = os.urandom(8).hex()
        now = time.time()
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # waits for a concurrent claim's commit
                    conn.execute(text("LOCK TABLE helm_claims IN SHARE ROW EXCLUSIVE MODE"))
                # SQLite: this write is the transaction's first statement, so it takes the one
                # writer's lock before anything is read, and what follows reads the latest
                conn.execute(delete(helm_claims).where(helm_claims.c.expires_at < now))
                conn.execute(insert(helm_claims).values(
                    namespace=namespace, name=name, version=version, repository=repository,
                    owner=owner, expires_at=now + ttl))
                self._check_quotas(conn, namespace, name, version, repository, quotas)
        except IntegrityError:
            raise VersionClaimed(f"{name}-{version}") from None
        return Claim(namespace, name, version, owner)

    def _check_quotas(self, conn: Connection, namespace: str, name: str, version: str,
                      repository: str, quotas: dict[str, int | None]) -> None:
        """After the claim's insert, in its transaction: is what it adds within the quotas?"""
        c = helm_claims.c
        others = ~and_(c.namespace == namespace, c.name == name, c.version == version)
        for quota, column, value in (("helm_namespaces", "namespace", namespace),
                                     ("helm_repositories", "repository", repository)):
            limit = quotas.get(quota)
            if limit is None:
                continue
            known = conn.execute(select(
                exists().where(helm_charts.c[column] == value)
                | exists().where(c[column] == value, others))).scalar()
            if known:
                continue
            in_use = conn.execute(select(func.count()).select_from(union(
                select(helm_charts.c[column]), select(c[column])).subquery())).scalar_one()
            if int(in_use) > limit:  # in_use counts this claim
                raise QuotaReached(quota, int(in_use) - 1)

    def release(self, claim: Claim) -> None:
        """Drop a claim (an upload done or refused); gone already once its row is written."""
        with self.engine.begin() as conn:
            conn.execute(delete(helm_claims).where(
                helm_claims.c.namespace == claim.namespace, helm_claims.c.name == claim.name,
                helm_claims.c.version == claim.version, helm_claims.c.owner == claim.owner))

    def repository_known(self, repository: str) -> bool:
        """A chart repository with versions, or one being uploaded to (claimed)."""
        with self.engine.connect() as conn:
            return bool(conn.execute(select(
                exists().where(helm_charts.c.repository == repository)
                | exists().where(helm_claims.c.repository == repository))).scalar())

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
