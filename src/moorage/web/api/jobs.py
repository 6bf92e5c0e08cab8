"""Background jobs (GC, retention, webhooks, …): their status, progress, result and log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from moorage.access.errors import NotFound
from moorage.jobs.queue import Job as QueuedJob
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import CursorQuery, IdPath, when

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


@router.get("/{job_id}")
def get_job(job_id: IdPath, instance: InstanceDep, principal: User) -> Job:
    """One job with its log (the last 64 KiB)."""
    instance.manager.require_admin(principal)
    job = instance.worker.queue.get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return Job.of(job, with_log=True)
