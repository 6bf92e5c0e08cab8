"""Pull policies and pull decisions, pure: no I/O, the clock a parameter.

A namespace's policy has up to three rules: findings at or above a severity, unscanned
images, images without a valid signature from a trusted key. A decision combines the policy
with the facts stored per image (its scan's blocking findings, whether it is signed) and
the namespace's CVE allowlist, at request time: each input is read from the database through
the pull path's cache (db/rawreads.py), so an edit, a scan, a signature or an allowlist
entry is seen by the next pull on any worker, and an allowlist entry that expires stops
accepting at its expiry without anything being rewritten.

The findings kept per image are only those a severity rule can block on (critical to low),
worst first, each with the ids that name it (so an allowlist entry for an alias accepts it)
and the words a refusal shows ("critical vulnerability CVE-… in openssl 3.0.1 (fixed in
3.0.2)").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from moorage.access.errors import Invalid

# The severities a rule may name, worst first; a finding's rank is its index here.
SEVERITIES = ("critical", "high", "medium", "low")
RANK = {level: n for n, level in enumerate(SEVERITIES)}
MAX_EXEMPT = 50  # robot accounts exempted per namespace
MAX_FINDINGS = 5000  # blocking findings kept per image (worst first)
_ROBOT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # as access/management.py
# Tags cosign writes beside an image: its signature, attestation and SBOM.
_COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)")


@dataclass(frozen=True)
class PullPolicy:
    """A namespace's rules; `exempt`: robot names (without the `robot$ns+` prefix)."""

    namespace: str
    severity: str | None = None
    block_unscanned: bool = False
    block_unsigned: bool = False
    exempt: tuple[str, ...] = ()
    updated_at: float = 0.0
    updated_by: str = ""

    @property
    def active(self) -> bool:
        return self.severity is not None or self.block_unscanned or self.block_unsigned

    def exempt_usernames(self) -> frozenset[str]:
        return frozenset(f"robot${self.namespace}+{name}" for name in self.exempt)

    def describe(self) -> str:
        """The rules in words, for a refusal's message and listings."""
        rules = []
        if self.severity is not None:
            rules.append(f"no {self.severity} or worse vulnerability")
        if self.block_unscanned:
            rules.append("scanned")
        if self.block_unsigned:
            rules.append("signed by a trusted key")
        return ", ".join(rules) or "off"


def check_severity(value: str | None) -> str | None:
    if value is None:
        return None
    level = value.strip().lower()
    if level not in RANK:
        raise Invalid(f"unknown severity {value[:32]!r}: choose one of "
                      f"{', '.join(SEVERITIES)}, or null to turn the rule off")
    return level


def check_exempt(names: Sequence[str], namespace: str) -> tuple[str, ...]:
    """Robot names of `namespace`, each at most once (a full username `robot$ns+name` of
    this namespace is taken as its name); their existence is checked by the caller."""
    if len(names) > MAX_EXEMPT:
        raise Invalid(f"at most {MAX_EXEMPT} robot accounts may be exempted")
    prefix = f"robot${namespace}+"
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if name.startswith(prefix):
            name = name[len(prefix):]
        if not _ROBOT_NAME.fullmatch(name):
            raise Invalid(f"{raw[:64]!r} is not a robot account name")
        if name not in out:
            out.append(name)
    return tuple(out)


# -- facts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockingFinding:
    rank: int  # index in SEVERITIES
    keys: tuple[str, ...]  # the id and aliases, upper case (allowlist entries compare so)
    text: str  # "critical vulnerability CVE-… in openssl 3.0.1 (fixed in 3.0.2)"


def finding_text(level: str, ident: str, aliases: Sequence[str], package: str,
                 version: str, fixed: Sequence[str]) -> str:
    named = ident if ident.upper().startswith("CVE-") else next(
        (a for a in aliases if a.upper().startswith("CVE-")), ident)
    fix = f"fixed in {fixed[0]}" if fixed else "no fix yet"
    return f"{level} vulnerability {named} in {package} {version} ({fix})"[:400]


def encode_findings(findings: Iterable[BlockingFinding]) -> str:
    """Worst first, at most MAX_FINDINGS, as compact JSON for the facts row."""
    ordered = sorted(findings, key=lambda f: f.rank)[:MAX_FINDINGS]
    return json.dumps([[f.rank, list(f.keys), f.text] for f in ordered],
                      separators=(",", ":"))


def decode_findings(text: str) -> tuple[BlockingFinding, ...]:
    try:
        rows = json.loads(text)
        return tuple(BlockingFinding(int(r[0]), tuple(r[1]), str(r[2])) for r in rows)
    except (ValueError, TypeError, IndexError, KeyError):
        return ()


# -- decisions --------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanFacts:
    status: str  # done | failed
    findings: tuple[BlockingFinding, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Refusal:
    rule: str  # "severity" | "unscanned" | "unsigned"
    reason: str  # the words a client sees


def accepted(keys: Sequence[str], allowlist: Mapping[str, float | None], now: float) -> bool:
    """Whether an allowlist entry (key → expiry as a timestamp, None: never) accepts a
    finding named by any of `keys` at `now`."""
    for key in keys:
        if key in allowlist:
            expires = allowlist[key]
            if expires is None or expires > now:
                return True
    return False


def decide(policy: PullPolicy, scan: ScanFacts | None, signed: bool,
           allowlist: Mapping[str, float | None], now: float) -> Refusal | None:
    """Why `policy` refuses the pull of an image with these facts, or None when it passes.
    The rules are asked in a fixed order (unscanned, severity, unsigned), so that a refusal
    names the first thing to fix."""
    if policy.block_unscanned:
        if scan is None:
            return Refusal("unscanned", "not scanned yet")
        if scan.status != "done":
            return Refusal("unscanned", "its scan failed; it counts as not scanned")
    if policy.severity is not None and scan is not None:
        limit = RANK[policy.severity]
        for finding in scan.findings:
            if finding.rank > limit:
                break  # worst first: nothing further reaches the threshold
            if not accepted(finding.keys, allowlist, now):
                return Refusal("severity", finding.text)
    if policy.block_unsigned and not signed:
        return Refusal("unsigned", "no signature from a trusted key")
    return None


def refusal_message(policy: PullPolicy, refusal: Refusal) -> str:
    return (f"pull blocked by the pull policy of namespace {policy.namespace} "
            f"({refusal.rule} rule): {refusal.reason}")


def is_cosign_tag(tag: str | None) -> bool:
    return tag is not None and tag.startswith("sha256-") and \
        _COSIGN_TAG.fullmatch(tag) is not None


__all__ = ["BlockingFinding", "MAX_EXEMPT", "MAX_FINDINGS", "PullPolicy", "RANK", "Refusal",
           "SEVERITIES", "ScanFacts", "accepted", "check_exempt", "check_severity", "decide",
           "decode_findings", "encode_findings", "finding_text", "is_cosign_tag",
           "refusal_message"]
