"""A rule's password for its remote registry: sealed with the master key (store/sealed.py)
when encryption at rest is on, stored as is otherwise (the data folder's own protection),
as scanner adapters' secrets are. The plaintext exists only while a client is configured;
it never reaches a log, an error or an API answer."""

from __future__ import annotations

from moorage.store import sealed
from moorage.store.keys import Keyring

SealError = sealed.SealError
_AAD = b"moorage/replication-rule-password"


def seal(secret: str, keyring: Keyring | None) -> bytes:
    if keyring is None:
        return secret.encode()
    return sealed.seal(secret.encode(), _AAD, keyring)


def unseal(stored: bytes, keyring: Keyring | None) -> str:
    if not sealed.is_sealed(stored):
        return stored.decode()
    return sealed.unseal(stored, _AAD, keyring, "the password of a replication rule").decode()
