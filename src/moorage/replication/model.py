"""Replication rules as data: what a rule says, its checks, its filters and name mapping.

Pure: no I/O. A rule's password is never part of `Rule` once stored (only whether it has
one), so a rule printed, logged or answered by the API shows no secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from moorage.access.errors import Invalid
from moorage.jobs.scheduler import valid_cron
from moorage.oci.names import is_valid_name

MODES = ("push", "pull")
STATUSES = ("pending", "running", "succeeded", "failed", "stopped")
TRIGGERS = ("manual", "event", "schedule")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_GLOB = 255
# The smallest limit a rule may set: below it a large layer would take days.
MIN_BANDWIDTH = 1024


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    mode: str
    url: str
    username: str | None
    has_password: bool
    ca_pem: str | None
    insecure: bool
    repositories: str
    tags: str
    destination_namespace: str
    on_event: bool
    cron: str
    propagate_deletes: bool
    bandwidth: int | None
    enabled: bool
    created_at: float
    updated_at: float
    updated_by: str

    @property
    def actor(self) -> str:
        """Who the copies of this rule are done by, on this instance's event bus."""
        return f"replication:{self.name}"

    def wants_repository(self, name: str) -> bool:
        return glob_match(self.repositories, name)

    def wants_tag(self, tag: str) -> bool:
        return glob_match(self.tags, tag)

    @property
    def wants_every_tag(self) -> bool:
        """No tag filter: the pattern matches any tag (a tag holds no '/')."""
        return self.tags in ("*", "**")

    def destination(self, name: str) -> str:
        """The repository name at the destination: the first path segment (the namespace)
        replaced by `destination_namespace` when one is set."""
        if not self.destination_namespace:
            return name
        _, _, rest = name.partition("/")
        return f"{self.destination_namespace}/{rest or name}"


@lru_cache(maxsize=256)
def _glob_re(pattern: str) -> re.Pattern[str]:
    """`*` matches within one path segment, `**` across segments, `?` one character,
    `{a,b}` alternatives."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise Invalid(f"unclosed '{{' in pattern {pattern!r}")
            out.append("(?:" + "|".join(re.escape(p) for p in pattern[i + 1:end].split(","))
                       + ")")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def glob_match(pattern: str, value: str) -> bool:
    return _glob_re(pattern).fullmatch(value) is not None


def check_rule_fields(name: str, mode: str, repositories: str, tags: str,
                      destination_namespace: str, cron: str, bandwidth: int | None) -> None:
    """Refuse what cannot work, naming the field."""
    if not NAME_RE.fullmatch(name):
        raise Invalid("a rule name is 1-64 characters: lowercase letters, digits, '.', '_', "
                      "'-', starting with a letter or digit")
    if mode not in MODES:
        raise Invalid(f"mode is push or pull, not {mode[:20]!r}")
    for label, pattern in (("repositories", repositories), ("tags", tags)):
        if not pattern or len(pattern) > MAX_GLOB:
            raise Invalid(f"{label} is a glob pattern of 1-{MAX_GLOB} characters")
        _glob_re(pattern)
    if destination_namespace and not is_valid_name(destination_namespace):
        raise Invalid(f"destination_namespace {destination_namespace[:100]!r} is not a "
                      "valid repository path")
    if cron and not valid_cron(cron):
        raise Invalid(f"invalid cron expression {cron[:100]!r} (five fields: m h dom mon dow)")
    if bandwidth is not None and bandwidth < MIN_BANDWIDTH:
        raise Invalid(f"bandwidth is at least {MIN_BANDWIDTH} bytes a second (or null: "
                      "unlimited)")
