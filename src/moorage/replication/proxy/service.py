"""Proxy cache namespaces as administrators manage them, and the finder the core asks on
the pull path.

Management (instance administrators): create (the namespace is made when it does not exist),
list, show, change, delete, check (reaches the upstream with the stored credentials). Every
input is bounded and checked before anything is stored: a URL the remote client would refuse
(plain http to a remote host without `insecure`, credentials in the URL) is refused here.

The finder answers from a per-process table of the proxy namespaces: a cache of what is
stored, checked on every request against the stored list of (namespace, version) through the
pull path's reader (db/rawreads.py: plain SQL, remembered until the next commit anywhere on
the database), and rebuilt when that list differs. So a change made through one worker or
replica is followed by the very next request on every other one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from moorage.access.errors import AlreadyExists, Forbidden, Invalid, NotFound
from moorage.access.management import AccessManager
from moorage.access.principal import Principal
from moorage.db.rawreads import RawReader
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import parse_manifest
from moorage.registry.service import Registry
from moorage.remote import RegistryClient, RemoteConfig, RemoteError, RetryPolicy, Timeouts
from moorage.replication.proxy.blobs import BlobFetcher
from moorage.replication.proxy.source import ProxyConfig, ProxySource
from moorage.replication.proxy.store import ProxyRow, ProxyStore, SealError, seal, unseal
from moorage.store.keys import Keyring

log = logging.getLogger("moorage.proxy")

TTL_DEFAULT = 300
PENDING_HOLD = 24 * 3600  # how long GC keeps the cached blobs of a manifest still pending
TTL_MIN, TTL_MAX = 10, 7 * 24 * 3600
MAX_PASSWORD = 4096
MAX_CA = 64 << 10
# What the table of proxy namespaces is checked against on each request (see the docstring).
_VERSIONS = ("SELECT namespaces.name, proxy_caches.updated_at FROM proxy_caches "
             "JOIN namespaces ON namespaces.id = proxy_caches.namespace_id")
UNCHANGED: Any = object()
# Pull-through requests have a client waiting: fewer, shorter tries than a replication job.
PULL_TIMEOUTS = Timeouts(connect=5.0, read=30.0, write=30.0, pool=30.0, request=30.0)
PULL_RETRIES = RetryPolicy(attempts=2, base_delay=0.2, max_delay=2.0, max_retry_after=5.0)
# A check answers the person who asked for it: one try, each step bounded by a few seconds.
CHECK_TIMEOUTS = Timeouts(connect=4.0, read=4.0, write=4.0, pool=4.0, request=8.0)
CHECK_RETRIES = RetryPolicy(attempts=1, base_delay=0.2, max_delay=0.2, max_retry_after=0.0)


@dataclass(frozen=True)
class Settings:
    url: str
    username: str | None
    password: str | None
    ca_pem: str | None
    insecure: bool


class ProxyService:
    def __init__(self, engine: Engine, registry: Registry, manager: AccessManager,
                 keyring: Callable[[], Keyring | None], work_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = ProxyStore(engine)
        self.registry = registry
        self.manager = manager
        self._keyring = keyring
        self.work_dir = work_dir
        self.clock = clock
        self.fetcher = BlobFetcher(self.store)
        # told of every upstream failure: (namespace, reason); metrics add theirs
        self.on_failure: list[Callable[[str, str], None]] = []
        self._sources: dict[str, ProxySource] = {}
        self._reader = RawReader.of(engine)
        self._seen: list[Any] | None = None  # the versions the table was built from

    # -- the pull path -------------------------------------------------------------------
    def find(self, name: str) -> ProxySource | None:
        """The core's finder (registry/upstreams.py): from memory, never raising."""
        try:
            versions = self._reader.cached_rows(_VERSIONS, ())
            if versions != self._seen:
                self._reload()
                self._seen = versions
        except Exception:  # the database is away: keep what we had
            log.exception("could not reload the proxy cache namespaces")
        if not self._sources:
            return None
        return self._sources.get(name.split("/", 1)[0])

    def _reload(self) -> None:
        rows = {r.namespace: r for r in self.store.rows()}
        sources: dict[str, ProxySource] = {}
        for ns, row in rows.items():
            current = self._sources.get(ns)
            if current is not None and current.config.version == row.updated_at:
                sources[ns] = current
                continue
            try:
                sources[ns] = self._source(row)
            except (SealError, RemoteError, OSError) as exc:
                log.error("proxy cache %s cannot be used: %s", ns, exc)
        self._sources = sources

    def _source(self, row: ProxyRow) -> ProxySource:
        client = RegistryClient(self._remote_config(row, PULL_TIMEOUTS, PULL_RETRIES))
        source = ProxySource(ProxyConfig(row.namespace, row.ttl_seconds, row.rewrite_library,
                                         row.enabled, row.updated_at),
                             client, self.registry, self.store, self.clock, self.on_failure)
        source.blobs = self.fetcher
        return source

    def _remote_config(self, row: ProxyRow, timeouts: Timeouts | None = None,
                       retry: RetryPolicy | None = None) -> RemoteConfig:
        password = None
        stored = self.store.password(row.namespace)
        if stored is not None:
            password = unseal(stored, row.namespace, self._keyring())
        ca_file = None
        if row.ca_pem:
            ca_file = self._ca_file(row.ca_pem)
        config = RemoteConfig(row.upstream_url, username=row.username, password=password,
                              ca_file=ca_file, insecure=row.insecure,
                              timeouts=timeouts or Timeouts(), retry=retry or RetryPolicy(),
                              user_agent="moorage-proxy")
        config.check()
        return config

    def _ca_file(self, pem: str) -> Path:
        """The CA bundle as a file the TLS layer reads, named by its content."""
        folder = self.work_dir / "proxy-ca"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (hashlib.sha256(pem.encode()).hexdigest()[:32] + ".pem")
        if not path.exists():
            path.write_text(pem)
        return path

    # -- garbage collection --------------------------------------------------------------
    def hold_pending(self) -> int:
        """GC's hold (Registry.gc_holds): the blob links of pending manifests stay.

        How a proxied blob is accounted, from first byte to collection: while it streams it
        is an upload in the staging area, which GC never reads and the namespace's storage
        does not count (the upload path only checks that it would fit); once committed it is
        linked into the repository like a pushed blob, and counted once in the namespace when
        a manifest that references it is stored (a blob the namespace holds already adds
        nothing). Between the two its manifest waits in `proxy_pending` for its other blobs,
        and no stored manifest references the link: GC, even with no grace period, would take
        it and the pull in progress would fetch it again. So the links of the blobs of
        manifests pending for less than PENDING_HOLD are re-touched before GC marks; older
        pending manifests were abandoned by their client, and their blobs go like any
        unreferenced blob. Blocking: GC runs in a job's thread."""
        held = 0
        touch = self.registry.db.touch_blob
        for repository, _digest, media_type, content in self.store.pending_since(
                self.clock() - PENDING_HOLD):
            try:
                manifest = parse_manifest(content, media_type)
            except RegistryError:
                continue  # stored as fetched and verified; unreadable is no reason to fail GC
            for blob in manifest.blobs:
                touch(repository, blob.digest, 0)
                held += 1
        return held

    # -- management ----------------------------------------------------------------------
    @staticmethod
    def _admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only instance administrators manage proxy caches")

    def list(self, principal: Principal) -> list[ProxyRow]:
        self._admin(principal)
        return self.store.rows()

    def get(self, principal: Principal, namespace: str) -> ProxyRow:
        self._admin(principal)
        row = self.store.get(namespace)
        if row is None:
            raise NotFound(f"no proxy cache {namespace!r}")
        return row

    def create(self, principal: Principal, namespace: str, url: str, username: str | None,
               password: str | None, ca_pem: str | None, insecure: bool,
               rewrite_library: bool, ttl_seconds: int | None, enabled: bool) -> ProxyRow:
        self._admin(principal)
        ttl = check_ttl(TTL_DEFAULT if ttl_seconds is None else ttl_seconds)
        checked = check_settings(Settings(url, username, password, ca_pem, insecure))
        ns_id = self.store.namespace_id(namespace)
        if ns_id is None:
            ns_id = self.manager.create_namespace(principal, namespace).id
        sealed = (seal(checked.password, namespace, self._keyring())
                  if checked.password is not None else None)
        values: dict[str, object] = dict(
            upstream_url=checked.url, username=checked.username, password=sealed,
            ca_pem=checked.ca_pem, insecure=checked.insecure, rewrite_library=rewrite_library,
            ttl_seconds=ttl, enabled=enabled)
        if not self.store.create(ns_id, values, principal.username or ""):
            raise AlreadyExists(f"{namespace} is already a proxy cache")
        return self.get(principal, namespace)

    def change(self, principal: Principal, namespace: str, url: Any = UNCHANGED,
               username: Any = UNCHANGED, password: Any = UNCHANGED, ca_pem: Any = UNCHANGED,
               insecure: Any = UNCHANGED, rewrite_library: Any = UNCHANGED,
               ttl_seconds: Any = UNCHANGED, enabled: Any = UNCHANGED) -> ProxyRow:
        row = self.get(principal, namespace)
        stored = self.store.password(namespace)
        old_password = unseal(stored, namespace, self._keyring()) if stored is not None else None
        merged = Settings(row.upstream_url if url is UNCHANGED else url,
                          row.username if username is UNCHANGED else username,
                          old_password if password is UNCHANGED else password,
                          row.ca_pem if ca_pem is UNCHANGED else ca_pem,
                          row.insecure if insecure is UNCHANGED else bool(insecure))
        checked = check_settings(merged)
        values: dict[str, object] = dict(upstream_url=checked.url, username=checked.username,
                                         ca_pem=checked.ca_pem, insecure=checked.insecure)
        if password is not UNCHANGED or username is not UNCHANGED:
            values["password"] = (seal(checked.password, namespace, self._keyring())
                                  if checked.password is not None else None)
        if rewrite_library is not UNCHANGED:
            values["rewrite_library"] = bool(rewrite_library)
        if ttl_seconds is not UNCHANGED:
            values["ttl_seconds"] = check_ttl(ttl_seconds)
        if enabled is not UNCHANGED:
            values["enabled"] = bool(enabled)
        self.store.change(namespace, values, principal.username or "")
        return self.get(principal, namespace)

    def delete(self, principal: Principal, namespace: str) -> None:
        """The binding goes; the namespace and what was cached stay, as ordinary content."""
        self._admin(principal)
        if not self.store.delete(namespace):
            raise NotFound(f"no proxy cache {namespace!r}")

    async def check(self, principal: Principal, namespace: str) -> ProxyRow:
        """Reach the upstream's /v2/ with the stored credentials; the outcome is kept."""
        row = await asyncio.to_thread(self.get, principal, namespace)
        try:
            config = await asyncio.to_thread(self._remote_config, row, CHECK_TIMEOUTS,
                                             CHECK_RETRIES)
            async with RegistryClient(config) as client:
                await client.ping()
            ok, detail = True, ""
        except (RemoteError, SealError) as exc:
            ok, detail = False, str(exc)
        await asyncio.to_thread(self.store.checked, namespace, ok, detail)
        return await asyncio.to_thread(self.get, principal, namespace)


def check_ttl(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not TTL_MIN <= value <= TTL_MAX:
        raise Invalid(f"the tag TTL is a whole number of seconds from {TTL_MIN} to {TTL_MAX}")
    return value


def check_settings(s: Settings) -> Settings:
    """Bounded, and what the remote client would accept (RemoteConfig.check)."""
    url = s.url.strip().rstrip("/") if isinstance(s.url, str) else ""
    if not url or len(url) > 2048:
        raise Invalid("the upstream URL is http(s)://host[:port], at most 2048 characters")
    username = s.username or None
    password = s.password if s.password not in (None, "") else None
    if username is not None and (len(username) > 255 or any(c in username for c in ":\r\n")):
        raise Invalid("the upstream username is at most 255 characters, without ':' or "
                      "line breaks")
    if password is not None and (len(password) > MAX_PASSWORD or "\n" in password):
        raise Invalid(f"the upstream password is at most {MAX_PASSWORD} characters on one line")
    ca_pem = s.ca_pem or None
    if ca_pem is not None and (len(ca_pem) > MAX_CA or "-----BEGIN CERTIFICATE-----"
                               not in ca_pem):
        raise Invalid("the CA is PEM certificates (-----BEGIN CERTIFICATE-----), at most "
                      f"{MAX_CA} bytes")
    if ca_pem is not None:
        try:
            from cryptography import x509
            x509.load_pem_x509_certificates(ca_pem.encode())
        except Exception:
            raise Invalid("the CA is not readable PEM certificates") from None
    try:
        RemoteConfig(url, username=username, password=password,
                     insecure=bool(s.insecure)).check()
    except RemoteError as exc:
        raise Invalid(str(exc)) from None
    return Settings(url, username, password, ca_pem, bool(s.insecure))
