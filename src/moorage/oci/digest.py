"""Digests (`algorithm:hex`) as the distribution spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from moorage.oci.errors import RegistryError

# Algorithms a registry must verify, with the hex length each produces.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> "hashlib._Hash":
        return hashlib.new(self.algorithm)


def parse_digest(value: str) -> Digest:
    """Parse and check a digest; unknown algorithms and malformed hex are DIGEST_INVALID."""
    if not value or len(value) > 256 or not _DIGEST_RE.fullmatch(value):
        raise RegistryError("DIGEST_INVALID", f"invalid digest {value[:80]!r}")
    algorithm, _, hexpart = value.partition(":")
    expected = ALGORITHMS.get(algorithm)
    if expected is None:
        raise RegistryError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}")
    if len(hexpart) != expected or not all(c in "0123456789abcdef" for c in hexpart):
        raise RegistryError("DIGEST_INVALID", f"invalid {algorithm} digest {value[:80]!r}")
    return Digest(algorithm, hexpart)


def looks_like_digest(value: str) -> bool:
    """The digest grammar (`algorithm:encoded`), whether or not the algorithm is known."""
    return bool(_DIGEST_RE.fullmatch(value))


def is_digest(value: str) -> bool:
    """True when a manifest reference is a digest rather than a tag (it has a colon)."""
    return ":" in value


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
