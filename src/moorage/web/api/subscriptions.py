"""Artifact subscriptions (administrators): follow one upstream repository into a local one,
with a tag filter (glob, regex or SemVer range), on a schedule or by hand, optionally keeping
only the newest N; each run is an execution with progress, errors and log.

The personal edition answers 403 naming the edition that has them; past the quota
`artifact_subscriptions` (basic 5, advanced 30) a create answers 403 naming the quota.
Passwords are write-only. Changes reach the audit log and webhooks as
`subscription.<verb>`, run results as `subscription.succeeded` / `subscription.failed`.
Executions have the shape of replication rules' (`rule_id` is the subscription's id there).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from moorage.access.editions import EditionError
from moorage.access.errors import Forbidden, Invalid
from moorage.access.principal import Principal
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import IdPath, RequestBody
from moorage.web.api.parts import ApiParts
from moorage.web.api.replication import ExecutionLog, ReplicationExecution

if TYPE_CHECKING:
    from moorage.replication.subscriptions.model import Subscription as Found
    from moorage.replication.subscriptions.service import SubscriptionService

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"],
                   responses=ERROR_RESPONSES)
SubscriptionPath = Annotated[str, Path(max_length=64, description="the subscription's name "
                                                                  "or id")]
FilterKind = Literal["glob", "regex", "semver"]
FILTER_HELP = ("glob: `*` `?` `{a,b}`; regex: Python syntax matched against the whole tag, "
               "at most 255 characters, no nested or alternated unbounded repetition, no "
               "backreference; semver: an npm-style range such as `>=1.2 <2`, `^1.4`, "
               "`~2.0` (tags that are not SemVer never match)")


def _at(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value else None


class Subscription(BaseModel):
    id: int
    name: str
    url: str = Field(description="the upstream registry")
    upstream: str = Field(description="the repository followed there")
    username: str | None
    has_password: bool
    ca_pem: str | None
    insecure: bool
    repository: str = Field(description="the local repository (namespace/name)")
    filter_kind: FilterKind
    filter: str = Field(description=FILTER_HELP)
    cron: str = Field(description="runs on this schedule; empty: by hand only")
    keep_newest: int | None = Field(description="keep only the newest N matching tags "
                                                "(SemVer order for a range, else the order "
                                                "they came in); null: all")
    enabled: bool
    created_at: datetime | None
    updated_at: datetime | None
    updated_by: str

    @classmethod
    def of(cls, s: Found) -> Subscription:
        return cls(id=s.id, name=s.name, url=s.url, upstream=s.upstream, username=s.username,
                   has_password=s.has_password, ca_pem=s.ca_pem, insecure=s.insecure,
                   repository=s.repository, filter_kind=s.filter_kind,  # type: ignore[arg-type]
                   filter=s.filter, cron=s.cron, keep_newest=s.keep_newest,
                   enabled=s.enabled, created_at=_at(s.created_at),
                   updated_at=_at(s.updated_at), updated_by=s.updated_by)


class SubscriptionCreate(RequestBody):
    name: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=2048)
    upstream: str = Field(min_length=1, max_length=255)
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    ca_pem: str | None = Field(None, max_length=256 << 10)
    insecure: bool = False
    repository: str = Field(min_length=1, max_length=255)
    filter_kind: FilterKind = "glob"
    filter: str = Field("*", min_length=1, max_length=255, description=FILTER_HELP)
    cron: str = Field("", max_length=128)
    keep_newest: int | None = Field(None, ge=1, le=10_000)
    enabled: bool = True


class SubscriptionChange(RequestBody):
    name: str | None = Field(None, min_length=1, max_length=64)
    url: str | None = Field(None, min_length=1, max_length=2048)
    upstream: str | None = Field(None, min_length=1, max_length=255)
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=4096)
    clear_password: bool = False
    ca_pem: str | None = Field(None, max_length=256 << 10)
    insecure: bool | None = None
    repository: str | None = Field(None, min_length=1, max_length=255)
    filter_kind: FilterKind | None = None
    filter: str | None = Field(None, min_length=1, max_length=255)
    cron: str | None = Field(None, max_length=128)
    keep_newest: int | None = Field(None, ge=0, le=10_000, description="0: keep all")
    enabled: bool | None = None


class SubscriptionExecution(ReplicationExecution):
    """A run: the shape of a replication rule's execution; `rule_id` is the subscription's
    id, `copied` the tags copied in."""


def _service(instance: ApiParts, principal: Principal) -> SubscriptionService:
    """The edition first (its error names the edition needed), then the role."""
    service = instance.subscriptions
    if service is None:
        raise EditionError("artifact subscriptions need the basic edition or higher; this "
                           f"instance runs the {instance.edition.name} edition", "feature")
    if not principal.is_admin:
        raise Forbidden("artifact subscriptions are managed by administrators")
    return service


def _execution(found: object) -> SubscriptionExecution:
    return SubscriptionExecution(**ReplicationExecution.of(found).model_dump())  # type: ignore[arg-type]


@router.get("")
def list_subscriptions(instance: InstanceDep, principal: User) -> list[Subscription]:
    service = _service(instance, principal)
    return [Subscription.of(s) for s in service.store.list()]


@router.post("", status_code=201)
def create_subscription(body: SubscriptionCreate, instance: InstanceDep,
                        principal: User) -> Subscription:
    """Refused past the edition's quota `artifact_subscriptions` (basic 5, advanced 30)."""
    service = _service(instance, principal)
    fields = body.model_dump(exclude={"password"})
    return Subscription.of(service.create(fields, body.password, principal.username or ""))


@router.get("/{subscription}")
def get_subscription(subscription: SubscriptionPath, instance: InstanceDep,
                     principal: User) -> Subscription:
    service = _service(instance, principal)
    return Subscription.of(service.store.find(subscription))


@router.patch("/{subscription}")
def update_subscription(subscription: SubscriptionPath, body: SubscriptionChange,
                        instance: InstanceDep, principal: User) -> Subscription:
    service = _service(instance, principal)
    current = service.store.find(subscription)
    if body.password is not None and body.clear_password:
        raise Invalid("give a password or clear_password, not both")
    changes = body.model_dump(exclude_unset=True, exclude={"password", "clear_password"})
    if changes.get("keep_newest") == 0:
        changes["keep_newest"] = None
    return Subscription.of(service.update(current.id, changes, body.password,
                                          body.clear_password, principal.username or ""))


@router.delete("/{subscription}", status_code=204)
def delete_subscription(subscription: SubscriptionPath, instance: InstanceDep,
                        principal: User) -> Response:
    """Delete the subscription and its executions; the tags it brought in stay."""
    service = _service(instance, principal)
    service.delete(service.store.find(subscription).id)
    return Response(status_code=204)


@router.post("/{subscription}/run", status_code=202)
def run_subscription(subscription: SubscriptionPath, instance: InstanceDep,
                     principal: User) -> SubscriptionExecution:
    """Enqueue a run now (also of a disabled subscription: a manual run is deliberate)."""
    service = _service(instance, principal)
    return _execution(service.run(service.store.find(subscription).id))


@router.get("/{subscription}/executions")
def list_subscription_executions(subscription: SubscriptionPath, instance: InstanceDep,
                                 principal: User,
                                 limit: Annotated[int, Query(ge=1, le=500)] = 50
                                 ) -> list[SubscriptionExecution]:
    """Newest first."""
    service = _service(instance, principal)
    return [_execution(e)
            for e in service.executions(service.store.find(subscription).id, limit)]


@router.get("/executions/{execution_id}")
def get_subscription_execution(execution_id: IdPath, instance: InstanceDep,
                               principal: User) -> SubscriptionExecution:
    service = _service(instance, principal)
    return _execution(service.execution(execution_id))


@router.get("/executions/{execution_id}/log")
def get_subscription_execution_log(execution_id: IdPath, instance: InstanceDep,
                                   principal: User) -> ExecutionLog:
    """The execution's log (its job's: the last 64 KiB)."""
    service = _service(instance, principal)
    execution = service.execution(execution_id)
    return ExecutionLog(execution=execution.id, log=service.log_of(execution))
