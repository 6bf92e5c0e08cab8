"""Repository names and tags, with the grammar of the distribution spec."""

from __future__ import annotations

import re

from moorage.oci.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# Distribution's limit; longer names break file systems and clients alike.
MAX_NAME_LENGTH = 255


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name[:300]!r}")
    return name


def check_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag):
        raise RegistryError("TAG_INVALID", f"invalid tag {tag[:200]!r}")
    return tag


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and bool(_NAME_RE.fullmatch(name))


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_RE.fullmatch(tag))


def namespace_of(name: str) -> str:
    """The namespace a repository belongs to: its first component.

    A single-component name ("alpine") is its own namespace, so every repository has one.
    """
    return name.split("/", 1)[0]
