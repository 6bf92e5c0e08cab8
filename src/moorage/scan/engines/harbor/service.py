"""Scanner adapters as instance administrators manage them: register (which fetches and
checks the adapter's metadata first, refusing an adapter that fails it), list, change,
remove, ping; and the enabled ones as scan engines.

Only instance administrators, and only on an edition with vulnerability scanning. The
credential an adapter gets for pulling from Moorage is minted per scan (`pull_credential`):
a bearer token of the instance's token issuer that grants `pull` on exactly the scanned
repository, for as long as the scan may take, in the name of no account
("scanner:<adapter>"), so it can neither push nor read anything else.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from moorage.access.editions import Edition
from moorage.access.errors import AlreadyExists, Forbidden, Invalid, NotFound
from moorage.access.principal import Principal
from moorage.access.scopes import Scope
from moorage.access.tokens import TokenIssuer
from moorage.scan.engines.harbor.client import AUTH_KINDS, AdapterAuth, AdapterClient
from moorage.scan.engines.harbor.engine import HarborEngine, MediaType
from moorage.scan.engines.harbor.protocol import AdapterError, Metadata
from moorage.scan.engines.harbor.store import AdapterRow, AdapterStore, SealError, seal, unseal
from moorage.store.keys import Keyring

log = logging.getLogger("moorage.scan.harbor")
MAX_ADAPTERS = 20
MAX_SECRET = 4096
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
UNCHANGED: Any = object()


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise Invalid("an adapter name is 1 to 64 lowercase letters, digits, '.', '_' or '-', "
                      "starting with a letter or digit")
    return name


def check_url(url: str) -> str:
    url = url.strip()
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise Invalid("the adapter URL is not a URL") from None
    if len(url) > 2048 or parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid("the adapter URL is http:// or https:// with a host, at most 2048 "
                      "characters")
    if parsed.userinfo or parsed.query or parsed.fragment:
        raise Invalid("the adapter URL carries no credentials, query or fragment (give the "
                      "credential as auth)")
    return url.rstrip("/")


def check_auth(kind: str, secret: str | None) -> tuple[str, str | None]:
    if kind not in AUTH_KINDS:
        raise Invalid(f"auth is one of {', '.join(AUTH_KINDS)}")
    if kind == "none":
        return kind, None
    if not secret or len(secret) > MAX_SECRET or any(c in secret for c in "\r\n\0"):
        raise Invalid(f"auth {kind} needs a secret of 1 to {MAX_SECRET} characters on one line")
    if kind == "basic" and ":" not in secret:
        raise Invalid("basic auth's secret is user:password")
    return kind, secret


def pull_credential(issuer: TokenIssuer, adapter: str) -> Callable[[str, float], str]:
    """A function minting the Authorization header value an adapter pulls one repository
    with: `Bearer <token>` granting pull on that repository alone."""
    def mint(repository: str, seconds: float) -> str:
        issued = issuer.issue(f"scanner:{adapter}",
                              [Scope("repository", repository, frozenset({"pull"}))],
                              ttl_seconds=max(60, int(seconds)))
        return f"Bearer {issued.token}"
    return mint


@dataclass
class ScannerService:
    store: AdapterStore
    edition: Edition
    keyring: Keyring | None
    issuer: TokenIssuer
    registry_url: str  # where adapters pull from; "" when neither setting gives one
    timeout: float = 600.0
    media_type: MediaType | None = None
    step_timeout: float = 30.0  # each call of a scan
    manage_timeout: float = 10.0  # each call of a registration or ping (the CLI waits 30 s)
    max_report_bytes: int | None = None

    def _allowed(self, principal: Principal) -> None:
        self.edition.require("scanning")  # first, as the other scan routes do
        if not principal.is_admin:
            raise Forbidden("only instance administrators manage scanner adapters")

    def _client(self, url: str, auth: AdapterAuth, managing: bool = False) -> AdapterClient:
        extra = {} if self.max_report_bytes is None else \
            {"max_report_bytes": self.max_report_bytes}
        return AdapterClient(url, auth, step_timeout=self.manage_timeout if managing
                             else self.step_timeout, **extra)

    async def _metadata(self, url: str, auth: AdapterAuth) -> Metadata:
        try:
            return await self._client(url, auth, managing=True).metadata()
        except AdapterError as exc:
            raise Invalid(f"{url} is not a usable scanner adapter: {exc}") from None

    def _auth_of(self, row: AdapterRow) -> AdapterAuth:
        stored = self.store.secret(row.name)
        if row.auth_kind == "none" or stored is None:
            return AdapterAuth()
        return AdapterAuth(row.auth_kind, unseal(stored, row.name, self.keyring))

    # -- management ------------------------------------------------------------------
    async def list(self, principal: Principal) -> list[AdapterRow]:
        self._allowed(principal)
        return await asyncio.to_thread(self.store.list)

    async def get(self, principal: Principal, name: str) -> AdapterRow:
        self._allowed(principal)
        found = await asyncio.to_thread(self.store.get, name[:64])
        if found is None:
            raise NotFound(f"no scanner adapter {name[:64]!r}")
        return found

    async def add(self, principal: Principal, name: str, url: str, auth_kind: str = "none",
                  secret: str | None = None, enabled: bool = True) -> AdapterRow:
        self._allowed(principal)
        name, url = check_name(name), check_url(url)
        auth_kind, secret = check_auth(auth_kind, secret)
        if await asyncio.to_thread(self.store.get, name) is not None:
            raise AlreadyExists(f"scanner adapter {name} exists")
        if await asyncio.to_thread(self.store.count) >= MAX_ADAPTERS:
            raise Invalid(f"an instance has at most {MAX_ADAPTERS} scanner adapters")
        meta = await self._metadata(url, AdapterAuth(auth_kind, secret or ""))
        sealed = None if secret is None else seal(secret, name, self.keyring)
        try:
            row = await asyncio.to_thread(self.store.add, name, url, auth_kind, sealed, enabled,
                                          meta.as_dict(), principal.username)
        except IntegrityError:
            raise AlreadyExists(f"scanner adapter {name} exists") from None
        log.info("scanner adapter %s registered at %s by %s: %s %s (%s)", name, url,
                 principal.username, meta.name, meta.version, meta.vendor)
        return row

    async def change(self, principal: Principal, name: str, url: str | None = None,
                     auth_kind: str | None = None, secret: Any = UNCHANGED,
                     enabled: bool | None = None) -> AdapterRow:
        """Change what is given; a new URL or credential is checked against the adapter's
        metadata before it is stored."""
        row = await self.get(principal, name)
        values: dict[str, Any] = {}
        if enabled is not None:
            values["enabled"] = enabled
        if url is not None or auth_kind is not None or secret is not UNCHANGED:
            new_url = check_url(url) if url is not None else row.url
            kind = auth_kind if auth_kind is not None else row.auth_kind
            if secret is UNCHANGED:
                if kind != row.auth_kind and kind != "none":
                    raise Invalid("a new auth kind comes with its secret")
                auth = await asyncio.to_thread(self._auth_of, row)
                kind, plain = check_auth(kind, auth.secret or None)
            else:
                kind, plain = check_auth(kind, secret)
            meta = await self._metadata(new_url, AdapterAuth(kind, plain or ""))
            values.update(url=new_url, auth_kind=kind, metadata=meta.as_dict(),
                          auth_secret=None if plain is None else seal(plain, row.name,
                                                                      self.keyring),
                          health="healthy", health_detail="")
        changed = await asyncio.to_thread(self.store.change, row.name, principal.username,
                                          **values)
        if changed is None:
            raise NotFound(f"no scanner adapter {row.name!r}")
        log.info("scanner adapter %s changed by %s (%s)", row.name, principal.username,
                 ", ".join(sorted(k for k in values if k != "auth_secret")) or "nothing")
        return changed

    async def remove(self, principal: Principal, name: str) -> None:
        self._allowed(principal)
        if not await asyncio.to_thread(self.store.delete, name[:64]):
            raise NotFound(f"no scanner adapter {name[:64]!r}")
        log.info("scanner adapter %s removed by %s", name[:64], principal.username)

    async def ping(self, principal: Principal, name: str) -> AdapterRow:
        """Fetch the adapter's metadata now; the row records whether it answered as it must."""
        row = await self.get(principal, name)
        try:
            auth = await asyncio.to_thread(self._auth_of, row)
            meta = await self._client(row.url, auth, managing=True).metadata()
        except (AdapterError, SealError) as exc:
            checked = await asyncio.to_thread(self.store.checked, row.name, False, str(exc),
                                              None)
        else:
            checked = await asyncio.to_thread(self.store.checked, row.name, True, "",
                                              meta.as_dict())
        assert checked is not None
        return checked

    # -- scanning ----------------------------------------------------------------------
    def engines(self) -> list[HarborEngine]:
        """The enabled adapters as scan engines (blocking: reads the table). An adapter whose
        secret cannot be opened is left out, with a warning."""
        found = []
        for row in self.store.list():
            if not row.enabled:
                continue
            try:
                auth = self._auth_of(row)
            except SealError as exc:
                log.warning("scanner adapter %s is left out of scans: %s", row.name, exc)
                continue
            extra: dict[str, Any] = {} if self.media_type is None else \
                {"media_type": self.media_type}
            found.append(HarborEngine(row.name, self._client(row.url, auth), self.registry_url,
                                      pull_credential(self.issuer, row.name),
                                      timeout=self.timeout, **extra))
        return found


def manifest_media_type(get_media_type: Callable[[str, str], str]) -> MediaType:
    """An async media-type lookup from a blocking one (the registry's manifest store)."""
    async def lookup(repository: str, digest: str) -> str:
        return await asyncio.to_thread(get_media_type, repository, digest)
    return lookup

