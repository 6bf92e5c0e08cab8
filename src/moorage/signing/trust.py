"""Who a namespace trusts: its keys and keyless identities and the instance's, managed here
(the tables are store.py's). A key is a cosign public key; the server may hold its private
half, only ever sealed with the instance's master key (`store/sealed.py`, bound to the key's
scope and name). Without a master key (encryption at rest off) a private key is refused,
naming the setting: it is never stored in the clear, and never leaves this module but to
sign, in memory.

Every change (a key or identity added, revoked, deleted) asks for the re-verification of
the scope's signed manifests (`reverify`, a job of the service). Blocking (the database,
scrypt): called from worker threads.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from moorage.signing import keys as cosign_keys
from moorage.signing.errors import Missing, SigningError, Taken
from moorage.signing.store import (Conflict, IdentityRow, KeyRow, NoNamespace, SigningStore,
                                   sealing_aad)
from moorage.store.keys import Keyring
from moorage.store.sealed import seal, unseal

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_IDENTITY = 512
MASTER_KEY_NEEDED = ("a server-held private key needs encryption at rest: set `encryption = "
                     "true` (MOORAGE_ENCRYPTION) with a master key (`master_key_file`, "
                     "MOORAGE_MASTER_KEY_FILE, or MOORAGE_MASTER_KEY); it is never stored "
                     "in the clear")


class Trust:
    def __init__(self, store: SigningStore, keyring: Keyring | None,
                 reverify: Callable[[str, str], object]) -> None:
        self.store = store
        self.keyring = keyring
        self.reverify = reverify  # (scope, why): re-verify the scope's signed manifests

    # -- keys ---------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise SigningError(f"invalid key name {name[:80]!r}: lowercase letters, digits "
                               f"and . _ -, at most 64 characters")

    def _add(self, scope: str, name: str, public: cosign_keys.PublicKey,
             sealed: bytes | None, by: str) -> KeyRow:
        try:
            row = self.store.add_key(scope, name, public.algorithm, public.key_id,
                                     public.fingerprint, public.pem.decode(), sealed, by)
        except Conflict as exc:
            raise Taken(str(exc)) from None
        except NoNamespace as exc:
            raise Missing(str(exc)) from None
        self.reverify(scope, f"key {name} added")
        return row

    def add_public_key(self, scope: str, name: str, pem: bytes, by: str) -> KeyRow:
        """Trust a public key alone (for images signed elsewhere)."""
        self._check_name(name)
        try:
            public = cosign_keys.load_public_key(pem)
        except cosign_keys.KeyFormatError as exc:
            raise SigningError(str(exc)) from None
        return self._add(scope, name, public, None, by)

    def _sealed(self, scope: str, name: str, pair: cosign_keys.KeyPair) -> bytes:
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        return seal(pair.pkcs8(), sealing_aad(scope, name), self.keyring)

    def import_private_key(self, scope: str, name: str, pem: bytes, password: str | None,
                           by: str) -> KeyRow:
        """Hold a cosign private key (encrypted with `password`, or plain) on the server,
        sealed; its public half is trusted. Blocking (scrypt)."""
        self._check_name(name)
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        try:
            pair = cosign_keys.read_private_key(pem, password)
        except cosign_keys.KeyFormatError as exc:  # the message never holds key material
            raise SigningError(str(exc)) from None
        return self._add(scope, name, pair.public, self._sealed(scope, name, pair), by)

    def generate_server_key(self, scope: str, name: str, by: str) -> KeyRow:
        """A new ECDSA P-256 key pair made and held by the server (sealed)."""
        self._check_name(name)
        if self.keyring is None:
            raise SigningError(MASTER_KEY_NEEDED)
        pair = cosign_keys.KeyPair.generate()
        return self._add(scope, name, pair.public, self._sealed(scope, name, pair), by)

    def key(self, scope: str, name: str) -> KeyRow:
        found = self.store.key(scope, name)
        if found is None:
            raise Missing(f"no key named {name} in {scope}")
        return found

    def revoke_key(self, scope: str, name: str, by: str) -> KeyRow:
        before = self.key(scope, name)
        row = self.store.revoke_key(scope, name, by)
        assert row is not None
        if not before.revoked:
            self.reverify(scope, f"key {name} revoked")
        return row

    def delete_key(self, scope: str, name: str) -> KeyRow:
        row = self.key(scope, name)
        self.store.delete_key(scope, name)
        self.reverify(scope, f"key {name} deleted")
        return row

    def server_key(self, scope: str, name: str) -> cosign_keys.KeyPair:
        """The private key the server holds under this name (unsealed, in memory only)."""
        row = self.key(scope, name)
        if row.revoked:
            raise SigningError(f"key {name} of {scope} is revoked")
        sealed = self.store.sealed_private(scope, name)
        if sealed is None:
            raise SigningError(f"key {name} of {scope} is a public key alone: the server "
                               f"holds no private key to sign with")
        try:
            der = unseal(sealed, sealing_aad(scope, name), self.keyring,
                         f"the private key {name} of {scope}")
        except ValueError as exc:
            raise SigningError(str(exc)) from None
        pem = b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + \
            b"-----END PRIVATE KEY-----\n"
        return cosign_keys.import_private_key(pem)

    # -- identities ---------------------------------------------------------------------
    def add_identity(self, scope: str, subject: str, issuer: str, by: str) -> IdentityRow:
        subject, issuer = subject.strip(), issuer.strip()
        if not subject or not issuer or len(subject) > MAX_IDENTITY or \
                len(issuer) > MAX_IDENTITY:
            raise SigningError(f"an identity needs a subject and an OIDC issuer, each at most "
                               f"{MAX_IDENTITY} characters")
        try:
            row = self.store.add_identity(scope, subject, issuer, by)
        except Conflict as exc:
            raise Taken(str(exc)) from None
        except NoNamespace as exc:
            raise Missing(str(exc)) from None
        self.reverify(scope, f"identity {subject} added")
        return row

    def remove_identity(self, scope: str, identity_id: int) -> IdentityRow:
        row = self.store.remove_identity(scope, identity_id)
        if row is None:
            raise Missing(f"no identity {identity_id} in {scope}")
        self.reverify(scope, f"identity {row.subject} removed")
        return row
