"""The audit log: read it page by page, export it for a SIEM, verify its hash chain, and see
whether it is complete.

Administrators only, and only on editions with the audit log. Reads first flush this process's
own buffer, so that an administrator sees their own last action at once; entries buffered in
other worker processes appear within their flush interval (a few hundred milliseconds).
What went wrong while writing (events lost, entries that could not be written as they were,
periods when writes failed) is read from the log's reports on itself, in the chain, so that
every worker and replica answers the same (moorage.audit.chain.SELF_REPORTS).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from moorage.access.errors import Forbidden, Invalid
from moorage.access.principal import Principal
from moorage.web.api.parts import ApiParts
from moorage.audit import AuditFilter, AuditStore
from moorage.audit.chain import ChainedEntry, safe_text
from moorage.audit.store import MAX_PAGE
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import INT32_MAX, when

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

# Entry ids are 64-bit on both databases (audit_log.id); written as the exclusive 2^63, which
# the OpenAPI document (whose numbers are floats) states exactly, as models.py does.
ID_BOUND = 2**63
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc).timestamp()
_LATEST = datetime.max.replace(tzinfo=timezone.utc).timestamp()


class AuditEntry(BaseModel):
    id: int
    at: datetime = Field(description="when it happened (UTC)")
    timestamp: float = Field(description="`at` as epoch seconds, exactly as hashed")
    actor: str = Field(description="user or robot; \"anonymous\"; what a rule does is the "
                                   "rule's (\"retention:<rule id>\"), GC's is \"gc\"")
    address: str = Field(description="the client's address (through trusted proxies)")
    action: str = Field(description="push, pull, delete, login (a token issued), quota, gc, a "
                                    "refused /v2 request (manifest.push, manifest.delete, "
                                    "blob.upload, blob.delete, manifest.pull, ...), or a "
                                    "management change such as namespace.create")
    target: str = Field(description="repo:tag@digest, or the resource changed")
    repository: str | None
    result: str = Field(description="success or failure")
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntry] = Field(description="newest first")
    next: int | None = Field(description="pass as before_id for the next (older) page; null "
                                         "on the last page")


class AuditReport(BaseModel):
    id: int
    at: datetime
    action: str = Field(description="audit.dropped, audit.unwritable or audit.write_failed")
    error: str = Field(description="the error that made the writer report")


class AuditLosses(BaseModel):
    complete: bool = Field(description="no event was lost or recorded only as unwritable")
    dropped: int = Field(description="events lost because the database refused writes until "
                                     "a worker's buffer was full (audit.dropped entries)")
    unwritable: int = Field(description="events the database would not store as they were; "
                                        "an audit.unwritable entry stands for each")
    write_failures: int = Field(description="periods when writes failed and entries were "
                                            "written late (audit.write_failed entries)")
    last_report: AuditReport | None = Field(description="the newest of those entries")


class AuditVerification(AuditLosses):
    ok: bool = Field(description="the hash chain is intact (whether or not it is complete)")
    checked: int = Field(description="entries checked, oldest first, up to the first break")
    first_broken_id: int | None
    reason: str
    last_id: int | None = Field(description="the newest entry that checked out")
    last_hash: str | None = Field(description="its hash: note it outside Moorage to detect "
                                              "a later removal of the newest entries")


class AuditStatus(AuditLosses):
    last_id: int | None = Field(description="the newest entry")
    last_at: datetime | None = Field(description="when it happened")


def entry_json(row: ChainedEntry) -> dict[str, Any]:
    e = row.entry
    return {"id": row.id,
            "at": _iso(e.at),
            "timestamp": e.at, "actor": e.actor, "address": e.address, "action": e.action,
            "target": e.target, "repository": e.repository, "result": e.result,
            "detail": e.detail, "prev_hash": row.prev_hash, "hash": row.hash}


def _iso(timestamp: float) -> str:
    moment = when(timestamp)
    assert moment is not None
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds, ISO 8601 (naive means UTC), or a duration back from now ("15m", "7d");
    always a moment between the years 1 and 9999, which entries can be compared with."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        moment = time.time() - float(relative[1]) * _UNITS[relative[2]]
    else:
        try:
            moment = float(value)
        except ValueError:
            moment = _iso_moment(value, name)
    if not _EARLIEST <= moment <= _LATEST:  # NaN, infinities, 1e400 and the like
        raise Invalid(f"{name}: out of range; a time between the years 1 and 9999")
    return moment


def _iso_moment(value: str, name: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}: expected epoch seconds, ISO 8601 (2024-05-01T12:00:00Z) or a "
                      f"duration such as 15m, 2h or 7d") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _open(instance: ApiParts, principal: Principal) -> AuditStore:
    """The edition first (its error names the edition needed), then the role."""
    instance.edition.require("audit_log")
    if not principal.is_admin:
        raise Forbidden("the audit log is open to administrators only")
    if instance.audit is not None:
        instance.audit.flush()
        return instance.audit.store
    return AuditStore(instance.registry.db.engine)


def _filter(actor: str | None, action: str | None, repository: str | None,
            result: str | None, since: str | None, until: str | None) -> AuditFilter:
    # Filters in the safe form the entries are stored in: a NUL (which PostgreSQL refuses
    # even in a query) finds what was recorded with U+FFFD in its place.
    return AuditFilter(actor=_safe(actor), action=_safe(action), repository=_safe(repository),
                       result=result, since=parse_time(since, "since"),
                       until=parse_time(until, "until"))


def _safe(value: str | None) -> str | None:
    return None if value is None else safe_text(value)


ActorQ = Annotated[str | None, Query(description="exact user or robot name")]
ActionQ = Annotated[str | None, Query(description="exact action, or a prefix ending in * "
                                                  "(namespace.*)")]
RepositoryQ = Annotated[str | None, Query(description="exact repository name")]
ResultQ = Annotated[Literal["success", "failure"] | None, Query()]
SinceQ = Annotated[str | None, Query(description="from this time on: epoch seconds, ISO 8601 "
                                                 "or a duration back from now (15m, 2h, 7d)")]
UntilQ = Annotated[str | None, Query(description="before this time; same forms as since")]


@router.get("")
def list_entries(instance: InstanceDep, principal: User, actor: ActorQ = None,
                 action: ActionQ = None, repository: RepositoryQ = None, result: ResultQ = None,
                 since: SinceQ = None, until: UntilQ = None,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                 before_id: Annotated[int | None, Query(ge=1, lt=ID_BOUND,
                                                        description="the `next` of the "
                                                                    "previous page")] = None,
                 ) -> AuditPage:
    """Entries newest first, a page at a time."""
    store = _open(instance, principal)
    rows, cursor = store.page(_filter(actor, action, repository, result, since, until), limit,
                              before_id)
    return AuditPage(entries=[AuditEntry(**entry_json(r)) for r in rows], next=cursor)


@router.get("/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "one entry per line, oldest first"}})
def export_entries(instance: InstanceDep, principal: User, actor: ActorQ = None,
                   action: ActionQ = None, repository: RepositoryQ = None,
                   result: ResultQ = None, since: SinceQ = None, until: UntilQ = None,
                   after_id: Annotated[int, Query(ge=0, lt=ID_BOUND,
                                                  description="only entries after this id "
                                                              "(incremental export)")] = 0,
                   limit: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None
                   ) -> StreamingResponse:
    """JSON lines, oldest first, streamed: a SIEM can fetch everything after the last id it
    holds with `after_id`. Each line carries prev_hash and hash, so the chain can be checked
    outside Moorage too (the canonical form is documented in moorage.audit.chain)."""
    store = _open(instance, principal)
    where = _filter(actor, action, repository, result, since, until)

    def lines() -> Iterator[bytes]:
        for row in store.scan(where, after_id, limit):
            yield (json.dumps(entry_json(row), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


class ActivityDay(BaseModel):
    date: str = Field(description="the UTC day, YYYY-MM-DD")
    pushes: int = Field(description="manifests pushed")
    pulls: int = Field(description="manifests pulled")


class Activity(BaseModel):
    days: list[ActivityDay] = Field(description="oldest first, one per day, today last")


@router.get("/activity")
def activity(instance: InstanceDep, principal: User,
             days: Annotated[int, Query(ge=1, le=90)] = 14) -> Activity:
    """Manifest pushes and pulls per UTC day, from the audit log (what the console's
    overview draws)."""
    store = _open(instance, principal)
    today = int(time.time() // 86400)
    first = today - days + 1
    counts = store.activity(first * 86400.0, ("push", "pull"))
    return Activity(days=[ActivityDay(
        date=datetime.fromtimestamp(d * 86400, timezone.utc).strftime("%Y-%m-%d"),
        pushes=counts.get((d, "push"), 0), pulls=counts.get((d, "pull"), 0))
        for d in range(first, today + 1)])


@router.get("/verify")
def verify_chain(instance: InstanceDep, principal: User) -> AuditVerification:
    """Recompute the chain from the oldest entry on; reports the first broken link. Reads the
    whole log, so it takes a while on a large one: about a minute per million entries on a
    busy 2-core machine (measured), streamed in chunks so memory stays flat."""
    store = _open(instance, principal)
    return AuditVerification(**store.verify().as_dict())


@router.get("/status")
def audit_status(instance: InstanceDep, principal: User) -> AuditStatus:
    """Whether the log is complete: the newest entry, and what the writers reported about
    themselves (events lost, entries they could not write as they were, periods when writes
    failed, the last error), for all workers and replicas. Quick on a log of any size; it
    reads those reports as stored, while `verify` also checks the chain they are in."""
    store = _open(instance, principal)
    return AuditStatus(**store.status().as_dict())
