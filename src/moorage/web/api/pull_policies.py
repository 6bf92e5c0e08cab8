"""The pull policy of a namespace (threat blocking, moorage.blocking): which images a pull
may not fetch — a finding at or above a severity, unscanned, unsigned — and which robot
accounts are exempted. Its owners and instance administrators read and change it; editions
without threat blocking refuse both (403 naming the edition, as other edition-bound routes).
Changes reach the audit log and webhooks like every management change (`pull_policy.set`).

Sync handlers: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from moorage.access.errors import Invalid
from moorage.access.principal import Principal
from moorage.blocking.model import (MAX_EXEMPT, SEVERITIES, PullPolicy, check_exempt,
                                    check_severity)
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody
from moorage.web.api.parts import ApiParts

if TYPE_CHECKING:  # the service is imported only by instances whose edition has it
    from moorage.blocking import PullBlocking

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/pull-policy",
                   tags=["pull policy"], responses=ERROR_RESPONSES)
NamespacePath = Annotated[str, Path(max_length=255, description="the namespace")]


class PullPolicyOut(BaseModel):
    namespace: str
    severity: str | None = Field(description="pulls of images with an unaccepted finding at "
                                             "or above this level are refused; null: off")
    block_unscanned: bool = Field(description="pulls of images not scanned (or whose scan "
                                              "failed) are refused")
    block_unsigned: bool = Field(description="pulls of images without a valid signature from "
                                             "a trusted key are refused")
    exempt_robots: list[str] = Field(description="robot accounts of the namespace whose "
                                                 "pulls no rule refuses (names)")
    active: bool = Field(description="at least one rule is on")
    signing_available: bool = Field(description="whether the unsigned rule can be turned on "
                                                "(the signing service runs)")
    updated_at: datetime | None
    updated_by: str
    backfill_job: int | None = Field(None, description="the job bringing older images' facts "
                                                       "up to date, when the namespace is large")

    @classmethod
    def of(cls, policy: PullPolicy, signing: bool, job: int | None = None) -> PullPolicyOut:
        return cls(namespace=policy.namespace, severity=policy.severity,
                   block_unscanned=policy.block_unscanned,
                   block_unsigned=policy.block_unsigned, exempt_robots=list(policy.exempt),
                   active=policy.active, signing_available=signing,
                   updated_at=datetime.fromtimestamp(policy.updated_at, timezone.utc)
                   if policy.updated_at else None, updated_by=policy.updated_by,
                   backfill_job=job)


class PullPolicyIn(RequestBody):
    severity: str | None = Field(None, max_length=32, examples=["high"],
                                 description=f"one of {', '.join(SEVERITIES)}; null: off")
    block_unscanned: bool = False
    block_unsigned: bool = False
    exempt_robots: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=MAX_EXEMPT,
        description=f"robot account names of this namespace (at most {MAX_EXEMPT})")


def _service(instance: ApiParts) -> PullBlocking:
    instance.edition.require("threat_blocking")
    service = instance.blocking
    if service is None:  # the edition has it but it was not installed: never advertised
        raise Invalid("threat blocking is not installed on this instance")
    return service


def _signing(instance: ApiParts) -> bool:
    return getattr(instance, "signing", None) is not None


def _may_manage(instance: ApiParts, principal: Principal, namespace: str) -> int:
    """Namespace owners (its administrators) and instance administrators."""
    return instance.manager.require_namespace_action(principal, namespace,
                                                     "manage_members").id


@router.get("")
def get_pull_policy(namespace: NamespacePath, instance: InstanceDep,
                    principal: User) -> PullPolicyOut:
    """The namespace's pull policy; every rule off when none was set."""
    service = _service(instance)
    _may_manage(instance, principal, namespace)
    return PullPolicyOut.of(service.policy(namespace), _signing(instance))


@router.put("")
def set_pull_policy(namespace: NamespacePath, body: PullPolicyIn, instance: InstanceDep,
                    principal: User) -> PullPolicyOut:
    """Replace the namespace's pull policy; the next pull on any worker follows it. An
    unknown severity, a robot that is not the namespace's, or the unsigned rule without the
    signing service is refused with the reason."""
    service = _service(instance)
    ns_id = _may_manage(instance, principal, namespace)
    exempt = check_exempt(body.exempt_robots, namespace)
    if exempt:
        robots = {row.username for row, _ in instance.manager.list_robots(principal,
                                                                          namespace)}
        unknown = [n for n in exempt if f"robot${namespace}+{n}" not in robots]
        if unknown:
            raise Invalid(f"no robot account {', '.join(repr(n) for n in unknown[:5])} in "
                          f"namespace {namespace}")
    policy = PullPolicy(namespace, check_severity(body.severity), body.block_unscanned,
                        body.block_unsigned, exempt, updated_by=principal.username or "")
    job = service.save(ns_id, policy)
    return PullPolicyOut.of(service.policy(namespace), _signing(instance), job)
