"""Replication rules (administrators): push this instance's repositories to another registry
or pull another registry's into this one, on push/delete events, on a schedule, or by hand;
their executions with progress, errors and log; and a report of what differs.

Editions without replication rules answer 403 naming the edition that has them. Passwords
are write-only: an answer says whether a rule has one, never what it is. Changes reach the
audit log and webhooks as `replication_rule.<verb>`; execution results as
`replication.succeeded` / `replication.failed`.

Sync handlers: FastAPI runs them in its thread pool, off the event loop (the report talks
to the remote registry).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from moorage.access.editions import EditionError
from moorage.access.errors import Forbidden, Invalid
from moorage.access.principal import Principal
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import IdPath, RequestBody
from moorage.web.api.parts import ApiParts

if TYPE_CHECKING:
    from moorage.replication.model import Rule
    from moorage.replication.service import ReplicationService
    from moorage.replication.store import Execution

router = APIRouter(prefix="/api/v1/replication", tags=["replication"],
                   responses=ERROR_RESPONSES)
RulePath = Annotated[str, Path(max_length=64, description="the rule's name or id")]
Glob = Annotated[str, Field(min_length=1, max_length=255)]


def _at(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


class ReplicationRule(BaseModel):
    id: int
    name: str
    mode: Literal["push", "pull"]
    url: str = Field(description="the other registry")
    username: str | None
    has_password: bool
    ca_pem: str | None = Field(description="PEM certificates trusted for the registry's TLS")
    insecure: bool
    repositories: str = Field(description="glob of repository names (`*` one segment, `**` "
                                          "any)")
    tags: str = Field(description="glob of tags")
    destination_namespace: str = Field(description="replaces the first path segment of the "
                                                   "names at the destination; empty: same")
    on_event: bool = Field(description="push mode: replicate on each push (and delete, with "
                                       "propagate_deletes) here")
    cron: str = Field(description="a full sync on this schedule; empty: none")
    propagate_deletes: bool
    bandwidth: int | None = Field(description="bytes a second; null: unlimited")
    enabled: bool
    created_at: datetime | None
    updated_at: datetime | None
    updated_by: str

    @classmethod
    def of(cls, rule: Rule) -> ReplicationRule:
        return cls(id=rule.id, name=rule.name, mode=rule.mode,  # type: ignore[arg-type]
                   url=rule.url, username=rule.username, has_password=rule.has_password,
                   ca_pem=rule.ca_pem, insecure=rule.insecure, repositories=rule.repositories,
                   tags=rule.tags, destination_namespace=rule.destination_namespace,
                   on_event=rule.on_event, cron=rule.cron,
                   propagate_deletes=rule.propagate_deletes, bandwidth=rule.bandwidth,
                   enabled=rule.enabled, created_at=_at(rule.created_at),
                   updated_at=_at(rule.updated_at), updated_by=rule.updated_by)


class ReplicationRuleCreate(RequestBody):
    name: str = Field(min_length=1, max_length=64)
    mode: Literal["push", "pull"]
    url: str = Field(min_length=1, max_length=2048)
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    ca_pem: str | None = Field(None, max_length=256 << 10)
    insecure: bool = False
    repositories: Glob = "**"
    tags: Glob = "*"
    destination_namespace: str = Field("", max_length=255)
    on_event: bool = True
    cron: str = Field("", max_length=128)
    propagate_deletes: bool = False
    bandwidth: int | None = Field(None, ge=1, le=1 << 40)
    enabled: bool = True


class ReplicationRuleChange(RequestBody):
    name: str | None = Field(None, min_length=1, max_length=64)
    mode: Literal["push", "pull"] | None = None
    url: str | None = Field(None, min_length=1, max_length=2048)
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    clear_password: bool = False
    ca_pem: str | None = Field(None, max_length=256 << 10)
    insecure: bool | None = None
    repositories: Glob | None = None
    tags: Glob | None = None
    destination_namespace: str | None = Field(None, max_length=255)
    on_event: bool | None = None
    cron: str | None = Field(None, max_length=128)
    propagate_deletes: bool | None = None
    bandwidth: int | None = Field(None, ge=0, le=1 << 40,
                                  description="0 removes the limit")
    enabled: bool | None = None


class ArtifactError(BaseModel):
    artifact: str
    error: str


class ReplicationExecution(BaseModel):
    id: int
    rule_id: int
    trigger: str
    status: Literal["pending", "running", "succeeded", "failed", "stopped"]
    job_id: int | None
    scope: dict[str, Any] = Field(description="what an event-triggered execution copies; "
                                              "empty: a full sync")
    artifacts_done: int
    artifacts_total: int
    bytes: int
    copied: int = Field(description="tags changed (or deleted) at the destination")
    errors: list[ArtifactError]
    message: str
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, e: Execution) -> ReplicationExecution:
        return cls(id=e.id, rule_id=e.rule_id, trigger=e.trigger,
                   status=e.status,  # type: ignore[arg-type]
                   job_id=e.job_id, scope=e.scope, artifacts_done=e.artifacts_done,
                   artifacts_total=e.artifacts_total, bytes=e.bytes, copied=e.copied,
                   errors=[ArtifactError(**x) for x in e.errors], message=e.message,
                   created_at=_at(e.created_at), started_at=_at(e.started_at),
                   ended_at=_at(e.ended_at))


class ExecutionLog(BaseModel):
    execution: int
    log: str


class ReportDifference(BaseModel):
    repository: str
    destination: str
    tag: str
    state: Literal["missing", "different", "extra"]
    source_digest: str | None
    destination_digest: str | None


class ReplicationReport(BaseModel):
    rule: str
    mode: str
    counts: dict[str, int]
    differences: list[ReportDifference]
    truncated: bool


def _service(instance: ApiParts, principal: Principal) -> ReplicationService:
    """The edition first (its error names the edition needed), then the role."""
    service = instance.replication
    if service is None:
        raise EditionError("synchronization (replication) rules need the advanced edition; "
                           f"this instance runs the {instance.edition.name} edition",
                           "feature")
    if not principal.is_admin:
        raise Forbidden("replication rules are managed by administrators")
    return service


@router.get("/rules")
def list_replication_rules(instance: InstanceDep, principal: User) -> list[ReplicationRule]:
    service = _service(instance, principal)
    return [ReplicationRule.of(r) for r in service.store.list()]


@router.post("/rules", status_code=201)
def create_replication_rule(body: ReplicationRuleCreate, instance: InstanceDep,
                            principal: User) -> ReplicationRule:
    """Refused past the edition's quota `sync_rules` (advanced: 60), with the quota named."""
    service = _service(instance, principal)
    fields = body.model_dump(exclude={"password"})
    return ReplicationRule.of(service.create(fields, body.password, principal.username or ""))


@router.get("/rules/{rule}")
def get_replication_rule(rule: RulePath, instance: InstanceDep,
                         principal: User) -> ReplicationRule:
    service = _service(instance, principal)
    return ReplicationRule.of(service.store.find(rule))


@router.patch("/rules/{rule}")
def update_replication_rule(rule: RulePath, body: ReplicationRuleChange, instance: InstanceDep,
                            principal: User) -> ReplicationRule:
    service = _service(instance, principal)
    current = service.store.find(rule)
    changes = body.model_dump(exclude_unset=True, exclude={"password", "clear_password"})
    if changes.get("bandwidth") == 0:
        changes["bandwidth"] = None
    if body.password is not None and body.clear_password:
        raise Invalid("give a password or clear_password, not both")
    return ReplicationRule.of(service.update(current.id, changes, body.password,
                                             body.clear_password, principal.username or ""))


@router.delete("/rules/{rule}", status_code=204)
def delete_replication_rule(rule: RulePath, instance: InstanceDep,
                            principal: User) -> Response:
    service = _service(instance, principal)
    service.delete(service.store.find(rule).id)
    return Response(status_code=204)


@router.post("/rules/{rule}/run", status_code=202)
def run_replication_rule(rule: RulePath, instance: InstanceDep,
                         principal: User) -> ReplicationExecution:
    """Enqueue a full sync now (also for a disabled rule: a manual run is deliberate)."""
    service = _service(instance, principal)
    return ReplicationExecution.of(service.run(service.store.find(rule).id))


@router.get("/rules/{rule}/executions")
def list_replication_executions(rule: RulePath, instance: InstanceDep, principal: User,
                                limit: Annotated[int, Query(ge=1, le=500)] = 50
                                ) -> list[ReplicationExecution]:
    """Newest first."""
    service = _service(instance, principal)
    return [ReplicationExecution.of(e)
            for e in service.executions(service.store.find(rule).id, limit)]


@router.get("/rules/{rule}/report")
def report_replication_rule(rule: RulePath, instance: InstanceDep,
                            principal: User) -> ReplicationReport:
    """What differs between source and destination within the rule's filters: tags missing
    at the destination, pointing at a different digest, or extra there. Copies nothing."""
    service = _service(instance, principal)
    found = service.store.find(rule)
    try:
        report = service.report(found.id)
    except Exception as exc:  # the remote's failure is the answer, not a 500
        from moorage.remote import RemoteError
        if isinstance(exc, RemoteError):
            raise Invalid(f"the report could not be made: {exc}") from None
        raise
    return ReplicationReport(**report)


@router.get("/executions/{execution_id}")
def get_replication_execution(execution_id: IdPath,
                              instance: InstanceDep, principal: User) -> ReplicationExecution:
    service = _service(instance, principal)
    return ReplicationExecution.of(service.execution(execution_id))


@router.get("/executions/{execution_id}/log")
def get_replication_execution_log(execution_id: IdPath,
                                  instance: InstanceDep, principal: User) -> ExecutionLog:
    """The execution's log (its job's: the last 64 KiB)."""
    service = _service(instance, principal)
    execution = service.execution(execution_id)
    return ExecutionLog(execution=execution.id, log=service.log_of(execution))
