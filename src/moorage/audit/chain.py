"""The hash chain: what an audit entry is, how it is hashed, and how a chain is checked.

Pure functions, no I/O, so that the rules an auditor relies on can be read (and re-implemented
outside Moorage, e.g. in a SIEM) from this one page:

    canonical(entry) = JSON of {id, at, actor, address, action, target, repository, result,
                                detail}, keys sorted, separators "," and ":", UTF-8, no
                                ASCII escaping; `at` is the float epoch seconds as stored
                                (the export's `timestamp`); `detail` is an object, written
                                the same way (keys sorted, compact)
    hash(entry)      = hex sha256 of (prev_hash + canonical(entry)), as UTF-8
    prev_hash        = hash of the entry with the previous id; GENESIS for the first entry

Editing any field of an entry breaks its own hash; rewriting its hash as well breaks the next
entry's `prev_hash`; deleting an entry in the middle breaks the link across the gap. What a
chain alone cannot show is the removal of the newest entries (the tail): anchor the chain
outside the database for that, e.g. by exporting regularly or noting `verify`'s last hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from moorage.registry.events import Event

GENESIS = "0" * 64

# Column widths of the audit_log table; values are cut to fit before they are hashed, so that
# what is stored is exactly what was hashed on every database.
_LIMITS = {"actor": 255, "address": 64, "action": 64, "target": 1024, "repository": 255,
           "result": 16}

# Event fields that describe the artifact; kept in `detail` when present.
_ARTIFACT_FIELDS = ("digest", "tag", "media_type", "size")


class Entry(NamedTuple):
    """One audit entry before it is chained: everything but its id and hashes.

    A named tuple, in the audit_log's column order, because every pull makes one: it is
    built in half a frozen dataclass's time and goes into the INSERT's row as it is.
    """

    at: float  # epoch seconds
    actor: str
    address: str
    action: str
    target: str
    repository: str | None
    result: str
    detail_json: str  # canonical JSON of an object; what the database stores

    @property
    def detail(self) -> dict[str, Any]:
        """The detail object; text that no longer parses (an edited row) is shown as it is,
        so that listing a tampered log still works and shows the tampering."""
        try:
            value = json.loads(self.detail_json)
        except ValueError:
            return {"unreadable": self.detail_json}
        return value if isinstance(value, dict) else {"value": value}


class ChainedEntry(NamedTuple):
    """An entry as stored: with its id and its link to the entry before."""

    id: int
    entry: Entry
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""
    last_id: int | None = None
    last_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_id": self.first_broken_id,
                "reason": self.reason, "last_id": self.last_id, "last_hash": self.last_hash}


def canonical_detail(detail: dict[str, Any]) -> str:
    """Detail as canonical JSON; values JSON cannot hold are written as strings."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str, allow_nan=False)


def _cut(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    return value[:_LIMITS[field]]


def entry_from_event(event: Event) -> Entry:
    """What the audit log keeps of an event from the bus."""
    if event.detail:
        detail: dict[str, Any] = {}
        for name in _ARTIFACT_FIELDS:
            value = getattr(event, name)
            if value is not None:
                detail[name] = value
        for key, value in event.detail.items():
            detail[str(key)] = value  # string keys, or sorting would not survive a round trip
        detail_json = canonical_detail(detail)
    else:  # pushes and pulls: written out directly, ~5x faster than json.dumps(sort_keys)
        detail_json = _artifact_detail(event)
    return Entry(
        at=float(event.at),
        actor=_cut("actor", event.actor) or "",
        address=_cut("address", event.address) or "",
        action=_cut("action", event.action) or "",
        target=_cut("target", event.describe_target()) or "",
        repository=_cut("repository", event.repository or None),
        result=_cut("result", event.result) or "",
        detail_json=detail_json,
    )


def _artifact_detail(event: Event) -> str:
    """canonical_detail() of the artifact fields alone; _ARTIFACT_FIELDS sort as written."""
    parts = []
    if event.digest is not None:
        parts.append('"digest":' + _string(event.digest))
    if event.media_type is not None:
        parts.append('"media_type":' + _string(event.media_type))
    if event.size is not None:
        parts.append('"size":' + (str(int(event.size)) if isinstance(event.size, int)
                                  else _encode(event.size)))
    if event.tag is not None:
        parts.append('"tag":' + _string(event.tag))
    return "{" + ",".join(parts) + "}"


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# What _encode does for a str, without its dispatch: the C string encoder json itself uses.
_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _float(value: float) -> str:
    """What _encode does for a float (repr; NaN and infinities refused), without its dispatch."""
    if type(value) is not float:  # an int (or a subclass) keeps json's own spelling
        return _encode(value)
    if not math.isfinite(value):
        raise ValueError(f"an audit time must be finite, not {value!r}")
    return float.__repr__(value)


def _optional(value: str | None) -> str:
    return "null" if value is None else _string(value)


def canonical(entry_id: int, entry: Entry) -> str:
    """The documented form, spelled out key by key (in sorted order) rather than through
    json.dumps of a dict: the stored detail text is spliced in as it is, which makes hashing
    and verification about three times faster, and means any change to the stored text, even
    whitespace, counts as an edit. Equal to json.dumps(..., sort_keys=True, compact) of the
    entry whenever the detail is canonical, which the writer guarantees."""
    return "".join((
        '{"action":', _string(entry.action), ',"actor":', _string(entry.actor),
        ',"address":', _string(entry.address), ',"at":', _float(entry.at),
        ',"detail":', entry.detail_json, ',"id":', str(int(entry_id)),
        ',"repository":', _optional(entry.repository), ',"result":', _string(entry.result),
        ',"target":', _string(entry.target), "}"))


def link(prev_hash: str, entry_id: int, entry: Entry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry_id, entry)).encode()).hexdigest()


def chain(prev_id: int, prev_hash: str, entries: Iterable[Entry]) -> list[ChainedEntry]:
    """Give entries the ids and hashes that follow (prev_id, prev_hash), in order."""
    chained: list[ChainedEntry] = []
    for entry in entries:
        prev_id += 1
        digest = link(prev_hash, prev_id, entry)
        chained.append(ChainedEntry(prev_id, entry, prev_hash, digest))
        prev_hash = digest
    return chained


class ChainChecker:
    """Checks a chain fed in id order, one entry at a time, so that a log of any length is
    verified in constant memory; stops at the first broken link."""

    def __init__(self) -> None:
        self.checked = 0
        self.last_id: int | None = None
        self.last_hash = GENESIS
        self.broken: tuple[int, str] | None = None

    def feed(self, row: ChainedEntry) -> bool:
        """False once the chain is broken (at this entry or before)."""
        if self.broken is not None:
            return False
        self.checked += 1
        reason = self._problem(row)
        if reason:
            self.broken = (row.id, reason)
            return False
        self.last_id, self.last_hash = row.id, row.hash
        return True

    def _problem(self, row: ChainedEntry) -> str:
        try:
            recomputed = link(row.prev_hash, row.id, row.entry)
        except (ValueError, TypeError) as exc:  # a column no longer holds its type
            return f"entry {row.id} cannot be read as written ({exc}): it was edited"
        if row.prev_hash != self.last_hash:
            if self.last_id is None:
                return (f"entry {row.id} is the oldest entry but does not start the chain: "
                        f"the entries before it were removed, or its prev_hash was edited")
            gap = "" if row.id == self.last_id + 1 else \
                f" (entries {self.last_id + 1}..{row.id - 1} are missing)"
            return (f"entry {row.id} does not link to entry {self.last_id}{gap}: its prev_hash "
                    f"is not that entry's hash, so entry {self.last_id} was rewritten or "
                    f"entries between them were removed")
        if recomputed != row.hash:
            return (f"entry {row.id} does not match its hash: its contents were edited after "
                    f"it was written")
        return ""

    def result(self) -> Verification:
        if self.broken is not None:
            return Verification(False, self.checked, self.broken[0], self.broken[1],
                                self.last_id, self.last_hash if self.last_id else None)
        reason = "the chain is intact" if self.checked else "the audit log is empty"
        return Verification(True, self.checked, None, reason, self.last_id,
                            self.last_hash if self.last_id else None)


def verify(rows: Iterable[ChainedEntry]) -> Verification:
    checker = ChainChecker()
    for row in rows:
        if not checker.feed(row):
            break
    return checker.result()
