"""Charts as OCI artifacts: recognise them on push, keep their metadata, upload and delete
them for the chart repository API.

One storage: a chart uploaded through the ChartMuseum API is pushed through the registry's
own push path (blobs, then a manifest as `helm push` writes it), so immutability, quotas,
retention, replication, audit and webhooks see a push like any other, and the metadata row is
written by the same bus handler that indexes a `helm push`. Deleting a chart version deletes
its manifest; the row goes with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import yaml

from moorage.access.editions import Edition
from moorage.helm.archive import ChartArchive, read_archive
from moorage.helm.chart import (CHART_TYPES, CONFIG_TYPE, PROV_TYPE, ChartInvalid, ChartMeta,
                                chart_manifest, config_bytes, parse_config, sort_versions,
                                split_filename, version_tag)
from moorage.helm.index import IndexCache
from moorage.helm.store import ChartRow, ChartStore, Claim, QuotaReached, VersionClaimed
from moorage.oci import mediatypes as mt
from moorage.oci.digest import digest_of
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest
from moorage.oci.names import is_valid_name, namespace_of
from moorage.registry.events import Event
from moorage.registry.service import Registry

log = logging.getLogger("moorage.helm")
MAX_CONFIG_BYTES = 1 << 20
# How long a claim on a chart version lives if nothing releases it (its upload's process
# died; a push refused after its manifest check): an upload's covers pushing its blobs, a
# `helm push`'s only its manifest's put.
UPLOAD_CLAIM_TTL = 600.0
PUSH_CLAIM_TTL = 120.0


class ChartError(Exception):
    """A refusal in ChartMuseum's terms: an HTTP status and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Provenance:
    name: str
    version: str
    archive_digest: str | None  # sha256:<hex> of the .tgz it signs, when it says


def parse_provenance(data: bytes) -> Provenance:
    """The chart a `.prov` file signs: its clear-signed text is the chart's Chart.yaml, then
    `...`, then `files: {<name>-<version>.tgz: sha256:<hex>}` (Helm's provenance format)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ChartError(400, "the provenance file is not text") from None
    if "-----BEGIN PGP SIGNED MESSAGE-----" not in text:
        raise ChartError(400, "not a provenance file: no PGP signed message")
    body = text.split("-----BEGIN PGP SIGNED MESSAGE-----", 1)[1]
    body = body.split("-----BEGIN PGP SIGNATURE-----", 1)[0]
    body = body.split("\n\n", 1)[1] if "\n\n" in body else body
    try:
        docs = [d for d in yaml.safe_load_all(body.replace("\n...\n", "\n---\n")) if d]
    except yaml.YAMLError:
        raise ChartError(400, "the provenance file's signed text is not YAML") from None
    for doc in docs:
        files = doc.get("files") if isinstance(doc, dict) else None
        if isinstance(files, dict) and files:
            filename, digest = next(iter(files.items()))
            parts = split_filename(str(filename).removesuffix(".tgz"))
            if parts is not None:
                return Provenance(parts[0], parts[1], str(digest) if digest else None)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("name") and doc.get("version"):
            return Provenance(str(doc["name"]), str(doc["version"]), None)
    raise ChartError(400, "the provenance file does not name the chart it signs")


class HelmService:
    """What the chart repository routes, /api/v1, the CLI and the console use."""

    def __init__(self, registry: Registry, store: ChartStore, edition: Edition,
                 max_upload_bytes: int, allow_overwrite: bool) -> None:
        self.registry = registry
        self.store = store
        self.edition = edition
        self.max_upload_bytes = max_upload_bytes
        self.allow_overwrite = allow_overwrite
        self.index = IndexCache(store)

    # -- the core's hooks ---------------------------------------------------------------
    def manifest_check(self, name: str, manifest: Manifest) -> None:
        """Asked before any manifest is stored: a chart (Helm's config media type) must have
        valid metadata, live at NAMESPACE/<its name>, and fit the edition's chart quotas."""
        if manifest.is_index or manifest.artifact_type != CONFIG_TYPE:
            return
        self.edition.require("helm_charts")
        meta = self._config(manifest)
        if name.rsplit("/", 1)[-1] != meta.name:
            raise RegistryError("MANIFEST_INVALID",
                                f"chart {meta.name!r} cannot be pushed to repository {name}: "
                                f"a chart's repository is named after it "
                                f"({namespace_of(name)}/{meta.name})")
        if not any(d.media_type in CHART_TYPES for d in manifest.blobs[1:]):
            raise RegistryError("MANIFEST_INVALID", "a chart manifest needs a chart content "
                                "layer (application/vnd.cncf.helm.chart.content.v1.tar+gzip)")
        self.check_quotas(name, meta.version)

    def check_quotas(self, repository: str, version: str) -> None:
        """A new chart repository, or the first chart of a namespace, must fit the quotas.
        Pushed over OCI, a chart of a new repository claims its version (store.py), so that
        the quota is counted with the push's place held: the claim goes when the version's
        row is written, or expires (PUSH_CLAIM_TTL) if the push fails after this check. An
        upload through the chart repository API holds its claim already."""
        self.edition.require("helm_charts")
        if self.store.repository_known(repository):
            return
        if repository.count("/") != 1:  # never a chart repository entry: counted, not held
            spaces, repos = self.store.counts()
            if not self.store.has_namespace(namespace_of(repository)):
                self.edition.check_quota("helm_namespaces", spaces)
            self.edition.check_quota("helm_repositories", repos)
            return
        try:
            self._claim(repository, version, PUSH_CLAIM_TTL)
        except VersionClaimed:
            return  # a push of the same version at this moment holds the place

    def _claim(self, repository: str, version: str, ttl: float) -> Claim:
        """Claim a chart version (blocking); past a quota, the edition's refusal."""
        namespace, name = repository.split("/", 1)
        quotas = {q: self.edition.quota(q) for q in ("helm_namespaces", "helm_repositories")}
        try:
            return self.store.claim(namespace, name, version, repository, quotas, ttl)
        except QuotaReached as exc:
            self.edition.check_quota(exc.quota, exc.in_use)
            raise AssertionError("unreachable: the quota was passed") from None

    def _config(self, manifest: Manifest) -> ChartMeta:
        config = manifest.blobs[0]
        if config.size > MAX_CONFIG_BYTES:
            raise RegistryError("MANIFEST_INVALID", "the chart's config blob is over 1 MiB")
        try:
            data = b"".join(self.registry.store.read(config.digest))
        except (OSError, KeyError, FileNotFoundError):
            raise RegistryError("MANIFEST_BLOB_UNKNOWN",
                                f"the chart's config blob {config.digest} is not stored") from None
        try:
            return parse_config(data)
        except ChartInvalid as exc:
            raise RegistryError("MANIFEST_INVALID", str(exc)) from None

    def on_event(self, event: Event) -> None:
        """Bus handler: index a chart version when the tag of its version is pushed; drop the
        rows whose manifest or tag went."""
        if event.result != "success":
            return
        if event.action == "namespace.delete" and event.target.startswith("namespaces/"):
            ns = event.target.removeprefix("namespaces/")
            self.store.remove(ns, [(r.name, r.version) for r in self.store.namespace_rows(ns)])
            return
        if not event.repository or event.action not in ("push", "delete"):
            return
        if event.action == "push" and event.tag and event.digest \
                and event.media_type == mt.OCI_MANIFEST:
            if self._index_push(event.repository, event.digest, event.tag):
                return
        if event.action == "delete" or event.tag:
            self.reconcile(event.repository)

    def _index_push(self, repository: str, digest: str, tag: str) -> bool:
        stored = self.registry.db.manifest(digest)
        if stored is None:
            return False
        try:
            doc = json.loads(stored.content)
            config = doc.get("config") or {}
            if config.get("mediaType") != CONFIG_TYPE:
                return False
            data = b"".join(self.registry.store.read(config["digest"]))
            meta = parse_config(data)
        except (ValueError, KeyError, TypeError, OSError, ChartInvalid):
            log.warning("chart manifest %s in %s could not be indexed", digest, repository)
            return False
        if tag != meta.tag or repository.count("/") != 1:
            return False  # only NAMESPACE/NAME:VERSION is a chart repository entry
        layers = doc.get("layers") or []
        chart = next((d for d in layers if d.get("mediaType") in CHART_TYPES), None)
        if chart is None:
            return False
        prov = next((d for d in layers if d.get("mediaType") == PROV_TYPE), None)
        created = _created(doc.get("annotations") or {})
        self.store.put(namespace_of(repository), repository, meta, digest,
                       (chart["digest"], int(chart.get("size") or 0)),
                       prov["digest"] if prov else None, created)
        return True

    def reconcile(self, repository: str) -> None:
        """Keep the rows of a repository whose version tag still points at their manifest."""
        rows = self.store.repository_rows(repository)
        if not rows:
            return
        gone = [(r.name, r.version) for r in rows
                if self.registry.db.tag_digest(repository, version_tag(r.version))
                != r.manifest_digest]
        if gone:
            self.store.remove(rows[0].namespace, gone)

    # -- reads --------------------------------------------------------------------------
    def find(self, namespace: str, filename_stem: str) -> ChartRow | None:
        """The chart version a file name (`<name>-<version>`) designates."""
        for i, ch in enumerate(filename_stem):
            if ch == "-" and filename_stem[i + 1:i + 2].isdigit():
                row = self.store.one(namespace, filename_stem[:i], filename_stem[i + 1:])
                if row is not None:
                    return row
        return None

    def version(self, namespace: str, name: str, version: str) -> ChartRow | None:
        if version == "latest":
            rows = self.versions(namespace, name)
            return rows[0] if rows else None
        return self.store.one(namespace, name, version)

    def versions(self, namespace: str, name: str) -> list[ChartRow]:
        rows = {r.version: r for r in self.store.chart_rows(namespace, name)}
        return [rows[v] for v in sort_versions(list(rows))]

    def archive(self, row: ChartRow) -> ChartArchive:
        """The chart's values and README, read from its stored `.tgz` (blocking)."""
        data = b"".join(self.registry.store.read(row.chart_digest))
        return read_archive(data)

    # -- writes (the chart repository API) --------------------------------------------
    async def upload(self, namespace: str, chart: bytes, prov: bytes | None, force: bool,
                     authorize: Callable[[str], Awaitable[None]]) -> ChartRow:
        """Store a chart (and its provenance) as an OCI artifact in NAMESPACE/NAME, tagged
        with its version; `authorize(repository)` is asked once the chart's name is known.
        Nothing is stored when it is refused."""
        try:
            archive = await asyncio.to_thread(read_archive, chart)
        except ChartInvalid as exc:
            raise ChartError(400, str(exc)) from None
        meta = archive.meta
        repository = f"{namespace}/{meta.name}"
        if not is_valid_name(repository):
            raise ChartError(400, f"{repository} is not a valid repository name")
        await authorize(repository)
        if prov is not None:
            signed = parse_provenance(prov)
            if (signed.name, signed.version) != (meta.name, meta.version):
                raise ChartError(400, f"the provenance file signs {signed.name}-{signed.version}"
                                      f", not {meta.name}-{meta.version}")
            self._check_signed_digest(signed, digest_of(chart))
        try:
            config = config_bytes(meta)
        except ChartInvalid as exc:
            raise ChartError(400, str(exc)) from None
        self.edition.require("helm_charts")
        # The claim comes first, in its own transaction: the check for an existing version
        # after it cannot race another upload of the same version (which holds the claim
        # until its row is written), and the quotas are counted with this place held.
        try:
            claim = await asyncio.to_thread(self._claim, repository, meta.version,
                                            UPLOAD_CLAIM_TTL)
        except VersionClaimed:
            raise ChartError(409, f"{meta.filename} is being uploaded to {namespace} by "
                                  "another request: chart versions are not overwritten") from None
        try:
            return await self._store_chart(namespace, repository, meta, config, chart, prov,
                                           force)
        finally:
            await asyncio.to_thread(self.store.release, claim)

    async def _store_chart(self, namespace: str, repository: str, meta: ChartMeta,
                           config: bytes, chart: bytes, prov: bytes | None,
                           force: bool) -> ChartRow:
        """The push of an upload, its version claimed."""
        existing = await asyncio.to_thread(self.store.one, namespace, meta.name, meta.version)
        if existing is not None and not (force or self.allow_overwrite):
            raise ChartError(409, f"{meta.filename} already exists in {namespace}: chart "
                                  "versions are not overwritten (upload with ?force, or set "
                                  "helm_allow_overwrite)")
        blobs = [(config, digest_of(config)), (chart, digest_of(chart))]
        if prov is not None:
            blobs.append((prov, digest_of(prov)))
        for data, digest in blobs:
            await self.registry.push_blob(repository, digest, _once(data), len(data))
        body = chart_manifest((blobs[0][1], len(config)), (blobs[1][1], len(chart)),
                              (blobs[2][1], len(prov)) if prov is not None else None, meta,
                              _now())
        await asyncio.to_thread(self._put, repository, meta.tag, body)
        row = await asyncio.to_thread(self.store.one, namespace, meta.name, meta.version)
        if row is None:  # the bus handler writes it; absent only if indexing failed
            raise ChartError(500, "the chart was stored but could not be indexed")
        return row

    async def upload_prov(self, namespace: str, prov: bytes, force: bool,
                          authorize: Callable[[str], Awaitable[None]]) -> ChartRow:
        """Attach a `.prov` to a chart version already stored: its manifest is written again
        with the provenance layer (the tag moves, so an immutable tag refuses it)."""
        signed = parse_provenance(prov)
        row = await asyncio.to_thread(self.store.one, namespace, signed.name, signed.version)
        if row is None:
            raise ChartError(404, f"chart {signed.name}-{signed.version} does not exist in "
                                  f"{namespace}: upload the chart before its provenance file")
        await authorize(row.repository)
        self._check_signed_digest(signed, row.chart_digest)
        if row.prov_digest is not None and not (force or self.allow_overwrite):
            raise ChartError(409, f"{row.filename}.prov already exists in {namespace}")
        stored = await asyncio.to_thread(self.registry.db.manifest, row.manifest_digest)
        if stored is None:
            raise ChartError(404, f"chart {row.filename} is gone")
        doc = json.loads(stored.content)
        digest = digest_of(prov)
        await self.registry.push_blob(row.repository, digest, _once(prov), len(prov))
        doc["layers"] = [d for d in doc.get("layers") or [] if d.get("mediaType") != PROV_TYPE]
        doc["layers"].append({"mediaType": PROV_TYPE, "digest": digest, "size": len(prov)})
        body = json.dumps(doc, separators=(",", ":")).encode()
        await asyncio.to_thread(self._put, row.repository, version_tag(row.version), body)
        fresh = await asyncio.to_thread(self.store.one, namespace, row.name, row.version)
        return fresh or row

    def _check_signed_digest(self, signed: Provenance, chart_digest: str) -> None:
        if signed.archive_digest and signed.archive_digest != chart_digest:
            raise ChartError(400, f"the provenance file signs another archive of "
                                  f"{signed.name}-{signed.version} ({signed.archive_digest[:19]}…)")

    def _put(self, repository: str, tag: str, body: bytes) -> None:
        try:
            self.registry.put_manifest(repository, tag, body, mt.OCI_MANIFEST)
        except RegistryError as exc:
            raise _chart_error(exc) from None

    def delete(self, namespace: str, name: str, version: str) -> ChartRow:
        """Delete a chart version: its manifest (and so its `.prov` layer) goes (blocking)."""
        row = self.store.one(namespace, name, version)
        if row is None:
            raise ChartError(404, f"chart {name}-{version} not found in {namespace}")
        try:
            self.registry.delete_manifest(row.repository, row.manifest_digest)
        except RegistryError as exc:
            if exc.code != "MANIFEST_UNKNOWN":
                raise _chart_error(exc) from None
        self.reconcile(row.repository)
        return row


def _chart_error(exc: RegistryError) -> ChartError:
    """A refusal of the core, in ChartMuseum's terms: a tag that may not move is a conflict;
    edition and quota refusals stay 403; an invalid chart is a bad request."""
    reason = (exc.detail or {}).get("reason") if isinstance(exc.detail, dict) else None
    if exc.code == "DENIED":
        return ChartError(409 if reason == "immutable" else 403, exc.message)
    if exc.code in ("MANIFEST_INVALID", "NAME_INVALID", "TAG_INVALID"):
        return ChartError(400, exc.message)
    return ChartError(exc.status if exc.status < 500 else 500, exc.message)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _created(annotations: dict[str, Any]) -> float:
    value = annotations.get("org.opencontainers.image.created")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
