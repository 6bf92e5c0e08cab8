"""Imports as data: what an import asks for, its checks, and the local name of a repository.

Pure: no I/O. A stored import never carries its password (only whether it has one), so an
import printed, logged or answered by the API shows no secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moorage.access.errors import Invalid
from moorage.oci.names import is_valid_name

KINDS = ("distribution", "harbor")
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
MAX_REPOSITORIES = 1000  # repositories one import may list by name
MAX_PLAN = 100_000  # repositories (and tags of one repository) one plan may hold
MAX_ERRORS = 200  # per-item errors an answer shows


@dataclass(frozen=True)
class Import:
    id: int
    url: str
    kind: str
    namespace: str | None  # a repository prefix, or None
    repositories: list[str] | None  # named repositories, or None
    prefix: str  # put in front of each repository's name here ('' keeps the names)
    username: str | None
    has_password: bool
    ca_pem: str | None
    insecure: bool
    bandwidth: int | None
    status: str
    job_id: int | None
    planned: bool
    message: str
    created_by: str
    created_at: float
    started_at: float | None
    ended_at: float | None

    @property
    def actor(self) -> str:
        """Who the copies of this import are done by, on this instance's event bus."""
        return f"import:{self.id}"

    def destination(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def wants(self, name: str) -> bool:
        """Whether a listed repository is in the import's scope."""
        if self.repositories is not None:
            return name in self.repositories
        if self.namespace:
            return name == self.namespace or name.startswith(self.namespace + "/")
        return True


@dataclass
class Counts:
    """How far an import has come, counted from its plan."""

    repositories_total: int = 0
    repositories_done: int = 0
    repositories_failed: int = 0
    tags_total: int = 0
    tags_done: int = 0
    tags_failed: int = 0
    bytes: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)


def check_import_fields(fields: dict[str, Any]) -> None:
    """Refuse what cannot work, naming the field (the URL is checked by the remote client)."""
    if fields["kind"] not in KINDS:
        raise Invalid(f"kind is distribution or harbor, not {str(fields['kind'])[:20]!r}")
    namespace, repositories = fields.get("namespace"), fields.get("repositories")
    if namespace and repositories:
        raise Invalid("give a namespace or a list of repositories, not both")
    if namespace is not None and (not namespace or not is_valid_name(namespace)):
        raise Invalid(f"namespace {str(namespace)[:100]!r} is not a valid repository path")
    if repositories is not None:
        if not repositories or len(repositories) > MAX_REPOSITORIES:
            raise Invalid(f"repositories lists 1-{MAX_REPOSITORIES} names")
        for name in repositories:
            if not is_valid_name(name):
                raise Invalid(f"{str(name)[:100]!r} is not a valid repository name")
    prefix = fields.get("prefix") or ""
    if prefix and not is_valid_name(prefix):
        raise Invalid(f"into {prefix[:100]!r} is not a valid repository path")
    bandwidth = fields.get("bandwidth")
    if bandwidth is not None and bandwidth < 1024:
        raise Invalid("bandwidth is at least 1024 bytes a second (or null: unlimited)")
