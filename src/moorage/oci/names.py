"""Repository names and tags, with the grammar of the distribution spec."""

from __future__ import annotations

import re

from moorage.oci.digest import looks_like_digest
from moorage.oci.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# Distribution's limit; longer names break file systems and clients alike.
MAX_NAME_LENGTH = 255


# Names already found valid: a pull checks its repository's name three times, and the
# regular expression was the costliest of those checks. Bounded; emptied when full.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_LIMIT = 10_000


def check_name(name: str) -> str:
    if name in _VALID_NAMES:
        return name
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name[:300]!r}")
    if len(_VALID_NAMES) >= _VALID_NAMES_LIMIT:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(name)
    return name


def check_tag(tag: str) -> str:
    """A tag to write (a manifest PUT, `?tag=`): one the grammar refuses is MANIFEST_INVALID,
    the spec's code for a manifest the registry will not take as sent (it has no TAG_INVALID).
    `reason` lets the management API keep its own, finer code."""
    if not _TAG_RE.fullmatch(tag):
        raise RegistryError("MANIFEST_INVALID", f"invalid tag {tag[:200]!r}",
                            detail={"reason": "tag", "tag": tag[:200]})
    return tag


def lookup_kind(reference: str) -> str:
    """What a reference to read or delete names: "digest" or "tag".

    A reference that is neither names no manifest this repository can hold, so it is 404
    MANIFEST_UNKNOWN, as CNCF Distribution answers it (no route of its matches) and the OCI
    conformance suite's "nonexistent manifest" cases expect. A reference shaped like a digest
    is a digest: a wrong algorithm or hex is still DIGEST_INVALID (parse_digest says so).
    """
    if looks_like_digest(reference):
        return "digest"
    if _TAG_RE.fullmatch(reference):
        return "tag"
    raise RegistryError("MANIFEST_UNKNOWN", "no manifest has this reference: it is neither a "
                        "tag nor a digest", detail={"reference": reference[:200]})


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and bool(_NAME_RE.fullmatch(name))


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_RE.fullmatch(tag))


def namespace_of(name: str) -> str:
    """The namespace a repository belongs to: its first component.

    A single-component name ("alpine") is its own namespace, so every repository has one.
    """
    return name.split("/", 1)[0]
