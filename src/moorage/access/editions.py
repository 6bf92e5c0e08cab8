"""Editions: the quotas and feature switches of PRODUCT.md's table, with overrides.

The tables are the product's plan; `BUILT_FEATURES` and `BUILT_QUOTAS` say what this version
implements. Only what is built is ever shown (`moorage info`, `/api/v1/info`, the OpenAPI
document) or enforced: an instance must not advertise scanning it cannot do. A feature folder
adds its names to the BUILT sets in the change that builds it, and the edition table then
decides whether it is on.

A refusal always names what was hit: the quota and its value, or the edition a feature needs,
so that an operator knows whether to clean up, raise a setting, or change edition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest

EDITION_NAMES = ("personal", "basic", "advanced")

# quota -> value per edition; None means unlimited, 0 means not available.
QUOTAS: dict[str, dict[str, int | None]] = {
    "namespaces": {"personal": 3, "basic": 15, "advanced": 50},
    "repositories": {"personal": 300, "basic": 1000, "advanced": 5000},
    "helm_namespaces": {"personal": 0, "basic": 15, "advanced": 50},
    "helm_repositories": {"personal": 0, "basic": 1000, "advanced": 5000},
    "concurrent_builds": {"personal": 1, "basic": 3, "advanced": 10},
    "artifact_subscriptions": {"personal": 0, "basic": 5, "advanced": 30},
    "sync_rules": {"personal": 0, "basic": 0, "advanced": 60},
    "pull_qps": {"personal": None, "basic": 250, "advanced": 1000},
}

# feature -> human name, and the editions that have it.
FEATURES: dict[str, tuple[str, frozenset[str]]] = {
    "oci_artifacts": ("OCI artifacts (non-image media types)", frozenset({"basic", "advanced"})),
    "tag_immutability": ("tag immutability", frozenset({"basic", "advanced"})),
    "retention": ("automatic tag cleanup rules", frozenset({"basic", "advanced"})),
    "custom_domains": ("custom domain names", frozenset({"basic", "advanced"})),
    "import": ("import from other registries", frozenset({"basic", "advanced"})),
    # not in the product's table: issue 18 puts proxy caches beside import (basic and up)
    "proxy_cache": ("proxy cache namespaces (pull through)", frozenset({"basic", "advanced"})),
    "audit_log": ("audit log", frozenset({"basic", "advanced"})),
    "webhooks": ("event notifications (webhooks)", frozenset({"basic", "advanced"})),
    "multiarch_builds": ("multi-architecture image builds", frozenset({"basic", "advanced"})),
    "scanning": ("vulnerability scanning", frozenset({"basic", "advanced"})),
    "network_acl": ("network access control (CIDR allowlists)", frozenset({"basic", "advanced"})),
    "p2p": ("P2P distribution", frozenset({"advanced"})),
    "lazy_pull": ("on-demand distribution (lazy pulling)", frozenset({"advanced"})),
    "global_sync": ("global synchronization across instances", frozenset({"advanced"})),
    "threat_blocking": ("threat blocking by policy", frozenset({"advanced"})),
    "signing": ("image signing and signature verification", frozenset({"advanced"})),
    "delivery_chain": ("delivery chain", frozenset({"advanced"})),
    "credential_free_pull": ("credential-free pull", frozenset(EDITION_NAMES)),
    # the Helm chart rows of the product's table: personal has no chart namespaces at all
    "helm_charts": ("Helm charts", frozenset({"basic", "advanced"})),
}

# What this version implements, out of the plan above. Add a name here when its feature lands.
BUILT_FEATURES: frozenset[str] = frozenset({
    "oci_artifacts", "tag_immutability", "retention", "audit_log", "webhooks", "network_acl",
    "credential_free_pull", "custom_domains", "scanning", "signing", "threat_blocking",
    "proxy_cache", "global_sync", "import", "helm_charts",
})
BUILT_QUOTAS: frozenset[str] = frozenset({"namespaces", "repositories", "sync_rules",
                                          "artifact_subscriptions", "helm_namespaces",
                                          "helm_repositories"})
# In the tables' order, for listings and the OpenAPI enums.
FEATURE_NAMES: tuple[str, ...] = tuple(name for name in FEATURES if name in BUILT_FEATURES)
QUOTA_NAMES: tuple[str, ...] = tuple(name for name in QUOTAS if name in BUILT_QUOTAS)
assert set(FEATURE_NAMES) == BUILT_FEATURES and set(QUOTA_NAMES) == BUILT_QUOTAS


class EditionError(RegistryError):
    """A quota reached or a feature missing: 403 DENIED with a message that names it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__("DENIED", message, detail={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class Edition:
    name: str
    overrides: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in EDITION_NAMES:
            raise ValueError(f"unknown edition {self.name!r}; choose one of {', '.join(EDITION_NAMES)}")
        unknown = set(self.overrides) - BUILT_QUOTAS
        if unknown:
            raise ValueError(f"unknown quotas: {', '.join(sorted(unknown))} (this version has "
                             f"{', '.join(QUOTA_NAMES)})")

    def quota(self, name: str) -> int | None:
        if name in self.overrides:
            return self.overrides[name]
        return QUOTAS[name][self.name]

    def quotas(self) -> dict[str, int | None]:
        """The quotas this version enforces, with their values in force."""
        return {name: self.quota(name) for name in QUOTA_NAMES}

    def has(self, feature: str) -> bool:
        """On in this edition and built: a planned feature is never on."""
        return feature in BUILT_FEATURES and self.name in FEATURES[feature][1]

    def features(self) -> dict[str, bool]:
        """Each built feature, and whether this edition has it."""
        return {name: self.has(name) for name in FEATURE_NAMES}

    def require(self, feature: str) -> None:
        if feature not in BUILT_FEATURES:
            raise EditionError(f"{FEATURES[feature][0]} is not part of this version", "feature")
        if not self.has(feature):
            label, editions = FEATURES[feature]
            needed = next(e for e in EDITION_NAMES if e in editions)
            raise EditionError(
                f"{label} needs the {needed} edition or higher; this instance runs the "
                f"{self.name} edition", "feature")

    def check_quota(self, name: str, in_use: int, adding: int = 1) -> None:
        """Refuse when `adding` more would pass the quota."""
        limit = self.quota(name)
        if limit is not None and in_use + adding > limit:
            raise EditionError(
                f"quota '{name}' is {limit} on the {self.name} edition and {in_use} are in use; "
                f"delete some or raise the quota in the settings (quota_{name})", "quota")


IMAGE_CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json",
                                "application/vnd.docker.container.image.v1+json"})


def artifact_check(edition: Edition) -> Callable[[str, Manifest], None]:
    """A push check for editions without OCI artifacts: only images (and their indexes) pass."""

    def check(name: str, manifest: Manifest) -> None:
        if manifest.is_index:
            is_artifact = manifest.artifact_type is not None
        else:
            is_artifact = manifest.artifact_type not in IMAGE_CONFIG_TYPES
        if is_artifact:
            edition.require("oci_artifacts")

    return check
