"""Background jobs (GC, retention, webhooks, …): their status, progress, result and log.

Administrators read every job. Whoever may manage a namespace's rules also reads the runs of
its retention rules (they may start them: a dry run is only worth its result).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from moorage.access.errors import AccessError, NotFound
from moorage.access.principal import Principal
from moorage.jobs.queue import Job as QueuedJob
from moorage.oci.errors import RegistryError
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import CursorQuery, IdPath, when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

Status = Literal["queued", "running", "succeeded", "failed"]


class Job(BaseModel):
    id: int
    type: str
    status: Status
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    last_error: str | None
    created_at: datetime
    run_at: datetime
    finished_at: datetime | None
    log: str | None = None

    @classmethod
    def of(cls, job: QueuedJob, with_log: bool = False) -> "Job":
        return cls(id=job.id, type=job.type, status=job.status,  # type: ignore[arg-type]
                   attempts=job.attempts, max_attempts=job.max_attempts, payload=job.payload,
                   progress=job.progress, result=job.result, last_error=job.last_error,
                   created_at=when(job.created_at), run_at=when(job.run_at),  # type: ignore[arg-type]
                   finished_at=when(job.finished_at), log=job.log if with_log else None)


@router.get("")
def list_jobs(instance: InstanceDep, principal: User, status: Status | None = None,
              type: str | None = None, limit: int = Query(50, ge=1, le=500),
              before_id: CursorQuery = None) -> list[Job]:
    """Newest first; page with `before_id`. Administrators only."""
    instance.manager.require_admin(principal)
    return [Job.of(j) for j in instance.worker.queue.list(status, type, limit, before_id)]


@router.get("/types")
def list_job_types(instance: InstanceDep, principal: User) -> list[str]:
    """The job types this instance runs (what `type` filters on). Administrators only."""
    instance.manager.require_admin(principal)
    return sorted(instance.worker.types)


def _may_read(instance: ApiParts, principal: Principal, job: QueuedJob) -> bool:
    """Administrators read every job; a rule manager, the runs of the namespace's retention
    rules (while the rule exists: its namespace is what says who may)."""
    if principal.is_admin:
        return True
    if job.type in ("scan.image", "scan.rescan"):  # whoever may read the image's report
        repository = job.payload.get("repository")
        try:
            instance.manager.require_repository_action(principal, str(repository), "pull")
        except (AccessError, RegistryError):
            return False
        return True
    if job.type != "retention":
        return False
    rule_id = job.payload.get("rule_id")
    rule = instance.policies.retention_rule(int(rule_id)) if isinstance(rule_id, int) else None
    if rule is None:
        return False
    try:
        instance.manager.require_namespace_action(principal, rule.namespace, "manage_rules")
    except AccessError:
        return False
    return True


@router.get("/{job_id}")
def get_job(job_id: IdPath, instance: InstanceDep, principal: User) -> Job:
    """One job with its log (the last 64 KiB). Administrators; for a retention run, whoever
    may manage the rules of the rule's namespace; for a scan, whoever may pull the image."""
    job = instance.worker.queue.get(job_id)
    if job is None or not _may_read(instance, principal, job):
        instance.manager.require_admin(principal)  # the same refusal whether or not it exists
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return Job.of(job, with_log=True)
