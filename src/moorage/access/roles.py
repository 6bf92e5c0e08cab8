"""Roles per namespace and what each may do."""

from __future__ import annotations

ROLES = ("owner", "maintainer", "developer", "guest")

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "owner": frozenset({"pull", "push", "delete", "manage_rules", "manage_members"}),
    "maintainer": frozenset({"pull", "push", "delete", "manage_rules"}),
    "developer": frozenset({"pull", "push"}),
    "guest": frozenset({"pull"}),
}


def least_role_for(action: str) -> str:
    """The weakest role that may perform an action, for error messages."""
    for role in reversed(ROLES):
        if action in ROLE_ACTIONS[role]:
            return role
    return "owner"
