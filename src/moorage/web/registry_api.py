"""The OCI Distribution API under /v2: thin handlers that parse, call the core and answer.

Routing is by regular expressions anchored at the end of the path, because repository names
may contain any number of `/`-separated components.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

import orjson

from moorage.cache.redirects import RedirectCache
from moorage.db.changes import signal_of
from moorage.oci.errors import RegistryError
from moorage.oci.names import MAX_NAME_LENGTH, check_name
from moorage.registry.service import Registry
from moorage.registry.small_blobs import unservable
from moorage.registry.uploads import range_header, refused_chunk, upload_location
from moorage.registry.events import set_caller
from moorage.registry.upstreams import UpstreamBlob
from moorage.access.network import address_text
from moorage.web.auth import Caller, RegistryAccess
from moorage.web.refusals import refusal
from moorage.web.http import (FAILURE_KEY, ROUTE_KEY, Receive, Scope, Send, body_stream,
                              header, header_values, prepare_headers, read_body, respond,
                              respond_error, respond_prepared, send_file, send_stream)

log = logging.getLogger("moorage.web")

Handler = Callable[..., Awaitable[None]]

_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$"), "manifest"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$"), "uploads"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)$"), "upload"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$"), "blob"),
    (re.compile(r"^/v2/(?P<name>.+)/tags/list$"), "tags"),
    (re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), "referrers"),
]
# route kind -> its template, what metrics label a request with (never a repository's name)
TEMPLATES = {
    "manifest": "/v2/{name}/manifests/{reference}",
    "uploads": "/v2/{name}/blobs/uploads/",
    "upload": "/v2/{name}/blobs/uploads/{id}",
    "blob": "/v2/{name}/blobs/{digest}",
    "tags": "/v2/{name}/tags/list",
    "referrers": "/v2/{name}/referrers/{digest}",
}
# (route kind, method) -> the registry action it needs
_ACTIONS = {
    ("manifest", "GET"): "pull", ("manifest", "HEAD"): "pull", ("manifest", "PUT"): "push",
    ("manifest", "DELETE"): "delete",
    ("blob", "GET"): "pull", ("blob", "HEAD"): "pull", ("blob", "DELETE"): "delete",
    ("uploads", "POST"): "push", ("upload", "GET"): "push", ("upload", "PATCH"): "push",
    ("upload", "PUT"): "push", ("upload", "DELETE"): "push",
    ("tags", "GET"): "pull", ("referrers", "GET"): "pull",
}
# route kind -> the methods it takes (what a 405's Allow header lists)
_METHODS = {kind: [m for k, m in _ACTIONS if k == kind] for kind, _ in _ACTIONS}
# Requests that may bring a new repository into being: quotas and namespaces are checked here.
_CREATES = {("uploads", "POST"), ("manifest", "PUT")}
# One byte range of a Range header's range set (RFC 9110 14.1.2), after its unit and `=`.
_RANGE_RE = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*")
# Offsets of chunks are byte positions: 19 digits hold any of them (and int() stays cheap).
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?$")
# Past any blob's size; what a Range number longer than this many digits is taken to be.
_HUGE = 1 << 63
_MAX_PAGE = 100_000
_DECIMAL_RE = re.compile(r"[0-9]{1,18}")


class _ManifestMatch:
    """What re.Match.groupdict() gives for the manifest route, found without the regex."""

    __slots__ = ("params",)

    def __init__(self, name: str, reference: str) -> None:
        self.params = {"name": name, "reference": reference}

    def groupdict(self) -> dict[str, str]:
        return self.params


_MANIFESTS = "/manifests/"


def _manifest_route(path: str) -> _ManifestMatch | None:
    """The manifest route's match, as `_ROUTES[0]` finds it, by string search: pulls are the
    hot path, and the regex's backtracking over the name cost more than the rest of routing.

    The same answer as the pattern: its greedy `.+` takes the last "/manifests/" (an earlier
    one would leave a "/" in the reference, which `[^/]+` refuses), the reference is the
    non-empty rest without "/", and the name is non-empty with no line break (`.`)."""
    at = path.rfind(_MANIFESTS)
    if at < 5 or not path.startswith("/v2/"):
        return None
    reference = path[at + len(_MANIFESTS):]
    name = path[4:at]
    if not reference or "/" in reference or "\n" in name:
        return None
    return _ManifestMatch(name, reference)


def route_template(path: str) -> str | None:
    """The template of the /v2 route a path is for, or None (for requests answered before
    the registry API saw them: a refusal in read-only mode, a stalled body)."""
    if path in ("/v2/", "/v2"):
        return "/v2/"
    if path == "/v2/_catalog":
        return path
    if len(path) > MAX_NAME_LENGTH + 400:
        return None
    for pattern, kind in _ROUTES:
        if pattern.fullmatch(path):
            return TEMPLATES[kind]
    return None


class RegistryAPI:
    def __init__(self, registry: Registry, access: RegistryAccess,
                 max_manifest_bytes: int = 4 << 20) -> None:
        self.registry = registry
        self.access = access
        self.max_manifest_bytes = max_manifest_bytes
        # The public_url setting: Location and Link headers start with it when set. Else they
        # are paths, which a client resolves against the very URL it asked (RFC 9110 10.2.2),
        # so they name the host and scheme the client used, whatever the Host header says.
        self.origin = access.public_url
        # Encoded response headers per manifest digest: they never change for a digest.
        self._manifest_headers: dict[str, list[tuple[bytes, bytes]]] = {}
        self._redirects = RedirectCache(signal_of(registry.db.engine))
        # (route kind, method) -> its handler, looked up once rather than by name per request
        self._handlers: dict[tuple[str, str], Handler] = {
            key: getattr(self, f"{key[0]}_{key[1].lower()}") for key in _ACTIONS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        head = method == "HEAD"
        try:
            await self._dispatch(scope, receive, send, method, scope["path"])
        except RegistryError as error:
            await respond_error(send, error, head)
        except ConnectionAbortedError:
            log.info("client went away during %s %s", method, scope["path"])
        except Exception as exc:  # never a stack trace to the client; the log keeps the details
            scope[FAILURE_KEY] = exc
            log.exception("unexpected error in %s %s", method, scope["path"])
            await respond_error(send, RegistryError("UNKNOWN", "internal error"), head)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, method: str,
                        path: str) -> None:
        if path in ("/v2/", "/v2"):
            if method not in ("GET", "HEAD"):
                raise _unsupported(method, ["GET", "HEAD"])
            await self.access.base(scope)
            await respond(send, 200, b"{}", {"content-type": "application/json"}, head=method == "HEAD")
            return
        if path == "/v2/_catalog":
            if method != "GET":
                raise _unsupported(method, ["GET"])
            try:
                await self.catalog(scope, send)
            except RegistryError as error:
                self._refused(scope, "catalog", method, None, {}, error)
                raise
            return
        if len(path) > MAX_NAME_LENGTH + 400:
            raise RegistryError("NAME_INVALID", "request path too long")
        for pattern, kind in _ROUTES:
            match = _manifest_route(path) if kind == "manifest" else pattern.fullmatch(path)
            if match:
                scope[ROUTE_KEY] = TEMPLATES[kind]
                # Exact names only: a lowercase "get" is another method, not GET.
                if method not in _METHODS[kind]:
                    raise _unsupported(method, _METHODS[kind])
                handler = self._handlers[kind, method]
                action = _ACTIONS[kind, method]
                params = match.groupdict()
                name = check_name(params["name"])
                try:
                    caller = await self.access.authorize(scope, name, action)
                    if action == "push" and \
                            self.registry.upstreams.for_repository(name) is not None:
                        raise RegistryError("DENIED", f"{name} is a proxy cache of another "
                                            "registry: push to the upstream instead",
                                            detail={"reason": "proxy cache"})
                    if (kind, method) in _CREATES:
                        self.access.prepare_push(caller, name)
                    scope["moorage.caller"] = caller
                    set_caller(caller.actor, address_text(caller.address))
                    await handler(scope, receive, send, **params)
                except RegistryError as error:
                    self._refused(scope, kind, method, name, params, error)
                    raise
                return
        raise RegistryError("UNSUPPORTED", f"no such endpoint: {path[:200]}", status=404)

    def _refused(self, scope: Scope, kind: str, method: str, name: str | None,
                 params: dict[str, str | None], error: RegistryError) -> None:
        """Announce a refusal the audit log records (web/refusals.py decides which), with
        whoever the auth layer found behind the request, even if it refused them."""
        try:
            if "moorage.actor" in scope:  # a wrong password: its failed login is the record
                return
            credentials = bool(header(scope, b"authorization"))
            caller = scope.get("moorage.caller")
            actor = caller.actor if isinstance(caller, Caller) else "anonymous"
            event = refusal(kind, method, name, params, error, actor,
                            address_text(self.access.address(scope)), credentials)
        except Exception:  # recording must never turn a refusal into a 500
            log.exception("could not describe the refusal of %s %s", method, scope["path"])
            return
        if event is not None:
            self.access.bus.publish(event)

    # -- /v2/_catalog and tags ----------------------------------------------------------
    async def catalog(self, scope: Scope, send: Send) -> None:
        query = _query(scope)
        limit, last = _page(query)
        visible = await self.access.catalog_filter(scope)
        names = self.registry.catalog(_plus_one(limit), last, visible)
        await self._paged(send, "/v2/_catalog", "repositories", names, limit, {})

    async def tags_get(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        query = _query(scope)
        limit, last = _page(query)
        upstream = self.registry.upstreams.for_repository(name)
        listed = await upstream.tags(name) if upstream is not None else None
        if listed is not None:  # a proxy cache: the upstream's tags, paged here
            # the store's order: lexical, case-insensitive, the name breaking ties
            after = None if last is None else (last.lower(), last)
            found = sorted((t for t in listed if after is None or (t.lower(), t) > after),
                           key=lambda t: (t.lower(), t))
            if limit is not None:
                found = found[:limit + 1]
        else:
            found = self.registry.tags(name, _plus_one(limit), last)
        await self._paged(send, f"/v2/{name}/tags/list", "tags", found, limit, {"name": name})

    async def _paged(self, send: Send, path: str, key: str, items: list[str], limit: int | None,
                     extra: dict[str, str]) -> None:
        headers = {"content-type": "application/json"}
        if limit is not None and len(items) > limit:
            items = items[:limit]
            if items:  # n=0 asks for nothing and gets no next page
                headers["link"] = f'<{self.origin}{path}?n={limit}&last={quote(items[-1])}>; rel="next"'
        # orjson: a page of 1,000 tags in ~15 µs where json.dumps took ~125 µs, a third of
        # the whole answer's time.
        await respond(send, 200, orjson.dumps({**extra, key: items}), headers)

    # -- manifests ----------------------------------------------------------------------
    async def manifest_get(self, scope: Scope, receive: Receive, send: Send, name: str,
                           reference: str, head: bool = False) -> None:
        supplied = None
        upstream = self.registry.upstreams.for_repository(name)
        if upstream is not None:  # a proxy cache: the tag brought up to date first
            supplied = await upstream.manifest(name, reference)
        stored = self.registry.get_manifest(name, reference, header_values(scope, b"accept"),
                                            pull=not head, supplied=supplied)
        raw = self._manifest_headers.get(stored.digest)
        if raw is None:
            if len(self._manifest_headers) >= 10_000:
                self._manifest_headers.clear()
            raw = self._manifest_headers[stored.digest] = prepare_headers({
                "content-type": stored.media_type,
                "docker-content-digest": stored.digest,
                "etag": f'"{stored.digest}"',
            }, len(stored.content))
        await respond_prepared(send, 200, stored.content, raw, head=head)

    async def manifest_head(self, scope: Scope, receive: Receive, send: Send, name: str,
                            reference: str) -> None:
        await self.manifest_get(scope, receive, send, name, reference, head=True)

    async def manifest_put(self, scope: Scope, receive: Receive, send: Send, name: str,
                           reference: str) -> None:
        body = await read_body(receive, self.max_manifest_bytes)
        if body is None:
            raise RegistryError("SIZE_INVALID",
                                f"manifest exceeds the limit of {self.max_manifest_bytes} bytes",
                                status=413)
        extra_tags = _query(scope).get("tag", [])
        pushed = self.registry.put_manifest(name, reference, body, header(scope, b"content-type"),
                                            extra_tags)
        headers = {"location": f"{self.origin}/v2/{name}/manifests/{pushed.digest}",
                   "docker-content-digest": pushed.digest}
        if pushed.subject:
            headers["oci-subject"] = pushed.subject
        await respond(send, 201, b"", headers, extra=[("oci-tag", t) for t in extra_tags])

    async def manifest_delete(self, scope: Scope, receive: Receive, send: Send, name: str,
                              reference: str) -> None:
        self.registry.delete_manifest(name, reference)
        await respond(send, 202)

    # -- blobs --------------------------------------------------------------------------
    async def blob_get(self, scope: Scope, receive: Receive, send: Send, name: str, digest: str,
                       head: bool = False) -> None:
        try:
            size = self.registry.blob_size(name, digest)
        except RegistryError as error:
            upstream = self.registry.upstreams.for_repository(name)
            if upstream is None or error.code != "BLOB_UNKNOWN":
                raise
            fetched = await upstream.blob(name, digest, head)
            if fetched is not None:  # being cached: sent as it arrives, whole (no Range)
                await _send_upstream_blob(send, digest, fetched, head)
                return
            size = self.registry.blob_size(name, digest)  # linked meanwhile
        headers = {"content-type": "application/octet-stream", "docker-content-digest": digest,
                   "accept-ranges": "bytes", "etag": f'"{digest}"'}
        start, end, status = 0, size, 200
        requested = header(scope, b"range")
        span = _parse_range(requested, size) if requested is not None else None
        if span is not None:
            start, end = span
            status = 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        if head:
            self.registry.saw_blob(name, digest)
            await respond(send, status, b"", headers, head=True, content_length=end - start)
            return
        small = self.registry.small_blobs
        if small.holds(size):  # from memory, checked: no redirect, no read from the bucket
            data = await small.read(digest, size)
            await respond_prepared(send, status, data[start:end],
                                   prepare_headers(headers, end - start))
            return
        store = self.registry.store
        if store.redirect:
            # Kept per worker until the next commit (cache/redirects.py): most redirects
            # cost no HEAD to the bucket, no signing and no thread hop.
            url = self._redirects.get(digest)
            if url is None:
                version = self._redirects.version()
                url = await asyncio.to_thread(store.presigned_url, digest, size=size)
                if url:
                    self._redirects.put(digest, version, url)
            if url:
                await respond(send, 307, b"", {"location": url, "docker-content-digest": digest})
                return
        path = self.registry.blob_file(digest)
        if path is not None:
            await send_file(scope, send, path, status, headers, start, end, whole=status == 200)
            return
        try:
            await send_stream(send, status, headers, store.read(digest, start, end), end - start)
        except FileNotFoundError:
            raise unservable(digest, "is recorded but its bytes are missing") from None

    async def blob_head(self, scope: Scope, receive: Receive, send: Send, name: str,
                        digest: str) -> None:
        await self.blob_get(scope, receive, send, name, digest, head=True)

    async def blob_delete(self, scope: Scope, receive: Receive, send: Send, name: str,
                          digest: str) -> None:
        self.registry.delete_blob(name, digest)
        await respond(send, 202, b"", {"docker-content-digest": digest})

    # -- uploads ------------------------------------------------------------------------
    async def uploads_post(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        query = _query(scope)
        digest = _one(query, "digest")
        mount = _one(query, "mount")
        if mount is not None:
            if self._may_mount(scope["moorage.caller"], mount, _one(query, "from")) and \
                    self.registry.mount(name, mount, _one(query, "from")) is not None:
                await _created(send, name, mount, self.origin)
                return
        elif digest is not None:
            await self.registry.push_blob(name, digest, body_stream(receive), _length(scope),
                                          _owner(scope["moorage.caller"]))
            await _created(send, name, digest, self.origin)
            return
        upload_id = await self.registry.uploads.start(check_name(name),
                                                      _owner(scope["moorage.caller"]))
        await _upload_accepted(send, name, upload_id, 0, self.origin)

    def _may_mount(self, caller: Caller, digest: str, source: str | None) -> bool:
        """The caller must be able to pull the blob from somewhere: `from`, or any repository."""
        if source is not None:
            return self.access.may(caller, check_name(source), "pull")
        return any(self.access.may(caller, repo, "pull")
                   for repo in self.registry.repositories_with_blob(digest))

    async def upload_get(self, scope: Scope, receive: Receive, send: Send, name: str,
                         upload_id: str) -> None:
        offset = await self.registry.uploads.offset(check_name(name), upload_id)
        await respond(send, 204, b"", _upload_headers(name, upload_id, offset, self.origin))

    async def _chunk_span(self, scope: Scope, name: str, upload_id: str
                          ) -> tuple[int | None, int | None]:
        """_chunk_span(), with a malformed Content-Range answered as an out-of-order chunk
        is: 416 saying where the upload is (which only the upload's record knows)."""
        try:
            return _chunk_span(scope)
        except _MalformedRange as exc:
            offset = await self.registry.uploads.offset(check_name(name), upload_id)
            raise refused_chunk(name, upload_id, offset, str(exc)) from None

    async def upload_patch(self, scope: Scope, receive: Receive, send: Send, name: str,
                           upload_id: str) -> None:
        start, length = await self._chunk_span(scope, name, upload_id)
        offset = await self.registry.uploads.append(check_name(name), upload_id,
                                                    body_stream(receive), start, length)
        await _upload_accepted(send, name, upload_id, offset, self.origin)

    async def upload_put(self, scope: Scope, receive: Receive, send: Send, name: str,
                         upload_id: str) -> None:
        digest = _one(_query(scope), "digest")
        if digest is None:
            raise RegistryError("DIGEST_INVALID", "the digest query parameter is required")
        start, length = await self._chunk_span(scope, name, upload_id)
        body = None if length == 0 else body_stream(receive)
        await self.registry.finish_upload(name, upload_id, digest, body, length, start)
        await _created(send, name, digest, self.origin)

    async def upload_delete(self, scope: Scope, receive: Receive, send: Send, name: str,
                            upload_id: str) -> None:
        await self.registry.uploads.cancel(check_name(name), upload_id)
        await respond(send, 204)

    # -- referrers ----------------------------------------------------------------------
    async def referrers_get(self, scope: Scope, receive: Receive, send: Send, name: str,
                            digest: str) -> None:
        artifact_type = _one(_query(scope), "artifactType")
        upstream = self.registry.upstreams.for_repository(name)
        body = (await upstream.referrers(name, digest, artifact_type)
                if upstream is not None else None)
        if body is None:
            body = self.registry.referrers(name, digest, artifact_type)
        headers = {"content-type": "application/vnd.oci.image.index.v1+json"}
        if artifact_type is not None:
            headers["oci-filters-applied"] = "artifactType"
        await respond(send, 200, body, headers)


async def _send_upstream_blob(send: Send, digest: str, blob: UpstreamBlob, head: bool) -> None:
    """A blob as an upstream streams it. The stream raises after its last good chunk when
    the bytes turn out wrong: the response is then cut short (the error propagates to the
    server, which drops the connection), so a client never gets a complete unverified blob."""
    headers = {"content-type": "application/octet-stream", "docker-content-digest": digest,
               "etag": f'"{digest}"'}
    if head or blob.chunks is None:
        await respond(send, 200, b"", headers, head=True, content_length=blob.size)
        return
    chunks = blob.chunks.__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    await send({"type": "http.response.start", "status": 200,
                "headers": prepare_headers(headers, blob.size)})
    chunk = first
    try:
        async for following in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = following
    except Exception as exc:  # headers are out: only cutting the response short is left
        log.warning("blob %s from upstream failed after the response started: %s", digest,
                    exc)
        return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    await send({"type": "http.response.body", "body": chunk, "more_body": False})


def _owner(caller: Caller) -> str:
    """Whom an upload counts against: the account, or the address of an anonymous client."""
    actor = caller.actor
    if actor != "anonymous":
        return f"user:{actor}"
    return f"address:{address_text(caller.address)}"


def _unsupported(method: str, allowed: list[str]) -> RegistryError:
    """405, with the methods the route does take (RFC 9110 requires the Allow header)."""
    return RegistryError("UNSUPPORTED", f"method {method[:20]} is not allowed here",
                         status=405, headers={"allow": ", ".join(allowed)})


def _query(scope: Scope) -> dict[str, list[str]]:
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    return parse_qs(raw.decode("latin-1"), keep_blank_values=True)


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _page(query: dict[str, list[str]]) -> tuple[int | None, str | None]:
    raw = _one(query, "n")
    limit = None
    if raw is not None and raw != "":
        if not _DECIMAL_RE.fullmatch(raw) or int(raw) > _MAX_PAGE:
            # UNSUPPORTED: the spec's code for "an invalid set of parameters".
            raise RegistryError("UNSUPPORTED",
                                f"n must be an integer between 0 and {_MAX_PAGE}", status=400)
        limit = int(raw)
    return limit, _one(query, "last") or None


def _plus_one(limit: int | None) -> int | None:
    """Ask for one more than the page, to know whether a next page exists."""
    return None if limit is None else limit + 1


def _length(scope: Scope) -> int | None:
    raw = header(scope, b"content-length")
    if raw is None:
        return None
    if not _DECIMAL_RE.fullmatch(raw.strip()):
        raise RegistryError("SIZE_INVALID", "Content-Length must be a number")
    return int(raw)


class _MalformedRange(ValueError):
    """A Content-Range of an upload chunk that cannot be read (or disagrees with its length)."""


def _chunk_span(scope: Scope) -> tuple[int | None, int | None]:
    """(start, length) of an upload chunk from Content-Range and Content-Length."""
    length = _length(scope)
    content_range = header(scope, b"content-range")
    if not content_range:
        return None, length
    match = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
    if not match or int(match[2]) < int(match[1]):
        raise _MalformedRange(f"bad Content-Range {content_range[:100]!r}")
    start = int(match[1])
    chunk_length = int(match[2]) - start + 1
    if length is not None and length != chunk_length:
        raise _MalformedRange("Content-Range and Content-Length disagree")
    return start, chunk_length


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The half-open span a Range header asks of a blob of `size` bytes, or None when the
    header is ignored and the whole blob answered (200).

    RFC 9110 14.2: a range unit other than bytes MUST be ignored; a server MAY ignore an
    invalid ranges-specifier (no range, `9-3`, not the syntax at all) and a set of several
    ranges, which we do rather than answer multipart/byteranges. Only a valid single range
    that misses the blob (a first byte at or past its end, a suffix of 0) is refused, with
    416 and `Content-Range: bytes */SIZE` (15.5.17).
    """
    unit, equals, range_set = value.strip().partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in range_set:
        return None
    match = _RANGE_RE.fullmatch(range_set)
    if not match or (match[1] == "" and match[2] == ""):
        return None
    first, last = match[1], match[2]
    if first and last and _digits_key(last) < _digits_key(first):
        return None  # an invalid int-range (14.1.1)
    if first == "":
        suffix = _bounded(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(value, size)
        return max(size - suffix, 0), size
    start = _bounded(first)
    if start >= size:
        raise _unsatisfiable(value, size)
    end = _bounded(last) + 1 if last else size
    return start, min(end, size)


def _unsatisfiable(value: str, size: int) -> RegistryError:
    """416 to a range that misses the blob; SIZE_INVALID is the spec's nearest code (the range
    and the blob's size disagree), and Content-Range says the size."""
    return RegistryError("SIZE_INVALID", f"range {value[:100]!r} is not satisfiable: the blob "
                         f"is {size} bytes", status=416,
                         headers={"content-range": f"bytes */{size}"})


def _digits_key(digits: str) -> tuple[int, str]:
    """Orders decimal strings of any length by value, without int() on thousands of digits."""
    digits = digits.lstrip("0") or "0"
    return len(digits), digits


def _bounded(digits: str) -> int:
    """A Range number; one too long to be a byte position (a header may carry thousands of
    digits, which int() refuses) is simply past the end of any blob."""
    return int(digits) if len(digits) <= 19 else _HUGE


def _upload_headers(name: str, upload_id: str, offset: int, origin: str) -> dict[str, str]:
    return {"location": origin + upload_location(name, upload_id), "range": range_header(offset),
            "docker-upload-uuid": upload_id}


async def _upload_accepted(send: Send, name: str, upload_id: str, offset: int,
                           origin: str) -> None:
    await respond(send, 202, b"", _upload_headers(name, upload_id, offset, origin))


async def _created(send: Send, name: str, digest: str, origin: str) -> None:
    await respond(send, 201, b"", {"location": f"{origin}/v2/{name}/blobs/{digest}",
                                   "docker-content-digest": digest})
