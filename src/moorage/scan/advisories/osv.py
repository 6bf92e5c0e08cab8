"""OSV records: check one (bounded, shaped as the schema says), turn it into the shared
vocabulary (model.Advisory), and name the keys it is looked up by.

A record that is not usable raises BadRecord with a reason a person can act on; the import
skips it and goes on. Only what matching needs is checked strictly; unknown fields are kept
(the stored record is the one imported) and ignored, as the schema asks of `database_specific`
and `ecosystem_specific`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from moorage.scan.advisories import severity
from moorage.scan.model import Advisory, Affected, Event, Range

MAX_ID = 255
MAX_AFFECTED = 2_000
MAX_RANGES = 200
MAX_EVENTS = 2_000
MAX_VERSIONS = 50_000
MAX_ALIASES = 500
MAX_NAME = 512
MAX_ECOSYSTEM = 255
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]*")


class BadRecord(ValueError):
    """A record that cannot be used, with the reason."""


def normalize_name(ecosystem: str, name: str) -> str:
    """The name advisories and packages are matched by: PEP 503 for PyPI (`Jinja2`,
    `jinja_2` → `jinja2`), as written elsewhere."""
    if ecosystem.split(":", 1)[0] == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def normalize_ecosystem(ecosystem: str) -> str:
    """Alpine releases are written "Alpine:v3.20"; some tools drop the "v"."""
    base, sep, release = ecosystem.partition(":")
    if base == "Alpine" and release and release[0].isdigit():
        return f"{base}:v{release}"
    return ecosystem


def lookup_keys(ecosystem: str, name: str) -> list[tuple[str, str]]:
    """The (ecosystem, name) keys under which advisories for a package are stored: its own
    ecosystem ("Debian:12") and, for a distribution, the ecosystem without a release, which
    OSV allows for records that hold for every release."""
    ecosystem = normalize_ecosystem(ecosystem)
    keys = [(ecosystem, normalize_name(ecosystem, name))]
    base = ecosystem.split(":", 1)[0]
    if base != ecosystem:
        keys.append((base, normalize_name(base, name)))
    return keys


def content_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise BadRecord(f"{what} is missing or not a string")
    if len(value) > limit:
        raise BadRecord(f"{what} is longer than {limit} characters")
    return value


def _list(value: Any, what: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRecord(f"{what} is not a list")
    if len(value) > limit:
        raise BadRecord(f"{what} has more than {limit} entries")
    return value


def _event(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise BadRecord("an event is not an object")
    kinds = [k for k in _EVENT_KINDS if k in raw]
    if len(kinds) != 1:
        raise BadRecord("an event must have exactly one of introduced, fixed, last_affected, "
                        "limit")
    value = raw[kinds[0]]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # YAML reads an unquoted 0 or 1.2 as a number
    return Event(**{kinds[0]: _text(value, kinds[0], 256)})


def _affected(raw: Any) -> Affected | None:
    if not isinstance(raw, dict):
        raise BadRecord("an affected entry is not an object")
    package = raw.get("package")
    if package is None:  # allowed by the schema (GIT-only records); nothing to match
        return None
    if not isinstance(package, dict):
        raise BadRecord("affected.package is not an object")
    ecosystem = normalize_ecosystem(_text(package.get("ecosystem"), "package.ecosystem",
                                          MAX_ECOSYSTEM))
    name = _text(package.get("name"), "package.name", MAX_NAME)
    ranges = []
    for r in _list(raw.get("ranges"), "ranges", MAX_RANGES):
        if not isinstance(r, dict):
            raise BadRecord("a range is not an object")
        kind = _text(r.get("type"), "range type", 32)
        events = tuple(_event(e) for e in _list(r.get("events"), "events", MAX_EVENTS))
        ranges.append(Range(kind, events))
    versions = tuple(str(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                     else _text(v, "a listed version", 256)
                     for v in _list(raw.get("versions"), "versions", MAX_VERSIONS))
    return Affected(ecosystem, name, tuple(ranges), versions)


def parse(record: Any) -> Advisory:
    """A checked OSV record as the shared vocabulary. Raises BadRecord."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON/YAML object")
    ident = _text(record.get("id"), "id", MAX_ID)
    if not _ID.fullmatch(ident):
        raise BadRecord(f"id {ident[:80]!r} has characters OSV ids do not use")
    aliases = tuple(_text(a, "an alias", MAX_ID)
                    for a in _list(record.get("aliases"), "aliases", MAX_ALIASES))
    affected = tuple(a for a in (_affected(x) for x in _list(record.get("affected"),
                                                               "affected", MAX_AFFECTED))
                     if a is not None)
    modified = record.get("modified")
    withdrawn = record.get("withdrawn")
    summary = record.get("summary") or record.get("details") or ""
    references = tuple(ref["url"] for ref in _list(record.get("references"), "references",
                                                   10_000)
                       if isinstance(ref, dict) and isinstance(ref.get("url"), str))
    return Advisory(
        id=ident, aliases=aliases,
        summary=summary[:1000] if isinstance(summary, str) else "",
        severity=severity.of_record(record), affected=affected, references=references,
        modified=str(modified) if modified else "",
        withdrawn=str(withdrawn) if withdrawn else None)
