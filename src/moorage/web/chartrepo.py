"""Chart repositories with ChartMuseum's API: `/chartrepo/NS/...`, and Harbor's old
`/api/chartrepo/NS/...` paths as an alias for teams moving from Harbor.

    GET  index.yaml                      the repository index (cached, ETag/If-None-Match)
    GET  charts/<name>-<version>.tgz     a chart archive; `.prov` its provenance file
    GET  api/charts[/<name>[/<version>]] ChartMuseum's JSON listings (HEAD: exists?)
    POST api/charts                      upload: binary body, or multipart `chart` + `prov`
    POST api/prov                        upload a provenance file for a stored chart
    DELETE api/charts/<name>/<version>   delete a version (its .prov goes with it)
    GET  health                          {"healthy": true}

The same access rules as `/v2`: Basic credentials or bearer tokens, roles, network rules,
anonymous reads of public namespaces. The caller is authenticated and authorized before a
body is read; a body over the size limit is refused from its Content-Length, or as soon as it
passes the limit. Every refusal is ChartMuseum's: a status and `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import parse_qs, unquote

from moorage.access.editions import Edition
from moorage.access.network import address_text
from moorage.helm.index import Index, chart_version, entries
from moorage.helm.service import ChartError, HelmService
from moorage.helm.store import ChartRow
from moorage.oci import mediatypes as mt
from moorage.oci.errors import RegistryError
from moorage.oci.names import is_valid_name
from moorage.registry.events import set_caller
from moorage.web.auth import Caller, RegistryAccess
from moorage.web.http import (FAILURE_KEY, ROUTE_KEY, Receive, Scope, Send, body_stream,
                              header, respond, send_file, send_stream)

log = logging.getLogger("moorage.helm")
PREFIXES = ("/chartrepo/", "/api/chartrepo/")
MAX_PROV_BYTES = 1 << 20
_NS = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._+-]{1,255}$")


def _split(path: str) -> tuple[str, str] | None:
    """(namespace, the ChartMuseum path after it) of a chart repository path."""
    harbor = path.startswith("/api/chartrepo/")
    rest = path.removeprefix("/api/chartrepo/" if harbor else "/chartrepo/")
    namespace, _, tail = rest.partition("/")
    tail = "/" + tail
    if harbor:  # Harbor's API: /api/chartrepo/NS/charts[...] and /prov
        if tail.startswith("/charts"):
            tail = "/api" + tail
        elif tail == "/prov":
            tail = "/api/prov"
    return namespace, tail


def _json(status: int, doc: object) -> tuple[int, bytes]:
    return status, json.dumps(doc).encode()


class ChartRepositoryAPI:
    """The ASGI handler of every chart repository path."""

    def __init__(self, service: HelmService, access: RegistryAccess, edition: Edition,
                 read_only: Callable[[], bool]) -> None:
        self.service = service
        self.access = access
        self.edition = edition
        self.read_only = read_only  # blocking: asked in a worker thread before a write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        head = method == "HEAD"
        scope[ROUTE_KEY] = "/chartrepo/{namespace}/..."
        try:
            await self._dispatch(scope, receive, send, method)
        except ChartError as exc:
            await self._error(send, exc.status, exc.message, head)
        except RegistryError as exc:
            headers = {}
            if exc.status == 401:  # chart repository clients answer Basic challenges
                headers["www-authenticate"] = 'Basic realm="moorage chart repository"'
            await self._error(send, exc.status, exc.message, head, headers)
        except ConnectionAbortedError:
            log.info("client went away during %s %s", method, scope["path"])
        except Exception as exc:  # never a stack trace to the client; the log keeps it
            scope[FAILURE_KEY] = exc
            log.exception("unexpected error in %s %s", method, scope["path"])
            await self._error(send, 500, "internal error", head)

    async def _error(self, send: Send, status: int, message: str, head: bool,
                     headers: dict[str, str] | None = None) -> None:
        await respond(send, status, json.dumps({"error": message}).encode(),
                      {"content-type": "application/json", **(headers or {})}, head=head)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        split = _split(scope["path"])
        namespace, tail = split if split else ("", "")
        if not namespace or len(namespace) > 255 or not _NS.fullmatch(namespace):
            raise ChartError(404, "no such chart repository: a namespace name is expected "
                                  "after /chartrepo/")
        self.edition.require("helm_charts")
        head = method == "HEAD"
        parts = [unquote(p) for p in tail.strip("/").split("/")] if tail.strip("/") else []
        if any(not _SEGMENT.fullmatch(p) for p in parts):
            raise ChartError(400, "invalid characters in the request path")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if parts == ["health"] and method in ("GET", "HEAD"):
            await self._send_json(send, 200, {"healthy": True}, head)
        elif parts == ["index.yaml"] and method in ("GET", "HEAD"):
            await self.index(scope, send, namespace, head)
        elif len(parts) == 2 and parts[0] == "charts" and method in ("GET", "HEAD"):
            await self.download(scope, send, namespace, parts[1], head)
        elif parts[:2] == ["api", "charts"] and len(parts) <= 4:
            await self.charts_api(scope, receive, send, method, namespace, parts[2:], query)
        elif parts == ["api", "prov"] and method == "POST":
            await self.upload(scope, receive, send, namespace, query, prov_only=True)
        else:
            raise ChartError(404, f"no such endpoint: {method} {scope['path'][:200]}")

    async def _send_json(self, send: Send, status: int, doc: object, head: bool = False) -> None:
        await respond(send, status, json.dumps(doc).encode(),
                      {"content-type": "application/json"}, head=head)

    # -- who may ------------------------------------------------------------------------
    async def _namespace_caller(self, scope: Scope, namespace: str, action: str) -> Caller:
        """May the caller `action` (pull, push) in the namespace as a whole: what the index,
        the listings and an upload (before its chart's name is known) need."""
        if not self.access.enabled:
            return await self.access.authorize(scope, f"{namespace}/index", action)
        caller = await self.access.identify(scope, None)
        self.access.authorizer.check_namespace_network(caller.address, namespace)
        claims = caller.claims
        if claims is not None and not any(
                kind == "repository" and name.split("/", 1)[0] == namespace and action in acts
                for (kind, name), acts in claims.access.items()):
            raise RegistryError("DENIED", f"token does not grant {action} in {namespace}")
        await self.access.run(self._namespace_decision, caller, namespace, action)
        set_caller(caller.actor, address_text(caller.address))
        return caller

    def _namespace_decision(self, caller: Caller, namespace: str, action: str) -> None:
        """Blocking (an auth thread): the caller's permissions in the namespace."""
        principal = self.access.principal(caller)
        held = self.access.authorizer.permissions(principal, f"{namespace}/", caller.address)
        if action not in held:
            if principal.anonymous:
                raise RegistryError("UNAUTHORIZED",
                                    f"authentication required to {action} charts of {namespace}")
            raise self.access.authorizer.denial(principal, f"{namespace}/", action)

    async def _chart_caller(self, scope: Scope, repository: str, action: str) -> Caller:
        caller = await self.access.authorize(scope, repository, action)
        set_caller(caller.actor, address_text(caller.address))
        return caller

    async def _may(self, caller: Caller, repository: str, action: str) -> None:
        """After an upload's body named its chart: the repository-level check."""
        if not await self.access.run(self.access.may, caller, repository, action):
            raise ChartError(403, f"{caller.actor} may not {action} {repository}")

    # -- reads --------------------------------------------------------------------------
    def _visible(self, caller: Caller, namespace: str
                 ) -> tuple[frozenset[str] | None, tuple[str, list[ChartRow]]]:
        """The repositories of the namespace's charts the caller may pull (None: all of them,
        the common case, which shares one cached index), and the rows they were taken from
        (blocking: cached lookups, done in the thread that builds the answer, so that a
        cached index costs one thread hop). Who may read a namespace may still not pull a
        private repository in it."""
        held = self.service.index.rows(namespace)
        repositories = sorted({row.repository for row in held[1]})
        readable = self.access.pullable(caller, namespace, repositories)
        return (None if readable.issuperset(repositories) else frozenset(readable)), held

    def _index(self, caller: Caller, namespace: str) -> Index:
        visible, held = self._visible(caller, namespace)
        return self.service.index.get(namespace, visible, held)[0]

    def _listing(self, caller: Caller, namespace: str) -> list[ChartRow]:
        visible, (_, rows) = self._visible(caller, namespace)
        return rows if visible is None else [r for r in rows if r.repository in visible]

    async def index(self, scope: Scope, send: Send, namespace: str, head: bool) -> None:
        caller = await self._namespace_caller(scope, namespace, "pull")
        index = await asyncio.to_thread(self._index, caller, namespace)
        headers = {"etag": index.etag, "cache-control": "no-cache"}
        if index.etag in (header(scope, b"if-none-match") or "").split(","):
            await respond(send, 304, b"", headers)
            return
        await respond(send, 200, index.body, {"content-type": "application/x-yaml", **headers},
                      head=head)

    async def download(self, scope: Scope, send: Send, namespace: str, filename: str,
                       head: bool) -> None:
        prov = filename.endswith(".tgz.prov")
        if not (prov or filename.endswith(".tgz")):
            raise ChartError(404, f"no such file {filename}: charts are <name>-<version>.tgz")
        stem = filename.removesuffix(".prov").removesuffix(".tgz")
        row = await asyncio.to_thread(self.service.find, namespace, stem)
        if row is None:
            # who may not read the namespace learns nothing of what it holds
            await self._namespace_caller(scope, namespace, "pull")
            raise ChartError(404, f"chart {stem} not found in {namespace}")
        await self._chart_caller(scope, row.repository, "pull")
        digest = row.prov_digest if prov else row.chart_digest
        if digest is None:
            raise ChartError(404, f"{filename} has no provenance file")
        if not head:  # a download is a pull: announced, audited, asked of pull policies
            await asyncio.to_thread(self.service.registry.get_manifest, row.repository,
                                    row.manifest_digest, [mt.OCI_MANIFEST])
        await self._send_blob(scope, send, digest, "application/pgp-signature" if prov
                              else "application/gzip", head)

    async def _send_blob(self, scope: Scope, send: Send, digest: str, content_type: str,
                         head: bool) -> None:
        store = self.service.registry.store
        size = await asyncio.to_thread(store.size, digest)
        if size is None:
            raise ChartError(404, "the chart's bytes are missing from storage")
        headers = {"content-type": content_type, "etag": f'"{digest}"'}
        if head:
            await respond(send, 200, b"", headers, head=True, content_length=size)
            return
        path = store.local_path(digest)
        if path is not None:
            await send_file(scope, send, path, 200, headers, 0, size, True)
        else:
            await send_stream(send, 200, headers, iter(store.read(digest)), size)

    async def charts_api(self, scope: Scope, receive: Receive, send: Send, method: str,
                         namespace: str, rest: list[str], query: dict[str, list[str]]) -> None:
        head = method == "HEAD"
        if not rest:
            if method == "POST":
                await self.upload(scope, receive, send, namespace, query, prov_only=False)
                return
            if method not in ("GET", "HEAD"):
                raise ChartError(405, f"{method} is not allowed here")
            caller = await self._namespace_caller(scope, namespace, "pull")
            shown = await asyncio.to_thread(self._listing, caller, namespace)
            await self._send_json(send, 200, entries(shown), head)
            return
        name = rest[0]
        repository = f"{namespace}/{name}"
        if not is_valid_name(repository):
            raise ChartError(404, f"chart {name} not found")
        if len(rest) == 1:
            if method not in ("GET", "HEAD"):
                raise ChartError(405, f"{method} is not allowed here")
            await self._chart_caller(scope, repository, "pull")
            rows = await asyncio.to_thread(self.service.versions, namespace, name)
            if not rows:
                raise ChartError(404, f"chart {name} not found")
            await self._send_json(send, 200, [chart_version(r) for r in rows], head)
            return
        version = rest[1]
        if method == "DELETE":
            await self._refuse_when_read_only()
            await self._chart_caller(scope, repository, "delete")
            await asyncio.to_thread(self.service.delete, namespace, name, version)
            await self._send_json(send, 200, {"deleted": True})
            return
        if method not in ("GET", "HEAD"):
            raise ChartError(405, f"{method} is not allowed here")
        await self._chart_caller(scope, repository, "pull")
        row: ChartRow | None = await asyncio.to_thread(self.service.version, namespace, name,
                                                       version)
        if row is None:
            raise ChartError(404, f"no chart version found for {name}-{version}")
        await self._send_json(send, 200, chart_version(row), head)

    # -- uploads ------------------------------------------------------------------------
    async def _refuse_when_read_only(self) -> None:
        if await asyncio.to_thread(self.read_only):
            raise ChartError(503, "the registry is in read-only mode (maintenance): "
                                  "uploads and deletions are refused until it ends")

    async def upload(self, scope: Scope, receive: Receive, send: Send, namespace: str,
                     query: dict[str, list[str]], prov_only: bool) -> None:
        await self._refuse_when_read_only()
        caller = await self._namespace_caller(scope, namespace, "push")
        limit = MAX_PROV_BYTES if prov_only else self.service.max_upload_bytes + MAX_PROV_BYTES
        body = await self._read_limited(scope, receive, limit)
        content_type = header(scope, b"content-type") or ""
        chart: bytes | None
        prov: bytes | None
        if content_type.lower().startswith("multipart/form-data"):
            fields = await asyncio.to_thread(_multipart, content_type, body)
            chart, prov = fields.get("chart"), fields.get("prov")
            if prov_only and prov is None:
                raise ChartError(400, "the multipart body has no 'prov' field")
            if not prov_only and chart is None:
                raise ChartError(400, "the multipart body has no 'chart' field")
        elif prov_only:
            chart, prov = None, body
        else:
            chart, prov = body, None
        force = "force" in query and (query["force"][0].lower() not in ("false", "0"))
        if chart is not None and len(chart) > self.service.max_upload_bytes:
            raise self._too_large()
        if prov is not None and len(prov) > MAX_PROV_BYTES:
            raise ChartError(413, f"the provenance file is larger than {MAX_PROV_BYTES} bytes")
        async def authorize(repository: str) -> None:
            await self._may(caller, repository, "push")
            await self.access.run(self.access.prepare_push, caller, repository)

        if chart is None:
            assert prov is not None
            await self.service.upload_prov(namespace, prov, force, authorize)
        else:
            if not chart:
                raise ChartError(400, "not a chart: the upload is empty")
            await self.service.upload(namespace, chart, prov, force, authorize)
        await self._send_json(send, 201, {"saved": True})

    def _too_large(self) -> ChartError:
        return ChartError(413, f"the upload is larger than the limit of "
                               f"{self.service.max_upload_bytes} bytes (helm_max_upload_bytes)")

    async def _read_limited(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        """The body, refused as early as possible when it is too large: from its declared
        length before a byte is read, or as soon as what arrives passes the limit."""
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ChartError(400, "invalid Content-Length")
            if int(declared) > limit:
                raise self._too_large()
        parts: list[bytes] = []
        size = 0
        async for chunk in body_stream(receive):
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            parts.append(chunk)
        return b"".join(parts)


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a bounded multipart/form-data body, by name."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + content_type.encode("latin-1") +
                                b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart():
        raise ChartError(400, "the multipart body cannot be read")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in fields:
            payload = part.get_payload(decode=True)
            fields[name] = payload if isinstance(payload, bytes) else b""
    return fields
