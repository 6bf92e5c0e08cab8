"""Which tags hold a piece of content, asked inside the transaction that would remove it.

A tag holds the manifest it points at, every manifest below it when that is an index (at any
depth), and every blob those manifests reference. A delete of any of them, or of the
repository or namespace around the tag, first asks its guards (tag immutability) with the
holders found here, after the namespace's lock is taken: a push that lands a protected tag
meanwhile waits for the delete, which then finds it, rather than losing it to a check made
before the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import String, and_, cast, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from moorage.db.schema import (manifest_references, manifests, repositories,
                               repository_manifests, tags)


@dataclass(frozen=True, slots=True)
class Holder:
    repository: str
    tag: str
    digest: str  # what the tag points at
    referrer: bool  # that manifest has a subject (a signature, an SBOM)


Inspect = Callable[[list[Holder]], None]  # raises to refuse; the transaction rolls back


class Guard(Protocol):
    """What the core asks before content goes (ImmutabilityPolicy is one)."""

    def refuse(self, what: str, holders: list[Holder], contains: bool) -> None:
        """Raise if a holder protects `what`; `contains`: `what` contains the holders (a
        repository, a namespace) rather than being held by them (a manifest, a blob)."""

    def protected(self, holders: list[Holder]) -> list[Holder]:
        """The holders that protect content, for a forced delete to record."""


def inspect_with(guards: list[Guard], what: str, contains: bool = False) -> Inspect | None:
    """The check a delete runs on its holders; None when nothing guards anything."""
    if not guards:
        return None

    def check(holders: list[Holder]) -> None:
        for guard in guards:
            guard.refuse(what, holders, contains)

    return check


def _holders(conn: Connection, query: Select) -> list[Holder]:  # type: ignore[type-arg]
    return [Holder(r[0], r[1], r[2], bool(r[3])) for r in conn.execute(query)]


def _tag_columns():  # type: ignore[no-untyped-def]
    return (repositories.c.name, tags.c.name, tags.c.digest, manifests.c.subject.is_not(None))


def _held_by(conn: Connection, repo_id: int, base: Select) -> list[Holder]:  # type: ignore[type-arg]
    """Tags of the repository pointing at a manifest of `base` or at an index above one."""
    held = base.cte("held", recursive=True)
    ref, link = manifest_references.alias("ref"), repository_manifests.alias("link")
    held = held.union(
        select(ref.c.manifest_digest)
        .select_from(ref.join(held, ref.c.target_digest == held.c.digest)
                     .join(link, and_(link.c.digest == ref.c.manifest_digest,
                                      link.c.repository_id == repo_id)))
        .where(ref.c.kind == "manifest"))
    return _holders(conn, select(*_tag_columns())
                    .select_from(tags.join(held, tags.c.digest == held.c.digest)
                                 .join(manifests, manifests.c.digest == tags.c.digest)
                                 .join(repositories, repositories.c.id == tags.c.repository_id))
                    .where(tags.c.repository_id == repo_id))


def manifest_holders(conn: Connection, repo_id: int, digest: str) -> list[Holder]:
    # Typed like the column, or PostgreSQL refuses a recursive term of another type.
    return _held_by(conn, repo_id, select(cast(literal(digest), String(200)).label("digest")))


def blob_holders(conn: Connection, repo_id: int, digest: str) -> list[Holder]:
    link = repository_manifests.alias("link")
    base = (select(manifest_references.c.manifest_digest.label("digest"))
            .select_from(manifest_references.join(
                link, and_(link.c.digest == manifest_references.c.manifest_digest,
                           link.c.repository_id == repo_id)))
            .where(manifest_references.c.target_digest == digest,
                   manifest_references.c.kind == "blob"))
    return _held_by(conn, repo_id, base)


def _all_tags() -> Select:  # type: ignore[type-arg]
    return (select(*_tag_columns())
            .select_from(tags.join(manifests, manifests.c.digest == tags.c.digest)
                         .join(repositories, repositories.c.id == tags.c.repository_id)))


def repository_holders(conn: Connection, repo_id: int) -> list[Holder]:
    return _holders(conn, _all_tags().where(tags.c.repository_id == repo_id))


def namespace_holders(conn: Connection, namespace_id: int) -> list[Holder]:
    return _holders(conn, _all_tags().where(repositories.c.namespace_id == namespace_id))


__all__ = ["Guard", "Holder", "Inspect", "inspect_with", "blob_holders", "manifest_holders",
           "namespace_holders", "repository_holders"]
