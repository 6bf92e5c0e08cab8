"""Helm charts of a namespace (moorage.helm): the charts, their versions with the metadata
of each, a version's values.yaml and README, and deletion of a version.

The same charts that `helm push` and the chart repository API (/chartrepo/NS) store: a chart
version is an OCI artifact in repository NAMESPACE/NAME, so who may read or delete it is
decided as for that repository. Editions without Helm charts refuse with the edition needed.
Sync handlers: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field

from moorage.access.errors import AccessError, AlreadyExists, Forbidden, Invalid, NotFound
from moorage.access.principal import Principal
from moorage.helm.chart import ChartInvalid
from moorage.helm.service import ChartError, HelmService
from moorage.helm.store import ChartRow
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/charts", tags=["charts"],
                   responses=ERROR_RESPONSES)
NamespacePath = Annotated[str, Path(max_length=255, description="the namespace")]
ChartPath = Annotated[str, Path(max_length=128, pattern=r"^[a-z0-9][-a-z0-9.]*$",
                                description="the chart's name")]
VersionPath = Annotated[str, Path(max_length=128, pattern=r"^[0-9A-Za-z.+-]+$",
                                  description="a SemVer 2 version, or `latest`")]


class Chart(BaseModel):
    name: str
    repository: str = Field(description="the OCI repository holding it (NAMESPACE/NAME)")
    latest_version: str
    app_version: str
    description: str
    icon: str
    versions: int
    updated_at: datetime


class ChartVersion(BaseModel):
    name: str
    version: str
    app_version: str
    api_version: str
    description: str
    icon: str
    keywords: list[str]
    maintainers: list[dict[str, Any]]
    dependencies: list[dict[str, Any]]
    created: datetime
    digest: str = Field(description="sha256 of the chart's .tgz (as in index.yaml)")
    manifest_digest: str = Field(description="the OCI manifest of this version")
    size: int
    provenance: bool = Field(description="a .prov file is stored beside it")
    repository: str
    tag: str = Field(description="the OCI tag ('+' of the version as '_')")

    @classmethod
    def of(cls, row: ChartRow) -> ChartVersion:
        return cls(name=row.name, version=row.version, app_version=row.app_version,
                   api_version=row.api_version, description=row.description, icon=row.icon,
                   keywords=row.keywords, maintainers=row.maintainers,
                   dependencies=row.dependencies, created=_when(row.created),
                   digest=row.chart_digest, manifest_digest=row.manifest_digest,
                   size=row.chart_size, provenance=row.prov_digest is not None,
                   repository=row.repository, tag=row.version.replace("+", "_"))


class ChartVersionDetails(ChartVersion):
    values: str = Field(description="the chart's values.yaml, as written")
    readme: str = Field(description="the chart's README (Markdown), as written")


def _when(at: float) -> datetime:
    return datetime.fromtimestamp(at, timezone.utc)


def service(instance: ApiParts) -> HelmService:
    instance.edition.require("helm_charts")
    helm = instance.helm
    if helm is None:  # pragma: no cover - installed on every edition
        raise Invalid("Helm charts are not installed on this instance")
    return helm


def _readable(instance: ApiParts, principal: Principal, repository: str) -> bool:
    try:
        instance.manager.get_repository(principal, repository)
    except AccessError:
        return False
    return True


def _rows(instance: ApiParts, principal: Principal, namespace: str,
          name: str) -> list[ChartRow]:
    helm = service(instance)
    rows = helm.versions(namespace, name)
    if not rows or not _readable(instance, principal, f"{namespace}/{name}"):
        raise NotFound(f"chart {name} does not exist in namespace {namespace}")
    return rows


@router.get("")
def list_charts(namespace: NamespacePath, instance: InstanceDep,
                principal: User) -> list[Chart]:
    """The charts of a namespace the caller may read, by name, each with its newest version
    (anonymous readers of public namespaces use the chart repository, /chartrepo/NS)."""
    helm = service(instance)
    instance.manager.get_namespace(principal, namespace)
    by_name: dict[str, list[ChartRow]] = {}
    for row in helm.store.namespace_rows(namespace):
        by_name.setdefault(row.name, []).append(row)
    out = []
    for name, rows in sorted(by_name.items()):
        if not _readable(instance, principal, rows[0].repository):
            continue
        newest = helm.versions(namespace, name)[0]
        out.append(Chart(name=name, repository=newest.repository,
                         latest_version=newest.version, app_version=newest.app_version,
                         description=newest.description, icon=newest.icon,
                         versions=len(rows), updated_at=_when(max(r.created for r in rows))))
    return out


@router.get("/{chart}")
def list_versions(namespace: NamespacePath, chart: ChartPath, instance: InstanceDep,
                  principal: User) -> list[ChartVersion]:
    """The versions of a chart, newest first (SemVer precedence)."""
    return [ChartVersion.of(r) for r in _rows(instance, principal, namespace, chart)]


@router.get("/{chart}/{version}")
def get_version(namespace: NamespacePath, chart: ChartPath, version: VersionPath,
                instance: InstanceDep, principal: User) -> ChartVersionDetails:
    """One version with its values.yaml and README, read from the stored chart."""
    rows = _rows(instance, principal, namespace, chart)
    row = rows[0] if version == "latest" else next((r for r in rows if r.version == version),
                                                   None)
    if row is None:
        raise NotFound(f"chart {chart} has no version {version}")
    try:
        archive = service(instance).archive(row)
    except (ChartInvalid, OSError) as exc:
        raise Invalid(f"the stored chart cannot be read: {exc}") from None
    return ChartVersionDetails(**ChartVersion.of(row).model_dump(), values=archive.values,
                               readme=archive.readme)


@router.delete("/{chart}/{version}", status_code=status.HTTP_204_NO_CONTENT)
def delete_version(namespace: NamespacePath, chart: ChartPath, version: VersionPath,
                   instance: InstanceDep, principal: User) -> Response:
    """Delete a chart version: its OCI manifest, and so its .prov, go; an immutable tag
    refuses (409)."""
    helm = service(instance)
    instance.manager.require_repository_action(principal, f"{namespace}/{chart}", "delete")
    try:
        helm.delete(namespace, chart, version)
    except ChartError as exc:
        raise _access_error(exc) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _access_error(exc: ChartError) -> AccessError:
    kind = {403: Forbidden, 404: NotFound, 409: AlreadyExists}.get(exc.status, Invalid)
    return kind(exc.message)
