"""Authentication against another registry: the `WWW-Authenticate` challenge, Basic
credentials, and the Docker token flow with tokens reused per scope until they expire.

The flow (distribution's token spec): a request answered 401 carries
`WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client GETs the realm with
`service` and one `scope` parameter per scope, with Basic credentials or anonymously, and
receives `{"token": …, "expires_in": …}` (`access_token` in the OAuth2 spelling). A token
covers the scopes it was asked for, so one asked for `pull,push` also serves pulls.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# One scope: resource type, resource name, actions (`repository:library/alpine:pull,push`).
Scope = tuple[str, str, frozenset[str]]

DEFAULT_EXPIRES_IN = 60  # seconds; the token spec's default when expires_in is absent
# A token is taken as expired this long before its end, so it does not run out mid-request.
EXPIRY_MARGIN = 5.0


def repository_scope(name: str, *actions: str) -> Scope:
    return ("repository", name, frozenset(actions))


CATALOG_SCOPE: Scope = ("registry", "catalog", frozenset({"*"}))


def scope_text(scope: Scope) -> str:
    kind, name, actions = scope
    return f"{kind}:{name}:{','.join(sorted(actions))}"


def parse_scope(text: str) -> Scope | None:
    """`type:name:actions` (the name may hold a port's colon); None when malformed."""
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        return None
    return (kind, name, frozenset(a for a in actions.split(",") if a))


def merge_scopes(scopes: Iterable[Scope]) -> tuple[Scope, ...]:
    """One scope per resource, with the union of its actions; in a stable order."""
    merged: dict[tuple[str, str], set[str]] = {}
    for kind, name, actions in scopes:
        merged.setdefault((kind, name), set()).update(actions)
    return tuple((k, n, frozenset(a)) for (k, n), a in sorted(merged.items()))


def covers(held: tuple[Scope, ...], wanted: tuple[Scope, ...]) -> bool:
    have = {(k, n): a for k, n, a in held}
    return all(actions <= have.get((k, n), frozenset()) for k, n, actions in wanted)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The scopes the registry said the refused request needs (space separated)."""
        found = (parse_scope(s) for s in self.params.get("scope", "").split())
        return tuple(s for s in found if s is not None)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of one `WWW-Authenticate` value (RFC 9110: a scheme, then its
    comma-separated `key=value` parameters, values quoted or not). Malformed parts end the
    parse: what was understood before them is kept."""
    challenges: list[Challenge] = []
    pos = 0
    text = header[:8192]
    while pos < len(text):
        while pos < len(text) and text[pos] in " ,":
            pos += 1
        scheme = _SCHEME.match(text, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(text, pos)
            if param is None:
                break
            value = param.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else param.group(3)
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges


def pick_challenge(header: str) -> Challenge | None:
    """Bearer when offered (it scopes what a credential may do), else Basic."""
    found = {c.scheme: c for c in parse_challenges(header)}
    return found.get("bearer") or found.get("basic")


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass
class _Token:
    scopes: tuple[Scope, ...]
    value: str
    expires_at: float


class TokenCache:
    """Tokens of one registry, by the scopes they cover; each reused until it expires
    (by the injected clock)."""

    def __init__(self) -> None:
        self._tokens: list[_Token] = []

    def find(self, scopes: tuple[Scope, ...], now: float) -> str | None:
        self._tokens = [t for t in self._tokens if t.expires_at > now]
        for token in self._tokens:
            if covers(token.scopes, scopes):
                return token.value
        return None

    def add(self, scopes: tuple[Scope, ...], value: str, expires_at: float) -> None:
        self._tokens = [t for t in self._tokens if t.value != value and
                        not covers(scopes, t.scopes)]
        self._tokens.append(_Token(scopes, value, expires_at))
        del self._tokens[:-64]  # a bound: one registry, a few dozen repositories at a time

    def drop(self, value: str) -> None:
        self._tokens = [t for t in self._tokens if t.value != value]

    def __len__(self) -> int:
        return len(self._tokens)
