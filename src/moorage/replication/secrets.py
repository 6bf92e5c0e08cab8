"""A rule's password for its remote registry, sealed with the master key (AES-256-GCM)
when encryption at rest is on, as scanner adapters' secrets are. The plaintext exists only
while a client is being configured; it never reaches a log, an error or an API answer."""

from __future__ import annotations

import os

from moorage.store.keys import Keyring

_SEALED = b"msealed1"
_AAD = b"moorage/replication-secret"


class SealError(Exception):
    """A sealed password that the master keys at hand cannot open."""


def seal(secret: str, keyring: Keyring | None) -> bytes:
    if keyring is None:
        return secret.encode()
    master = keyring.active
    nonce = os.urandom(12)
    return _SEALED + master.id + nonce + master.aead.encrypt(nonce, secret.encode(), _AAD)


def unseal(stored: bytes, keyring: Keyring | None) -> str:
    if not stored.startswith(_SEALED):
        return stored.decode()
    if keyring is None:
        raise SealError("the password of a replication rule is sealed with a master key and "
                        "encryption at rest is off here: turn it on with the same key")
    rest = stored[len(_SEALED):]
    key_id, nonce, sealed = rest[:8], rest[8:20], rest[20:]
    try:
        return keyring.get(key_id).aead.decrypt(nonce, sealed, _AAD).decode()
    except Exception:  # an unknown key id, or a key that does not open it
        raise SealError("the password of a replication rule cannot be opened with the "
                        "master keys at hand") from None
