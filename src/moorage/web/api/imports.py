"""Imports (administrators): another registry's repositories copied into this instance by
the server (a whole registry, a namespace, or a list of repositories; Distribution or
Harbor), resumable after a crash, with progress counted from the stored plan, per-item
errors, the log, and cancel.

Editions without the `import` switch (personal) answer 403 naming the editions that have
it. Passwords are write-only. Creating and cancelling reach the audit log and webhooks as
`import.create` / `import.cancel`; results as `import.succeeded`, `import.failed` and
`import.cancelled`.

Sync handlers: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from moorage.access.errors import Forbidden
from moorage.access.principal import Principal
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import IdPath, RequestBody
from moorage.web.api.parts import ApiParts

if TYPE_CHECKING:
    from moorage.replication.imports.model import Import
    from moorage.replication.imports.service import ImportService

router = APIRouter(prefix="/api/v1/imports", tags=["imports"], responses=ERROR_RESPONSES)
Name = Annotated[str, Field(min_length=1, max_length=255)]


def _at(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


class ImportCreate(RequestBody):
    url: str = Field(min_length=1, max_length=2048,
                     description="the source registry, https://host[:port]")
    kind: Literal["distribution", "harbor"] = "distribution"
    namespace: Name | None = Field(None, description="only repositories under this path")
    repositories: list[Name] | None = Field(None, min_length=1, max_length=1000,
                                            description="only these repositories")
    into: str = Field("", max_length=255, description="put in front of each name here; "
                                                      "empty: the same names")
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    ca_pem: str | None = Field(None, max_length=256 << 10)
    insecure: bool = False
    bandwidth: int | None = Field(None, ge=1, le=1 << 40, description="bytes a second")


class ItemError(BaseModel):
    item: str = Field(description="repository, or repository:tag")
    error: str


class ImportInfo(BaseModel):
    id: int
    url: str
    kind: Literal["distribution", "harbor"]
    namespace: str | None
    repositories: list[str] | None
    into: str
    username: str | None
    has_password: bool
    insecure: bool
    bandwidth: int | None
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    job_id: int | None
    repositories_done: int
    repositories_failed: int
    repositories_total: int = Field(description="known so far (grows while listing)")
    tags_done: int
    tags_failed: int
    tags_total: int = Field(description="known so far (grows as repositories are listed)")
    bytes: int = Field(description="bytes fetched from the source for the items done")
    errors: list[ItemError]
    message: str
    created_by: str
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, job: Import, service: ImportService) -> ImportInfo:
        c = service.counts(job.id)
        return cls(id=job.id, url=job.url, kind=job.kind,  # type: ignore[arg-type]
                   namespace=job.namespace, repositories=job.repositories, into=job.prefix,
                   username=job.username, has_password=job.has_password,
                   insecure=job.insecure, bandwidth=job.bandwidth,
                   status=job.status,  # type: ignore[arg-type]
                   job_id=job.job_id, repositories_done=c.repositories_done,
                   repositories_failed=c.repositories_failed,
                   repositories_total=c.repositories_total, tags_done=c.tags_done,
                   tags_failed=c.tags_failed, tags_total=c.tags_total, bytes=c.bytes,
                   errors=[ItemError(**e) for e in c.errors], message=job.message,
                   created_by=job.created_by, created_at=_at(job.created_at),
                   started_at=_at(job.started_at), ended_at=_at(job.ended_at))


class ImportItem(BaseModel):
    repository: str
    tag: str = Field(description="empty for the repository's own row")
    state: Literal["pending", "listed", "done", "failed"]
    digest: str | None
    bytes: int
    attempt: int = Field(description="the job attempt that finished it")
    error: str | None


class ImportLog(BaseModel):
    import_id: int
    log: str


def _service(instance: ApiParts, principal: Principal) -> ImportService:
    """The edition first (its error names the editions that have imports), then the role."""
    service = instance.imports
    if service is None:
        from moorage.replication.imports.service import edition_error
        raise edition_error(instance.edition.name)
    if not principal.is_admin:
        raise Forbidden("imports are managed by administrators")
    return service


@router.get("")
def list_imports(instance: InstanceDep, principal: User,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ImportInfo]:
    """Newest first."""
    service = _service(instance, principal)
    return [ImportInfo.of(j, service) for j in service.list(limit)]


@router.post("", status_code=202)
def create_import(body: ImportCreate, instance: InstanceDep, principal: User) -> ImportInfo:
    """Start an import; it runs as a job of this instance (follow it with GET)."""
    service = _service(instance, principal)
    fields = body.model_dump(exclude={"password", "into"})
    fields["prefix"] = body.into
    job = service.create(fields, body.password, principal.username or "")
    return ImportInfo.of(job, service)


@router.get("/{import_id}")
def get_import(import_id: IdPath, instance: InstanceDep, principal: User) -> ImportInfo:
    service = _service(instance, principal)
    return ImportInfo.of(service.get(import_id), service)


@router.get("/{import_id}/items")
def list_import_items(import_id: IdPath, instance: InstanceDep, principal: User,
                      state: Literal["pending", "listed", "done", "failed"] | None = None,
                      limit: Annotated[int, Query(ge=1, le=10000)] = 1000
                      ) -> list[ImportItem]:
    """The plan: one row a repository (tag empty), one a tag, in name order."""
    service = _service(instance, principal)
    service.get(import_id)
    return [ImportItem(**i) for i in service.store.items(import_id, state, limit)]


@router.post("/{import_id}/cancel")
def cancel_import(import_id: IdPath, instance: InstanceDep, principal: User) -> ImportInfo:
    """Stop it: the running job stops before its next item; what is done stays."""
    service = _service(instance, principal)
    return ImportInfo.of(service.cancel(import_id, principal.username or ""), service)


@router.get("/{import_id}/log")
def get_import_log(import_id: IdPath, instance: InstanceDep, principal: User) -> ImportLog:
    """The log of the import's jobs (each job's last 64 KiB)."""
    service = _service(instance, principal)
    return ImportLog(import_id=import_id, log=service.log_of(service.get(import_id)))
