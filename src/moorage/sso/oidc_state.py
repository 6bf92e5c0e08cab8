"""What a sign-in through the provider must remember between its start and its callback:
the `state`, the `nonce`, the PKCE verifier, the redirect URI and where the user was going.

It is sealed (encrypted and authenticated with Fernet, under a key derived from the
instance's signing key) into a short-lived cookie of the browser that started the sign-in:
the callback may land on another worker process or replica, which opens it with the same
key, and nothing about it lives in one process's memory. The verifier and nonce are never
readable by the page or anyone who sees the cookie; a cookie older than its lifetime or
sealed by another instance opens to nothing.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "moorage_oidc"
LIFETIME_SECONDS = 600  # long enough to type a password and approve, short enough to expire
MAX_COOKIE_CHARS = 4000


@dataclass(frozen=True)
class PendingSignIn:
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next: str

    @classmethod
    def new(cls, redirect_uri: str, target: str) -> "PendingSignIn":
        return cls(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                   verifier=secrets.token_urlsafe(48), redirect_uri=redirect_uri, next=target)


class StateSealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the state key must be 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, pending: PendingSignIn) -> str:
        return self._fernet.encrypt(json.dumps(asdict(pending)).encode()).decode()

    def open(self, value: str) -> PendingSignIn | None:
        """The pending sign-in of this cookie, or None: absent, expired, tampered with."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            data = json.loads(self._fernet.decrypt(value.encode(), ttl=LIFETIME_SECONDS))
            return PendingSignIn(**{k: str(data[k]) for k in
                                    ("state", "nonce", "verifier", "redirect_uri", "next")})
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
