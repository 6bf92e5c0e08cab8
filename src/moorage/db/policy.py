"""Metadata queries for policies: immutability and retention rules, and what they act on."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from moorage.db.rawreads import RawReader
from moorage.db.schema import (immutability_rules, manifest_references, manifests, namespaces,
                               repositories, repository_manifests, retention_rules, tags)


@dataclass(frozen=True, slots=True)
class ImmutabilityRuleRow:
    id: int
    namespace: str
    repository_pattern: str
    tag_pattern: str
    exclude_pattern: str | None
    created_at: float
    enabled: bool = True  # a disabled rule protects nothing


@dataclass(frozen=True, slots=True)
class RetentionRuleRow:
    id: int
    namespace: str
    repository_pattern: str
    tag_pattern: str
    keep_last: int | None
    older_than_seconds: int | None
    untagged: bool
    always_keep: str | None
    schedule: str | None
    enabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """A manifest linked to a repository, as retention sees it."""

    digest: str
    pushed_at: float
    subject: str | None
    tags: tuple[tuple[str, float], ...]  # (tag, updated_at)
    is_child: bool  # referenced by an index linked in the same repository


_RET = (retention_rules.c.id, namespaces.c.name, retention_rules.c.repository_pattern,
        retention_rules.c.tag_pattern, retention_rules.c.keep_last,
        retention_rules.c.older_than_seconds, retention_rules.c.untagged,
        retention_rules.c.always_keep, retention_rules.c.schedule, retention_rules.c.enabled,
        retention_rules.c.created_at)


# Plain SQL for RawReader: asked by every tag move and every delete, in every process.
_IMMUTABILITY_RULES = (
    "SELECT r.id, n.name, r.repository_pattern, r.tag_pattern, r.exclude_pattern, "
    "r.created_at, r.enabled FROM immutability_rules r JOIN namespaces n ON n.id = r.namespace_id "
    "ORDER BY r.id")


class PolicyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reads = RawReader.of(engine)
        # The rows last read and the rules made of them, as one value (threads share it).
        self._rules: tuple[object, list[ImmutabilityRuleRow]] = (None, [])

    def _namespace_id(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(namespaces.c.id).where(namespaces.c.name == name)).scalar()

    # -- immutability -------------------------------------------------------------------
    def add_immutability(self, namespace_id: int, repository_pattern: str, tag_pattern: str,
                         exclude_pattern: str | None) -> int:
        with self.engine.begin() as conn:
            return conn.execute(insert(immutability_rules).values(
                namespace_id=namespace_id, repository_pattern=repository_pattern,
                tag_pattern=tag_pattern, exclude_pattern=exclude_pattern,
                created_at=time.time()).returning(immutability_rules.c.id)).scalar_one()

    def immutability_rules(self) -> list[ImmutabilityRuleRow]:
        """The rules as the database has them now, whichever process changed them last.

        Read through RawReader: on SQLite its answer is kept until the next commit by any
        process, on PostgreSQL it is asked each time; never a copy with a lifetime of its
        own, which let a process apply rules a moment after another had deleted them, or
        miss rules another had just added.
        """
        rows = self.reads.cached_rows(_IMMUTABILITY_RULES, ())
        seen, rules = self._rules
        if rows is not seen and rows != seen:
            rules = [ImmutabilityRuleRow(*r[:-1], enabled=bool(r[-1])) for r in rows]
            self._rules = (rows, rules)
        return rules

    def update_immutability(self, rule_id: int, **values: object) -> bool:
        """Change a rule's patterns or `enabled` in place (its id, scope and creation time
        stay); every process sees the change at its next read (see `immutability_rules`)."""
        if not values:
            return True
        with self.engine.begin() as conn:
            return conn.execute(update(immutability_rules).where(
                immutability_rules.c.id == rule_id).values(**values)).rowcount > 0

    def delete_immutability(self, rule_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(immutability_rules).where(
                immutability_rules.c.id == rule_id)).rowcount > 0

    # -- retention ----------------------------------------------------------------------
    def add_retention(self, namespace_id: int, **values: object) -> int:
        with self.engine.begin() as conn:
            return conn.execute(insert(retention_rules).values(
                namespace_id=namespace_id, created_at=time.time(), **values)
                .returning(retention_rules.c.id)).scalar_one()

    def retention_rules(self, namespace: str | None = None) -> list[RetentionRuleRow]:
        query = select(*_RET).select_from(retention_rules.join(namespaces)).order_by(
            retention_rules.c.id)
        if namespace is not None:
            query = query.where(namespaces.c.name == namespace)
        with self.engine.connect() as conn:
            return [RetentionRuleRow(*r) for r in conn.execute(query)]

    def retention_rule(self, rule_id: int) -> RetentionRuleRow | None:
        return next((r for r in self.retention_rules() if r.id == rule_id), None)

    def update_retention(self, rule_id: int, **values: object) -> bool:
        """Change a rule's settings in place, `enabled` included (id, scope, creation stay)."""
        if not values:
            return True
        with self.engine.begin() as conn:
            return conn.execute(update(retention_rules).where(
                retention_rules.c.id == rule_id).values(**values)).rowcount > 0

    def delete_retention(self, rule_id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(retention_rules).where(
                retention_rules.c.id == rule_id)).rowcount > 0

    # -- what rules act on --------------------------------------------------------------
    def repositories_in(self, namespace: str) -> list[str]:
        query = (select(repositories.c.name).select_from(repositories.join(namespaces))
                 .where(namespaces.c.name == namespace).order_by(repositories.c.name))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def artifacts(self, repository: str) -> list[ArtifactRow]:
        """Every manifest linked to a repository, with its tags and whether it is a child."""
        with self.engine.connect() as conn:
            repo_id = conn.execute(select(repositories.c.id)
                                   .where(repositories.c.name == repository)).scalar()
            if repo_id is None:
                return []
            linked = conn.execute(
                select(repository_manifests.c.digest, repository_manifests.c.pushed_at,
                       manifests.c.subject)
                .select_from(repository_manifests.join(manifests))
                .where(repository_manifests.c.repository_id == repo_id)).all()
            tag_rows = conn.execute(select(tags.c.name, tags.c.digest, tags.c.updated_at)
                                    .where(tags.c.repository_id == repo_id)).all()
            children = set(conn.execute(
                select(manifest_references.c.target_digest)
                .select_from(manifest_references.join(
                    repository_manifests,
                    repository_manifests.c.digest == manifest_references.c.manifest_digest))
                .where(repository_manifests.c.repository_id == repo_id,
                       manifest_references.c.kind == "manifest")).scalars())
        by_digest: dict[str, list[tuple[str, float]]] = {}
        for name, digest, updated in tag_rows:
            by_digest.setdefault(digest, []).append((name, updated))
        return [ArtifactRow(d, pushed, subject, tuple(sorted(by_digest.get(d, []))),
                            d in children) for d, pushed, subject in linked]

    def manifest_subject(self, digest: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(manifests.c.subject)
                                .where(manifests.c.digest == digest)).scalar()
