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

Engines: the built-in ones (`engines`: OSV) run in every scan and rescan; the engines of
`engine_sources` (the enabled Harbor scanner adapters) are read from the database when a
scan starts, so an adapter registered through another replica is used at once. A rescan
(no layer read, after an advisory import) runs only the built-in engines and keeps what the
other engines found in the stored report (their names stay on those findings): an adapter
would pull the whole image again to tell nothing the import changed.

Inventory: the built-in cataloguers, and Syft as a second engine when `syft` says so
(`SyftConfig`): the image is written as an OCI layout into a scratch folder (bounded by
size and free space, removed after), Syft reads it, and the two inventories are merged.

The CVE allowlist is a read step (`read_steps`), applied whenever a report is shown or a
tag listing counted, with the clock of `clock`: an entry added or expiring needs no rescan.
Tag listings (`tag_summaries`) use the stored counts, except for the rows that hold an
id the namespace accepts now: those are recounted from their findings (one query for the
namespace's entries, one per page for the findings of those rows: no query per tag).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
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
from moorage.scan.report import (ReadStep, add_summaries, merge_findings, report_for,
                                 summarize)
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


SYFT_MODES = ("auto", "on", "off")
SYFT_MAX_IMAGE_BYTES = 8 << 30  # the layers Syft is given, written out to its scratch folder
SYFT_FREE_MARGIN = 512 << 20  # free space kept on the scratch folder's disk
SYFT_TIMEOUT = 600.0


@dataclass(frozen=True)
class SyftConfig:
    """`scan_syft`: auto (use Syft when `scan_syft_path` or PATH gives a binary), on (use
    it; a missing binary is a problem of every scan), off (never). `scratch`: the folder the
    image is written to for Syft (the system's temporary folder when None)."""

    mode: str = "auto"
    path: str = ""
    scratch: Path | None = None
    max_image_bytes: int = SYFT_MAX_IMAGE_BYTES
    timeout: float = SYFT_TIMEOUT

    def binary(self) -> str | None:
        from moorage.scan.engines.syft import find_syft

        return None if self.mode == "off" else find_syft(self.path)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ScanService:
    """Wired by `install`; the API and CLI reach scans through it.

    - `engines`: the built-in ones (OSV), run by every scan and rescan; `engine_sources`:
      the enabled Harbor scanner adapters (`harbor:<name>`), read when a scan starts.
    - `read_steps`: the CVE allowlist (`apply_allowlist`) on the read path (`report_for`),
      with `clock`; `accepted_ids` lets tag listings recount only the rows it touches.
    - `syft`: whether and how Syft joins the inventory of a scan job.
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
    # engines read when a scan starts (blocking: called in the job's thread)
    engine_sources: list[Callable[[], Sequence[Engine]]] = field(default_factory=list)
    syft: SyftConfig = field(default_factory=lambda: SyftConfig("off"))
    # the namespace's allowlist ids accepted at a moment (for tag listings), and the clock
    accepted_ids: Callable[[str, datetime], set[str]] | None = None
    clock: Callable[[], datetime] = _utcnow
    # the names of the engines of `engine_sources`, without building them (for info)
    source_names: Callable[[], list[str]] | None = None

    def engines_info(self) -> dict[str, Any]:
        """What scans run with now: engine names, enabled adapters, Syft or not."""
        try:
            adapters = self.source_names() if self.source_names is not None else []
        except Exception:  # noqa: BLE001 - info answers without them
            log.exception("the scanner adapters could not be listed")
            adapters = []
        return {"engines": [e.name for e in self.engines] + adapters,
                "harbor_adapters": len(adapters), "syft": self.syft.binary() is not None}

    @property
    def bus(self) -> Any:
        return self.registry.bus

    # -- requests ---------------------------------------------------------------------
    def request(self, repository: str, reference: str, tag: str | None = None) -> int:
        """Queue a scan of what `reference` names in `repository`; the job's id (the one
        already waiting, when there is one)."""
        digest, images = self._images(repository, reference)
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
        images = self._images_at(digest)
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
            inventory = self._with_syft(ctx, where, image, inventory)
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
        overall = add_summaries(r.get("summary", {}) for r in results.values())
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
        built_in = {e.name for e in self.engines}
        kept = []  # what the other engines (adapters) found stays, without the built-ins
        for f in row.findings:
            others = tuple(n for n in f.engines if n not in built_in)
            if others:
                kept.append(replace(f, engines=others))
        # the built-in engines run again: their old failures go; the inventory's problems
        # and the adapters' (whose findings are the last scan's) stay
        problems = [p for p in row.problems
                    if not any(p.startswith(f"engine {n} failed") for n in built_in)]
        summary = self._report(ctx, row.repository, ImageRef(digest, row.platform),
                               inventory, None, fresh=False, problems=problems, kept=kept)
        self.bus.publish(Event("scan.completed", row.repository, digest, actor=ACTOR,
                               address="", detail={"summary": summary, "rescan": True,
                                                   "platform": row.platform}))
        return {"repository": row.repository, "digest": digest, "summary": summary}

    def _with_syft(self, ctx: JobContext, where: str, image: ImageRef,
                   inventory: Inventory) -> Inventory:
        """The inventory merged with Syft's, when Syft is in use; its failures are
        problems of the inventory, never of the scan."""
        from moorage.scan.engines.syft import merge_inventories, run_syft

        if self.syft.mode == "off":
            return inventory
        exe = self.syft.binary()
        if exe is None:
            if self.syft.mode == "on":
                where_ = f"at {self.syft.path}" if self.syft.path else "on PATH"
                return _with_problem(inventory, f"syft: scan_syft is on but no binary is "
                                                f"{where_}")
            return inventory
        ctx.log(f"{where}: writing the image out for Syft")
        try:
            if self.syft.scratch is not None:
                self.syft.scratch.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="moorage-syft-image-",
                                             dir=self.syft.scratch) as scratch:
                folder = Path(scratch) / "oci"
                write_layout(self.registry, image.digest, folder, self.syft.max_image_bytes)
                ctx.check()
                ctx.log(f"{where}: Syft reads the image")
                found = run_syft(folder, "oci-dir", syft_path=exe, timeout=self.syft.timeout)
        except Exception as exc:  # noqa: BLE001 - the built-in inventory stands alone
            return _with_problem(inventory, f"syft: the image could not be written out for "
                                            f"it: {type(exc).__name__}: {str(exc)[:300]}")
        return merge_inventories(inventory, found)

    def _engines_now(self) -> tuple[list[Engine], list[str]]:
        """The built-in engines and those of the sources (adapters) as the database has
        them now; a source that cannot be read is a problem of the scan."""
        engines: list[Engine] = list(self.engines)
        problems = []
        for source in self.engine_sources:
            try:
                engines.extend(source())
            except Exception as exc:  # noqa: BLE001 - the built-in engines still run
                log.warning("scan engines could not be read: %s", exc)
                problems.append(f"the scanner adapters could not be read: "
                                f"{type(exc).__name__}: {str(exc)[:300]}")
        return engines, problems

    def _report(self, ctx: JobContext, repository: str, image: ImageRef,
                inventory: Inventory, tag: str | None, *, fresh: bool,
                problems: Sequence[str] = (),
                kept: Sequence[Finding] = ()) -> dict[str, int]:
        """Run the engines (a fresh scan: all; a rescan: the built-in ones, with `kept`, the
        stored findings of the others), merge, store, announce what is new."""
        target = ScanTarget(repository, image.digest, image.platform, inventory)
        if fresh:
            engines, source_problems = self._engines_now()
        else:
            engines, source_problems = list(self.engines), []
        found, engine_problems = asyncio.run(self._run_engines(target, engines))
        ctx.check()
        findings = merge_findings([*found, list(kept)])
        all_problems = ScanProblems()
        for p in (*(inventory.problems if fresh else problems), *source_problems,
                  *engine_problems):
            all_problems.add(p)
        summary = summarize(findings)
        names = [e.name for e in engines]
        if not fresh:
            names.extend(sorted({n for f in kept for n in f.engines} - set(names)))
        previous = self.store.finish(image.digest, inventory, names,
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

    async def _run_engines(self, target: ScanTarget, engines: Sequence[Engine]
                           ) -> tuple[list[list[Finding]], list[str]]:
        async def one(engine: Engine) -> list[Finding] | str:
            try:
                return await engine.findings(target)
            except Exception as exc:  # an engine's failure is a problem of the report
                log.warning("engine %s failed on %s: %s", engine.name, target.digest, exc)
                return f"engine {engine.name} failed: {type(exc).__name__}: {exc}"[:500]

        outcomes = await asyncio.gather(*(one(e) for e in engines))
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
        digest, images = self._images(repository, reference)
        return digest, [(i, self.store.get(i.digest)) for i in images]

    def _images(self, repository: str, reference: str) -> tuple[str, list[ImageRef]]:
        """The digest a reference names and the images it is; MANIFEST_INVALID when it is
        not an image or an index of images (nothing to scan or report)."""
        digest = self.registry.resolve(repository, reference)
        images = self._images_at(digest)
        if images is None:
            raise RegistryError("MANIFEST_INVALID", f"{repository}@{digest} is not an image "
                                                    "or an index of images: nothing to scan")
        return digest, images

    def _images_at(self, digest: str) -> list[ImageRef] | None:
        """The images a stored manifest is; None when it is gone or not an image."""
        stored = self.registry.db.manifest(digest)
        return images_of(stored.content, digest) if stored is not None else None

    def shown(self, repository: str, row: ScanRow) -> tuple[list[Finding], dict[str, int]]:
        """A stored report as it is shown now (the read steps applied)."""
        return report_for(namespace_of(repository), row.findings, self.read_steps)

    def tag_summaries(self, tags: Iterable[tuple[str, Sequence[str]]], repository: str = ""
                      ) -> dict[str, dict[str, Any]]:
        """For each (digest, child digests) of a tag listing of `repository`: status and
        counts, or absent when never scanned. The counts agree with the report the same
        reader gets: the stored counts, except for the rows whose findings name an id the
        namespace's allowlist accepts now, which are recounted with the read steps."""
        tags = list(tags)
        wanted = {d for digest, children in tags for d in (children or [digest])}
        rows = self.store.summaries(wanted)
        counted = {d: r.summary for d, r in rows.items()}
        namespace = namespace_of(repository) if repository else ""
        accepted = self.accepted_ids(namespace, self.clock()) \
            if namespace and self.accepted_ids is not None else set()
        if accepted and rows:
            # a cheap test on the stored text first; only rows that may hold one are parsed
            for digest, findings in self.store.findings_holding(list(rows), accepted).items():
                counted[digest] = report_for(namespace, findings, self.read_steps)[1]
        out: dict[str, dict[str, Any]] = {}
        for digest, children in tags:
            mine = [d for d in (children or [digest]) if d in rows]
            if not mine:
                continue
            counts = add_summaries(counted[d] for d in mine)
            statuses = {rows[d].status for d in mine}
            status = next(s for s in ("running", "queued", "failed", "done") if s in statuses)
            out[digest] = {"status": status, **counts}
        return out


class LayoutWriteError(Exception):
    """The image cannot be written out as an OCI layout (too large, a blob missing)."""


def _with_problem(inventory: Inventory, problem: str) -> Inventory:
    return replace(inventory, problems=(*inventory.problems, problem[:500]))


def write_layout(registry: Registry, digest: str, folder: Path, max_bytes: int) -> None:
    """One stored image (its manifest, config and layers) as an OCI image layout in `folder`,
    for Syft. Refused before anything is written when the manifest's blobs add up to more
    than `max_bytes` or than the disk has free (with a margin); each blob is written no
    larger than the manifest says."""
    stored = registry.db.manifest(digest)
    if stored is None:
        raise LayoutWriteError(f"{digest} is no longer stored")
    try:
        doc = json.loads(stored.content)
        blobs = [doc["config"], *doc["layers"]]
        wanted = [(str(b["digest"]), int(b["size"])) for b in blobs]
    except (ValueError, KeyError, TypeError) as exc:
        raise LayoutWriteError(f"the manifest cannot be read: {exc}") from None
    total = sum(size for _, size in wanted) + len(stored.content)
    if total > max_bytes:
        raise LayoutWriteError(f"the image is {total} bytes, over the {max_bytes} bytes "
                               f"Syft is given")
    folder.mkdir(parents=True)
    if shutil.disk_usage(folder).free < total + SYFT_FREE_MARGIN:
        raise LayoutWriteError(f"the scratch folder's disk has not {total} bytes free")
    root = folder / "blobs" / "sha256"
    root.mkdir(parents=True)
    for blob, size in wanted:
        algo, _, hexpart = blob.partition(":")
        if algo != "sha256" or not hexpart.isalnum() or len(hexpart) != 64:
            raise LayoutWriteError(f"{blob[:80]} is not a sha256 digest")
        written = 0
        with open(root / hexpart, "wb") as out:
            for chunk in registry.store.read(blob):
                written += len(chunk)
                if written > size:
                    raise LayoutWriteError(f"blob {blob} is larger than its manifest says")
                out.write(chunk)
        if written != size:
            raise LayoutWriteError(f"blob {blob} is not stored whole ({written} of {size} "
                                   f"bytes)")
    (root / digest.partition(":")[2]).write_bytes(stored.content)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    media_type = doc.get("mediaType") or mt.OCI_MANIFEST
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": media_type, "digest": digest, "size": len(stored.content)}]}))


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
            engines: list[Engine] | None = None,
            engine_sources: Sequence[Callable[[], Sequence[Engine]]] = (),
            syft: SyftConfig | None = None) -> ScanService:
    """Wire scanning in (app.py calls this only when the edition has it): the job types,
    the push subscription, the engines, and the CVE allowlist on the read path. The
    built-in OSV engine is always first; `engine_sources` (the registered Harbor adapters)
    are read at each scan."""
    from moorage.scan.advisories.store import AdvisoryStore
    from moorage.scan.allowlist import apply_allowlist
    from moorage.scan.allowlist.store import AllowlistStore
    from moorage.scan.engines.base import OsvEngine

    db_engine = registry.db.engine
    chosen: list[Engine] = [OsvEngine(AdvisoryStore(db_engine))]
    chosen.extend(engines or [])
    service = ScanService(registry, ScanStore(db_engine), worker, edition, chosen,
                          on_push_default=on_push, engine_sources=list(engine_sources),
                          syft=syft or SyftConfig("off"))
    allowlist = AllowlistStore(db_engine)

    def accept(namespace: str, findings: list[Finding]) -> list[Finding]:
        return apply_allowlist(findings, allowlist.by_namespace_name(namespace),
                               service.clock())

    def accepted_ids(namespace: str, now: datetime) -> set[str]:
        return {e.key for e in allowlist.by_namespace_name(namespace) if not e.expired(now)}

    service.read_steps.append(accept)
    service.accepted_ids = accepted_ids
    worker.register(JobType(SCAN_JOB, service.scan_job, concurrency=concurrency,
                            timeout_seconds=timeout_seconds, max_attempts=2))
    worker.register(JobType(RESCAN_JOB, service.rescan_job, concurrency=concurrency,
                            timeout_seconds=timeout_seconds, max_attempts=3))
    registry.bus.subscribe(service.on_event)
    return service


__all__ = ["RESCAN_JOB", "SCAN_JOB", "ImageRef", "LayoutWriteError", "ScanService",
           "SyftConfig", "enqueue_rescans", "images_of", "install", "write_layout"]
