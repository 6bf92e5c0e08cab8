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

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"

    def describe(self) -> str:
        if self.anonymous:
            return "an anonymous client"
        return f"{'robot' if self.kind == 'robot' else 'user'} {self.username}"


ANONYMOUS = Principal(None, "", "anonymous")
