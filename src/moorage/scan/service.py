"""The scan service: scan jobs on the durable queue, scan on push, rescans after an advisory
import, the events a scan announces, and what the API and CLI read.

- `scan.image` (a manifest: an image, or each platform of an index): inventory from the
  layers (per-layer cache), every engine's findings merged, the report stored with the
  packages, an SBOM attached as a referrer, `scan.completed` and `vulnerability.new`
  announced on the bus (webhooks and the audit log take them from there).
- `scan.rescan` (one stored image): the stored packages matched again, no layer read; what
  an advisory import enqueues for every image holding a package whose advisories changed.

Job handlers run in the worker's threads (jobs/worker.py), so the blocking inventory and
matching never touch the event loop; engines are async (`Engine`) and run on a private loop
of that thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine as SqlEngine

from moorage.access.editions import Edition
from moorage.jobs.queue import JobQueue
from moorage.jobs.worker import JobContext, JobType, Worker
from moorage.oci import mediatypes as mt
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of
from moorage.registry.events import Event
from moorage.registry.service import Registry
from moorage.scan.engines.base import Engine, ScanTarget
from moorage.scan.model import Finding, Inventory, ScanProblems
from moorage.scan.report import ReadStep, merge_findings, report_for, summarize
from moorage.scan.store import ScanRow, ScanStore, finding_key

log = logging.getLogger("moorage.scan")

SCAN_JOB = "scan.image"
RESCAN_JOB = "scan.rescan"
ACTOR = "moorage-scanner"
MAX_NEW_LISTED = 100  # findings named in one vulnerability.new event
MAX_PLATFORMS = 64
IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, "application/vnd.docker.container.image.v1+json"})


@dataclass(frozen=True)
class ImageRef:
    digest: str
    platform: str


def images_of(content: bytes, digest: str) -> list[ImageRef] | None:
    """The images a manifest is: itself, or the platforms of an index (attestations left
    out). None when it is not an image (an artifact, an SBOM, a signature)."""
    try:
        doc = json.loads(content)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("mediaType") in mt.INDEXES or ("manifests" in doc and "config" not in doc):
        out = []
        for child in (doc.get("manifests") or [])[:MAX_PLATFORMS * 2]:
            if not isinstance(child, dict) or not isinstance(child.get("digest"), str):
                continue
            plat = child.get("platform") if isinstance(child.get("platform"), dict) else {}
            notes = child.get("annotations") if isinstance(child.get("annotations"),
                                                         dict) else {}
            if plat.get("os") == "unknown" or \
                    notes.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            if child.get("mediaType") in mt.INDEXES:
                continue
            name = "/".join(str(plat[k])[:30] for k in ("os", "architecture", "variant")
                            if isinstance(plat.get(k), str) and plat.get(k))
            out.append(ImageRef(child["digest"], name))
        return out[:MAX_PLATFORMS] or None
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    if config.get("mediaType") not in IMAGE_CONFIGS or doc.get("artifactType"):
        return None
    return [ImageRef(digest, "")]


@dataclass
class ScanService:
    """Wired by `install`; the API and CLI reach scans through it.

    Where the rest of issue 16 plugs in:
    - `engines`: registered Harbor scanner adapters are appended as further `Engine`s
      (`harbor:<name>`); every scan and rescan runs them all and merges their findings.
    - `read_steps`: the CVE allowlist (`apply_allowlist`) as a step of the read path
      (`report_for`), so an entry's expiry shows without a rescan.
    - fix plans: `report()` gives an image's stored rows and `store.inventory(digest)` its
      packages, what `fix_plan(findings, inventory)` needs for `GET …/fixes`.
    """

    registry: Registry
    store: ScanStore
    worker: Worker
    edition: Edition
    engines: list[Engine]
    # the read path (report.report_for): the allowlist goes here
    read_steps: list[ReadStep] = field(default_factory=list)
    attach_sboms: bool = True
    on_push_default: bool = True  # for namespaces without a choice of their own

    @property
    def bus(self) -> Any:
        return self.registry.bus

    # -- requests ---------------------------------------------------------------------
    def request(self, repository: str, reference: str, tag: str | None = None) -> int:
        """Queue a scan of what `reference` names in `repository`; the job's id (the one
        already waiting, when there is one)."""
        digest = self.registry.resolve(repository, reference)
        stored = self.registry.db.manifest(digest)
        images = images_of(stored.content, digest) if stored is not None else None
        if images is None:
            raise RegistryError("MANIFEST_INVALID", f"{repository}@{digest} is not an image "
                                                    "or an index of images: nothing to scan")
        if tag is None and reference != digest:
            tag = reference
        job_id = self.worker.enqueue(SCAN_JOB, {"repository": repository, "digest": digest,
                                                "tag": tag}, dedupe_key=f"scan:{digest}")
        if job_id is None:  # one is waiting already
            row = self.store.get(images[0].digest)
            job_id = row.job_id if row is not None and row.job_id is not None else 0
        for image in images:
            self.store.queued(image.digest, repository, image.platform, job_id)
        return job_id

    def on_event(self, event: Event) -> None:
        """Bus handler: a push of a tag queues a scan when its namespace scans on push.
        (Children of an index pushed by digest are scanned with their index.) After a
        garbage collection, the per-layer cache forgets the layers no longer stored (the
        reports went with their manifests: ON DELETE CASCADE)."""
        if event.action == "gc" and event.result == "success":
            self._forget_layers()
            return
        if event.action != "push" or not event.tag or not event.repository or \
                event.result != "success" or event.media_type not in mt.MANIFEST_TYPES:
            return
        try:
            if not self.store.scan_on_push(namespace_of(event.repository),
                                           self.on_push_default):
                return
            self.request(event.repository, event.digest or event.tag, event.tag)
        except Exception:  # never fail a push because a scan could not be queued
            log.exception("could not queue the scan of %s@%s", event.repository, event.digest)

    def _forget_layers(self) -> None:
        from moorage.scan.inventory import SqlLayerCache

        try:
            gone = self.store.layers_gone()
            if gone:
                SqlLayerCache(self.registry.db.engine).forget(gone)
        except Exception:  # noqa: BLE001 - a cache row too many costs a little space only
            log.exception("could not drop the cached results of deleted layers")

    # -- jobs -------------------------------------------------------------------------
    def scan_job(self, ctx: JobContext) -> dict[str, Any]:
        from moorage.scan.inventory import InventoryError, SqlLayerCache, inventory_of

        repository = str(ctx.payload["repository"])
        digest = str(ctx.payload["digest"])
        tag = ctx.payload.get("tag")
        stored = self.registry.db.manifest(digest)
        images = images_of(stored.content, digest) if stored is not None else None
        if not images:
            ctx.log(f"{digest} is gone or is not an image: nothing to scan")
            return {"skipped": "not an image"}
        cache = SqlLayerCache(self.registry.db.engine)

        def manifest_bytes(d: str) -> bytes | None:
            found = self.registry.db.manifest(d)
            return found.content if found is not None else None

        results = {}
        total = len(images) * 3
        for n, image in enumerate(images):
            where = image.platform or "image"
            self.store.running(image.digest, repository, image.platform, ctx.job.id)
            ctx.progress(n * 3, total, f"{where}: reading layers")
            ctx.log(f"{where} {image.digest}: reading layers")
            try:
                inventory = inventory_of(self.registry.store, image.digest,
                                         manifests=manifest_bytes, cache=cache)
            except InventoryError as exc:
                self.store.failed(image.digest, str(exc))
                ctx.log(f"{where}: cannot be inventoried: {exc}")
                results[image.digest] = {"platform": image.platform, "status": "failed",
                                         "error": str(exc)[:500]}
                continue
            ctx.check()
            ctx.log(f"{where}: {len(inventory.packages)} packages in "
                    f"{len(inventory.layers)} layers; matching")
            if self.attach_sboms:  # before the report is done: a reader then finds both
                ctx.progress(n * 3 + 1, total, f"{where}: SBOM")
                self._attach_sbom(ctx, repository, image, inventory)
            ctx.progress(n * 3 + 2, total, f"{where}: matching {len(inventory.packages)} "
                                           "packages")
            summary = self._report(ctx, repository, image, inventory, tag, fresh=True)
            results[image.digest] = {"platform": image.platform, "status": "done",
                                     "summary": summary}
        ctx.progress(total, total, "done")
        overall = dict.fromkeys(("critical", "high", "medium", "low", "unknown"), 0)
        for r in results.values():
            for level, count in r.get("summary", {}).items():
                overall[level] += count
        self.bus.publish(Event("scan.completed", repository, digest, tag=tag, actor=ACTOR,
                               address="", detail={
                                   "summary": overall,
                                   "images": [{"digest": d, **r} for d, r in results.items()]}))
        return {"repository": repository, "digest": digest, "summary": overall,
                "images": results}

    def rescan_job(self, ctx: JobContext) -> dict[str, Any]:
        digest = str(ctx.payload["digest"])
        row = self.store.get(digest)
        inventory = self.store.inventory(digest)
        if row is None or inventory is None:
            ctx.log(f"{digest} has no stored report (deleted, or never scanned)")
            return {"skipped": "no stored report"}
        ctx.log(f"{row.repository}@{digest}: matching {len(inventory.packages)} stored "
                "packages again (no layer is read)")
        self.store.running(digest, row.repository, row.platform, ctx.job.id)
        summary = self._report(ctx, row.repository, ImageRef(digest, row.platform),
                               inventory, None, fresh=False, problems=row.problems)
        self.bus.publish(Event("scan.completed", row.repository, digest, actor=ACTOR,
                               address="", detail={"summary": summary, "rescan": True,
                                                   "platform": row.platform}))
        return {"repository": row.repository, "digest": digest, "summary": summary}

    def _report(self, ctx: JobContext, repository: str, image: ImageRef,
                inventory: Inventory, tag: str | None, *, fresh: bool,
                problems: Sequence[str] = ()) -> dict[str, int]:
        target = ScanTarget(repository, image.digest, image.platform, inventory)
        found, engine_problems = asyncio.run(self._run_engines(target))
        ctx.check()
        findings = merge_findings(found)
        all_problems = ScanProblems()
        for p in (*(inventory.problems if fresh else problems), *engine_problems):
            all_problems.add(p)
        summary = summarize(findings)
        previous = self.store.finish(image.digest, inventory, [e.name for e in self.engines],
                                     findings, all_problems.as_tuple(), summary,
                                     replace_packages=fresh)
        ctx.log(f"{image.platform or 'image'}: {len(findings)} findings "
                f"({', '.join(f'{v} {k}' for k, v in summary.items() if v) or 'none'}); "
                f"{len(all_problems.as_tuple())} problems")
        if previous is not None:
            new = [f for f in findings if finding_key(f) not in previous]
            if new:
                self._announce_new(repository, image, tag, new)
        return summary

    async def _run_engines(self, target: ScanTarget) -> tuple[list[list[Finding]], list[str]]:
        async def one(engine: Engine) -> list[Finding] | str:
            try:
                return await engine.findings(target)
            except Exception as exc:  # an engine's failure is a problem of the report
                log.warning("engine %s failed on %s: %s", engine.name, target.digest, exc)
                return f"engine {engine.name} failed: {type(exc).__name__}: {exc}"[:500]

        outcomes = await asyncio.gather(*(one(e) for e in self.engines))
        return ([o for o in outcomes if not isinstance(o, str)],
                [o for o in outcomes if isinstance(o, str)])

    def _announce_new(self, repository: str, image: ImageRef, tag: str | None,
                      new: list[Finding]) -> None:
        listed = [{"id": f.id, "aliases": list(f.aliases[:10]), "package": f.package.name,
                   "version": f.package.version, "severity": f.severity.level,
                   "fixed_versions": list(f.fixed_versions[:10])}
                  for f in new[:MAX_NEW_LISTED]]
        self.bus.publish(Event("vulnerability.new", repository, image.digest, tag=tag,
                               actor=ACTOR, address="", detail={
                                   "platform": image.platform, "count": len(new),
                                   "findings": listed,
                                   "truncated": len(new) > MAX_NEW_LISTED}))

    def _attach_sbom(self, ctx: JobContext, repository: str, image: ImageRef,
                     inventory: Inventory) -> None:
        from moorage.scan.sbom import ImageRef as SbomImage
        from moorage.scan.sbom import attach_sbom, cyclonedx_document

        try:
            document = cyclonedx_document(inventory, SbomImage(repository, image.digest,
                                                               image.platform))
            asyncio.run(attach_sbom(self.registry, repository, image.digest, document,
                                    "cyclonedx"))
        except Exception as exc:  # noqa: BLE001 - the report stands without its SBOM
            ctx.log(f"the SBOM could not be attached: {type(exc).__name__}: {exc}")

    # -- reading ------------------------------------------------------------------------
    def report(self, repository: str, reference: str) -> tuple[str, list[tuple[ImageRef,
                                                                             ScanRow | None]]]:
        """The digest a reference names and each of its images' stored rows."""
        digest = self.registry.resolve(repository, reference)
        stored = self.registry.db.manifest(digest)
        images = images_of(stored.content, digest) if stored is not None else None
        if images is None:
            raise RegistryError("MANIFEST_INVALID", f"{repository}@{digest} is not an image "
                                                    "or an index of images")
        return digest, [(i, self.store.get(i.digest)) for i in images]

    def shown(self, repository: str, row: ScanRow) -> tuple[list[Finding], dict[str, int]]:
        """A stored report as it is shown now (the read steps applied)."""
        return report_for(namespace_of(repository), row.findings, self.read_steps)

    def tag_summaries(self, tags: Iterable[tuple[str, Sequence[str]]]
                      ) -> dict[str, dict[str, Any]]:
        """For each (digest, child digests) of a tag listing: status and counts, or absent
        when never scanned. Stored counts (the allowlist applies when a report is read)."""
        tags = list(tags)
        wanted = {d for digest, children in tags for d in (children or [digest])}
        rows = self.store.summaries(wanted)
        out: dict[str, dict[str, Any]] = {}
        for digest, children in tags:
            mine = [rows[d] for d in (children or [digest]) if d in rows]
            if not mine:
                continue
            counts = dict.fromkeys(("critical", "high", "medium", "low", "unknown"), 0)
            for r in mine:
                for level, n in r.summary.items():
                    counts[level] += n
            statuses = {r.status for r in mine}
            status = next(s for s in ("running", "queued", "failed", "done") if s in statuses)
            out[digest] = {"status": status, **counts}
        return out


def enqueue_rescans(engine: SqlEngine, keys: Iterable[tuple[str, str]],
                    timeout_seconds: int = 1800) -> int:
    """Queue a `scan.rescan` for every stored image holding a package under these
    (ecosystem, name) keys, straight into the durable queue (the advisory import runs
    outside the server; its workers pick the jobs up). Returns how many were queued."""
    queue = JobQueue(engine)
    queued = 0
    for digest, repository in ScanStore(engine).images_holding(keys):
        if queue.enqueue(RESCAN_JOB, {"digest": digest, "repository": repository},
                         timeout_seconds=timeout_seconds, max_attempts=3,
                         dedupe_key=f"rescan:{digest}") is not None:
            queued += 1
    return queued


def install(registry: Registry, worker: Worker, edition: Edition, *, concurrency: int,
            timeout_seconds: int, on_push: bool = True,
            engines: list[Engine] | None = None) -> ScanService:
    """Wire scanning in (app.py calls this only when the edition has it): the job types,
    the push subscription, and the engines. The built-in OSV engine is always first;
    registered Harbor adapters are appended to `engines` by their install."""
    from moorage.scan.advisories.store import AdvisoryStore
    from moorage.scan.engines.base import OsvEngine

    db_engine = registry.db.engine
    chosen: list[Engine] = [OsvEngine(AdvisoryStore(db_engine))]
    chosen.extend(engines or [])
    service = ScanService(registry, ScanStore(db_engine), worker, edition, chosen,
                          on_push_default=on_push)
    worker.register(JobType(SCAN_JOB, service.scan_job, concurrency=concurrency,
                            timeout_seconds=timeout_seconds, max_attempts=2))
    worker.register(JobType(RESCAN_JOB, service.rescan_job, concurrency=concurrency,
                            timeout_seconds=timeout_seconds, max_attempts=3))
    registry.bus.subscribe(service.on_event)
    return service


__all__ = ["RESCAN_JOB", "SCAN_JOB", "ImageRef", "ScanService", "enqueue_rescans",
           "images_of", "install"]
