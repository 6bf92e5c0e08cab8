"""Token scopes (`repository:team/app:pull,push`) and their intersection with what is held."""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("pull", "push", "delete")


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    def claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(value: str) -> Scope | None:
    """Parse one scope; None if malformed. `*` expands to every action."""
    resource_type, sep, rest = value.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    resource_type = resource_type.split("(")[0]  # "repository(plugin)" is still a repository
    wanted = {a.strip() for a in actions.split(",") if a.strip()}
    if "*" in wanted:
        wanted = set(ACTIONS) if resource_type == "repository" else {"*"}
    return Scope(resource_type, name, frozenset(wanted))


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from query parameters; each value may hold several, separated by spaces."""
    scopes: list[Scope] = []
    for value in values:
        for part in value.split():
            scope = parse_scope(part)
            if scope is not None:
                scopes.append(scope)
    return scopes
