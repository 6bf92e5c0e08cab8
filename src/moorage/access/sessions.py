"""Console sessions: a browser's sign-in, kept in the database like an access token.

A session is a row of `access_tokens` of kind "session"; the browser holds the whole token
(`mrg_s_<id>_<secret>`) in an HttpOnly cookie and the database only its hash. So every worker
and replica sees the same sessions, sign-out ends one everywhere at once, and what ends an
account's refresh tokens (a new password, the account disabled or deleted) ends its sessions
in the same transaction.

A session ends at the first of: sign-out, its absolute lifetime (`lifetime_seconds` after
sign-in), or `idle_seconds` without a request. Its CSRF token is derived from the session's
secret with a keyed hash: only a page that could read the cookie can know it, and nothing
more is stored for it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from moorage.access.authentication import (Authenticator, expired, make_token, split_token,
                                           unusable)
from moorage.access.errors import Unauthenticated
from moorage.access.principal import Principal
from moorage.access.secrets import secret_matches
from moorage.db.access import AccessStore

KIND = "session"
# Idle time is noted at most this often, so that a page's requests cost no write each.
_TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who, which session row, and its CSRF token."""

    principal: Principal
    id: str
    csrf: str


class ConsoleSessions:
    def __init__(self, store: AccessStore, authenticator: Authenticator, key: bytes,
                 lifetime_seconds: int, idle_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.authenticator = authenticator
        self.key = key
        self.lifetime = lifetime_seconds
        self.idle = idle_seconds
        self.clock = clock

    def start(self, principal: Principal, client: str = "") -> str:
        """A new session for a user who has just proved who they are; returns the cookie
        value, to be handed to the browser once."""
        assert principal.id is not None
        token_id, token, secret_hash = make_token(KIND)
        now = self.clock()
        self.store.create_token(token_id, principal.id, KIND, f"console {client}"[:100].strip(),
                                secret_hash, now + self.lifetime)
        self.store.touch_token(token_id, at=now)  # idle time counts from here
        return token

    def resolve(self, value: str) -> Session:
        """The session a cookie names, if it is still good; Unauthenticated otherwise."""
        token = split_token(value)
        row = self.store.token(token[1]) if token is not None and token[0] == "s" else None
        ok = secret_matches(row.secret_hash if row is not None else _NOTHING,
                            token[2] if token is not None else "")
        if token is None or row is None or not ok or row.kind != KIND:
            raise Unauthenticated("not signed in")
        now = self.clock()
        last = row.last_used_at or row.created_at
        if row.revoked_at is not None or expired(row.expires_at, now) or now - last > self.idle:
            raise Unauthenticated("the session has ended; sign in again")
        user = self.store.user_by_id(row.user_id)
        if user is None or user.kind != "user" or unusable(user):
            raise Unauthenticated("the session has ended; sign in again")
        if now - last > _TOUCH_EVERY:
            self.store.touch_token(row.id, at=now)
        principal = self.authenticator.principal_of_row(user, f"s:{row.id}")
        return Session(principal, row.id, self.csrf_for(value))

    def end(self, value: str) -> None:
        """Sign-out: the session is revoked wherever it would be presented next."""
        token = split_token(value)
        if token is not None and token[0] == "s":
            row = self.store.token(token[1])
            if row is not None and row.kind == KIND and secret_matches(row.secret_hash, token[2]):
                self.store.revoke_token(row.id)

    def csrf_for(self, value: str) -> str:
        """The CSRF token of a session (or of a pre-sign-in cookie): a keyed hash of it."""
        return hmac.new(self.key, b"csrf\0" + value.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


# Compared against when no row matches, so that a made-up session id costs what a real one does.
_NOTHING = make_token(KIND)[2]
