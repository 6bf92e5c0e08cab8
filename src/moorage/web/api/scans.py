"""Vulnerability scans of images: request one, read the report (JSON or CSV), the SBOM,
and the per-namespace scan-on-push setting.

The same rules as the repository routes: reading a report or an SBOM needs the right to
pull the repository; requesting a scan, to push it (developer or higher, or an
administrator); the namespace setting, to manage its rules. An edition without scanning
answers 403 naming the edition that has it.

Sync handlers: FastAPI runs them in its thread pool, off the event loop. These routes are
included before the repository routes, whose `{name:repository}` would take their paths.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from moorage.access.errors import Invalid, NotFound
from moorage.scan.model import LEVELS
from moorage.scan.report import add_summaries
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import when
from moorage.web.api.parts import ApiParts

router = APIRouter(tags=["scans"], responses=ERROR_RESPONSES)
Level = Literal["critical", "high", "medium", "low", "unknown"]
MAX_REFERENCE = 256


def _scans(instance: ApiParts) -> Any:
    if instance.scans is None:
        instance.edition.require("scanning")  # names the edition that has it
        raise NotFound("vulnerability scanning is not installed on this instance")
    return instance.scans


class ScanRequest(BaseModel):
    reference: str = Field(min_length=1, max_length=MAX_REFERENCE,
                           description="a tag or a digest of the repository")


class ScanJob(BaseModel):
    job_id: int = Field(description="follow it at /api/v1/jobs/{job_id}")
    repository: str
    reference: str


class Summary(BaseModel):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unknown: int = 0


class FindingSeverity(BaseModel):
    level: Level
    score: float | None = None
    vector: str | None = None


class FindingPackage(BaseModel):
    name: str
    version: str = Field(description="installed")
    kind: str
    ecosystem: str
    purl: str = ""
    path: str = ""
    layer: str = Field("", description="the digest of the layer that brought it")


class VulnerabilityFinding(BaseModel):
    id: str
    aliases: list[str]
    platform: str = Field("", description="the platform of an index's image")
    package: FindingPackage
    fixed_versions: list[str] = Field(description="empty: no fix known")
    fixable: bool
    severity: FindingSeverity
    summary: str
    links: list[str]
    engines: list[str]
    accepted: str | None = Field(None, description="the allowlist entry's reason, when "
                                                   "accepted (not counted in the summary)")


class ImageScan(BaseModel):
    digest: str
    platform: str
    status: Literal["queued", "running", "done", "failed", "not scanned"]
    job_id: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    engines: list[str] = []
    problems: list[str] = Field([], description="what could not be read; the report holds "
                                                "what was found")
    error: str | None = None
    packages: int | None = None
    summary: Summary


class VulnerabilityReport(BaseModel):
    repository: str
    reference: str
    digest: str
    status: Literal["queued", "running", "done", "failed", "not scanned"]
    summary: Summary = Field(description="counts by severity of the findings shown, "
                                         "accepted ones left out")
    images: list[ImageScan]
    findings: list[VulnerabilityFinding]


class ScanSettings(BaseModel):
    namespace: str
    scan_on_push: bool


class ScanSettingsUpdate(BaseModel):
    scan_on_push: bool


def _finding(platform: str, f: Any) -> VulnerabilityFinding:
    p = f.package
    return VulnerabilityFinding(
        id=f.id, aliases=list(f.aliases), platform=platform,
        package=FindingPackage(name=p.name, version=p.version, kind=p.kind,
                               ecosystem=p.ecosystem, purl=p.purl, path=p.path, layer=p.layer),
        fixed_versions=list(f.fixed_versions), fixable=bool(f.fixed_versions),
        severity=FindingSeverity(level=f.severity.level if f.severity.level in LEVELS
                                 else "unknown", score=f.severity.score,
                                 vector=f.severity.vector),
        summary=f.summary, links=list(f.links), engines=list(f.engines), accepted=f.accepted)


def build_report(instance: ApiParts, name: str, reference: str, severity: Level | None = None,
                 fixable: bool = False) -> VulnerabilityReport:
    scans = _scans(instance)
    digest, rows = scans.report(name, reference)
    images, findings = [], []
    summaries = []
    statuses = set()
    threshold = LEVELS.index(severity) if severity else len(LEVELS)
    for image, row in rows:
        if row is None:
            statuses.add("not scanned")
            images.append(ImageScan(digest=image.digest, platform=image.platform,
                                    status="not scanned", summary=Summary()))
            continue
        shown, counts = scans.shown(name, row)
        statuses.add(row.status)
        summaries.append(counts)
        images.append(ImageScan(
            digest=image.digest, platform=image.platform, status=row.status,  # type: ignore[arg-type]
            job_id=row.job_id, started_at=when(row.started_at),
            finished_at=when(row.finished_at), engines=list(row.engines),
            problems=list(row.problems), error=row.error, summary=Summary(**counts),
            packages=scans.store.package_count(image.digest) if row.status == "done" else None))
        for f in shown:
            level = f.severity.level if f.severity.level in LEVELS else "unknown"
            if severity and LEVELS.index(level) > threshold:
                continue
            if fixable and not f.fixed_versions:
                continue
            findings.append(_finding(image.platform, f))
    status = next(s for s in ("running", "queued", "failed", "not scanned", "done")
                  if s in statuses or s == "done")
    return VulnerabilityReport(repository=name, reference=reference, digest=digest,
                               status=status, summary=Summary(**add_summaries(summaries)),  # type: ignore[arg-type]
                               images=images, findings=findings)


CSV_COLUMNS = ("platform", "id", "aliases", "severity", "score", "package", "kind",
               "installed", "fixed_versions", "layer", "engines", "accepted", "links")


def report_csv(report: VulnerabilityReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for f in report.findings:
        writer.writerow([f.platform, f.id, " ".join(f.aliases), f.severity.level,
                         "" if f.severity.score is None else f.severity.score, f.package.name,
                         f.package.kind, f.package.version, " ".join(f.fixed_versions),
                         f.package.layer, " ".join(f.engines), f.accepted or "",
                         " ".join(f.links[:5])])
    return out.getvalue()


@router.post("/api/v1/repositories/{name:path}/scans", status_code=202)
def request_scan(name: str, body: ScanRequest, instance: InstanceDep,
                 principal: User) -> ScanJob:
    """Queue a scan of an image (an index: each of its platforms). Needs the right to push
    the repository. Returns the job, whose progress and log `GET /api/v1/jobs/{id}` shows."""
    scans = _scans(instance)
    instance.manager.require_repository_action(principal, name, "push")
    job_id = scans.request(name, body.reference)
    return ScanJob(job_id=job_id, repository=name, reference=body.reference)


@router.get("/api/v1/repositories/{name:path}/manifests/{reference}/vulnerabilities",
            response_model=VulnerabilityReport,
            responses={200: {"content": {"text/csv": {}}}})
def get_vulnerabilities(name: str, reference: str, instance: InstanceDep, principal: User,
                        severity: Level | None = Query(None, description="only this level "
                                                                          "and worse"),
                        fixable: bool = Query(False, description="only findings with a fix"),
                        format: Literal["json", "csv"] = "json") -> Any:
    """The last report of an image by tag or digest: each finding with its package,
    installed and fixed versions, severity, links, layer and engines; the summary by
    severity. `format=csv` exports the findings."""
    _scans(instance)
    instance.manager.require_repository_action(principal, name, "pull")
    report = build_report(instance, name, reference, severity, fixable)
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="'
                                 f'{report.digest.replace(":", "-")}.csv"'})
    return report


@router.get("/api/v1/repositories/{name:path}/manifests/{reference}/sbom",
            responses={200: {"content": {"application/vnd.cyclonedx+json": {},
                                         "application/spdx+json": {}}}})
def get_sbom(name: str, reference: str, instance: InstanceDep, principal: User,
             format: Literal["cyclonedx", "spdx"] = "cyclonedx",
             platform: Annotated[str | None, Query(max_length=100, description="an index's "
                                                   "platform, e.g. linux/amd64")] = None
             ) -> Response:
    """The SBOM of a scanned image, built from its stored inventory (CycloneDX 1.6 or
    SPDX 2.3 JSON). An index needs `platform` when it has more than one."""
    from moorage.scan.sbom import MEDIA_TYPES, ImageRef, sbom_document

    scans = _scans(instance)
    instance.manager.require_repository_action(principal, name, "pull")
    _, rows = scans.report(name, reference)
    if platform is not None:
        rows = [(i, r) for i, r in rows if i.platform == platform]
        if not rows:
            raise Invalid(f"{name}:{reference} has no image for {platform}")
    if len(rows) != 1:
        raise Invalid(f"{name}:{reference} is an index of {len(rows)} images: name one with "
                      f"platform= ({', '.join(i.platform for i, _ in rows)})")
    image, _ = rows[0]
    inventory = scans.store.inventory(image.digest)
    if inventory is None:
        raise NotFound(f"{name}:{reference} has not been scanned yet: request a scan first")
    document = sbom_document(format, inventory, ImageRef(name, image.digest, image.platform))
    return Response(document, media_type=MEDIA_TYPES[format])


@router.get("/api/v1/namespaces/{namespace}/scan-settings")
def get_scan_settings(namespace: str, instance: InstanceDep, principal: User) -> ScanSettings:
    """Whether pushes of tags to the namespace are scanned (on unless turned off)."""
    scans = _scans(instance)
    instance.manager.require_namespace_action(principal, namespace, "pull")
    return ScanSettings(namespace=namespace,
                        scan_on_push=scans.store.scan_on_push(namespace, scans.on_push_default))


@router.put("/api/v1/namespaces/{namespace}/scan-settings")
def put_scan_settings(namespace: str, body: ScanSettingsUpdate, instance: InstanceDep,
                      principal: User) -> ScanSettings:
    """Turn scan on push on or off for a namespace. Needs maintainer or higher."""
    scans = _scans(instance)
    instance.manager.require_namespace_action(principal, namespace, "manage_rules")
    if not scans.store.set_scan_on_push(namespace, body.scan_on_push, principal.username):
        raise NotFound(f"namespace {namespace} does not exist")
    return ScanSettings(namespace=namespace, scan_on_push=body.scan_on_push)


# -- fix plans ------------------------------------------------------------------------------
class FixLayer(BaseModel):
    index: int = Field(description="1-based, bottom first")
    count: int
    digest: str
    note: str


class FixPackage(BaseModel):
    name: str
    version: str | None = Field(None, description="its exact target, when known")


class FixUpgrade(BaseModel):
    manager: str = Field(description="apt, apk, dnf, pip, npm, go, maven")
    kind: str
    ecosystem: str
    name: str = Field(description="as advisories name it: the source package of a "
                                  "distribution")
    installed: str
    target: str = Field(description="the least version that clears all its findings")
    packages: list[FixPackage]
    findings: list[str]
    layer: FixLayer | None = None


class FixCommand(BaseModel):
    manager: str
    command: str


class FixBlocked(BaseModel):
    id: str
    package: str
    version: str
    fixed_versions: list[str]
    why: str


class FixUnfixable(BaseModel):
    id: str
    package: str
    version: str


class FixAccepted(FixUnfixable):
    reason: str


class ImageFixPlan(BaseModel):
    digest: str
    platform: str = Field("", description="the platform of an index's image")
    status: Literal["queued", "running", "done", "failed", "not scanned"]
    upgrades: list[FixUpgrade] = []
    commands: list[FixCommand] = Field([], description="one per package manager, to copy")
    blocked: list[FixBlocked] = []
    unfixable: list[FixUnfixable] = []
    accepted: list[FixAccepted] = Field([], description="allowlisted: listed, not upgraded")


class FixPlans(BaseModel):
    repository: str
    reference: str
    digest: str
    images: list[ImageFixPlan] = Field(description="one plan per image (an index: per "
                                                   "platform)")


def build_fix_plans(instance: ApiParts, name: str, reference: str) -> tuple[FixPlans, list[
        list[str]]]:
    """Each image's plan, from the findings as shown now (the allowlist applied) and the
    stored inventory: no layer is read. With each plan's lines for people."""
    from moorage.scan.fixplan import fix_plan

    scans = _scans(instance)
    digest, rows = scans.report(name, reference)
    images, lines = [], []
    for image, row in rows:
        inventory = scans.store.inventory(image.digest) if row is not None else None
        if row is None or inventory is None:
            status = "not scanned" if row is None else row.status
            images.append(ImageFixPlan(digest=image.digest, platform=image.platform,
                                       status=status))  # type: ignore[arg-type]
            lines.append([f"not scanned yet ({status})" if row is None or status != "done"
                          else "no stored inventory"])
            continue
        shown, _ = scans.shown(name, row)
        plan = fix_plan(shown, inventory)
        images.append(ImageFixPlan(digest=image.digest, platform=image.platform,
                                   status=row.status, **plan.as_dict()))  # type: ignore[arg-type]
        lines.append(plan.lines())
    return FixPlans(repository=name, reference=reference, digest=digest, images=images), lines


def fix_plans_text(plans: FixPlans, lines: list[list[str]]) -> str:
    out: list[str] = []
    for image, mine in zip(plans.images, lines):
        if len(plans.images) > 1 or image.platform:
            out.append(f"# {image.platform or 'image'} ({image.digest})")
        out.extend(mine)
    return "\n".join(out) + "\n"


@router.get("/api/v1/repositories/{name:path}/manifests/{reference}/fixes",
            response_model=FixPlans, responses={200: {"content": {"text/plain": {}}}})
def get_fixes(name: str, reference: str, instance: InstanceDep, principal: User,
              format: Literal["json", "text"] = "json") -> Any:
    """The fix plan of an image (an index: one per platform): the least upgrades that clear
    its fixable findings and the commands that make them, per package manager. Accepted
    (allowlisted) findings are listed, not upgraded. Built from the stored report and
    inventory; `format=text` gives the lines the CLI prints."""
    _scans(instance)
    instance.manager.require_repository_action(principal, name, "pull")
    plans, lines = build_fix_plans(instance, name, reference)
    if format == "text":
        return Response(fix_plans_text(plans, lines), media_type="text/plain; charset=utf-8")
    return plans
