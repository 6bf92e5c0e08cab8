"""The advisory database of the vulnerability scanner, read-only: counts per ecosystem with
the last import, and one advisory by id or alias. Any signed-in account may read it (the
records are public data). Imports are `moorage advisories import` (cli/advisories.py).

Sync handlers: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from moorage.access.errors import NotFound
from moorage.scan.advisories.store import AdvisoryStore
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/advisories", tags=["advisories"], responses=ERROR_RESPONSES)


class AdvisoryImport(BaseModel):
    source: str = Field(description="the folder or zip imported")
    started_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any] = Field(description="added, updated, unchanged, withdrawn, "
                                                "removed, skipped (with reasons)")


class AdvisoryStatus(BaseModel):
    total: int = Field(description="advisories stored")
    ecosystems: dict[str, int] = Field(description="advisories per ecosystem as records name "
                                                   "it (\"PyPI\", \"Debian:12\", "
                                                   "\"Alpine:v3.20\")")
    last_import: AdvisoryImport | None


class AdvisorySeverity(BaseModel):
    level: str = Field(description="critical, high, medium, low or unknown")
    score: float | None = Field(description="CVSS base score, when a vector was given")
    vector: str | None


class AdvisoryRecord(BaseModel):
    id: str
    modified: str
    summary: str
    severity: AdvisorySeverity
    ecosystems: list[str]
    imported_at: datetime | None
    record: dict[str, Any] = Field(description="the OSV record as imported (Alpine secdb "
                                               "entries converted to OSV)")


def _store(instance: ApiParts) -> AdvisoryStore:
    return AdvisoryStore(instance.registry.db.engine)


@router.get("")
def advisory_status(instance: InstanceDep, _: User) -> AdvisoryStatus:
    """Advisory counts per ecosystem and the last import."""
    state = _store(instance).status()
    last = state["last_import"]
    return AdvisoryStatus(total=state["total"], ecosystems=state["ecosystems"],
                          last_import=None if last is None else AdvisoryImport(
                              source=last["source"], started_at=when(last["started_at"]),
                              finished_at=when(last["finished_at"]),
                              summary=last["summary"]))


@router.get("/{ident}")
def advisory(ident: Annotated[str, Path(max_length=255, description="id or alias: "
                                                                    "PYSEC-…, GHSA-…, CVE-…")],
             instance: InstanceDep, _: User) -> AdvisoryRecord:
    """One advisory, by its id or one of its aliases."""
    found = _store(instance).get(ident)
    if found is None:
        raise NotFound(f"no advisory {ident!r} (import advisories with `moorage advisories "
                       f"import`)")
    found["imported_at"] = when(found["imported_at"])
    return AdvisoryRecord(**found)
