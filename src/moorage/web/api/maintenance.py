"""Read-only mode, switched at runtime by an administrator (ops/maintenance.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from moorage.access.errors import Forbidden
from moorage.access.principal import Principal
from moorage.ops.maintenance import MAX_MESSAGE, ReadOnly
from moorage.web.api.deps import InstanceDep, User, caller, get_instance
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody, when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"],
                   responses=ERROR_RESPONSES)
PATH = "/api/v1/maintenance"


class Maintenance(BaseModel):
    read_only: bool = Field(description="pulls are served; pushes, deletes and changes are "
                                        "refused with 503")
    message: str = Field(description="the operator's words, given with every refusal")
    since: datetime | None = Field(description="when read-only mode was turned on")
    by: str = Field(description="the administrator who turned it on")


class MaintenanceSet(RequestBody):
    read_only: bool
    message: str = Field("", max_length=MAX_MESSAGE,
                         examples=["upgrading to 0.2; back at 14:00 UTC"])


def _shape(state: object) -> Maintenance:
    data = state.as_dict()  # type: ignore[attr-defined]
    return Maintenance(read_only=data["read_only"], message=data["message"],
                       since=when(data["since"]) if data["since"] else None, by=data["by"])


@router.get("")
def get_maintenance(instance: InstanceDep, _: User) -> Maintenance:
    """Whether the registry is read-only now (any signed-in caller may ask)."""
    return _shape(instance.read_only.state())


@router.put("")
def set_maintenance(body: MaintenanceSet, instance: InstanceDep, principal: User) -> Maintenance:
    """Turn read-only mode on or off (administrators). Takes effect on every worker and
    replica at once: the next write anywhere is refused, or accepted again."""
    if not principal.is_admin:
        raise Forbidden("only administrators switch read-only mode")
    return _shape(instance.read_only.set(body.read_only, body.message, principal.username))


def refuse_changes_when_read_only(request: Request,
                                  _: Annotated[Principal, Depends(caller)],
                                  instance: Annotated[ApiParts, Depends(get_instance)]) -> None:
    """Every change through the API is refused in read-only mode, except the switch itself.
    (After `caller`: an anonymous or refused request is answered as such first.)"""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.url.path == PATH:
        return
    state = instance.read_only.state()
    if state.on:
        raise ReadOnly(state)
