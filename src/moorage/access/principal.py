"""Who is asking: a user, a robot, or nobody."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    id: int | None
    username: str
    kind: str  # "user" | "robot" | "anonymous"
    is_admin: bool = False
    robot_namespace: str | None = None
    # The access or refresh token this login presented ("p:<id>", "r:<id>"), if any: bearer
    # tokens issued from it carry it, and lose push and delete when it is revoked.
    origin: str | None = None
    # When the account was created: with the id, what tells it from a later account of the
    # same name (SQLite reuses the highest id after a deletion).
    created_at: float | None = None

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"

    def describe(self) -> str:
        if self.anonymous:
            return "an anonymous client"
        return f"{'robot' if self.kind == 'robot' else 'user'} {self.username}"


ANONYMOUS = Principal(None, "", "anonymous")
