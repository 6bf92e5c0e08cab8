"""Roles from directory groups (single sign-on): members of an LDAP group or of an OpenID
groups-claim value get a role in a namespace at each sign-in (access/identity.py).
Administrators only; the mapping is core data, so it is here whether or not a directory is
configured yet (it can be prepared before one is)."""

from __future__ import annotations

from fastapi import APIRouter, status

from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import GroupRole, GroupRoleCreate, IdPath

router = APIRouter(prefix="/api/v1/sso/group-roles", tags=["single sign-on"],
                   responses=ERROR_RESPONSES)


@router.get("")
def list_group_roles(instance: InstanceDep, principal: User) -> list[GroupRole]:
    return [GroupRole.of(r) for r in instance.manager.list_group_roles(principal)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_group_role(body: GroupRoleCreate, instance: InstanceDep,
                      principal: User) -> GroupRole:
    """The namespace must exist; one role per group and namespace (409 for a second)."""
    return GroupRole.of(instance.manager.create_group_role(principal, body.group,
                                                           body.namespace, body.role))


@router.delete("/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_group_role(mapping_id: IdPath, instance: InstanceDep, principal: User) -> None:
    """Members keep the role it gave until their next sign-in, which takes it back."""
    instance.manager.delete_group_role(principal, mapping_id)
