"""An artifact subscription as data, and the checks of its fields. Pure: no I/O.

As with replication rules, a stored password is never part of `Subscription` (only whether
there is one), so a subscription printed, logged or answered shows no secret.
"""

from __future__ import annotations

from dataclasses import dataclass

import semver

from moorage.access.errors import Invalid
from moorage.jobs.scheduler import valid_cron
from moorage.oci.names import is_valid_name
from moorage.replication.model import NAME_RE
from moorage.replication.subscriptions.filters import TagFilter, tag_version

MAX_KEEP = 10_000


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    url: str
    upstream: str
    username: str | None
    has_password: bool
    ca_pem: str | None
    insecure: bool
    repository: str
    filter_kind: str
    filter: str
    cron: str
    keep_newest: int | None
    enabled: bool
    created_at: float
    updated_at: float
    updated_by: str

    @property
    def actor(self) -> str:
        """Who this subscription's writes are done by, on the event bus: the `replication:`
        prefix keeps them from triggering push rules (replication/service.py)."""
        return f"replication:subscription:{self.name}"

    @property
    def mode(self) -> str:
        """As a replication rule would say it: a subscription pulls."""
        return "pull"

    @property
    def tag_filter(self) -> TagFilter:
        return TagFilter(self.filter_kind, self.filter)


def newest_first(subscription: Subscription, tags: list[str],
                 seqs: dict[str, int]) -> list[str]:
    """The tags in the order keep-newest-N counts them, newest first.

    A SemVer range: by version (highest first). A glob or a regex: by when this
    subscription first saw the tag move (its `seq`: tags not seen yet are newer than all
    seen ones), and, within one listing, later in the upstream's tag list counts as newer
    (registries list tags in lexical order, so `build-10` after `build-09`)."""
    if subscription.filter_kind == "semver":
        def version_key(tag: str) -> tuple[semver.Version, str]:
            version = tag_version(tag)
            assert version is not None  # the range matched it
            return version, tag
        return sorted(tags, key=version_key, reverse=True)
    unseen = max(seqs.values(), default=0) + 1
    position = {tag: i for i, tag in enumerate(tags)}
    return sorted(tags, key=lambda t: (seqs.get(t, unseen), position[t]), reverse=True)


def check_fields(name: str, upstream: str, repository: str, filter_kind: str, pattern: str,
                 cron: str, keep_newest: int | None) -> None:
    """Refuse what cannot work, naming the field."""
    if not NAME_RE.fullmatch(name):
        raise Invalid("a subscription name is 1-64 characters: lowercase letters, digits, "
                      "'.', '_', '-', starting with a letter or digit")
    if not is_valid_name(upstream):
        raise Invalid(f"upstream {upstream[:100]!r} is not a valid repository name")
    if not is_valid_name(repository) or "/" not in repository:
        raise Invalid(f"repository {repository[:100]!r} is not a valid local repository "
                      "(namespace/name)")
    TagFilter(filter_kind, pattern).check()
    if cron and not valid_cron(cron):
        raise Invalid(f"invalid cron expression {cron[:100]!r} (five fields: m h dom mon dow)")
    if keep_newest is not None and not 1 <= keep_newest <= MAX_KEEP:
        raise Invalid(f"keep_newest is 1-{MAX_KEEP} (or null: keep all)")
