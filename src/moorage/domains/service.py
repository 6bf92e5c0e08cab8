"""Custom domains as administrators manage them: add (or renew), list, remove.

Only administrators, and only on an edition with custom domain names (basic and up). A pair
is checked before anything is stored (`certs.check_pem`), so the front never meets a pair it
cannot serve; the refusal says which rule failed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from moorage.access.editions import Edition
from moorage.access.errors import Forbidden, Invalid, NotFound
from moorage.access.principal import Principal
from moorage.domains.certs import PairError, check_pem, normal_host
from moorage.domains.store import DomainRow, DomainStore, seal
from moorage.settings import Settings
from moorage.store.keys import Keyring, load_keyring

log = logging.getLogger("moorage.domains")
MAX_DOMAINS = 500  # a bound on one front's crt-list and on a listing, whatever the edition


class DomainService:
    def __init__(self, store: DomainStore, edition: Edition, keyring: Keyring | None) -> None:
        self.store = store
        self.edition = edition
        self.keyring = keyring

    def _allowed(self, principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only administrators manage custom domains")
        self.edition.require("custom_domains")

    def list(self, principal: Principal) -> list[DomainRow]:
        self._allowed(principal)
        return self.store.list()

    def add(self, principal: Principal, host: str, cert_pem: str,
            key_pem: str) -> tuple[DomainRow, bool]:
        """Add a domain, or replace its pair (a renewal); (row, created)."""
        self._allowed(principal)
        try:
            name = normal_host(host)
            info = check_pem(name, cert_pem.encode(), key_pem.encode())
        except PairError as exc:
            raise Invalid(str(exc)) from None
        if self.store.get(name) is None and self.store.count() >= MAX_DOMAINS:
            raise Invalid(f"an instance serves at most {MAX_DOMAINS} custom domains")
        row, created = self.store.put(
            name, cert_pem.strip() + "\n", seal(key_pem.strip().encode() + b"\n", name,
                                                self.keyring),
            info.subject, list(info.names), info.not_before.timestamp(),
            info.not_after.timestamp(), principal.username)
        log.info("custom domain %s %s by %s (certificate valid until %s)", name,
                 "added" if created else "renewed", principal.username,
                 f"{info.not_after:%Y-%m-%d}")
        return row, created

    def remove(self, principal: Principal, host: str) -> None:
        self._allowed(principal)
        name = host.strip().lower().rstrip(".")[:253]
        if not self.store.delete(name):
            raise NotFound(f"no custom domain {name!r}")
        log.info("custom domain %s removed by %s", name, principal.username)


def domain_keyring(settings: Settings, data_dir: Path) -> Keyring | None:
    """The master keys that seal domain keys: those of encryption at rest, when it is on."""
    if not settings.encryption:
        return None
    return load_keyring(settings.master_key_file, data_dir)


def install(settings: Settings, engine: Engine, edition: Edition,
            data_dir: Path) -> DomainService:
    """Wire custom domains in (app.py): the service behind /api/v1/domains."""
    return DomainService(DomainStore(engine), edition, domain_keyring(settings, data_dir))
