"""Retention (tag cleanup) rules: decide what goes, then make it go.

A rule looks at the tags of the repositories it covers: tags that match its pattern and not
its always-keep pattern are candidates; the newest `keep_last` of them stay; of the rest, only
those older than `older_than` go (or all of them, with no age condition). A manifest whose tags
all went is deleted from the repository, and its referrers (signatures, SBOMs, attestations,
by `subject` or by the `sha256-<hex>.sig` tag scheme) go with it. With `untagged`, manifests
that had no tag to begin with go too. Immutable tags are never touched.

Planning is a pure function of what the repository holds, so a dry run lists exactly what a
real run with the same inputs deletes.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from moorage.db.policy import ArtifactRow, RetentionRuleRow
from moorage.oci.errors import RegistryError
from moorage.policy.immutability import SUPPLY_CHAIN_TAG, relative_path
from moorage.registry.events import acting_as
from moorage.units import human_duration

if TYPE_CHECKING:
    from moorage.db.policy import PolicyStore
    from moorage.registry.service import Registry

IsImmutable = Callable[[str, str], bool]


@dataclass
class RepositoryPlan:
    repository: str
    delete_tags: list[str] = field(default_factory=list)
    delete_manifests: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # tag -> why it stays
    delete_reasons: dict[str, str] = field(default_factory=dict)  # tag -> why it goes
    # Planned, but refused when carried out (a rule added since the plan): reference -> why.
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"repository": self.repository, "delete_tags": self.delete_tags,
                "delete_manifests": self.delete_manifests, "kept": self.kept,
                "delete_reasons": self.delete_reasons, "refused": self.refused}


def covers(rule: RetentionRuleRow, repository: str) -> bool:
    return fnmatch.fnmatchcase(relative_path(repository), rule.repository_pattern)


def plan_repository(rule: RetentionRuleRow, repository: str, artifacts: list[ArtifactRow],
                    is_immutable: IsImmutable, now: float | None = None) -> RepositoryPlan:
    now = time.time() if now is None else now
    plan = RepositoryPlan(repository)
    candidates: list[tuple[float, str, str]] = []  # (tag time, tag, digest)
    for artifact in artifacts:
        for tag, updated_at in artifact.tags:
            if SUPPLY_CHAIN_TAG.fullmatch(tag):
                continue  # follows its subject, never selected on its own
            if not fnmatch.fnmatchcase(tag, rule.tag_pattern):
                continue
            if rule.always_keep and fnmatch.fnmatchcase(tag, rule.always_keep):
                plan.kept[tag] = f"matches always-keep {rule.always_keep!r}"
                continue
            candidates.append((updated_at, tag, artifact.digest))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    keep = rule.keep_last if rule.keep_last is not None else 0
    age = human_duration(rule.older_than_seconds) if rule.older_than_seconds else None
    why_going = "; ".join(filter(None, (
        f"beyond the newest {keep}" if keep else None,
        f"older than {age}" if age else None))) or f"matches {rule.tag_pattern!r}"
    for rank, (updated_at, tag, _) in enumerate(candidates):
        if rank < keep:
            plan.kept[tag] = f"among the newest {keep}"
        elif rule.older_than_seconds is not None and now - updated_at <= rule.older_than_seconds:
            plan.kept[tag] = f"younger than {age}"
        elif is_immutable(repository, tag):
            plan.kept[tag] = "immutable"
        else:
            plan.delete_tags.append(tag)
            plan.delete_reasons[tag] = why_going

    removed = set(plan.delete_tags)
    doomed: list[str] = []
    for artifact in artifacts:
        if artifact.is_child or artifact.subject is not None or any(
                SUPPLY_CHAIN_TAG.fullmatch(t) for t, _ in artifact.tags):
            continue  # children live with their index; referrers live with their subject
        names = {t for t, _ in artifact.tags if not SUPPLY_CHAIN_TAG.fullmatch(t)}
        if names and names <= removed:
            doomed.append(artifact.digest)
        elif not names and rule.untagged:
            doomed.append(artifact.digest)
    plan.delete_manifests = _with_referrers(doomed, artifacts)
    return plan


def _with_referrers(doomed: list[str], artifacts: list[ArtifactRow]) -> list[str]:
    """The doomed manifests and, transitively, everything that refers to them."""
    by_subject: dict[str, list[str]] = {}
    by_tag: dict[str, str] = {}
    for artifact in artifacts:
        if artifact.subject:
            by_subject.setdefault(artifact.subject, []).append(artifact.digest)
        for tag, _ in artifact.tags:
            if SUPPLY_CHAIN_TAG.fullmatch(tag):
                by_tag[tag] = artifact.digest
    result: list[str] = []
    seen: set[str] = set()
    queue = list(doomed)
    while queue:
        digest = queue.pop(0)
        if digest in seen:
            continue
        seen.add(digest)
        result.append(digest)
        queue.extend(by_subject.get(digest, []))
        hexpart = digest.partition(":")[2]
        for suffix in ("", ".sig", ".att", ".sbom"):
            tagged = by_tag.get(f"sha256-{hexpart}{suffix}")
            if tagged:
                queue.append(tagged)
    return result


Report = Callable[[str], None]


def _delete(registry: "Registry", plan: RepositoryPlan, reference: str, report: Report) -> None:
    """Carry out one planned delete. The registry checks immutability again, in the delete's
    own transaction: a refusal there (a rule added since the plan) leaves that reference and
    the run goes on; something already gone is no failure either."""
    try:
        registry.delete_manifest(plan.repository, reference)
    except RegistryError as exc:
        if exc.code == "MANIFEST_UNKNOWN":
            return
        if exc.code != "DENIED":
            raise
        plan.refused[reference] = exc.message
        report(f"{plan.repository}: kept {reference}: {exc.message}")


def actor_of(rule: RetentionRuleRow) -> str:
    """Who the audit log says deleted what a rule deleted: the rule, not the job's nobody."""
    return f"retention:{rule.id}"


def run_rule(rule: RetentionRuleRow, store: "PolicyStore", registry: "Registry",
             is_immutable: IsImmutable, dry_run: bool, report: Report = lambda _: None,
             check: Callable[[], None] = lambda: None) -> dict[str, object]:
    """Plan every covered repository, and unless `dry_run`, carry the plans out; every
    delete is announced as the rule's (actor `retention:<id>`, the rule in its detail)."""
    cause = {"id": rule.id, "namespace": rule.namespace,
             "repository_pattern": rule.repository_pattern, "tag_pattern": rule.tag_pattern}
    with acting_as(actor_of(rule), rule=cause):
        return _run(rule, store, registry, is_immutable, dry_run, report, check)


def _run(rule: RetentionRuleRow, store: "PolicyStore", registry: "Registry",
         is_immutable: IsImmutable, dry_run: bool, report: Report,
         check: Callable[[], None]) -> dict[str, object]:
    plans: list[RepositoryPlan] = []
    now = time.time()
    for repository in store.repositories_in(rule.namespace):
        check()
        if not covers(rule, repository):
            continue
        plan = plan_repository(rule, repository, store.artifacts(repository), is_immutable, now)
        plans.append(plan)  # also where nothing goes: its `kept` says why each tag stays
        if not plan.delete_tags and not plan.delete_manifests:
            continue
        verb = "would delete" if dry_run else "deleting"
        report(f"{repository}: {verb} tags {plan.delete_tags or '-'} and "
               f"{len(plan.delete_manifests)} manifests")
        if dry_run:
            continue
        tags_of = {a.digest: {t for t, _ in a.tags} for a in store.artifacts(repository)}
        doomed_tags = {t for d in plan.delete_manifests for t in tags_of.get(d, ())}
        for reference in [t for t in plan.delete_tags if t not in doomed_tags] + \
                plan.delete_manifests:
            _delete(registry, plan, reference, report)
        if plan.refused:  # the result lists what went; `refused`, what stayed and why
            stayed = set(plan.refused) | {t for d in plan.refused for t in tags_of.get(d, ())}
            plan.delete_tags = [t for t in plan.delete_tags if t not in stayed]
            plan.delete_reasons = {t: why for t, why in plan.delete_reasons.items()
                                   if t not in stayed}
            plan.delete_manifests = [d for d in plan.delete_manifests if d not in stayed]
    return {"rule": rule.id, "dry_run": dry_run,
            "deleted_tags": sum(len(p.delete_tags) for p in plans),
            "deleted_manifests": sum(len(p.delete_manifests) for p in plans),
            "repositories": [p.as_dict() for p in plans]}
