"""User accounts (administrators manage them; everyone may see and change their own) and
`/user`, who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, status

from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import Me, User as UserModel, UserCreate, UserUpdate

router = APIRouter(prefix="/api/v1", tags=["users"], responses=ERROR_RESPONSES)


@router.get("/user")
def whoami(instance: InstanceDep, principal: User) -> Me:
    """The caller and the roles it holds: what the CLI checks credentials with."""
    roles = instance.access_store.roles(principal.id) if principal.id is not None else {}
    if principal.kind == "robot":
        roles = {k: v for k, v in roles.items() if k == principal.robot_namespace}
    row = instance.access_store.user_by_id(principal.id) if principal.id is not None else None
    source = row.source if row is not None else "local"
    return Me(username=principal.username, kind=principal.kind,  # type: ignore[arg-type]
              is_admin=principal.is_admin, robot_namespace=principal.robot_namespace,
              roles=roles, source=source)  # type: ignore[arg-type]


@router.get("/users")
def list_users(instance: InstanceDep, principal: User) -> list[UserModel]:
    """Administrators only. Robot accounts are listed per namespace, under /robots."""
    return [UserModel.of(u) for u in instance.manager.list_users(principal)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, instance: InstanceDep, principal: User) -> UserModel:
    """Administrators only. The password is stored as an argon2id hash and never returned."""
    return UserModel.of(instance.manager.create_user(principal, body.username, body.password,
                                                     body.is_admin))


@router.get("/users/{username}")
def get_user(username: str, instance: InstanceDep, principal: User) -> UserModel:
    return UserModel.of(instance.manager.get_user(principal, username))


@router.patch("/users/{username}")
def update_user(username: str, body: UserUpdate, instance: InstanceDep,
                principal: User) -> UserModel:
    """Users may change their own password; only administrators change `is_admin` and
    `disabled` (the last enabled administrator can be neither demoted nor disabled), and
    `source`, where the account signs in."""
    return UserModel.of(instance.manager.update_user(principal, username, body.password,
                                                     body.is_admin, body.disabled,
                                                     body.source))


@router.delete("/users/{username}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(username: str, instance: InstanceDep, principal: User) -> None:
    instance.manager.delete_user(principal, username)
