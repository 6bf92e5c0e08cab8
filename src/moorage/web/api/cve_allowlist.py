"""The CVE allowlist of a namespace: advisories its team has accepted, with the reason and
an optional expiry (moorage.scan.allowlist). Members who may pull from the namespace may list
it; its owners and instance administrators may change it. Changes reach the audit log and
webhooks like every management change (changes.py names them `cve_allowlist.add` and
`cve_allowlist.remove`).

The allowlist belongs to vulnerability scanning, so editions without scanning refuse it (403
naming the edition, as the other scan routes do). Reports and tag listings apply it when
they are read (scan/service.py).

Sync handlers: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field

from moorage.access.errors import NotFound
from moorage.access.principal import Principal
from moorage.scan.allowlist import (MAX_ID_LENGTH, MAX_REASON_LENGTH,
                                    AllowlistEntry, check_expiry, check_id, check_reason)
from moorage.scan.allowlist.store import AllowlistStore
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/namespaces/{namespace}/cve-allowlist",
                   tags=["cve allowlist"], responses=ERROR_RESPONSES)
NamespacePath = Annotated[str, Path(max_length=255, description="the namespace")]
IdPath = Annotated[str, Path(max_length=MAX_ID_LENGTH,
                             description="the advisory id: CVE-…, GHSA-…, PYSEC-…")]


class CveAllowlistEntry(BaseModel):
    id: str = Field(description="the advisory id; a finding named by it or carrying it as an "
                                "alias is accepted")
    reason: str
    expires_at: datetime | None = Field(description="when the entry stops applying; null: "
                                                    "never")
    expired: bool = Field(description="an expired entry stays listed and accepts nothing")
    created_at: datetime = Field(description="when it was added or last replaced")
    created_by: str

    @classmethod
    def of(cls, entry: AllowlistEntry, now: datetime) -> CveAllowlistEntry:
        return cls(id=entry.id, reason=entry.reason, expires_at=entry.expires_at,
                   expired=entry.expired(now), created_at=entry.created_at,
                   created_by=entry.created_by)


class CveAllowlistCreate(RequestBody):
    id: str = Field(max_length=MAX_ID_LENGTH, examples=["CVE-2021-44228"],
                    description="the advisory id (CVE, GHSA, PYSEC or any OSV id)")
    reason: str = Field(max_length=MAX_REASON_LENGTH, description="why it is accepted "
                        "(required)", examples=["not reachable: the JNDI lookup is disabled"])
    expires_at: Annotated[datetime | None, Field(strict=False)] = Field(
        None, description="ISO 8601 with a time zone; null: never expires. A past moment is "
                          "stored and listed as expired.")


def _edition(instance: ApiParts) -> None:
    instance.edition.require("scanning")


def _store(instance: ApiParts) -> AllowlistStore:
    return AllowlistStore(instance.registry.db.engine)


def _may_read(instance: ApiParts, principal: Principal, namespace: str) -> int:
    _edition(instance)
    return instance.manager.require_namespace_action(principal, namespace, "pull").id


def _may_change(instance: ApiParts, principal: Principal, namespace: str) -> int:
    """Namespace owners (its administrators) and instance administrators."""
    _edition(instance)
    return instance.manager.require_namespace_action(principal, namespace,
                                                     "manage_members").id


@router.get("")
def list_cve_allowlist(namespace: NamespacePath, instance: InstanceDep,
                       principal: User) -> list[CveAllowlistEntry]:
    """The namespace's accepted advisories, expired ones included (marked)."""
    ns_id = _may_read(instance, principal, namespace)
    now = datetime.now(timezone.utc)
    return [CveAllowlistEntry.of(e, now) for e in _store(instance).list(ns_id)]


@router.post("", status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "the advisory was listed: its entry was replaced"}})
def add_cve_allowlist(namespace: NamespacePath, body: CveAllowlistCreate, response: Response,
                      instance: InstanceDep, principal: User) -> CveAllowlistEntry:
    """Accept an advisory in this namespace, or replace its entry (200). At most 1,000
    entries per namespace (MAX_ENTRIES); an id, reason or expiry that breaks the rules is
    refused with the rule. Needs the owner role or instance administration."""
    ns_id = _may_change(instance, principal, namespace)
    entry, created = _store(instance).put(
        ns_id, check_id(body.id), check_reason(body.reason), check_expiry(body.expires_at),
        principal.username or "")
    if not created:
        response.status_code = status.HTTP_200_OK
    return CveAllowlistEntry.of(entry, datetime.now(timezone.utc))


@router.delete("/{ident}", status_code=status.HTTP_204_NO_CONTENT)
def remove_cve_allowlist(namespace: NamespacePath, ident: IdPath, instance: InstanceDep,
                         principal: User) -> None:
    """Stop accepting the advisory in this namespace."""
    ns_id = _may_change(instance, principal, namespace)
    if not _store(instance).delete(ns_id, ident):
        raise NotFound(f"advisory {ident!r} is not on the CVE allowlist of {namespace}")
