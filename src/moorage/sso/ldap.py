"""Sign-in against an LDAP directory or Active Directory: the directory checks the password.

The usual two binds: the search account (or an anonymous bind) finds the one entry the user
filter names, then a bind as that entry's DN with the password the user typed proves it;
nothing of the password is kept. The entry's groups are its `memberOf` values plus the
groups a search under `ldap_group_base` finds (OpenLDAP's groupOfNames has no memberOf
unless an overlay adds it). Group DNs are handed on as the directory spells them: a
mapping (`group_roles`) names a group by that DN.

What the user typed goes into filters escaped (RFC 4515: `*`, `(`, `)`, `\\`, NUL), so that a
name such as `*` or `admin)(uid=*` matches nothing rather than somebody. An empty password is
refused before any bind: LDAP treats a simple bind with a DN and no password as an
unauthenticated bind, which succeeds without proving anything (RFC 4513, 5.1.2).

A directory that cannot be asked (down, too slow, a certificate that does not verify, a search
account it refuses) is not the user's fault: SignInUnavailable, with a reason for the user and
one log line, never a password. Every call blocks (sockets) and runs in a worker thread, as
the Authenticator's callers already arrange.

A successful check may be remembered for `cache_seconds` in this process, keyed by the name
and a keyed hash of the password: `docker` sends Basic credentials to /auth/token for every
token it wants, and each would otherwise cost two binds and two searches. A password changed
or a group left in the directory shows after at most that long; 0 turns the memory off.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass

from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.abstract.entry import Entry
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from moorage.access.authentication import Authenticator
from moorage.access.identity import ExternalIdentity, SignInUnavailable, parse_admin_groups
from moorage.access.management import AccessManager
from moorage.settings import Settings

log = logging.getLogger("moorage.sso.ldap")

# Results bounded: a filter that matches a crowd is a misconfiguration, not a user.
_GROUPS_LIMIT = 1000
_CACHE_ENTRIES = 10_000
# Bind results that mean "not this password" (or "not this account, now": AD answers 49 for
# a locked or expired account, other servers 53): a refusal, counted as a guess. Any other
# failed bind is the directory's trouble.
_REFUSED_BINDS = (48, 49, 50, 53)  # inappropriateAuthentication, invalidCredentials,
# insufficientAccessRights, unwillingToPerform
_ATTRIBUTE_RE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*\{username\}\s*\)")


@dataclass(frozen=True)
class LdapConfig:
    """What the directory needs from the settings (ldap_*)."""

    url: str
    user_base: str
    user_filter: str = "(uid={username})"
    bind_dn: str = ""
    bind_password: str = ""
    starttls: bool = False
    ca_file: str = ""
    group_base: str = ""
    group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
    timeout_seconds: float = 5
    cache_seconds: float = 60

    @property
    def name_attribute(self) -> str:
        """The attribute the user filter matches the name against: the account is named as
        the directory spells that attribute (`uid`, AD's `sAMAccountName`)."""
        found = _ATTRIBUTE_RE.search(self.user_filter)
        return found.group(1) if found else "uid"


def filter_with(template: str, **values: str) -> str:
    """A filter template with each value escaped; `{` and `}` of the template stay literal
    except the named fields (a filter has no other use for braces)."""
    text = template
    for name, value in values.items():
        text = text.replace("{" + name + "}", escape_filter_chars(value))
    return text


class LdapDirectory:
    """A PasswordDirectory (access/identity.py) backed by ldap3."""

    source = "ldap"

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self._cache: dict[tuple[str, str], tuple[float, ExternalIdentity]] = {}
        self._cache_lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)  # the hash of a password means nothing
        # outside this process

    @staticmethod
    def _make_server(config: LdapConfig) -> Server:
        secure = config.url.lower().startswith("ldaps://") or config.starttls
        tls = None
        if secure:
            # Certificate verified against the CA file (or the system's), and the name asked
            # for checked against it (ldap3 checks the host when validation is required).
            tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=config.ca_file or None,
                      version=ssl.PROTOCOL_TLS_CLIENT)
        return Server(config.url, tls=tls, get_info=NONE,
                      connect_timeout=config.timeout_seconds)

    # -- the protocol ---------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> ExternalIdentity | None:
        if not username or not password or "\x00" in password:
            return None  # never an unauthenticated bind
        key = (username, hmac.new(self._cache_key, password.encode(), hashlib.sha256)
               .hexdigest())
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            identity = self._check(username, password)
        except SignInUnavailable as exc:
            log.warning("LDAP sign-in unavailable: %s", exc)
            raise
        except LDAPException as exc:
            reason = self._reason(exc)
            log.warning("LDAP sign-in unavailable: %s", reason)
            raise SignInUnavailable(reason) from None
        if identity is not None and self.config.cache_seconds > 0:
            self._remember(key, identity)
        return identity

    def _check(self, username: str, password: str) -> ExternalIdentity | None:
        config = self.config
        # (not `with`: ldap3's context manager leaves a connection bound before it open)
        search = self._connect(config.bind_dn, config.bind_password, service=True)
        try:
            entry = self._find_user(search, username)
            if entry is None:
                return None
            dn = entry.entry_dn
            if not self._password_ok(dn, password):
                return None
            groups = self._groups(search, entry, dn, username)
        finally:
            search.unbind()
        attrs = entry.entry_attributes_as_dict
        name = _first(attrs.get(config.name_attribute)) or username
        return ExternalIdentity(source="ldap", external_id=dn, username=name,
                                groups=tuple(groups), display_name=_first(attrs.get("cn")),
                                email=_first(attrs.get("mail")))

    # -- steps ----------------------------------------------------------------------------
    def _connect(self, user: str, password: str, service: bool) -> Connection:
        """An open, bound connection (StartTLS first when asked). The search account's
        refusal is the directory's configuration failing, hence SignInUnavailable."""
        # A Server object per connection: ldap3's remembers an address that failed once as
        # unavailable, and would go on refusing after the directory is back.
        conn = Connection(self._make_server(self.config), user=user or None,
                          password=password or None, authentication=SIMPLE if user else None,
                          receive_timeout=self.config.timeout_seconds, read_only=True,
                          raise_exceptions=False, auto_referrals=False)
        conn.open()
        if self.config.starttls and not conn.start_tls():
            conn.unbind()
            raise SignInUnavailable(f"the LDAP directory at {self.config.url} refused "
                                    f"StartTLS ({conn.result.get('description', '')})")
        if not conn.bind():
            result = conn.result or {}
            description = result.get("description", "") or "bind failed"
            conn.unbind()
            if service:
                raise SignInUnavailable(
                    f"the LDAP directory at {self.config.url} refused the search account "
                    f"{user or '(anonymous)'} ({description})")
            if result.get("result") not in _REFUSED_BINDS:  # busy, unavailable, ...
                raise SignInUnavailable(f"the LDAP directory at {self.config.url} could not "
                                        f"check the password ({description})")
            return conn  # the caller looks at conn.bound
        return conn

    def _find_user(self, conn: Connection, username: str) -> Entry | None:
        config = self.config
        wanted = sorted({config.name_attribute, "cn", "mail", "memberOf"})
        conn.search(config.user_base, filter_with(config.user_filter, username=username),
                    SUBTREE, attributes=wanted, size_limit=2,
                    time_limit=int(config.timeout_seconds))
        self._check_result(conn, "the user search")
        entries = conn.entries
        if len(entries) != 1:
            if len(entries) > 1:
                log.warning("LDAP: the user filter matched more than one entry for one name; "
                            "refused (make ldap_user_filter match one entry)")
            return None
        return entries[0]

    def _password_ok(self, dn: str, password: str) -> bool:
        conn = self._connect(dn, password, service=False)
        try:
            return bool(conn.bound)
        finally:
            conn.unbind()

    def _groups(self, conn: Connection, entry: Entry, dn: str, username: str) -> list[str]:
        found: dict[str, None] = {}
        for group in entry.entry_attributes_as_dict.get("memberOf", []) or []:
            found[str(group)] = None
        config = self.config
        if config.group_base:
            conn.search(config.group_base,
                        filter_with(config.group_filter, dn=dn, username=username),
                        SUBTREE, attributes=[], size_limit=_GROUPS_LIMIT,
                        time_limit=int(config.timeout_seconds))
            self._check_result(conn, "the group search")
            for group_entry in conn.entries:
                found[group_entry.entry_dn] = None
        return list(found)[:_GROUPS_LIMIT]

    def _check_result(self, conn: Connection, what: str) -> None:
        """A search the directory refused or could not finish (other than "no such
        object", which is an empty answer, and "size limit", which the caller judges)."""
        result = conn.result or {}
        code = result.get("result", 0)
        if code not in (0, 4, 32):  # success, sizeLimitExceeded, noSuchObject
            raise SignInUnavailable(f"the LDAP directory at {self.config.url} failed "
                                    f"{what} ({result.get('description', code)})")

    def _reason(self, exc: LDAPException) -> str:
        text = str(exc) or type(exc).__name__
        if "doesn't match any name" in text:
            return (f"the LDAP directory's certificate does not name the host of {self.config.url}"
                    f" (give ldap_url the name the certificate has)")
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower() \
                or "hostname" in text.lower():
            return (f"the LDAP directory's certificate at {self.config.url} could not be "
                    f"verified ({_short(text)})")
        if "timed out" in text.lower() or "timeout" in text.lower():
            return f"the LDAP directory at {self.config.url} did not answer in time"
        return f"the LDAP directory at {self.config.url} cannot be reached ({_short(text)})"

    # -- the memory of recent checks ------------------------------------------------------
    def _cached(self, key: tuple[str, str]) -> ExternalIdentity | None:
        if self.config.cache_seconds <= 0:
            return None
        with self._cache_lock:
            found = self._cache.get(key)
            if found is None:
                return None
            if found[0] < time.monotonic():
                del self._cache[key]
                return None
            return found[1]

    def _remember(self, key: tuple[str, str], identity: ExternalIdentity) -> None:
        with self._cache_lock:
            now = time.monotonic()
            if len(self._cache) >= _CACHE_ENTRIES:
                for stale in [k for k, (until, _) in self._cache.items() if until < now]:
                    del self._cache[stale]
                if len(self._cache) >= _CACHE_ENTRIES:
                    self._cache.clear()
            self._cache[key] = (now + self.config.cache_seconds, identity)


def _first(values: object) -> str:
    if isinstance(values, (list, tuple)):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)


_SSL_RE = re.compile(r"\[SSL: \w+\] ([^(\"']+)")
_ERRNO_RE = re.compile(r"\[Errno \d+\] ([^(\"']+)")


def _short(text: str) -> str:
    """The words of an ldap3 error a person can use (its messages nest tuples of reprs)."""
    found = _SSL_RE.search(text) or _ERRNO_RE.search(text)
    if found:
        return found.group(1).strip()[:200]
    return " ".join(text.split())[:200]


def from_settings(settings: Settings) -> LdapDirectory:
    """The directory the ldap_* settings describe."""
    return LdapDirectory(LdapConfig(
        url=settings.ldap_url, user_base=settings.ldap_user_base,
        user_filter=settings.ldap_user_filter, bind_dn=settings.ldap_bind_dn,
        bind_password=settings.ldap_bind_password, starttls=settings.ldap_starttls,
        ca_file=settings.ldap_ca_file, group_base=settings.ldap_group_base,
        group_filter=settings.ldap_group_filter,
        timeout_seconds=settings.ldap_timeout_seconds,
        cache_seconds=settings.ldap_cache_seconds))


def install(settings: Settings, authenticator: Authenticator,
            manager: AccessManager) -> LdapDirectory:
    """Wired by app.py when `ldap_url` is set: passwords of accounts whose source is "ldap"
    (and of names no account has yet) are checked by the directory; administrators may switch
    accounts to it; members of `ldap_admin_groups` are administrators."""
    directory = from_settings(settings)
    authenticator.directory = directory
    authenticator.provisioner.admin_groups["ldap"] = parse_admin_groups(
        settings.ldap_admin_groups)
    manager.sources.add("ldap")
    return directory
