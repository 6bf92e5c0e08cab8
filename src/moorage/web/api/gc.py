"""Garbage collection on demand; it also runs on the `gc_schedule`."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import Field

from moorage.access.errors import AlreadyExists, Invalid
from moorage.units import parse_duration
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.jobs import Job
from moorage.web.api.models import RequestBody

router = APIRouter(prefix="/api/v1/gc", tags=["jobs"], responses=ERROR_RESPONSES)


class GCRequest(RequestBody):
    dry_run: bool = Field(False, description="list what would go, delete nothing")
    grace: str | int | None = Field(
        None, description="leave blobs younger than this (e.g. 1h, 30m); default: the "
                          "gc_grace_seconds setting")


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def start_gc(body: GCRequest, instance: InstanceDep, principal: User) -> Job:
    """Queue a collection; follow it at /api/v1/jobs/{id}. Administrators only."""
    instance.manager.require_admin(principal)
    payload: dict[str, object] = {"dry_run": body.dry_run}
    if body.grace is not None:
        try:
            payload["grace_seconds"] = parse_duration(body.grace)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    job_id = instance.worker.enqueue("gc", payload, dedupe_key="gc")
    if job_id is None:
        raise AlreadyExists("a garbage collection is already queued or running")
    job = instance.worker.queue.get(job_id)
    assert job is not None
    return Job.of(job)
