"""Tag immutability: once pushed, a protected tag can be neither moved nor deleted.

Signatures, attestations and SBOMs stored under the cosign tag scheme (`sha256-<hex>.sig`,
`.att`, `.sbom`) and referrers are exempt: signing an immutable image must stay possible.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class ImmutabilityPolicy:
    store: PolicyStore
    ttl: float = 2.0
    _rules: list[ImmutabilityRuleRow] | None = None
    _loaded: float = 0.0

    def rules(self) -> list[ImmutabilityRuleRow]:
        if self._rules is None or time.monotonic() - self._loaded > self.ttl:
            self._rules = self.store.immutability_rules()
            self._loaded = time.monotonic()
        return self._rules

    def changed(self) -> None:
        self._rules = None

    def protecting_rule(self, repository: str, tag: str) -> ImmutabilityRuleRow | None:
        if SUPPLY_CHAIN_TAG.fullmatch(tag):
            return None
        return next((r for r in self.rules() if rule_protects(r, repository, tag)), None)

    def check(self, repository: str, tag: str, old_digest: str, new_digest: str | None) -> None:
        """A registry tag check: refuse moving or deleting a protected tag."""
        rule = self.protecting_rule(repository, tag)
        if rule is None:
            return
        if self.store.manifest_subject(old_digest) is not None:
            return  # a referrer (signature, SBOM) pushed under a tag stays manageable
        verb = "overwritten" if new_digest else "deleted"
        raise RegistryError(
            "DENIED", f"tag {tag} of {repository} is immutable (rule {rule.id}: "
                      f"{rule.tag_pattern!r} in {rule.namespace}) and cannot be {verb}",
            detail={"reason": "immutable", "rule": rule.id})

    def as_check(self) -> Callable[[str, str, str, str | None], None]:
        return self.check
