"""Accounts from outside: a directory (LDAP) or an OpenID provider vouches for who signs in.

Each account has a source (`users.source`): "local" signs in with its password here, "ldap"
with its directory password (checked by a bind, never stored), "oidc" through the provider
in the console only, since `docker login` cannot follow a browser; its clients use a CLI
secret, a personal access token made in the console, as Harbor's users do.

On every sign-in through a directory or provider, the account is found by the name that side
gives it (`external_id`: a DN, an issuer and subject), created on the first one, and its
namespace roles are brought in line with its groups (`group_roles`). A local account is never
taken over by an external sign-in of the same name: an administrator switches its source
first, deliberately (`moorage user source NAME ldap`).

Everything here blocks (database, directory) and runs in a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from moorage.access.errors import LoginFailed
from moorage.db.access import AccessStore, Conflict, UserRow

SOURCES = ("local", "ldap", "oidc")
SOURCE_NAMES = {"local": "a local password", "ldap": "the LDAP directory",
                "oidc": "single sign-on (OpenID Connect)"}
# What is stored as the password hash of an account that has never had a password here:
# no argon2 hash matches it.
NO_PASSWORD = "!external"
# The names an account may have (management.py's rule); a directory's name outside it is
# refused at sign-in rather than stored as an account no other command could name.
USERNAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$")


class SignInUnavailable(Exception):
    """The directory or provider could not be asked (down, timed out, answered nonsense).
    The message is for the user and the log; it holds no secret."""


@dataclass(frozen=True)
class ExternalIdentity:
    source: str  # "ldap" | "oidc"
    external_id: str  # the directory's DN, the provider's "issuer subject"
    username: str
    groups: tuple[str, ...] = ()
    email: str = ""
    display_name: str = ""


class PasswordDirectory(Protocol):
    """A directory that checks a username and password itself (LDAP bind)."""

    source: str

    def authenticate(self, username: str, password: str) -> ExternalIdentity | None:
        """The identity, None when the directory says the name or password is wrong;
        SignInUnavailable when it cannot be asked."""
        ...


@dataclass
class Provisioner:
    """Turns a vouched-for identity into the account it signs in as."""

    store: AccessStore
    # per source: groups whose members are instance administrators (empty: administrators
    # are made by hand, and a sign-in never changes it)
    admin_groups: dict[str, frozenset[str]] = field(default_factory=dict)

    def provision(self, identity: ExternalIdentity) -> UserRow:
        user = self.store.user_by_external(identity.source, identity.external_id)
        if user is None:
            user = self._adopt_or_create(identity)
        self.store.sync_group_roles(user.id, identity.groups)
        admins = self.admin_groups.get(identity.source)
        if admins:
            is_admin = bool(admins.intersection(identity.groups))
            if is_admin != user.is_admin:
                self.store.update_user(user.username, is_admin=is_admin)
        found = self.store.user_by_id(user.id)
        assert found is not None
        return found

    def _adopt_or_create(self, identity: ExternalIdentity) -> UserRow:
        where = SOURCE_NAMES[identity.source]
        existing = self.store.user(identity.username)
        if existing is not None:
            if existing.kind != "user" or existing.source != identity.source:
                raise LoginFailed(
                    f"the account {identity.username} signs in with "
                    f"{SOURCE_NAMES.get(existing.source, existing.source)}, not {where}; an "
                    f"administrator can switch it (moorage user source "
                    f"{identity.username} {identity.source})", existing.username, guess=False)
            if existing.external_id is not None:
                raise LoginFailed(f"the account {identity.username} belongs to another entry "
                                  f"of {where}", existing.username, guess=False)
            self.store.link_external(existing.id, identity.external_id)
            return existing
        if not USERNAME_RE.match(identity.username):
            raise LoginFailed(f"{where} names this account {identity.username[:80]!r}, which "
                              f"cannot be a Moorage account name (letters, digits, . _ @ -; "
                              f"at most 64)", "unknown:external", guess=False)
        try:
            return self.store.create_user(identity.username, NO_PASSWORD,
                                          description=identity.display_name[:200],
                                          source=identity.source,
                                          external_id=identity.external_id)
        except Conflict:  # two first sign-ins at once: the other one created it
            again = self.store.user_by_external(identity.source, identity.external_id)
            if again is None:
                raise LoginFailed(f"the account {identity.username} could not be created",
                                  identity.username, guess=False) from None
            return again


def parse_admin_groups(value: str) -> frozenset[str]:
    """A setting's `;`-separated group names (LDAP DNs hold commas)."""
    return frozenset(g.strip() for g in value.split(";") if g.strip())


def check_source(source: str, available: Collection[str]) -> str | None:
    """Why an account cannot be switched to this source, or None."""
    if source not in SOURCES:
        return f"source must be one of {', '.join(SOURCES)}, not {source!r}"
    if source != "local" and source not in available:
        return f"{SOURCE_NAMES[source]} is not configured on this instance"
    return None
