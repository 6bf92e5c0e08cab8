"""Upstream sources: how a repository can be served from another registry (a pull-through
cache) without the core knowing who does it.

A feature (replication/proxy) registers a *finder* on `Registry.upstreams`: given a repository
name, it answers an `Upstream` for repositories it serves, None for the others. The /v2
handlers then:
  - ask `Upstream.manifest` before answering a manifest GET/HEAD, so that a tag is brought
    up to date (stored through the normal put path) and a manifest the core cannot store yet
    (its blobs are not cached) is still served;
  - ask `Upstream.blob` when a blob is missing, which either links it (None: the core then
    answers from its store) or hands a stream to send while it is being cached;
  - ask `Upstream.tags` and `Upstream.referrers` for a tag listing and a referrers index,
    the upstream's being the repository's (None: the core answers from its store);
  - refuse pushes into such a repository (the upstream is its only writer).

The core imports nothing of the feature: these protocols are all it knows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from moorage.db.metadata import StoredManifest


@dataclass(frozen=True)
class UpstreamBlob:
    """A blob being fetched from upstream: `size` bytes that `chunks` yields. The stream
    raises (after its last good chunk) if the bytes turn out wrong; the handler then cuts the
    response short, so the client never receives a complete, unverified blob."""

    size: int
    chunks: AsyncIterator[bytes] | None  # None for a HEAD


class Upstream(Protocol):
    """The upstream of one repository."""

    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        """Bring `reference` up to date from upstream. Answer a manifest to serve that the
        core does not hold (yet), or None to let the core answer from its store. Raises
        RegistryError (a 404- or 502-style one) when neither can answer."""
        ...

    async def blob(self, name: str, digest: str, head: bool) -> UpstreamBlob | None:
        """A blob the repository does not hold: None once it is linked into the repository
        (the core answers it), or a stream. Raises RegistryError when it cannot be had."""
        ...


    async def tags(self, name: str) -> list[str] | None:
        """Every tag of the repository, as the upstream lists it; None to let the core list
        what it holds (the upstream cannot be asked)."""
        ...

    async def referrers(self, name: str, digest: str,
                        artifact_type: str | None) -> bytes | None:
        """The referrers index of `digest` (an OCI image index, filtered by
        `artifact_type` when given), as the upstream has it; None to let the core answer
        from its store."""
        ...


Finder = Callable[[str], "Upstream | None"]


class Upstreams:
    """The finders features registered; `for_repository` is called on hot paths, so a finder
    must answer from memory (a cache of what is stored) and never raise."""

    def __init__(self) -> None:
        self.finders: list[Finder] = []

    def for_repository(self, name: str) -> Upstream | None:
        for finder in self.finders:
            found = finder(name)
            if found is not None:
                return found
        return None


__all__ = ["Finder", "Upstream", "UpstreamBlob", "Upstreams"]
