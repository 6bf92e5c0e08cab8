"""The tables of threat blocking: policies, scan facts, signed manifests, block marks.

Writes go through SQLAlchemy Core. The reads a pull makes are plain SQL through the pull
path's reader (`RawReader.cached_rows`): answered from memory until the next commit anywhere
on the database, so a namespace with a policy costs a pull a few dictionary lookups, and any
edit (a policy, a scan's facts, a signature, an allowlist entry) is seen by the next pull on
every worker. Without a shared commit signal (PostgreSQL) they are plain indexed lookups.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moorage.access.errors import Invalid, NotFound
from moorage.blocking.model import PullPolicy
from moorage.db.changes import unobserved
from moorage.db.rawreads import RawReader
from moorage.db.schema import (manifests, namespaces, pull_block_marks, pull_policies,
                               pull_policy_exempt, pull_scan_facts, pull_signed, repositories,
                               repository_manifests, scan_results, users)

_POLICY_SQL = ("SELECT p.severity, p.block_unscanned, p.block_unsigned, "
               "p.updated_at, p.updated_by FROM pull_policies p "
               "JOIN namespaces n ON n.id = p.namespace_id WHERE n.name = ?")
# The exempted robots, by account: a robot deleted and created again is not among them.
_EXEMPT_SQL = ("SELECT u.username FROM pull_policy_exempt e "
               "JOIN users u ON u.id = e.user_id JOIN namespaces n ON n.id = e.namespace_id "
               "WHERE n.name = ? ORDER BY u.username")
_FACTS_SQL = "SELECT status, findings FROM pull_scan_facts WHERE digest = ?"
# Signed itself, or a child of an index signed in the same repository.
_SIGNED_SQL = ("SELECT 1 FROM pull_signed WHERE repository = ? AND digest = ? "
               "UNION ALL SELECT 1 FROM manifest_references r JOIN pull_signed s "
               "ON s.digest = r.manifest_digest AND s.repository = ? "
               "WHERE r.target_digest = ? AND r.kind = 'manifest'")
_ALLOWLIST_SQL = ("SELECT a.advisory_id, a.expires_at FROM cve_allowlist a "
                  "JOIN namespaces n ON n.id = a.namespace_id WHERE n.name = ?")
MARK_SECONDS = 60.0  # one recorded blocked pull per (repository, digest, actor) a minute


def policy_of(namespace: str, row: Any, exempt_usernames: Iterable[str]) -> PullPolicy:
    """A policy from its row and the usernames of the robots it exempts."""
    prefix = robot_prefix(namespace)
    exempt = tuple(u[len(prefix):] for u in exempt_usernames if u.startswith(prefix))
    return PullPolicy(namespace, row[0], bool(row[1]), bool(row[2]), exempt,
                      float(row[3] or 0), str(row[4] or ""))


def robot_prefix(namespace: str) -> str:
    return f"robot${namespace}+"


@dataclass(frozen=True)
class ImageRow:
    repository: str
    digest: str


class BlockingStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = RawReader.of(engine)

    # -- the pull path (cached until the next commit) -----------------------------------
    def policy_row(self, namespace: str) -> Any:
        found = self.reader.cached_rows(_POLICY_SQL, (namespace,))
        return found[0] if found else None

    def exempt_usernames(self, namespace: str) -> list[str]:
        return self.reader.cached_rows(_EXEMPT_SQL, (namespace,), first_column=True)

    def facts_row(self, digest: str) -> Any:
        found = self.reader.cached_rows(_FACTS_SQL, (digest,))
        return found[0] if found else None

    def signed(self, repository: str, digest: str) -> bool:
        return bool(self.reader.cached_rows(_SIGNED_SQL, (repository, digest, repository,
                                                          digest)))

    def allowlist_rows(self, namespace: str) -> list[Any]:
        return self.reader.cached_rows(_ALLOWLIST_SQL, (namespace,))

    # -- policies -------------------------------------------------------------------------
    def policy(self, namespace: str) -> PullPolicy:
        """The namespace's policy; all rules off when it has none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(
                pull_policies.c.severity, pull_policies.c.block_unscanned,
                pull_policies.c.block_unsigned,
                pull_policies.c.updated_at, pull_policies.c.updated_by)
                .join(namespaces, namespaces.c.id == pull_policies.c.namespace_id)
                .where(namespaces.c.name == namespace)).first()
            if row is None:
                return PullPolicy(namespace)
            exempt = conn.execute(select(users.c.username)
                                  .join(pull_policy_exempt,
                                        pull_policy_exempt.c.user_id == users.c.id)
                                  .join(namespaces,
                                        namespaces.c.id == pull_policy_exempt.c.namespace_id)
                                  .where(namespaces.c.name == namespace)
                                  .order_by(users.c.username)).scalars().all()
        return policy_of(namespace, row, exempt)

    def put_policy(self, namespace_id: int, policy: PullPolicy) -> None:
        """The policy and its exemptions in one transaction. A robot that is not (or no
        longer) the namespace's is refused, so an exemption always names a live account."""
        values = dict(severity=policy.severity, block_unscanned=policy.block_unscanned,
                      block_unsigned=policy.block_unsigned, exempt="[]", updated_at=time.time(),
                      updated_by=policy.updated_by[:255])
        mine = pull_policies.c.namespace_id == namespace_id
        wanted = {robot_prefix(policy.namespace) + name for name in policy.exempt}
        for attempt in range(2):  # two first edits at once: the second updates the first's row
            try:
                with self.engine.begin() as conn:
                    if conn.execute(update(pull_policies).where(mine).values(**values)
                                    ).rowcount == 0:
                        conn.execute(insert(pull_policies).values(namespace_id=namespace_id,
                                                                  **values))
                    robots = conn.execute(select(users.c.id, users.c.username).where(
                        users.c.username.in_(wanted), users.c.kind == "robot",
                        users.c.namespace_id == namespace_id)).all() if wanted else []
                    missing = wanted - {r.username for r in robots}
                    if missing:
                        raise Invalid(f"no robot account {sorted(missing)[0]!r} in namespace "
                                      f"{policy.namespace}")
                    conn.execute(delete(pull_policy_exempt)
                                 .where(pull_policy_exempt.c.namespace_id == namespace_id))
                    if robots:
                        conn.execute(insert(pull_policy_exempt), [
                            {"namespace_id": namespace_id, "user_id": r.id} for r in robots])
                return
            except IntegrityError:
                if attempt:
                    raise NotFound("the namespace no longer exists") from None

    # -- facts ------------------------------------------------------------------------------
    def put_scan_facts(self, facts: Iterable[tuple[str, str, str]]) -> None:
        """(digest, status, encoded findings) rows, replacing what was there; a digest
        whose manifest went meanwhile is skipped (its row would have nothing to attach to)."""
        now = time.time()
        for digest, status, findings in facts:
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(pull_scan_facts)
                                 .where(pull_scan_facts.c.digest == digest))
                    conn.execute(insert(pull_scan_facts).values(
                        digest=digest, status=status, findings=findings, updated_at=now))
            except IntegrityError:
                continue

    def set_signed(self, repository: str, digest: str, signed: bool,
                   signers: list[str]) -> None:
        key = and_(pull_signed.c.repository == repository, pull_signed.c.digest == digest)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(pull_signed).where(key))
                if signed:
                    conn.execute(insert(pull_signed).values(
                        repository=repository, digest=digest, updated_at=time.time(),
                        signers=json.dumps([str(s)[:255] for s in signers[:20]])))
        except IntegrityError:  # the manifest is gone
            pass

    # -- what a namespace holds (backfill) -------------------------------------------------
    def images_without_facts(self, namespace: str, limit: int = 100_000) -> list[str]:
        """Digests stored in the namespace whose scan finished but has no facts row yet
        (scanned before threat blocking was installed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(scan_results.c.digest).distinct()
                .join(repository_manifests,
                      repository_manifests.c.digest == scan_results.c.digest)
                .join(repositories, repositories.c.id == repository_manifests.c.repository_id)
                .join(namespaces, namespaces.c.id == repositories.c.namespace_id)
                .outerjoin(pull_scan_facts, pull_scan_facts.c.digest == scan_results.c.digest)
                .where(namespaces.c.name == namespace,
                       scan_results.c.status.in_(("done", "failed")),
                       pull_scan_facts.c.digest.is_(None))
                .limit(limit)).all()
        return [r[0] for r in rows]

    def manifests_of(self, namespace: str, limit: int = 100_000) -> list[ImageRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(repositories.c.name, repository_manifests.c.digest)
                .join(repositories, repositories.c.id == repository_manifests.c.repository_id)
                .join(namespaces, namespaces.c.id == repositories.c.namespace_id)
                .join(manifests, manifests.c.digest == repository_manifests.c.digest)
                .where(namespaces.c.name == namespace, manifests.c.subject.is_(None))
                .limit(limit)).all()
        return [ImageRow(r[0], r[1]) for r in rows]

    def index_parents(self, digest: str) -> list[str]:
        """The indexes whose facts merge this image's (an index's platforms)."""
        from moorage.db.schema import manifest_references as refs
        with self.engine.connect() as conn:
            rows = conn.execute(select(refs.c.manifest_digest).where(
                refs.c.target_digest == digest, refs.c.kind == "manifest")).all()
        return [r[0] for r in rows]

    def index_children(self, digest: str) -> list[str]:
        from moorage.db.schema import manifest_references as refs
        with self.engine.connect() as conn:
            rows = conn.execute(select(refs.c.target_digest).where(
                refs.c.manifest_digest == digest, refs.c.kind == "manifest")).all()
        return [r[0] for r in rows]

    # -- recorded blocks ----------------------------------------------------------------------
    def mark_block(self, repository: str, digest: str, actor: str, now: float) -> bool:
        """Whether this blocked pull is the first of (repository, digest, actor) in a
        minute, on any worker or replica: a conditional write that one process wins. Not a
        change any pull-path answer depends on, so it leaves the commit signal alone."""
        key = and_(pull_block_marks.c.repository == repository[:255],
                   pull_block_marks.c.digest == digest[:200],
                   pull_block_marks.c.actor == actor[:255])
        with unobserved():
            try:
                with self.engine.begin() as conn:
                    won = conn.execute(update(pull_block_marks).where(
                        key, pull_block_marks.c.at <= now - MARK_SECONDS).values(at=now)
                    ).rowcount
                    if won:
                        return True
                    if conn.execute(select(pull_block_marks.c.at).where(key)).first():
                        return False
                    conn.execute(insert(pull_block_marks).values(
                        repository=repository[:255], digest=digest[:200], actor=actor[:255],
                        at=now))
                    # old marks go with the new ones: the table stays about a minute long
                    conn.execute(delete(pull_block_marks).where(
                        pull_block_marks.c.at < now - 10 * MARK_SECONDS))
                return True
            except IntegrityError:  # another worker recorded it first
                return False


def batched(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


__all__ = ["BlockingStore", "ImageRow", "MARK_SECONDS", "batched", "policy_of", "robot_prefix"]
