"""Namespaces, the roles held in them (members), and their robot accounts."""

from __future__ import annotations

from fastapi import APIRouter, status

from moorage.access.principal import Principal
from moorage.web.api.parts import ApiParts
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import (Member, MemberSet, Namespace, NamespaceCreate,
                                    NamespaceUpdate, Robot, RobotCreate, RobotCreated)

router = APIRouter(prefix="/api/v1/namespaces", responses=ERROR_RESPONSES)


def _roles(instance: ApiParts, principal: Principal) -> dict[str, str]:
    """The caller's roles in one query, to label a whole listing."""
    if principal.id is None:
        return {}
    roles = instance.access_store.roles(principal.id)
    if principal.kind == "robot":
        return {k: v for k, v in roles.items() if k == principal.robot_namespace}
    return roles


@router.get("", tags=["namespaces"])
def list_namespaces(instance: InstanceDep, principal: User) -> list[Namespace]:
    """The namespaces the caller can see: public ones, those it holds a role in, or all of
    them for an administrator."""
    roles = _roles(instance, principal)
    return [Namespace.of(ns, roles.get(ns.name))
            for ns in instance.manager.list_namespaces(principal)]


@router.post("", tags=["namespaces"], status_code=status.HTTP_201_CREATED)
def create_namespace(body: NamespaceCreate, instance: InstanceDep, principal: User) -> Namespace:
    """The creator becomes its owner. Counts against the `namespaces` quota."""
    ns = instance.manager.create_namespace(principal, body.name, body.visibility,
                                           body.description, body.credential_free_pull)
    return Namespace.of(ns, _roles(instance, principal).get(ns.name))


@router.get("/{namespace}", tags=["namespaces"])
def get_namespace(namespace: str, instance: InstanceDep, principal: User) -> Namespace:
    ns = instance.manager.get_namespace(principal, namespace)
    return Namespace.of(ns, _roles(instance, principal).get(ns.name))


@router.patch("/{namespace}", tags=["namespaces"])
def update_namespace(namespace: str, body: NamespaceUpdate, instance: InstanceDep,
                     principal: User) -> Namespace:
    """Only the fields present change. Needs the owner role."""
    quota = body.storage_quota if "storage_quota" in body.model_fields_set else ...
    ns = instance.manager.update_namespace(principal, namespace, body.visibility,
                                           body.description, body.credential_free_pull, quota)
    return Namespace.of(ns, _roles(instance, principal).get(ns.name))


@router.delete("/{namespace}", tags=["namespaces"], status_code=status.HTTP_204_NO_CONTENT)
def delete_namespace(namespace: str, instance: InstanceDep, principal: User) -> None:
    """Removes its repositories, tags, robots and rules with it. Needs the owner role.
    Refused (403 IMMUTABLE) while it holds immutable tags, for administrators too."""
    instance.manager.delete_namespace(principal, namespace)


# -- members ------------------------------------------------------------------------------
@router.get("/{namespace}/members", tags=["members"])
def list_members(namespace: str, instance: InstanceDep, principal: User) -> list[Member]:
    return [Member(username=u, kind=k, role=r)  # type: ignore[arg-type]
            for u, k, r in instance.manager.members(principal, namespace)]


@router.put("/{namespace}/members/{username}", tags=["members"])
def set_member(namespace: str, username: str, body: MemberSet, instance: InstanceDep,
               principal: User) -> Member:
    """Grant or change a role (idempotent). Needs the owner role."""
    instance.manager.set_role(principal, namespace, username, body.role)
    account = instance.access_store.user(username)
    kind = account.kind if account else "user"
    return Member(username=username, kind=kind, role=body.role)  # type: ignore[arg-type]


@router.delete("/{namespace}/members/{username}", tags=["members"],
               status_code=status.HTTP_204_NO_CONTENT)
def remove_member(namespace: str, username: str, instance: InstanceDep, principal: User) -> None:
    instance.manager.remove_role(principal, namespace, username)


# -- robots -------------------------------------------------------------------------------
@router.get("/{namespace}/robots", tags=["robots"])
def list_robots(namespace: str, instance: InstanceDep, principal: User) -> list[Robot]:
    """Never includes secrets: they are shown once, when a robot is created."""
    return [Robot.of(row, namespace, role)
            for row, role in instance.manager.list_robots(principal, namespace)]


@router.post("/{namespace}/robots", tags=["robots"], status_code=status.HTTP_201_CREATED)
def create_robot(namespace: str, body: RobotCreate, instance: InstanceDep,
                 principal: User) -> RobotCreated:
    """The response carries the robot's secret, this once; only its hash is kept."""
    row, created = instance.manager.create_robot(principal, namespace, body.name, body.role,
                                                 body.description, body.expires_in_days)
    robot = Robot.of(row, namespace, body.role)
    return RobotCreated(**robot.model_dump(), secret=created.secret)


@router.delete("/{namespace}/robots/{name}", tags=["robots"],
               status_code=status.HTTP_204_NO_CONTENT)
def delete_robot(namespace: str, name: str, instance: InstanceDep, principal: User) -> None:
    instance.manager.delete_robot(principal, namespace, name)
