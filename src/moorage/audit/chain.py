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

What is recorded is always in the safe form (`safe_text`, `json_safe`), whatever an event
carries, so that an entry can always be hashed and stored and a verifier never meets a value
plain JSON cannot hold. The safe form is applied before hashing; the rules above are unchanged:

- text (every column and every string or key in `detail`): NUL and lone UTF-16 surrogates,
  which PostgreSQL or UTF-8 cannot store, become U+FFFD; columns are cut to their widths, and
  strings in `detail` to MAX_TEXT characters (keys to MAX_KEY), ending in "…" when cut;
- numbers in `detail`: NaN, Infinity and -Infinity are the strings "NaN", "Infinity" and
  "-Infinity"; integers beyond ±(2**53 - 1), which a JavaScript verifier would round, are
  decimal strings, or "<integer of N bits>" ("<negative integer of N bits>") when longer
  than 256 bits; `at` is always finite (an event without a usable time gets the time its
  entry is made);
- structure: `detail` is an object with string keys (str() of any other key); nesting deeper
  than MAX_DEPTH is the string "<nested too deep>"; after MAX_VALUES values in all, an array
  ends with "… N more" and an object gets the key "…" with "N more"; a set is an array in
  str() order; anything else (a date, bytes) is its str(); a canonical detail longer than
  MAX_DETAIL characters is replaced by {"oversized": <its length>, "fields": [<its first
  32 keys>]}.

The log also reports on itself, in entries of the chain like any other (actor "", result
"failure"; SELF_REPORTS names them):
- `audit.dropped` {"dropped": N, "error": …}: N events lost because the database refused
  writes until a buffer was full;
- `audit.unwritable` {"action", "actor", "address", "error"}: one event the database would
  not store as it was, with its own `at` and its target in `target`, all ASCII-escaped;
- `audit.write_failed` {"attempts": N, "since": t, "error": …}: writes failed for a while;
  the entries after it were written late, with their own times.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

from moorage.registry.events import Event

GENESIS = "0" * 64

# Column widths of the audit_log table; values are cut to fit before they are hashed, so that
# what is stored is exactly what was hashed on every database.
_LIMITS = {"actor": 255, "address": 64, "action": 64, "target": 1024, "repository": 255,
           "result": 16}
_ACTOR, _ADDRESS, _ACTION, _TARGET, _REPOSITORY, _RESULT = _LIMITS.values()

# Event fields that describe the artifact; kept in `detail` when present.
_ARTIFACT_FIELDS = ("digest", "tag", "media_type", "size")

# Bounds of the safe form (see the module docstring).
MAX_TEXT = 1024
MAX_KEY = 128
MAX_DEPTH = 8
MAX_VALUES = 512
MAX_DETAIL = 16384
MAX_SAFE_INTEGER = 2**53 - 1
_SHORT_INTEGER_BITS = 256

# The audit log's reports on itself.
DROPPED = "audit.dropped"
UNWRITABLE = "audit.unwritable"
WRITE_FAILED = "audit.write_failed"
SELF_REPORTS = (DROPPED, UNWRITABLE, WRITE_FAILED)


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
        except (ValueError, RecursionError):
            return {"unreadable": self.detail_json}
        return value if isinstance(value, dict) else {"value": value}


class ChainedEntry(NamedTuple):
    """An entry as stored: with its id and its link to the entry before."""

    id: int
    entry: Entry
    prev_hash: str
    hash: str


@dataclass(slots=True)
class Losses:
    """What the log's reports on itself (SELF_REPORTS) add up to: entries lost, entries that
    could not be written as they were, periods when writes failed, and the newest report."""

    dropped: int = 0
    unwritable: int = 0
    write_failures: int = 0
    last_report: dict[str, Any] | None = None

    def count(self, row: ChainedEntry) -> None:
        """Add one entry; anything but a self-report is ignored (cheaply: every pull passes)."""
        action = row.entry.action
        if not action.startswith("audit.") or action not in SELF_REPORTS:
            return
        detail = row.entry.detail
        if action == DROPPED:
            number = detail.get("dropped")
            self.dropped += number if type(number) is int and number > 0 else 1
        elif action == UNWRITABLE:
            self.unwritable += 1
        else:
            self.write_failures += 1
        error = detail.get("error")
        self.last_report = {"id": row.id, "at": row.entry.at, "action": action,
                            "error": error if isinstance(error, str) else ""}

    @property
    def complete(self) -> bool:
        """True when no event is missing from the log or recorded only as unwritable."""
        return not self.dropped and not self.unwritable

    def as_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "dropped": self.dropped,
                "unwritable": self.unwritable, "write_failures": self.write_failures,
                "last_report": self.last_report}


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""
    last_id: int | None = None
    last_hash: str | None = None
    losses: Losses = field(default_factory=Losses)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_id": self.first_broken_id,
                "reason": self.reason, "last_id": self.last_id, "last_hash": self.last_hash,
                **self.losses.as_dict()}


# -- the safe form ------------------------------------------------------------------------
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def safe_text(value: str) -> str:
    """`value` without the characters no database stores: NUL (PostgreSQL refuses it in
    text) and lone UTF-16 surrogates (not UTF-8), each replaced by U+FFFD."""
    if value.isascii():  # the usual case, and a C-speed test
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    return _UNSTORABLE.sub("\ufffd", value)


def _describe(value: object) -> str:
    """str() of anything, even of an object whose __str__ fails."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - any value must become some text
        return f"<unprintable {type(value).__name__}>"


def _text(value: object, limit: int = MAX_TEXT) -> str:
    if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
        return value  # the usual case, without a further call: it runs for every pull
    text = _describe(value)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return safe_text(text)


def _integer(value: int) -> int | str:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value if type(value) is int else int(value)  # an IntEnum: a plain number
    bits = abs(value).bit_length()
    if bits <= _SHORT_INTEGER_BITS:
        return str(int(value))
    return f"<{'negative ' if value < 0 else ''}integer of {bits} bits>"


def _non_finite(value: float) -> str:
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


class _Sanitiser:
    """One pass of json_safe: counts the values it has kept, so that its work is bounded
    (MAX_VALUES) whatever the shape of its input, even a structure that contains itself."""

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def value(self, value: Any, depth: int) -> Any:
        self.left -= 1
        if value is None or value is True or value is False:
            return value
        if isinstance(value, str):
            return _text(value)
        if isinstance(value, int):
            return _integer(value)
        if isinstance(value, float):
            return float(value) if value - value == 0.0 else _non_finite(value)
        if depth >= MAX_DEPTH:
            return "<nested too deep>"
        if isinstance(value, Mapping):
            return self.mapping(value, depth + 1)
        if isinstance(value, (list, tuple)):
            return self.sequence(value, depth + 1)
        if isinstance(value, (set, frozenset)):  # in an order of its own; sorting is bounded
            kept = self.sequence(sorted(islice(value, MAX_VALUES), key=_describe), depth + 1)
            return kept + [f"… {len(value) - MAX_VALUES} more"] \
                if len(value) > MAX_VALUES else kept
        return _text(value)

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for number, (key, member) in enumerate(value.items()):
            if self.left <= 0:
                kept["…"] = f"{len(value) - number} more"
                break
            kept[_text(key, MAX_KEY)] = self.value(member, depth)
        return kept

    def sequence(self, value: list[Any] | tuple[Any, ...], depth: int) -> list[Any]:
        kept: list[Any] = []
        for number, member in enumerate(value):
            if self.left <= 0:
                kept.append(f"… {len(value) - number} more")
                break
            kept.append(self.value(member, depth))
        return kept


def json_safe(detail: object) -> dict[str, Any]:
    """`detail` in the safe form (module docstring): an object plain JSON can always hold,
    of bounded size, whatever it was given."""
    sanitiser = _Sanitiser()
    if isinstance(detail, Mapping):
        return sanitiser.mapping(detail, 1)
    return {"value": sanitiser.value(detail, 1)}


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode


def canonical_detail(detail: object) -> str:
    """Detail in the safe form, as canonical JSON; never fails, never longer than about
    MAX_DETAIL characters."""
    safe = json_safe(detail)
    text = _dumps(safe)
    if len(text) > MAX_DETAIL:
        text = _dumps({"oversized": len(text), "fields": sorted(safe)[:32]})
    return text


def _column(value: object, width: int) -> str:
    """A column's text in the safe form: cut to the column's width, NUL and surrogates out."""
    if type(value) is str and len(value) <= width and value.isascii() and "\x00" not in value:
        return value  # the usual case, as in _text
    return safe_text(_describe(value)[:width])


def _time(value: object, clock: Callable[[], float]) -> float:
    if type(value) is float and value - value == 0.0:  # finite: inf - inf and NaN are NaN
        return value
    try:
        at = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return clock()
    return at if math.isfinite(at) else clock()


def entry_from_event(event: Event, clock: Callable[[], float] = time.time) -> Entry:
    """What the audit log keeps of an event from the bus, in the safe form: never fails on
    what an event carries (a client's text, a number JSON cannot hold, any object).

    Most events are pulls of a few artifacts by a few callers, alike but for their time and
    request id: what the rest of a successful pull makes is kept (_Templates) and reused,
    with exactly the result entry_in_full() gives (tests/audit/test_kept_spellings.py
    compares them). Only successful pulls: their fields are names, references and callers
    the registry has already checked, so that a kept template is small."""
    if type(event) is Event and event.action == "pull" and event.result == "success" \
            and not event.detail:
        fields = event[:_TEMPLATE_FIELDS]  # action .. address: all but detail, at, request id
        if _TEMPLATE_TYPES.issuperset(map(type, fields)):  # exact types: == is plain equality
            template = _templates.get(fields)
            if template is None:
                template = _templates.keep(fields, event)
            columns, plain, before, after = template
            request_id = event.request_id
            return _new_tuple(Entry, (_time(event.at, clock), *columns,
                                      before + _string(_text(request_id)) + after
                                      if request_id else plain))
    return entry_in_full(event, clock)


def entry_in_full(event: Event, clock: Callable[[], float] = time.time) -> Entry:
    """entry_from_event() without the templates: for any event, or any object with an event's
    attributes."""
    if event.detail:
        detail: dict[Any, Any] = {}
        for name in _ARTIFACT_FIELDS:
            value = getattr(event, name)
            if value is not None:
                detail[name] = value
        if isinstance(event.detail, Mapping):
            detail.update(event.detail)
        else:
            detail["value"] = event.detail
        if getattr(event, "request_id", ""):
            detail.setdefault("request_id", event.request_id)
        detail_json = canonical_detail(detail)
    else:  # pushes and pulls: written out directly, ~5x faster than json.dumps(sort_keys)
        detail_json = _artifact_detail(event)
    return Entry(_time(event.at, clock), *_columns(event), detail_json)


def _columns(event: Event) -> tuple[str, str, str, str, str | None, str]:
    """actor, address, action, target, repository, result: Entry's columns after `at`."""
    return (_column(event.actor or "", _ACTOR), _column(event.address or "", _ADDRESS),
            _column(event.action or "", _ACTION),
            _column(event.describe_target() or "", _TARGET),
            _column(event.repository, _REPOSITORY) if event.repository else None,
            _column(event.result or "", _RESULT))


def _artifact_parts(event: Event) -> tuple[list[str], list[str]]:
    """The artifact fields' members of the canonical detail, those that sort before
    "request_id" and those after; _ARTIFACT_FIELDS sort as written."""
    before, after = [], []
    if event.digest is not None:
        before.append('"digest":' + _string(_text(event.digest)))
    if event.media_type is not None:
        before.append('"media_type":' + _string(_text(event.media_type)))
    if event.size is not None:
        size = event.size
        after.append('"size":' + (str(size) if type(size) is int and
                                  -MAX_SAFE_INTEGER <= size <= MAX_SAFE_INTEGER
                                  else _encode(json_safe({"size": size})["size"])))
    if event.tag is not None:
        after.append('"tag":' + _string(_text(event.tag)))
    return before, after


def _artifact_detail(event: Event) -> str:
    """canonical_detail() of the artifact fields and the request id alone."""
    before, after = _artifact_parts(event)
    if getattr(event, "request_id", ""):
        before.append('"request_id":' + _string(_text(event.request_id)))
    return "{" + ",".join(before + after) + "}"


# Event fields a template is kept under (action, repository, digest, media_type, tag, size,
# result, target, actor, address), and the exact types it is kept for: with only str, int
# and None, equal fields are the same values (no True == 1, no str subclass's own __eq__).
_TEMPLATE_FIELDS = 10
_TEMPLATE_TYPES = frozenset({str, int, type(None)})
_new_tuple = tuple.__new__


class _Templates(dict[tuple[Any, ...], tuple[tuple[Any, ...], str, str, str]]):
    """What entry_from_event makes of an event without detail, but for `at` and the request
    id: Entry's columns after `at`, the detail without a request id, and the detail's text
    before and after the request id's value. Bounded: emptied when full (a few hundred
    artifacts and callers pulled at a time fit; more only costs the full path)."""

    MAX = 1024

    def keep(self, fields: tuple[Any, ...], event: Event) -> tuple[tuple[Any, ...], str, str,
                                                                   str]:
        before, after = _artifact_parts(event)
        template = (_columns(event), "{" + ",".join(before + after) + "}",
                    "{" + "".join(p + "," for p in before) + '"request_id":',
                    "".join("," + p for p in after) + "}")
        if len(self) >= self.MAX:
            self.clear()
        self[fields] = template
        return template


_templates = _Templates()


def _escaped(value: object, limit: int) -> str:
    """ASCII only (backslash escapes), for the reports the log writes about itself: they must
    be writable whatever made the entry they stand for unwritable."""
    return _describe(value)[:limit].encode("ascii", "backslashreplace").decode("ascii")[:limit]


def describe_error(error: BaseException) -> str:
    """"Type: first line of the message", short; for a database error, the driver's own
    error (SQLAlchemy's text would carry the statement and its parameters: the entries)."""
    cause = getattr(error, "orig", None) or error
    message = _describe(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {message[0]}" if message else type(cause).__name__
    return _escaped(text, 300)


def unwritable(action: object, actor: object, address: object, target: object, at: object,
               error: BaseException, clock: Callable[[], float] = time.time) -> Entry:
    """The entry that stands for one the database would not take: who and what, escaped to
    ASCII, and why."""
    detail = {"action": _escaped(action, _LIMITS["action"]),
              "actor": _escaped(actor, _LIMITS["actor"]),
              "address": _escaped(address, _LIMITS["address"]),
              "error": describe_error(error)}
    return Entry(_time(at, clock), "", "", UNWRITABLE, _escaped(target, _LIMITS["target"]),
                 None, "failure", canonical_detail(detail))


def report(action: str, detail: dict[str, Any], clock: Callable[[], float] = time.time) -> Entry:
    """One of the log's reports on itself (audit.dropped, audit.write_failed)."""
    return Entry(clock(), "", "", action, "", None, "failure", canonical_detail(detail))


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


def _head(action: str, actor: str, address: str) -> str:
    """The canonical form's text before `at`: its keys that sort first."""
    return "".join(('{"action":', _string(action), ',"actor":', _string(actor),
                    ',"address":', _string(address), ',"at":'))


def _tail(repository: str | None, result: str, target: str) -> str:
    """The canonical form's text after `id`: its keys that sort last, and the closing brace."""
    return "".join((',"repository":', _optional(repository), ',"result":', _string(result),
                    ',"target":', _string(target), "}"))


def canonical(entry_id: int, entry: Entry) -> str:
    """The documented form, spelled out key by key (in sorted order) rather than through
    json.dumps of a dict: the stored detail text is spliced in as it is, which makes hashing
    and verification about three times faster, and means any change to the stored text, even
    whitespace, counts as an edit. Equal to json.dumps(..., sort_keys=True, compact) of the
    entry whenever the detail is canonical, which the writer guarantees. chain() puts the
    same text together from kept heads and tails (_Spellings)."""
    return "".join((
        _head(entry.action, entry.actor, entry.address), _float(entry.at),
        ',"detail":', entry.detail_json, ',"id":', str(int(entry_id)),
        _tail(entry.repository, entry.result, entry.target)))


def link(prev_hash: str, entry_id: int, entry: Entry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry_id, entry)).encode()).hexdigest()


def chain(prev_id: int, prev_hash: str, entries: Iterable[Entry]) -> list[ChainedEntry]:
    """Give entries the ids and hashes that follow (prev_id, prev_hash), in order.

    Each entry is hashed on its own, as link() does, but its canonical form is put together
    from the parts that precede and follow `at` .. `id`, kept per caller and per target
    (_Spellings): most entries are pulls of a few artifacts by a few callers."""
    chained: list[ChainedEntry] = []
    sha256 = hashlib.sha256
    for entry in entries:
        prev_id += 1
        head, tail = _spellings.get(entry)
        digest = sha256("".join((
            prev_hash, head, _float(entry.at), ',"detail":', entry.detail_json, ',"id":',
            str(prev_id), tail)).encode()).hexdigest()
        chained.append(_new_tuple(ChainedEntry, (prev_id, entry, prev_hash, digest)))
        prev_hash = digest
    return chained


class _Spellings:
    """The canonical form's text before `at` (action, actor, address) and after `id`
    (repository, result, target) of the entries chain() has seen, by their values, exactly
    as canonical() spells them. Kept only for values of exact types (str, and None for the
    repository), for which equal means the same: the entries this module makes have only
    those (an Entry of str subclasses equal to a kept key would be spelled as the key, and
    then fail verification, not pass it). Bounded, emptied when full."""

    MAX = 1024

    def __init__(self) -> None:
        self.heads: dict[tuple[Any, ...], str] = {}
        self.tails: dict[tuple[Any, ...], str] = {}

    def get(self, entry: Entry) -> tuple[str, str]:
        who = (entry.action, entry.actor, entry.address)
        what = (entry.repository, entry.result, entry.target)
        head = self.heads.get(who)
        if head is None:
            head = _head(*who)
            self._keep(self.heads, who, head)
        tail = self.tails.get(what)
        if tail is None:
            tail = _tail(*what)
            self._keep(self.tails, what, tail)
        return head, tail

    def _keep(self, kept: dict[tuple[Any, ...], str], key: tuple[Any, ...],
              text: str) -> None:
        if _exact(key):
            if len(kept) >= self.MAX:
                kept.clear()
            kept[key] = text


_spellings = _Spellings()
_TEXT_TYPES = frozenset({str, type(None)})


def _exact(values: tuple[Any, ...]) -> bool:
    return _TEXT_TYPES.issuperset(map(type, values))


class ChainChecker:
    """Checks a chain fed in id order, one entry at a time, so that a log of any length is
    verified in constant memory; stops at the first broken link. Adds up the log's reports
    on itself (Losses) among the entries that check out."""

    def __init__(self) -> None:
        self.checked = 0
        self.last_id: int | None = None
        self.last_hash = GENESIS
        self.broken: tuple[int, str] | None = None
        self.losses = Losses()

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
        self.losses.count(row)
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
                                self.last_id, self.last_hash if self.last_id else None,
                                self.losses)
        reason = "the chain is intact" if self.checked else "the audit log is empty"
        return Verification(True, self.checked, None, reason, self.last_id,
                            self.last_hash if self.last_id else None, self.losses)


def verify(rows: Iterable[ChainedEntry]) -> Verification:
    checker = ChainChecker()
    for row in rows:
        if not checker.feed(row):
            break
    return checker.result()
