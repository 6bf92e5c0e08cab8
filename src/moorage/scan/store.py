"""Queries of scan results: one row per scanned image with its findings and summary, its
packages (indexed by the keys advisories are stored under), and per-namespace settings.

Blocking (SQLAlchemy Core): called from job threads and sync API handlers, never on the
event loop. Rows go with their manifest (ON DELETE CASCADE on `manifests.digest`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, delete, exists, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from moorage.db.schema import (blobs, namespaces, scan_layer_cache, scan_packages,
                               scan_results, scan_settings)
from moorage.scan.advisories.osv import lookup_keys
from moorage.scan.model import LEVELS, Distro, Finding, Inventory, Package
from moorage.scan.report import finding_from_dict, finding_to_dict, package_from_dict

BATCH = 400
MAX_PROBLEMS = 200
_R, _P = scan_results, scan_packages


@dataclass(frozen=True)
class ScanRow:
    digest: str
    repository: str
    platform: str
    status: str
    job_id: int | None
    queued_at: float
    started_at: float | None
    finished_at: float | None
    engines: tuple[str, ...]
    distro: Distro | None
    layers: tuple[str, ...]
    problems: tuple[str, ...]
    findings: list[Finding]
    error: str | None
    summary: dict[str, int]


def _row(r: Any, with_findings: bool = True) -> ScanRow:
    distro = json.loads(r.distro) if r.distro else None
    return ScanRow(
        digest=r.digest, repository=r.repository, platform=r.platform, status=r.status,
        job_id=r.job_id, queued_at=r.queued_at, started_at=r.started_at,
        finished_at=r.finished_at, engines=tuple(e for e in r.engines.split(",") if e),
        distro=Distro(**distro) if distro else None, layers=tuple(json.loads(r.layers)),
        problems=tuple(json.loads(r.problems)),
        findings=[finding_from_dict(d) for d in json.loads(r.findings)] if with_findings
        else [],
        error=r.error, summary={level: getattr(r, level) for level in LEVELS})


def package_key(p: Package) -> tuple[str, str]:
    """(ecosystem, name) as advisories store them, for the package's own ecosystem."""
    return lookup_keys(p.ecosystem, p.advisory_name)[0]


def finding_key(f: Finding) -> tuple[str, str, str, str]:
    """What makes a finding the same across two reports of one image."""
    return (f.id, f.package.kind, f.package.name, f.package.version)


class ScanStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lifecycle of one image's scan ------------------------------------------------
    def queued(self, digest: str, repository: str, platform: str, job_id: int | None) -> None:
        """Mark an image queued, keeping its previous report until the new one is done."""
        now = time.time()
        values = {"repository": repository[:255], "platform": platform[:100],
                  "status": "queued", "job_id": job_id, "queued_at": now}
        with self.engine.begin() as conn:
            done = conn.execute(update(_R).where(_R.c.digest == digest).values(**values))
            if not done.rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(_R).values(digest=digest, **values))
                except IntegrityError:
                    pass  # the manifest is gone (GC) or another worker made the row

    def running(self, digest: str, repository: str, platform: str, job_id: int | None) -> None:
        self.queued(digest, repository, platform, job_id)
        with self.engine.begin() as conn:
            conn.execute(update(_R).where(_R.c.digest == digest)
                         .values(status="running", started_at=time.time(), error=None))

    def failed(self, digest: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_R).where(_R.c.digest == digest).values(
                status="failed", finished_at=time.time(), error=error[:2000]))

    def finish(self, digest: str, inventory: Inventory, engines: Sequence[str],
               findings: Sequence[Finding], problems: Sequence[str],
               summary: dict[str, int], replace_packages: bool = True
               ) -> set[tuple[str, str, str, str]] | None:
        """Store a finished report; returns the finding keys of the report it replaces
        (None when the image had no finished report before)."""
        stored = [finding_to_dict(f) for f in findings]
        for d in stored:
            d["accepted"] = None  # decided at read time (the allowlist)
        with self.engine.begin() as conn:
            old = conn.execute(select(_R.c.findings, _R.c.engines)
                               .where(_R.c.digest == digest)).first()
            if old is None:
                return None  # the manifest went away meanwhile
            previous = None
            if old.engines:  # set only by a finished report
                previous = {finding_key(finding_from_dict(d)) for d in json.loads(old.findings)}
            distro = inventory.distro
            conn.execute(update(_R).where(_R.c.digest == digest).values(
                status="done", finished_at=time.time(), engines=",".join(engines)[:255],
                distro=json.dumps(asdict(distro)) if distro else None,
                layers=json.dumps(list(inventory.layers)),
                problems=json.dumps(list(problems)[:MAX_PROBLEMS]),
                findings=json.dumps(stored), error=None, **summary))
            if replace_packages:
                conn.execute(delete(_P).where(_P.c.digest == digest))
                rows = []
                for p in inventory.packages:
                    ecosystem, name = package_key(p)
                    rows.append({"digest": digest, "ecosystem": ecosystem[:100],
                                 "base": ecosystem.split(":", 1)[0][:100], "name": name[:512],
                                 "data": json.dumps(asdict(p))})
                for start in range(0, len(rows), BATCH):
                    conn.execute(insert(_P), rows[start:start + BATCH])
        return previous

    # -- reading ------------------------------------------------------------------------
    def get(self, digest: str) -> ScanRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(_R).where(_R.c.digest == digest)).first()
        return _row(r) if r is not None else None

    def summaries(self, digests: Iterable[str]) -> dict[str, ScanRow]:
        """Rows without their findings, for listings."""
        wanted = sorted(set(digests))
        out: dict[str, ScanRow] = {}
        cols = [c for c in _R.c if c.name != "findings"]
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), BATCH):
                for r in conn.execute(select(*cols).where(
                        _R.c.digest.in_(wanted[start:start + BATCH]))):
                    out[r.digest] = _row(_WithoutFindings(r), with_findings=False)
        return out

    def findings_holding(self, digests: Sequence[str], ids: Iterable[str]
                         ) -> dict[str, list[Finding]]:
        """The findings of those rows whose stored findings mention one of `ids` (compared
        in upper case, as allowlist ids are): one query per batch of digests, and only the
        rows that may hold one are parsed. (A listing recounts those rows at read time.)"""
        wanted = sorted(set(digests))
        keys = [i.upper() for i in ids if i]
        out: dict[str, list[Finding]] = {}
        if not keys:
            return out
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), BATCH):
                for r in conn.execute(select(_R.c.digest, _R.c.findings).where(
                        _R.c.digest.in_(wanted[start:start + BATCH]))):
                    text = (r.findings or "").upper()
                    if any(k in text for k in keys):
                        out[r.digest] = [finding_from_dict(d) for d in json.loads(r.findings)]
        return out

    def inventory(self, digest: str) -> Inventory | None:
        """The stored inventory of a scanned image: a rescan reads no layer."""
        row = self.get(digest)
        if row is None or row.finished_at is None:
            return None
        with self.engine.connect() as conn:
            packages = tuple(package_from_dict(json.loads(r.data)) for r in conn.execute(
                select(_P.c.data).where(_P.c.digest == digest).order_by(_P.c.id)))
        return Inventory(row.distro, packages, row.layers, ())

    def package_count(self, digest: str) -> int:
        """How many packages a scanned image holds (an index count, no row parsed)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_P)
                                    .where(_P.c.digest == digest)).scalar_one())

    def images_holding(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """(digest, repository) of the scanned images holding a package stored under any of
        these (ecosystem, normalised name) keys: index lookups, no scan of the table."""
        keys = sorted(set(keys))
        full = [k for k in keys if ":" in k[0]]
        bare = [k for k in keys if ":" not in k[0]]
        found: set[str] = set()
        with self.engine.connect() as conn:
            for column, chosen in ((_P.c.ecosystem, full), (_P.c.base, bare)):
                for start in range(0, len(chosen), BATCH):
                    chunk = chosen[start:start + BATCH]
                    found.update(r.digest for r in conn.execute(
                        select(_P.c.digest).distinct()
                        .where(tuple_(column, _P.c.name).in_(chunk))))
            wanted = sorted(found)
            out = []
            for start in range(0, len(wanted), BATCH):
                out.extend((r.digest, r.repository) for r in conn.execute(
                    select(_R.c.digest, _R.c.repository)
                    .where(_R.c.digest.in_(wanted[start:start + BATCH]))))
        return sorted(out)

    def layers_gone(self, limit: int = 10_000) -> list[str]:
        """Layer digests the per-layer cache holds whose blob is no longer stored."""
        cache = scan_layer_cache.c
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(cache.digest).where(~exists().where(blobs.c.digest == cache.digest))
                .limit(limit))]

    # -- per-namespace settings ---------------------------------------------------------
    def scan_on_push(self, namespace: str, default: bool = True) -> bool:
        with self.engine.connect() as conn:
            value = conn.execute(select(scan_settings.c.scan_on_push)
                                 .join(namespaces, namespaces.c.id == scan_settings.c.namespace_id)
                                 .where(namespaces.c.name == namespace)).scalar()
        return default if value is None else bool(value)

    def set_scan_on_push(self, namespace: str, on: bool, actor: str) -> bool:
        """False when the namespace does not exist."""
        with self.engine.begin() as conn:
            ns = conn.execute(select(namespaces.c.id).where(namespaces.c.name == namespace)
                              ).scalar()
            if ns is None:
                return False
            values = {"scan_on_push": on, "updated_at": time.time(), "updated_by": actor[:255]}
            if not conn.execute(update(scan_settings).where(
                    scan_settings.c.namespace_id == ns).values(**values)).rowcount:
                conn.execute(insert(scan_settings).values(namespace_id=ns, **values))
        return True


class _WithoutFindings:
    """A row read without its findings column, shaped as _row expects."""

    def __init__(self, r: Any) -> None:
        self._r = r
        self.findings = "[]"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._r, name)


__all__ = ["ScanRow", "ScanStore", "finding_key", "package_key"]
