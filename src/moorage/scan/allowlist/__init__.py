"""The per-namespace CVE allowlist: advisories a team has looked at and accepted, each with
the reason, who accepted it, when, and optionally until when.

An accepted finding is still reported, marked `accepted` with the entry's reason, so that a
report never hides what an image holds; what acts on findings (a pull policy, a summary's
counts) can then leave accepted ones aside. An entry names one advisory id (CVE-…, GHSA-…,
PYSEC-…, any OSV id) and matches a finding named by it or carrying it as an alias. An expired
entry stays listed, marked expired, and accepts nothing.

`apply_allowlist` is pure (the clock is a parameter); the rules for an entry's fields live
here too, so the API and any other face refuse the same things with the same words. The
storage is `store.AllowlistStore`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from moorage.access.errors import Invalid
from moorage.scan.model import Finding

MAX_ID_LENGTH = 64  # the longest OSV ids in use are about 30 characters
MAX_REASON_LENGTH = 1000
MAX_ENTRIES = 1000  # per namespace
# An advisory id as OSV databases write them: a prefix, then dash-separated parts
# ("CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q", "PYSEC-2019-217", "DLA-3425-1",
# "ALPINE-CVE-2023-1234", "RUSTSEC-2021-0001", "GO-2022-0001").
_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{1,15}(-[A-Za-z0-9._]{1,32}){1,5}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class AllowlistEntry:
    namespace: str
    id: str
    reason: str
    expires_at: datetime | None  # aware UTC; None: never expires
    created_at: datetime
    created_by: str

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def key(self) -> str:
        return id_key(self.id)


def id_key(ident: str) -> str:
    """Advisory ids compare without regard to case ("ghsa-…" as written by GitHub, "GHSA-…"
    as some tools print it)."""
    return ident.strip().upper()


def check_id(ident: str) -> str:
    """The id, stripped, if it reads as an advisory id; Invalid otherwise."""
    text = ident.strip()
    if len(text) > MAX_ID_LENGTH:
        raise Invalid(f"an advisory id has at most {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(text):
        raise Invalid(f"{text[:MAX_ID_LENGTH]!r} is not an advisory id (expected a prefix and "
                      f"dash-separated parts, such as CVE-2021-44228, GHSA-jfh8-c2jp-5v3q or "
                      f"PYSEC-2019-217)")
    return text


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise Invalid("a reason is required: say why this advisory is accepted")
    if len(text) > MAX_REASON_LENGTH:
        raise Invalid(f"a reason has at most {MAX_REASON_LENGTH} characters")
    if _CONTROL.search(text):
        raise Invalid("a reason may not contain control characters")
    return text


def check_expiry(expires_at: datetime | None) -> datetime | None:
    """Aware datetimes only (a date without a zone is ambiguous across replicas), within the
    years a timestamp column holds. A past expiry is accepted: the entry is listed expired."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise Invalid("an expiry needs a time zone (e.g. 2027-01-31T00:00:00Z)")
    if not 2000 <= expires_at.year <= 9999:
        raise Invalid("an expiry must fall between the years 2000 and 9999")
    return expires_at.astimezone(timezone.utc)


def apply_allowlist(findings: Sequence[Finding], entries: Iterable[AllowlistEntry],
                    now: datetime) -> list[Finding]:
    """The findings, with `accepted` set to the reason of the unexpired entry that names the
    finding's id or one of its aliases. Findings no entry names are returned unchanged (an
    `accepted` another step set stays)."""
    active = {}
    for entry in entries:
        if not entry.expired(now):
            active.setdefault(entry.key, entry)
    if not active:
        return list(findings)
    out = []
    for finding in findings:
        hit = next((active[k] for k in map(id_key, (finding.id, *finding.aliases))
                    if k in active), None)
        out.append(replace(finding, accepted=hit.reason) if hit else finding)
    return out


__all__ = ["AllowlistEntry", "MAX_ENTRIES", "MAX_ID_LENGTH", "MAX_REASON_LENGTH",
           "apply_allowlist", "check_expiry", "check_id", "check_reason", "id_key"]
