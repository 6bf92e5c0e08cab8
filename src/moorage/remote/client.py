"""`RegistryClient`: the Distribution API of another registry, as the proxy cache,
subscriptions, replication and import use it.

Each method is one registry operation and says which scopes it needs (a token for
`repository:<name>:pull` reads, `pull,push` writes); the session (session.py) handles
credentials, retries, timeouts and redirects. Everything read is bounded and verified:
manifests against the digest asked for (or the one the registry announced for a tag), blobs
as they stream (blobs.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from moorage.oci import mediatypes as mt
from moorage.oci.digest import Digest, digest_of, parse_digest
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Descriptor, Manifest, parse_manifest
from moorage.oci.names import is_valid_name, is_valid_tag
from moorage.remote import auth
from moorage.remote.blobs import BlobReader, BlobSource, Cursor, parse_range_end
from moorage.remote.config import RemoteConfig, safe_url
from moorage.remote.errors import (DigestMismatch, RemoteConfigError, RemoteError,
                                   RemoteNotFound, RemoteProtocolError,
                                   RemoteTooLarge, RemoteUnavailable)
from moorage.remote.retry import backoff
from moorage.remote.session import Reply, Session

log = logging.getLogger("moorage.remote")

# What a client accepts for a manifest, most wanted first (a Docker registry then answers
# an index for a multi-arch tag rather than converting it).
MANIFEST_ACCEPT = (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_LIST, mt.DOCKER_MANIFEST)


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What a HEAD says about a manifest."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class RemoteManifest:
    """A manifest's bytes, verified against its digest, with what it references."""

    digest: str
    media_type: str
    data: bytes
    manifest: Manifest  # blobs, children, subject (oci.manifest)


@dataclass(frozen=True, slots=True)
class PushResult:
    digest: str
    how: str  # "present" (nothing sent), "mounted", "monolithic", "chunked"
    sent: int  # bytes sent to the registry (counting resent bytes after a resume)
    resumes: int = 0  # interruptions recovered from
    restarts: int = 0  # of which the registry had lost the session: sent again from byte 0


def _pull(name: str) -> tuple[auth.Scope, ...]:
    return (auth.repository_scope(name, "pull"),)


def _push(name: str) -> tuple[auth.Scope, ...]:
    return (auth.repository_scope(name, "pull", "push"),)


class RegistryClient:
    """A client of one registry. Use as `async with RegistryClient(config) as client:`.

    `clock`, `sleep` and `random` are injectable so that token expiry and backoff can be
    driven by a test (or a job runner) without waiting.
    """

    def __init__(self, config: RemoteConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 random: Callable[[], float] = _random.random,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.session = Session(config, clock=clock, sleep=sleep, random=random,
                               transport=transport)
        self.config = config
        self.limits = config.limits
        self.registry = self.session.registry

    async def aclose(self) -> None:
        await self.session.aclose()

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def same_registry(self, other: "RegistryClient") -> bool:
        """Whether `other` talks to the same registry (a mount can replace a copy)."""
        return self.session.base == other.session.base

    @property
    def token_requests(self) -> int:
        return self.session.token_requests

    # -- helpers -----------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        if not is_valid_name(name):
            raise RemoteConfigError(f"invalid repository name {name[:100]!r}",
                                    registry=self.registry)
        return name

    def _digest(self, value: str, name: str | None = None) -> Digest:
        try:
            return parse_digest(value)
        except RegistryError as exc:
            raise RemoteConfigError(exc.message, registry=self.registry,
                                    repository=name) from None

    def _reference(self, name: str, reference: str) -> str:
        if ":" in reference:
            self._digest(reference, name)
        elif not is_valid_tag(reference):
            raise RemoteConfigError(f"invalid tag {reference[:100]!r}", registry=self.registry,
                                    repository=name)
        return reference

    def _error(self, kind: type[RemoteError], message: str, what: str, name: str | None,
               status: int | None = None) -> RemoteError:
        return self.session.error(kind, message, what, name, status)

    async def ping(self) -> None:
        """Check that the registry answers the v2 API with these credentials."""
        reply = await self.session.request("GET", self.session.url("/v2/"), scopes=(),
                                           what="ping", read_limit=self.limits.error_bytes)
        if reply.status != 200:
            raise self.session.fail(reply, "ping")

    # -- manifests ---------------------------------------------------------------------------

    async def head_manifest(self, name: str, reference: str,
                            accept: Iterable[str] = MANIFEST_ACCEPT) -> ManifestInfo | None:
        """The digest, type and size of a tag or digest (None when absent), with a HEAD: a
        registry such as Docker Hub does not count it against the pull quota. A registry
        that announces no digest is asked with a GET (the bytes then hashed)."""
        self._reference(self._name(name), reference)
        what = f"manifest {reference} (HEAD)"
        reply = await self.session.request(
            "HEAD", self.session.url(f"/v2/{name}/manifests/{reference}"), scopes=_pull(name),
            what=what, repository=name, headers={"accept": ", ".join(accept)},
            read_limit=self.limits.error_bytes)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self.session.fail(reply, what, name)
        announced = reply.headers.get("docker-content-digest", "")
        media_type = reply.headers.get("content-type", "").split(";")[0].strip()
        length = reply.headers.get("content-length", "")
        if not announced or not length.isdigit() or media_type not in mt.MANIFEST_TYPES:
            try:
                fetched = await self.get_manifest(name, reference, accept)
            except RemoteNotFound:
                return None
            return ManifestInfo(fetched.digest, fetched.media_type, len(fetched.data))
        digest = str(self._checked_announced(announced, what, name))
        if ":" in reference and digest != reference:
            raise self._error(DigestMismatch, f"the registry announces {digest}", what, name)
        return ManifestInfo(digest, media_type, int(length))

    def _checked_announced(self, value: str, what: str, name: str) -> Digest:
        try:
            return parse_digest(value.strip())
        except RegistryError:
            raise self._error(RemoteProtocolError, "the registry announced an invalid digest "
                              f"{value[:80]!r}", what, name) from None

    async def get_manifest(self, name: str, reference: str,
                           accept: Iterable[str] = MANIFEST_ACCEPT) -> RemoteManifest:
        """A manifest by tag or digest, in one of the `accept`ed types, verified: by digest,
        the bytes must hash to it; by tag, to the digest the registry announced (if it did).
        Garbage (not JSON, not a schema 2 manifest, a type not asked for) is refused."""
        self._reference(self._name(name), reference)
        accepted = tuple(accept)
        what = f"manifest {reference}"
        reply = await self.session.request(
            "GET", self.session.url(f"/v2/{name}/manifests/{reference}"), scopes=_pull(name),
            what=what, repository=name, headers={"accept": ", ".join(accepted)},
            read_limit=self.limits.manifest_bytes)
        if reply.status != 200:
            raise self.session.fail(reply, what, name)
        data = reply.body
        if ":" in reference:
            expected: Digest | None = parse_digest(reference)
        else:
            announced = reply.headers.get("docker-content-digest")
            expected = self._checked_announced(announced, what, name) if announced else None
        algorithm = expected.algorithm if expected else "sha256"
        digest = digest_of(data, algorithm)
        if expected is not None and digest != str(expected):
            raise self._error(DigestMismatch, f"the manifest's bytes hash to {digest}, not "
                              f"{expected}", what, name)
        content_type = reply.headers.get("content-type")
        try:
            parsed = parse_manifest(data, content_type)
        except RegistryError as exc:
            raise self._error(RemoteProtocolError, f"not a usable manifest: {exc.message}",
                              what, name) from None
        if parsed.media_type not in accepted:
            raise self._error(RemoteProtocolError, f"the registry answered a "
                              f"{parsed.media_type}, which was not asked for", what, name)
        return RemoteManifest(digest, parsed.media_type, data, parsed)

    async def put_manifest(self, name: str, reference: str, data: bytes,
                           media_type: str) -> str:
        """Push a manifest under a tag or its digest; its digest (checked against the one
        the registry announces)."""
        self._reference(self._name(name), reference)
        what = f"manifest {reference} (PUT)"
        digest = digest_of(data)
        if ":" in reference and reference != digest:
            raise RemoteConfigError(f"these bytes are {digest}, not {reference}",
                                    registry=self.registry, repository=name)
        reply = await self.session.request(
            "PUT", self.session.url(f"/v2/{name}/manifests/{reference}"), scopes=_push(name),
            what=what, repository=name, headers={"content-type": media_type}, body=data,
            read_limit=self.limits.error_bytes)
        if reply.status not in (200, 201):
            raise self.session.fail(reply, what, name)
        announced = reply.headers.get("docker-content-digest")
        if announced and announced.strip() != digest:
            raise self._error(DigestMismatch, f"the registry stored {announced.strip()[:80]} "
                              f"for {digest}", what, name)
        return digest

    async def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete a manifest by digest; False when it was not there."""
        self._digest(digest, self._name(name))
        what = f"manifest {digest} (DELETE)"
        reply = await self.session.request(
            "DELETE", self.session.url(f"/v2/{name}/manifests/{digest}"),
            scopes=(auth.repository_scope(name, "delete"),), what=what, repository=name,
            read_limit=self.limits.error_bytes)
        if reply.status == 404:
            return False
        if reply.status not in (200, 202, 204):
            raise self.session.fail(reply, what, name)
        return True

    # -- blobs: reading ----------------------------------------------------------------------

    async def blob_size(self, name: str, digest: str, *, for_push: bool = False) -> int | None:
        """The size of a blob in a repository, or None when the repository has no such
        blob (a HEAD; redirects to a storage service are followed). `for_push`: the check
        before an upload, made with the push token the upload needs anyway."""
        self._digest(digest, self._name(name))
        what = f"blob {digest} (HEAD)"
        reply = await self.session.request(
            "HEAD", self.session.url(f"/v2/{name}/blobs/{digest}"),
            scopes=_push(name) if for_push else _pull(name),
            what=what, repository=name, follow_redirects=True,
            read_limit=self.limits.error_bytes)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self.session.fail(reply, what, name)
        length = reply.headers.get("content-length", "")
        if not length.isdigit():
            raise self._error(RemoteProtocolError, "a blob HEAD without Content-Length", what,
                              name)
        return int(length)

    @asynccontextmanager
    async def open_blob(self, name: str, digest: str, *, size: int | None = None,
                        offset: int = 0, hasher: "hashlib._Hash | None" = None
                        ) -> AsyncIterator[BlobReader]:
        """A blob download: `async with client.open_blob(repo, digest, size=n) as blob:
        async for chunk in blob.chunks(): ...`. `size` (from the descriptor) bounds the
        stream; redirects (S3 presigned URLs) are followed without our credentials. With
        `offset` the download starts there (Range); see BlobReader for verification."""
        parsed = self._digest(digest, self._name(name))
        what = f"blob {digest}"
        headers = {"accept-encoding": "identity"}
        if offset:
            headers["range"] = f"bytes={offset}-"
        reply = await self.session.request(
            "GET", self.session.url(f"/v2/{name}/blobs/{digest}"), scopes=_pull(name),
            what=what, repository=name, headers=headers, follow_redirects=True)
        try:
            if reply.status not in (200, 206) or (reply.status == 206 and not offset):
                raise await self.session.fail_stream(reply, what, name)

            def error(kind: type[RemoteError], message: str) -> RemoteError:
                return self._error(kind, message, what, name)

            yield BlobReader(reply.response, parsed, expected=size, offset=offset,
                             hasher=hasher, chunk=self.limits.read_chunk, error=error)
        finally:
            await reply.response.aclose()

    def source(self, name: str, digest: str, size: int) -> "RemoteBlobSource":
        """This registry's blob as the source of an upload to another one."""
        return RemoteBlobSource(self, name, digest, size)

    # -- blobs: writing ----------------------------------------------------------------------

    async def mount_blob(self, name: str, digest: str, source_name: str) -> bool:
        """Ask the registry to link a blob it holds in `source_name` into `name`; False when
        it cannot (it then opened an upload instead, which is cancelled)."""
        self._digest(digest, self._name(name))
        self._name(source_name)
        what = f"blob {digest} (mount from {source_name})"
        url = self.session.url(f"/v2/{name}/blobs/uploads/").copy_merge_params(
            {"mount": digest, "from": source_name})
        reply = await self.session.request(
            "POST", url, scopes=_push(name) + _pull(source_name), what=what, repository=name,
            read_limit=self.limits.error_bytes)
        if reply.status == 201:
            return True
        if reply.status == 202:
            await Upload(self, name, self._location(reply, what, name)).cancel()
            return False
        raise self.session.fail(reply, what, name)

    def _location(self, reply: Reply, what: str, name: str) -> httpx.URL:
        location = reply.headers.get("location")
        if not location:
            raise self._error(RemoteProtocolError, "an upload answer without Location", what,
                              name, reply.status)
        try:
            return reply.response.request.url.join(location)
        except httpx.InvalidURL:
            raise self._error(RemoteProtocolError, "an upload Location that is not a URL",
                              what, name, reply.status) from None

    async def start_upload(self, name: str) -> "Upload":
        """Open an upload session (POST); its `location` can be kept to resume it later."""
        what = "upload (POST)"
        reply = await self.session.request(
            "POST", self.session.url(f"/v2/{self._name(name)}/blobs/uploads/"),
            scopes=_push(name), what=what, repository=name, read_limit=self.limits.error_bytes)
        if reply.status != 202:
            raise self.session.fail(reply, what, name)
        return Upload(self, name, self._location(reply, what, name))

    async def resume_upload(self, name: str, location: str) -> "Upload":
        """An upload session opened earlier (by this process or one that died), at the
        offset the registry says it has."""
        upload = Upload(self, self._name(name), httpx.URL(location))
        await upload.status()
        return upload

    async def push_blob(self, name: str, digest: str, source: BlobSource, *,
                        check_exists: bool = True) -> PushResult:
        """Upload a blob unless the repository has it: in one PUT when small, else in
        PATCH chunks resumed (from the offset the registry reports) after an interruption.
        The registry verifies the digest when the upload is committed."""
        self._digest(digest, self._name(name))
        if check_exists and await self.blob_size(name, digest, for_push=True) is not None:
            return PushResult(digest, "present", 0)
        if source.size <= self.limits.monolithic_max:
            return await self._push_monolithic(name, digest, source)
        upload = await self.start_upload(name)
        try:
            return await upload.send(source, digest)
        except RemoteError:
            await upload.cancel()
            raise

    async def _push_monolithic(self, name: str, digest: str, source: BlobSource) -> PushResult:
        attempts = self.config.retry.attempts
        for attempt in range(1, attempts + 1):
            upload = await self.start_upload(name)
            try:
                await upload.commit(digest, source)
                return PushResult(digest, "monolithic", source.size * attempt)
            except RemoteError as exc:
                await upload.cancel()
                if not exc.retryable or isinstance(exc, DigestMismatch) or attempt == attempts:
                    raise
                await self.session.sleep(backoff(self.config.retry, attempt,
                                                 self.session.random))
        raise AssertionError("unreachable")

    # -- listings ----------------------------------------------------------------------------

    async def catalog(self, page_size: int | None = None) -> AsyncIterator[str]:
        """Every repository name (`_catalog`), page after page through `Link`."""
        url = self.session.url("/v2/_catalog")
        async for item in self._pages(url, "repositories", (auth.CATALOG_SCOPE,), "catalog",
                                      None, page_size):
            yield item

    async def tags(self, name: str, page_size: int | None = None) -> AsyncIterator[str]:
        """Every tag of a repository, page after page through `Link`."""
        url = self.session.url(f"/v2/{self._name(name)}/tags/list")
        async for item in self._pages(url, "tags", _pull(name), "tag list", name, page_size):
            yield item

    async def _pages(self, url: httpx.URL, key: str, scopes: tuple[auth.Scope, ...],
                     what: str, name: str | None, page_size: int | None) -> AsyncIterator[str]:
        if page_size is not None:
            url = url.copy_merge_params({"n": str(page_size)})
        seen: set[str] = set()
        pages = 0
        while True:
            pages += 1
            if pages > self.limits.pages:
                raise self._error(RemoteTooLarge, f"more than {self.limits.pages} pages", what,
                                  name)
            seen.add(str(url))
            reply = await self.session.request("GET", url, scopes=scopes, what=what,
                                               repository=name, read_limit=self.limits.page_bytes)
            if reply.status != 200:
                raise self.session.fail(reply, what, name)
            try:
                items = json.loads(reply.body).get(key)
            except (ValueError, AttributeError):
                raise self._error(RemoteProtocolError, "the listing is not a JSON object", what,
                                  name) from None
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise self._error(RemoteProtocolError, f"the listing's {key!r} is not a list of "
                                  "names", what, name)
            for item in items:
                yield item
            following = next_link(reply.headers.get_list("link"))
            if following is None:
                return
            try:
                url = url.join(following)
            except httpx.InvalidURL:
                raise self._error(RemoteProtocolError, "an invalid Link", what, name) from None
            if not self.session.same_origin(url):
                raise self._error(RemoteProtocolError, f"a Link to another host "
                                  f"({safe_url(url)})", what, name)
            if str(url) in seen:
                raise self._error(RemoteProtocolError, "the Link goes round in a circle", what,
                                  name)

    # -- referrers ---------------------------------------------------------------------------

    async def referrers(self, name: str, digest: str,
                        artifact_type: str | None = None) -> list[Descriptor]:
        """The manifests whose subject is `digest`: the referrers API, or, where a registry
        answers it with 404 (Distribution 2.8, older registries), the index tagged
        `<alg>-<hex>` that clients such as cosign and oras maintain there instead."""
        parsed = self._digest(digest, self._name(name))
        what = f"referrers of {digest}"
        url = self.session.url(f"/v2/{name}/referrers/{digest}")
        if artifact_type:
            url = url.copy_merge_params({"artifactType": artifact_type})
        found: list[Descriptor] = []
        seen: set[str] = set()
        filtered = False
        while True:
            if len(seen) >= self.limits.pages:
                raise self._error(RemoteTooLarge, f"more than {self.limits.pages} pages", what,
                                  name)
            seen.add(str(url))
            reply = await self.session.request(
                "GET", url, scopes=_pull(name), what=what, repository=name,
                headers={"accept": mt.OCI_INDEX}, read_limit=self.limits.page_bytes)
            if reply.status in (404, 405) and not found:
                return await self._referrers_by_tag(name, parsed, artifact_type)
            if reply.status != 200:
                raise self.session.fail(reply, what, name)
            found += self._index_children(reply.body, what, name)
            filtered = "artifacttype" in reply.headers.get("oci-filters-applied", "").lower()
            following = next_link(reply.headers.get_list("link"))
            if following is None:
                break
            url = url.join(following)
            if not self.session.same_origin(url) or str(url) in seen:
                raise self._error(RemoteProtocolError, "a referrers Link that leaves the "
                                  "registry or goes round in a circle", what, name)
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _index_children(self, body: bytes, what: str, name: str) -> list[Descriptor]:
        try:
            index = parse_manifest(body, mt.OCI_INDEX)
        except RegistryError as exc:
            raise self._error(RemoteProtocolError, f"not an image index: {exc.message}", what,
                              name) from None
        return list(index.children)

    async def _referrers_by_tag(self, name: str, digest: Digest,
                                artifact_type: str | None) -> list[Descriptor]:
        tag = f"{digest.algorithm}-{digest.hex}"
        try:
            index = await self.get_manifest(name, tag, (mt.OCI_INDEX,))
        except RemoteNotFound:
            return []
        found = list(index.manifest.children)
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found


def next_link(values: list[str]) -> str | None:
    """The target of `Link: <…>; rel="next"` (RFC 8288), if any."""
    for value in values:
        for part in value.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            rels = [p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";")
                    if "=" in p and p.split("=", 1)[0].strip().lower() == "rel"]
            if any("next" in r.split() for r in rels):
                return target[1:-1]
    return None


class Upload:
    """One upload session at a registry: its `location` (keep it to resume after a crash)
    and `offset` (how many bytes the registry holds)."""

    def __init__(self, client: RegistryClient, name: str, location: httpx.URL) -> None:
        self.client, self.name = client, name
        self._location = location
        self.offset = 0

    @property
    def location(self) -> str:
        return str(self._location)

    def _update(self, reply: Reply, what: str) -> None:
        if reply.headers.get("location"):
            self._location = self.client._location(reply, what, self.name)

    async def status(self) -> int:
        """Ask the registry how many bytes it holds (GET on the upload); sets `offset`."""
        what = "upload status"
        reply = await self.client.session.request(
            "GET", self._location, scopes=_push(self.name), what=what, repository=self.name,
            read_limit=self.client.limits.error_bytes)
        if reply.status not in (200, 204):
            raise self.client.session.fail(reply, what, self.name)
        self._update(reply, what)
        self.offset = parse_range_end(reply.headers.get("range")) or 0
        return self.offset

    async def write(self, content: AsyncIterator[bytes], length: int) -> int:
        """PATCH `length` bytes at the current offset (Content-Range); the new offset."""
        what = f"upload chunk at {self.offset}"
        end = self.offset + length - 1
        reply = await self.client.session.request(
            "PATCH", self._location, scopes=_push(self.name), what=what, repository=self.name,
            headers={"content-type": "application/octet-stream",
                     "content-range": f"{self.offset}-{end}", "content-length": str(length)},
            body=content, read_limit=self.client.limits.error_bytes, retry=False,
            deadline=False)
        if reply.status != 202:
            raise self.client.session.fail(reply, what, self.name)
        self._update(reply, what)
        reported = parse_range_end(reply.headers.get("range"))
        self.offset = reported if reported is not None else end + 1
        if self.offset != end + 1:
            raise self.client._error(RemoteUnavailable, f"the registry holds {self.offset} "
                                     f"bytes after a chunk that ended at {end + 1}", what,
                                     self.name)
        return self.offset

    async def commit(self, digest: str, source: BlobSource | None = None) -> None:
        """PUT `?digest=`, with the whole blob as body when `source` is given (a monolithic
        upload), else closing the chunks sent; the registry checks the digest."""
        what = f"upload commit of {digest}"
        length = source.size if source is not None else 0
        body = (lambda: source.open(0)) if source is not None and length else None
        reply = await self.client.session.request(
            "PUT", self._location.copy_merge_params({"digest": digest}),
            scopes=_push(self.name), what=what, repository=self.name,
            headers={"content-type": "application/octet-stream",
                     "content-length": str(length)},
            body=body, read_limit=self.client.limits.error_bytes, retry=False, deadline=False)
        if reply.status == 400 and b"DIGEST_INVALID" in reply.body:
            raise self.client._error(DigestMismatch, "the registry found the uploaded bytes "
                                     "do not match the digest", what, self.name, 400)
        if reply.status not in (201, 204):
            raise self.client.session.fail(reply, what, self.name)
        announced = reply.headers.get("docker-content-digest")
        if announced and announced.strip() != digest:
            raise self.client._error(DigestMismatch, f"the registry stored "
                                     f"{announced.strip()[:80]}", what, self.name)

    async def cancel(self) -> None:
        """Delete the session (best effort: a registry purges stale uploads anyway)."""
        try:
            await self.client.session.request(
                "DELETE", self._location, scopes=_push(self.name), what="upload cancel",
                repository=self.name, read_limit=self.client.limits.error_bytes, retry=False)
        except RemoteError:
            pass

    async def send(self, source: BlobSource, digest: str) -> PushResult:
        """Send the rest of `source` in PATCH chunks from `offset`, then commit. A chunk that
        fails (a dropped connection, a timeout, a 5xx, a 416 for a wrong offset, a 404 for a
        session the registry lost) is followed by asking the registry's offset and going on
        from there (or from 0 in a new session), `Limits.resumes` times.
        `sent` counts only chunks the registry acknowledged."""
        limits, session = self.client.limits, self.client.session
        resumes = sent = restarts = 0
        cursor: Cursor | None = None
        try:
            while self.offset < source.size:
                if cursor is None:
                    cursor = Cursor(source.open(self.offset))
                length = min(limits.upload_chunk, source.size - self.offset)
                try:
                    await self.write(cursor.take(length), length)
                    sent += length
                except RemoteError as exc:
                    if isinstance(exc, DigestMismatch) or not (
                            exc.retryable or exc.status in (404, 416)):
                        raise
                    resumes += 1
                    if resumes > limits.resumes:
                        raise
                    log.info("upload of %s interrupted at %d bytes (%s); resuming", digest,
                             self.offset, exc)
                    await cursor.aclose()
                    cursor = None
                    await session.sleep(backoff(self.client.config.retry, resumes,
                                                session.random))
                    if not await self._resume():
                        restarts += 1
        finally:
            if cursor is not None:
                await cursor.aclose()
        await self.commit(digest)
        return PushResult(digest, "chunked", sent, resumes, restarts)

    async def _resume(self) -> bool:
        """Go on where the registry stopped (True), or, when it no longer knows the session,
        start a new one from byte 0 (False). Distribution 2.8 refuses a session whose bytes
        moved past the offset its signed `_state` records, which is what an interrupted
        PATCH leaves behind."""
        try:
            await self.status()
            return True
        except RemoteNotFound:
            fresh = await self.client.start_upload(self.name)
            await self.cancel()
            self._location, self.offset = fresh._location, 0
            return False


class RemoteBlobSource:
    """A blob of one registry as the source of an upload to another: streamed through,
    never held; re-read with a Range from where an interrupted upload stopped."""

    def __init__(self, client: RegistryClient, name: str, digest: str, size: int) -> None:
        self.client, self.name, self.digest, self.size = client, name, digest, size

    async def open(self, offset: int) -> AsyncIterator[bytes]:
        async with self.client.open_blob(self.name, self.digest, size=self.size,
                                         offset=offset) as blob:
            async for chunk in blob.chunks():
                yield chunk


async def copy_blob(source: RegistryClient, source_name: str, target: RegistryClient,
                    target_name: str, digest: str, size: int) -> PushResult:
    """Put a blob of `source_name` into `target_name`: nothing when it is there, a mount when
    both are one registry, else streamed from one to the other (verified twice: as it is
    read, and by the target when the upload is committed)."""
    if await target.blob_size(target_name, digest, for_push=True) is not None:
        return PushResult(digest, "present", 0)
    if target.same_registry(source) and target_name != source_name:
        if await target.mount_blob(target_name, digest, source_name):
            return PushResult(digest, "mounted", 0)
    return await target.push_blob(target_name, digest, source.source(source_name, digest, size),
                                  check_exists=False)
