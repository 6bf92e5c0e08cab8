"""Garbage collection on demand; it also runs on the `gc_schedule`."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import Field

from moorage.access.errors import AlreadyExists
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.jobs import Job
from moorage.web.api.models import Duration, RequestBody

router = APIRouter(prefix="/api/v1/gc", tags=["jobs"], responses=ERROR_RESPONSES)


class GCRequest(RequestBody):
    dry_run: bool = Field(False, description="list what would go, delete nothing")
    grace: Duration | None = Field(
        None, description="leave blobs younger than this: seconds, or 1h, 30m, …; 0 for no "
                          "grace period; default: the gc_grace_seconds setting")


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def start_gc(body: GCRequest, instance: InstanceDep, principal: User) -> Job:
    """Queue a collection; follow it at /api/v1/jobs/{id}. Administrators only."""
    instance.manager.require_admin(principal)
    payload: dict[str, object] = {"dry_run": body.dry_run}
    if body.grace is not None:
        payload["grace_seconds"] = body.grace  # seconds, once validated
    job_id = instance.worker.enqueue("gc", payload, dedupe_key="gc")
    if job_id is None:
        raise AlreadyExists("a garbage collection is already queued or running")
    job = instance.worker.queue.get(job_id)
    assert job is not None
    return Job.of(job)
