"""Tag immutability rules and retention (tag cleanup) rules, per namespace or repository.

A rule's scope is written `namespace` or `namespace/repository-glob`: the glob matches the
repository path inside the namespace (`team/apps/*` covers team/apps/web and team/apps/api).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from moorage.access.errors import AccessError, Invalid, NotFound
from moorage.access.principal import Principal
from moorage.db.policy import ImmutabilityRuleRow, RetentionRuleRow
from moorage.jobs.scheduler import next_time, valid_cron
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.jobs import Job
from moorage.web.api.models import INT32_MAX, Duration, IdPath, RequestBody, when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)


# The rules' texts live in VARCHAR columns of these sizes (db/schema.py).
PATTERN_MAX = 255
SCHEDULE_MAX = 128
Pattern = Annotated[str, Field(max_length=PATTERN_MAX)]
RuleScope = Annotated[str, Field(max_length=64 + 1 + PATTERN_MAX,
                                 description="NAMESPACE or NAMESPACE/REPOSITORY-GLOB",
                                 examples=["team"])]


def split_scope(scope: str) -> tuple[str, str]:
    """`team` → (team, "**"); `team/apps/*` → (team, "apps/*")."""
    namespace, _, pattern = scope.strip().partition("/")
    if not namespace:
        raise Invalid("a scope is NAMESPACE or NAMESPACE/REPOSITORY-GLOB")
    if len(pattern) > PATTERN_MAX:
        raise Invalid(f"a scope's repository glob has at most {PATTERN_MAX} characters")
    return namespace, pattern or "**"


def _allowed(instance: ApiParts, principal: Principal, feature: str, namespace: str) -> int:
    instance.edition.require(feature)
    return instance.manager.require_namespace_action(principal, namespace, "manage_rules").id


def _visible(instance: ApiParts, principal: Principal, namespace: str) -> bool:
    if principal.is_admin:
        return True
    try:
        instance.manager.require_namespace_action(principal, namespace, "pull")
    except AccessError:
        return False
    return True


# -- immutability ---------------------------------------------------------------------------
def _find_immutability(instance: ApiParts, rule_id: int) -> ImmutabilityRuleRow:
    rule = next((r for r in instance.policies.immutability_rules() if r.id == rule_id), None)
    if rule is None:
        raise NotFound(f"immutability rule {rule_id} does not exist")
    return rule


def _immutability_rule(instance: ApiParts, principal: Principal,
                       rule_id: int) -> ImmutabilityRuleRow:
    """The rule, once the caller may manage the rules of its namespace."""
    rule = _find_immutability(instance, rule_id)
    _allowed(instance, principal, "tag_immutability", rule.namespace)
    return rule


class ImmutabilityRule(BaseModel):
    id: int
    scope: str
    tag_pattern: str
    exclude_pattern: str | None
    enabled: bool = Field(description="a disabled rule stays listed and protects nothing")
    created_at: datetime

    @classmethod
    def of(cls, row: ImmutabilityRuleRow) -> "ImmutabilityRule":
        return cls(id=row.id, scope=f"{row.namespace}/{row.repository_pattern}",
                   tag_pattern=row.tag_pattern, exclude_pattern=row.exclude_pattern,
                   enabled=row.enabled,
                   created_at=when(row.created_at))  # type: ignore[arg-type]


class ImmutabilityCreate(RequestBody):
    scope: RuleScope
    tag_pattern: Pattern = Field(description="glob of protected tags", examples=["v*"])
    exclude_pattern: Pattern | None = Field(None, description="glob of tags left mutable")


@router.get("/immutability", tags=["immutability"])
def list_immutability(instance: InstanceDep, principal: User,
                      namespace: str | None = None) -> list[ImmutabilityRule]:
    return [ImmutabilityRule.of(r) for r in instance.policies.immutability_rules()
            if (namespace is None or r.namespace == namespace)
            and _visible(instance, principal, r.namespace)]


@router.post("/immutability", tags=["immutability"], status_code=status.HTTP_201_CREATED)
def add_immutability(body: ImmutabilityCreate, instance: InstanceDep,
                     principal: User) -> ImmutabilityRule:
    """Needs the maintainer role; the basic edition or higher."""
    namespace, pattern = split_scope(body.scope)
    ns_id = _allowed(instance, principal, "tag_immutability", namespace)
    if not body.tag_pattern.strip():
        raise Invalid("tag_pattern must not be empty")
    rule_id = instance.policies.add_immutability(ns_id, pattern, body.tag_pattern,
                                                 body.exclude_pattern)
    return ImmutabilityRule.of(_find_immutability(instance, rule_id))


@router.delete("/immutability/{rule_id}", tags=["immutability"],
               status_code=status.HTTP_204_NO_CONTENT)
def delete_immutability(rule_id: IdPath, instance: InstanceDep, principal: User) -> None:
    _immutability_rule(instance, principal, rule_id)
    instance.policies.delete_immutability(rule_id)


class ImmutabilityUpdate(RequestBody):
    """The fields to change; absent ones stay. `exclude_pattern: null` removes the exception.
    The scope stays: a rule moves to another namespace by being made there."""

    tag_pattern: Pattern | None = Field(None, description="glob of protected tags")
    exclude_pattern: Pattern | None = Field(None, description="glob of tags left mutable; "
                                                              "null for none")
    enabled: bool | None = Field(None, description="false: the rule stays, protecting nothing")


@router.patch("/immutability/{rule_id}", tags=["immutability"])
def update_immutability(rule_id: IdPath, body: ImmutabilityUpdate, instance: InstanceDep,
                        principal: User) -> ImmutabilityRule:
    """Edit a rule in place; it applies at once in every worker. Needs the maintainer role."""
    _immutability_rule(instance, principal, rule_id)
    given = body.model_fields_set
    if "tag_pattern" in given and not (body.tag_pattern or "").strip():
        raise Invalid("tag_pattern must not be empty")
    if "enabled" in given and body.enabled is None:
        raise Invalid("enabled is true or false")
    values = {name: getattr(body, name) for name in ("tag_pattern", "exclude_pattern", "enabled")
              if name in given}
    instance.policies.update_immutability(rule_id, **values)
    return ImmutabilityRule.of(_find_immutability(instance, rule_id))


# -- retention ------------------------------------------------------------------------------
def _retention_rule(instance: ApiParts, principal: Principal,
                    rule_id: int) -> RetentionRuleRow:
    """The rule, once the caller may manage the rules of its namespace."""
    rule = instance.policies.retention_rule(rule_id)
    if rule is None:
        raise NotFound(f"retention rule {rule_id} does not exist")
    _allowed(instance, principal, "retention", rule.namespace)
    return rule


class RetentionRule(BaseModel):
    id: int
    scope: str
    tag_pattern: str
    keep_last: int | None
    older_than_seconds: int | None
    untagged: bool
    always_keep: str | None
    schedule: str | None
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, row: RetentionRuleRow) -> "RetentionRule":
        return cls(id=row.id, scope=f"{row.namespace}/{row.repository_pattern}",
                   tag_pattern=row.tag_pattern, keep_last=row.keep_last,
                   older_than_seconds=row.older_than_seconds, untagged=row.untagged,
                   always_keep=row.always_keep, schedule=row.schedule, enabled=row.enabled,
                   created_at=when(row.created_at))  # type: ignore[arg-type]


class RetentionCreate(RequestBody):
    scope: RuleScope
    tag_pattern: Pattern = Field("*", description="glob of the tags the rule considers")
    keep_last: int | None = Field(None, ge=0, le=INT32_MAX,
                                  description="keep the newest N by push time")
    older_than: Duration | None = Field(None, description="only delete tags older than this: "
                                                          "seconds, or 30d, 12h, …")
    untagged: bool = Field(False, description="also delete manifests that have no tag")
    always_keep: Pattern | None = Field(None, description="glob of tags never deleted")
    schedule: str | None = Field(None, max_length=SCHEDULE_MAX,
                                 description="cron expression for scheduled runs",
                                 examples=["0 4 * * *"])


class RetentionRun(RequestBody):
    dry_run: bool = Field(False, description="list what would go, delete nothing")


def _schedule_name(rule_id: int) -> str:
    return f"retention-{rule_id}"


def _check_schedule(cron: str) -> None:
    """A cron expression that parses and fires some day ("0 0 31 2 *" parses, never fires)."""
    try:
        ok = valid_cron(cron)
        if ok:
            next_time(cron, time.time())
    except Exception:  # croniter's errors have no common base
        ok = False
    if not ok:
        raise Invalid(f"invalid cron expression {cron[:100]!r}: five fields (m h dom mon dow) "
                      f"that match some future time")


@router.get("/retention", tags=["retention"])
def list_retention(instance: InstanceDep, principal: User,
                   namespace: str | None = None) -> list[RetentionRule]:
    return [RetentionRule.of(r) for r in instance.policies.retention_rules(namespace)
            if _visible(instance, principal, r.namespace)]


@router.post("/retention", tags=["retention"], status_code=status.HTTP_201_CREATED)
def add_retention(body: RetentionCreate, instance: InstanceDep, principal: User) -> RetentionRule:
    """Needs the maintainer role; the basic edition or higher. Try it with a dry run first."""
    namespace, pattern = split_scope(body.scope)
    ns_id = _allowed(instance, principal, "retention", namespace)
    if body.schedule:
        _check_schedule(body.schedule)
    rule_id = instance.policies.add_retention(
        ns_id, repository_pattern=pattern, tag_pattern=body.tag_pattern,
        keep_last=body.keep_last, older_than_seconds=body.older_than, untagged=body.untagged,
        always_keep=body.always_keep, schedule=body.schedule, enabled=True)
    if body.schedule:
        assert instance.worker.scheduler is not None
        try:
            instance.worker.scheduler.upsert(_schedule_name(rule_id), body.schedule,
                                             "retention", {"rule_id": rule_id})
        except BaseException:  # all or nothing: no rule without the schedule it was given
            instance.policies.delete_retention(rule_id)
            raise
    rule = instance.policies.retention_rule(rule_id)
    assert rule is not None
    return RetentionRule.of(rule)


@router.delete("/retention/{rule_id}", tags=["retention"],
               status_code=status.HTTP_204_NO_CONTENT)
def delete_retention(rule_id: IdPath, instance: InstanceDep, principal: User) -> None:
    _retention_rule(instance, principal, rule_id)
    instance.policies.delete_retention(rule_id)
    if instance.worker.scheduler is not None:
        instance.worker.scheduler.remove(_schedule_name(rule_id))


@router.post("/retention/{rule_id}/run", tags=["retention"],
             status_code=status.HTTP_202_ACCEPTED)
def run_retention(rule_id: IdPath, body: RetentionRun, instance: InstanceDep,
                  principal: User) -> Job:
    """Queue a run; its result (what was, or would be, deleted) is the job's result."""
    _retention_rule(instance, principal, rule_id)
    job_id = instance.worker.enqueue("retention", {"rule_id": rule_id, "dry_run": body.dry_run})
    job = instance.worker.queue.get(job_id) if job_id else None
    assert job is not None
    return Job.of(job)


class RetentionUpdate(RequestBody):
    """The fields to change; absent ones stay, `null` clears keep_last, older_than,
    always_keep or schedule. `enabled: false` keeps the rule and pauses its schedule (a run
    asked for by hand still runs). The scope stays."""

    tag_pattern: Pattern | None = Field(None, description="glob of the tags the rule considers")
    keep_last: int | None = Field(None, ge=0, le=INT32_MAX, description="keep the newest N")
    older_than: Duration | None = Field(None, description="only delete tags older than this")
    untagged: bool | None = Field(None, description="also delete manifests that have no tag")
    always_keep: Pattern | None = Field(None, description="glob of tags never deleted")
    schedule: str | None = Field(None, max_length=SCHEDULE_MAX, description="cron expression")
    enabled: bool | None = Field(None, description="false: kept, but its schedule is paused")


_NOT_NULL = ("tag_pattern", "untagged", "enabled")


@router.patch("/retention/{rule_id}", tags=["retention"])
def update_retention(rule_id: IdPath, body: RetentionUpdate, instance: InstanceDep,
                     principal: User) -> RetentionRule:
    """Edit, disable or enable a rule in place. Needs the maintainer role."""
    _retention_rule(instance, principal, rule_id)
    given = body.model_fields_set
    for name in _NOT_NULL:
        if name in given and getattr(body, name) is None:
            raise Invalid(f"{name} cannot be null")
    if "tag_pattern" in given and not (body.tag_pattern or "").strip():
        raise Invalid("tag_pattern must not be empty")
    if body.schedule:
        _check_schedule(body.schedule)
    columns = {"older_than": "older_than_seconds"}
    values = {columns.get(name, name): getattr(body, name) for name in given}
    instance.policies.update_retention(rule_id, **values)
    updated = instance.policies.retention_rule(rule_id)
    assert updated is not None
    scheduler = instance.worker.scheduler
    if scheduler is not None and ({"schedule", "enabled"} & given):
        if updated.schedule:
            scheduler.upsert(_schedule_name(rule_id), updated.schedule, "retention",
                             {"rule_id": rule_id}, enabled=updated.enabled)
        else:
            scheduler.remove(_schedule_name(rule_id))
    return RetentionRule.of(updated)


__all__ = ["router"]
