"""Pull through one proxy namespace: the `Upstream` the core asks (registry/upstreams.py).

Manifests. A tag is checked upstream with a HEAD at most once per TTL: the time of the last
check and the digest it named live in `proxy_tags`, and the check is claimed with one
conditional UPDATE, so every worker and replica agrees on who checks and when (the very first
check of a tag may be made by two workers at once; after that, one per TTL). A changed digest
fetches the manifest by digest; a digest already held is served from the cache with no
upstream request at all. A fetched manifest is stored through the core's normal put path, as
the actor `proxy:<namespace>` (quota, events, audit, retention and GC see ordinary content).
The core refuses a manifest whose blobs are not in the repository, and a pull-through client
asks for the manifest before its blobs: such a manifest waits in `proxy_pending`, is served
from there, and is put through the normal path as soon as its last blob (or, for an index,
its last child) is cached. An index whose client pulled a single platform stays pending
until the others are asked for: children are fetched lazily, never all at once.

Tag listings and referrers indexes are the upstream's (names mapped as for manifests:
`ns/alpine` lists `library/alpine` with the rewrite), asked at most once per TTL by each
process (a memo of the upstream's answer, as old as the TTL allows a tag's digest to be);
a disabled proxy, or an upstream that fails, answers what is cached here (with the log line
and count below), and a repository the upstream does not have lists what is cached.

Blobs: see blobs.py. Upstream failures (5xx, 429, unreachable, timeout, refused credentials)
serve what is cached (a tag whose TTL expired answers its cached digest), with one log line
and a count (`on_failure`, fed to `moorage_proxy_upstream_failures_total`); what is not cached
answers a registry error: 404 when upstream does not have it, 502 when it cannot be asked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from moorage.db.metadata import StoredManifest
from moorage.oci import mediatypes as mt
from moorage.oci.digest import is_digest, parse_digest
from moorage.oci.errors import RegistryError
from moorage.oci.names import check_tag
from moorage.registry.events import acting_as
from moorage.registry.service import Registry
from moorage.registry.upstreams import UpstreamBlob
from moorage.remote import (RegistryClient, RemoteAuthError, RemoteContentError, RemoteError,
                            RemoteNotFound, RemoteTimeout, RemoteUnavailable)
from moorage.replication.copy import _descriptor_json as descriptor_json  # one shape
from moorage.replication.proxy.store import ProxyStore

log = logging.getLogger("moorage.proxy")
MAX_LISTED = 10_000  # tags or referrers taken from an upstream's listing
MAX_MEMO = 1024  # upstream listings one process remembers


def failure_reason(exc: RemoteError) -> str:
    """A bounded label for the failures metric."""
    if isinstance(exc, RemoteTimeout):
        return "timeout"
    if isinstance(exc, RemoteUnavailable):
        return "unavailable"
    if isinstance(exc, RemoteAuthError):
        return "auth"
    if isinstance(exc, RemoteContentError):
        return "content"
    return type(exc).__name__.removeprefix("Remote").lower() or "error"


def bad_gateway(what: str, exc: RemoteError) -> RegistryError:
    """What a client is told when the upstream cannot give something not cached."""
    return RegistryError("UNKNOWN", f"{what} is not cached and the upstream registry could "
                         f"not provide it: {exc}", status=502,
                         detail={"reason": "upstream", "failure": failure_reason(exc)})


class BlobFetching(Protocol):
    """What fetches uncached blobs (blobs.BlobFetcher, shared by every namespace's source)."""

    async def blob(self, source: "ProxySource", name: str, upstream: str, digest: str,
                   head: bool) -> UpstreamBlob | None: ...


@dataclass
class ProxyConfig:
    """One proxy namespace as the pull path uses it (built from its row, secrets opened)."""

    namespace: str
    ttl_seconds: int
    rewrite_library: bool
    enabled: bool
    version: float  # the row's updated_at: a changed row builds a new source


@dataclass
class ProxySource:
    """The upstream of the repositories of one proxy namespace."""

    config: ProxyConfig
    client: RegistryClient
    registry: Registry
    store: ProxyStore
    clock: Callable[[], float] = time.time
    on_failure: list[Callable[[str, str], None]] = field(default_factory=list)
    blobs: BlobFetching | None = None  # shared by the namespaces' sources (the service's)
    # the upstream's tag listings and referrers indexes: key -> (when asked, answer)
    _listings: dict[tuple[str, ...], tuple[float, object]] = field(default_factory=dict)

    # -- names ---------------------------------------------------------------------------
    def upstream_name(self, name: str) -> str:
        """`ns/library/alpine` -> `library/alpine`; with the rewrite, `ns/alpine` ->
        `library/alpine` (Docker Hub's official images have one segment for clients)."""
        prefix = self.config.namespace + "/"
        if not name.startswith(prefix) or len(name) == len(prefix):
            raise RegistryError("NAME_UNKNOWN", f"{name} names no upstream repository: pull "
                                f"{prefix}<repository>", detail={"name": name})
        rest = name[len(prefix):]
        if self.config.rewrite_library and "/" not in rest:
            rest = "library/" + rest
        return rest

    @property
    def actor(self) -> str:
        return f"proxy:{self.config.namespace}"

    def failed(self, what: str, exc: RemoteError, serving: str | None) -> None:
        """One log line and one count per upstream failure."""
        then = f"serving the cached {serving}" if serving else "nothing cached to serve"
        log.warning("proxy cache %s: upstream failed for %s (%s): %s; %s",
                    self.config.namespace, what, failure_reason(exc), exc, then)
        for hook in self.on_failure:
            try:
                hook(self.config.namespace, failure_reason(exc))
            except Exception:  # a metric must never fail a pull
                log.exception("proxy failure hook failed")

    def _disabled(self) -> RegistryError:
        return RegistryError("DENIED", f"the proxy cache {self.config.namespace} is disabled "
                             "for content it has not cached", detail={"reason": "proxy cache"})

    # -- manifests -----------------------------------------------------------------------
    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        upstream = self.upstream_name(name)
        if is_digest(reference):
            parse_digest(reference)
            return await self._by_digest(name, upstream, reference, None)
        check_tag(reference)
        digest = await self._current_digest(name, upstream, reference)
        return await self._by_digest(name, upstream, digest, reference)

    async def _current_digest(self, name: str, upstream: str, tag: str) -> str:
        """The digest the tag names: upstream's (a HEAD) when the TTL has run out, else the
        one noted at the last check."""
        now = self.clock()
        noted = await asyncio.to_thread(self.store.tag, name, tag)
        ttl = self.config.ttl_seconds
        if noted is not None and now - noted[1] < ttl:
            return noted[0]
        if noted is not None and not await asyncio.to_thread(self.store.claim_check, name,
                                                             tag, now, ttl):
            return noted[0]  # another worker claimed this TTL's check a moment ago
        cached = noted[0] if noted else await asyncio.to_thread(
            self.registry.db.tag_digest, name, tag)
        if not self.config.enabled:
            if cached is None:
                raise self._disabled()
            return cached
        try:
            info = await self.client.head_manifest(upstream, tag)
        except RemoteError as exc:
            self.failed(f"{name}:{tag}", exc, cached)
            if cached is None:
                raise bad_gateway(f"{name}:{tag}", exc) from None
            return cached
        if info is None:
            raise RegistryError("MANIFEST_UNKNOWN", f"the upstream has no tag {tag} in "
                                f"{upstream}", detail={"tag": tag})
        await asyncio.to_thread(self.store.set_tag, name, tag, info.digest, now)
        return info.digest

    async def _by_digest(self, name: str, upstream: str, digest: str,
                         tag: str | None) -> StoredManifest | None:
        db = self.registry.db
        if await asyncio.to_thread(db.manifest_in_repository, name, digest):
            if tag is not None and await asyncio.to_thread(db.tag_digest, name, tag) != digest:
                stored = await asyncio.to_thread(db.manifest, digest)
                if stored is not None:  # the tag moved upstream to content held here
                    await asyncio.to_thread(self._put, name, digest, stored.content,
                                            stored.media_type, [tag])
            return None
        pending = await asyncio.to_thread(self.store.pending, name, digest)
        if pending is not None:
            return StoredManifest(digest, pending[0], len(pending[1]), pending[1])
        if not self.config.enabled:
            raise self._disabled()
        try:
            fetched = await self.client.get_manifest(upstream, digest)
        except RemoteNotFound:
            raise RegistryError("MANIFEST_UNKNOWN", f"the upstream has no manifest {digest} "
                                f"in {upstream}", detail={"reference": digest}) from None
        except RemoteError as exc:
            self.failed(f"{name}@{digest}", exc, None)
            raise bad_gateway(f"{name}@{digest}", exc) from None
        tags = [tag] if tag is not None else []
        stored_now = await asyncio.to_thread(self._put, name, digest, fetched.data,
                                             fetched.media_type, tags)
        if stored_now:  # a platform whose blobs were held: its index may be complete now
            await asyncio.to_thread(self.promote, name)
            return None
        await asyncio.to_thread(self.store.add_pending, name, digest, fetched.media_type,
                                fetched.data)
        return StoredManifest(digest, fetched.media_type, len(fetched.data), fetched.data)

    def _put(self, name: str, digest: str, content: bytes, media_type: str,
             tags: list[str]) -> bool:
        """Store through the core's put path as the proxy; False when the core cannot yet
        (blobs or children not cached). Other refusals (quota, policy) reach the client."""
        try:
            with acting_as(self.actor, proxy=self.config.namespace):
                self.registry.put_manifest(name, digest, content, media_type, tags)
        except RegistryError as exc:
            if exc.code == "MANIFEST_BLOB_UNKNOWN":
                return False
            raise
        return True

    def promote(self, name: str) -> int:
        """Put the pending manifests of a repository that can now be stored (blocking: run
        in a thread). Children first: repeated while a pass stores something."""
        stored = 0
        progress = True
        while progress:
            progress = False
            for digest, media_type, content in self.store.all_pending(name):
                tags = self.store.tags_naming(name, digest)
                try:
                    if self._put(name, digest, content, media_type, tags):
                        self.store.drop_pending(name, digest)
                        stored += 1
                        progress = True
                except RegistryError as exc:  # refused for good (quota, policy): kept pending
                    log.warning("proxy cache %s: could not store %s@%s: %s",
                                self.config.namespace, name, digest, exc.message)
        return stored

    # -- listings ------------------------------------------------------------------------
    async def tags(self, name: str) -> list[str] | None:
        upstream = self.upstream_name(name)

        async def ask() -> list[str]:
            found: list[str] = []
            async for tag in self.client.tags(upstream):
                if len(found) >= MAX_LISTED:
                    break
                found.append(tag)
            return found
        answer = await self._listing(("tags", name), f"the tags of {name}", ask)
        return answer  # type: ignore[return-value]

    async def referrers(self, name: str, digest: str,
                        artifact_type: str | None) -> bytes | None:
        parse_digest(digest)
        upstream = self.upstream_name(name)

        async def ask() -> bytes:
            found = await self.client.referrers(upstream, digest, artifact_type)
            return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                               "manifests": [descriptor_json(d) for d in found[:MAX_LISTED]]
                               }).encode()
        answer = await self._listing(("referrers", name, digest, artifact_type or ""),
                                     f"the referrers of {name}@{digest}", ask)
        return answer  # type: ignore[return-value]

    async def _listing(self, key: tuple[str, ...], what: str,
                       ask: Callable[[], Awaitable[object]]) -> object | None:
        """The upstream's answer, remembered for the TTL; None (the core answers from what
        is cached) when the proxy is disabled, the upstream fails or has no such repository."""
        if not self.config.enabled:
            return None
        now = self.clock()
        memo = self._listings.get(key)
        if memo is not None and now - memo[0] < self.config.ttl_seconds:
            return memo[1]
        try:
            answer = await ask()
        except RemoteNotFound:
            return None
        except RemoteError as exc:  # what is stored here, not an older upstream answer
            self._listings.pop(key, None)
            self.failed(what, exc, "listing")
            return None
        if len(self._listings) >= MAX_MEMO:
            self._listings.clear()
        self._listings[key] = (now, answer)
        return answer

    # -- blobs ---------------------------------------------------------------------------
    async def blob(self, name: str, digest: str, head: bool) -> UpstreamBlob | None:
        parse_digest(digest)
        upstream = self.upstream_name(name)
        assert self.blobs is not None, "the service gives every source its blob fetcher"
        return await self.blobs.blob(self, name, upstream, digest, head)
