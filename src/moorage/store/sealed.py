"""Small secrets sealed with the instance's master key (AES-256-GCM), for rows of the
metadata database: a scanner adapter's credential, a server-held signing key.

A sealed value is `MSAK1 || master key id (8) || nonce (12) || AES-GCM(secret)`, with
associated data naming the row it belongs to, so that a sealed value copied into another
row does not open. The master key that sealed it is named by its id, so a rotated keyring
(store/keys.py) still opens what older keys sealed.
"""

from __future__ import annotations

import os

from moorage.store.keys import Keyring

MAGIC = b"MSAK1"


class SealError(ValueError):
    """A stored secret the keys at hand cannot open (encryption turned off, key lost)."""


def is_sealed(stored: bytes) -> bool:
    return stored.startswith(MAGIC)


def seal(secret: bytes, aad: bytes, keyring: Keyring) -> bytes:
    """`secret` sealed with the keyring's active master key, bound to `aad`."""
    master = keyring.active
    nonce = os.urandom(12)
    return MAGIC + master.id + nonce + master.aead.encrypt(nonce, secret, aad)


def unseal(stored: bytes, aad: bytes, keyring: Keyring | None, what: str) -> bytes:
    """The secret `seal` sealed; SealError naming `what` when it cannot be opened."""
    if not is_sealed(stored):
        raise SealError(f"{what} is not sealed")
    if keyring is None:
        raise SealError(f"{what} is sealed with a master key, and encryption at rest is off "
                        f"here: turn it on with the same key")
    rest = stored[len(MAGIC):]
    key_id, nonce, sealed = rest[:8], rest[8:20], rest[20:]
    try:
        return keyring.get(key_id).aead.decrypt(nonce, sealed, aad)
    except Exception:  # unknown key id, or a key that does not open it
        raise SealError(f"{what} cannot be opened with the master keys at hand") from None
