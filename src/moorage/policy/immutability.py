"""Tag immutability: once pushed, a protected tag can be neither moved nor deleted, and
neither can what it holds: its manifest, the manifests of its index, their blobs, nor the
repository or namespace around it (an administrator may force a repository delete).

Signatures, attestations and SBOMs stored under the cosign tag scheme (`sha256-<hex>.sig`,
`.att`, `.sbom`) and referrers are exempt: signing an immutable image must stay possible.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from moorage.db.holders import Holder
from moorage.db.policy import ImmutabilityRuleRow, PolicyStore
from moorage.oci.errors import RegistryError
from moorage.oci.names import namespace_of

SUPPLY_CHAIN_TAG = re.compile(r"sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?")


def relative_path(repository: str) -> str:
    """A repository's path inside its namespace ("" for a one-component name)."""
    namespace = namespace_of(repository)
    return repository[len(namespace) + 1:] if repository != namespace else ""


def rule_protects(rule: ImmutabilityRuleRow, repository: str, tag: str) -> bool:
    if namespace_of(repository) != rule.namespace:
        return False
    if not fnmatch.fnmatchcase(relative_path(repository), rule.repository_pattern):
        return False
    if not fnmatch.fnmatchcase(tag, rule.tag_pattern):
        return False
    return not (rule.exclude_pattern and fnmatch.fnmatchcase(tag, rule.exclude_pattern))


def _describe(rule: ImmutabilityRuleRow) -> str:
    return f"rule {rule.id}: {rule.tag_pattern!r} in {rule.namespace}"


def _refusal(message: str, rule: ImmutabilityRuleRow) -> RegistryError:
    return RegistryError("DENIED", message, detail={"reason": "immutable", "rule": rule.id})


@dataclass
class ImmutabilityPolicy:
    """The registry's tag check and content guard (see db/holders.py): refuses moving or
    deleting a protected tag, and deleting anything such a tag holds or is part of."""

    store: PolicyStore

    def rules(self) -> list[ImmutabilityRuleRow]:
        # current in every process (see there); a disabled rule protects nothing
        return [r for r in self.store.immutability_rules() if r.enabled]

    def protecting_rule(self, repository: str, tag: str,
                        rules: list[ImmutabilityRuleRow] | None = None
                        ) -> ImmutabilityRuleRow | None:
        if SUPPLY_CHAIN_TAG.fullmatch(tag):
            return None
        return next((r for r in (self.rules() if rules is None else rules)
                     if rule_protects(r, repository, tag)), None)

    def snapshot(self) -> Callable[[str, str], bool]:
        """Whether a tag is protected, by the rules as they are now: for a retention run,
        which asks about every tag; its deletes are checked again as they happen."""
        rules = self.rules()
        return lambda repository, tag: self.protecting_rule(repository, tag, rules) is not None

    def check(self, repository: str, tag: str, old_digest: str, new_digest: str | None) -> None:
        """A registry tag check: refuse moving or deleting a protected tag."""
        rule = self.protecting_rule(repository, tag)
        if rule is None:
            return
        if self.store.manifest_subject(old_digest) is not None:
            return  # a referrer (signature, SBOM) pushed under a tag stays manageable
        verb = "overwritten" if new_digest else "deleted"
        raise _refusal(f"tag {tag} of {repository} is immutable ({_describe(rule)}) and "
                       f"cannot be {verb}", rule)

    def _protecting(self, holders: list[Holder]) -> Iterator[tuple[Holder, ImmutabilityRuleRow]]:
        rules = self.rules()
        for holder in holders:
            if holder.referrer:
                continue  # a referrer (signature, SBOM) pushed under a tag stays manageable
            rule = self.protecting_rule(holder.repository, holder.tag, rules)
            if rule is not None:
                yield holder, rule

    def refuse(self, what: str, holders: list[Holder], contains: bool) -> None:
        """A content guard: refuse deleting what an immutable tag holds, or holds one."""
        for holder, rule in self._protecting(holders):
            tag = f"tag {holder.tag} of {holder.repository}"
            if contains:
                raise _refusal(f"{what} cannot be deleted: it holds immutable {tag} "
                               f"({_describe(rule)})", rule)
            raise _refusal(f"{what} cannot be deleted: immutable {tag}, at {holder.digest}, "
                           f"holds it ({_describe(rule)})", rule)

    def protected(self, holders: list[Holder]) -> list[Holder]:
        return [holder for holder, _ in self._protecting(holders)]
