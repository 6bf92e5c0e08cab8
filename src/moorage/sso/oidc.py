"""OpenID Connect: the authorization-code flow with PKCE (S256) against one provider.

`OidcClient` knows the provider (its discovery document and key set, cached per process as
copies of what the provider publishes, refetched when they age or when a token names a key
they lack), builds the authorization URL, exchanges the code for tokens with the client
secret, verifies the ID token (signature against the provider's keys, `iss`, `aud`, `exp`,
`nonce`) and says who signed in, as an `ExternalIdentity` for the Provisioner.

authlib makes the PKCE challenge and the authorization URL; joserfc (authlib's JOSE
library, which authlib.jose now defers to) checks the ID token. Every call blocks on the
network: run it in a worker thread. Failures are `ProviderError` (the provider's fault:
down, garbage) or `SignInRefused` (this sign-in is no good: denied, tampered with).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (ExpiredTokenError, InvalidClaimError, InvalidKeyIdError,
                            JoseError, MissingClaimError)
from joserfc.jwk import KeySet

from moorage.access.identity import ExternalIdentity, SignInUnavailable
from moorage.sso.oidc_http import ProviderError, ProviderHttp, printable
from moorage.sso.oidc_state import PendingSignIn

DISCOVERY_PATH = "/.well-known/openid-configuration"
CACHE_SECONDS = 300.0  # how long a copy of the provider's documents is trusted
KEYS_REFETCH_SECONDS = 30.0  # at most this often, an unknown key id refetches the key set
LEEWAY_SECONDS = 60  # clock skew allowed between us and the provider
# Asymmetric signatures only: a key the provider publishes, never one derived from a secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
MAX_GROUPS = 1000
MAX_GROUP_CHARS = 256
MAX_TOKEN_CHARS = 16_384


class SignInRefused(Exception):
    """This sign-in is refused (the user denied it, the answer does not belong to it, the
    ID token is not valid). The message is for the user; it holds no secret."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = "openid profile email"
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    ca_file: str = ""
    timeout_seconds: float = 10.0
    display_name: str = "single sign-on"


@dataclass(frozen=True)
class ProviderInfo:
    """What the discovery document says, checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str
    auth_methods: tuple[str, ...]


def _url(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")) \
            or len(value) > 2000:
        raise ProviderError(f"the identity provider's discovery document has no usable "
                            f"'{field}'")
    return value


class OidcClient:
    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self.http = ProviderHttp(config.timeout_seconds, config.ca_file)
        self._lock = threading.Lock()
        self._info: tuple[float, ProviderInfo] | None = None
        self._keys: tuple[float, KeySet] | None = None

    # -- the provider's documents ------------------------------------------------------
    def provider(self) -> ProviderInfo:
        now = time.monotonic()
        with self._lock:
            if self._info is not None and now - self._info[0] < CACHE_SECONDS:
                return self._info[1]
        info = self._discover()
        with self._lock:
            self._info = (time.monotonic(), info)
        return info

    def _discover(self) -> ProviderInfo:
        url = self.config.issuer.rstrip("/") + DISCOVERY_PATH
        doc = self.http.get_json(url, "discovery document")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.config.issuer.rstrip("/"):
            raise ProviderError(f"the identity provider's discovery document names another "
                                f"issuer ({printable(issuer, 100)}) than the configured one")
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ProviderError("the identity provider does not support PKCE with S256")
        auth_methods = doc.get("token_endpoint_auth_methods_supported")
        userinfo = doc.get("userinfo_endpoint")
        return ProviderInfo(
            issuer=issuer,
            authorization_endpoint=_url(doc.get("authorization_endpoint"),
                                        "authorization_endpoint"),
            token_endpoint=_url(doc.get("token_endpoint"), "token_endpoint"),
            jwks_uri=_url(doc.get("jwks_uri"), "jwks_uri"),
            userinfo_endpoint=_url(userinfo, "userinfo_endpoint") if userinfo else "",
            auth_methods=tuple(m for m in auth_methods if isinstance(m, str))
            if isinstance(auth_methods, list) else ("client_secret_basic",))

    def _key_set(self, info: ProviderInfo, refresh: bool = False) -> KeySet:
        now = time.monotonic()
        with self._lock:
            cached = self._keys
        if cached is not None and now - cached[0] < CACHE_SECONDS and not (
                refresh and now - cached[0] >= KEYS_REFETCH_SECONDS):
            return cached[1]
        doc = self.http.get_json(info.jwks_uri, "key set")
        keys = doc.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ProviderError("the identity provider's key set has no keys")
        try:
            key_set = KeySet.import_key_set({"keys": [k for k in keys if isinstance(k, dict)
                                                      and k.get("use", "sig") == "sig"]})
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProviderError("the identity provider's key set could not be read") from None
        with self._lock:
            self._keys = (time.monotonic(), key_set)
        return key_set

    # -- the flow -----------------------------------------------------------------------
    @property
    def scopes(self) -> str:
        """The configured scopes, with `openid` (without it there is no ID token)."""
        words = self.config.scopes.split()
        return " ".join(words if "openid" in words else ["openid", *words])

    def authorization_url(self, pending: PendingSignIn) -> str:
        info = self.provider()
        return add_params_to_uri(info.authorization_endpoint, [
            ("response_type", "code"), ("client_id", self.config.client_id),
            ("redirect_uri", pending.redirect_uri), ("scope", self.scopes),
            ("state", pending.state), ("nonce", pending.nonce),
            ("code_challenge", create_s256_code_challenge(pending.verifier)),
            ("code_challenge_method", "S256")])

    def finish(self, pending: PendingSignIn, code: str) -> ExternalIdentity:
        """Exchange the code, verify the ID token, and say who signed in."""
        info = self.provider()
        tokens = self._exchange(info, pending, code)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token or len(id_token) > MAX_TOKEN_CHARS:
            raise ProviderError("the identity provider's token answer has no ID token")
        claims = self._verify(info, id_token, pending.nonce)
        access_token = tokens.get("access_token")
        if (self.config.username_claim not in claims or self.config.groups_claim not in claims) \
                and info.userinfo_endpoint and isinstance(access_token, str) \
                and 0 < len(access_token) <= MAX_TOKEN_CHARS:
            claims = {**self._userinfo(info, access_token, claims["sub"]), **claims}
        return self._identity(info, claims)

    def _exchange(self, info: ProviderInfo, pending: PendingSignIn, code: str
                  ) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": pending.redirect_uri, "code_verifier": pending.verifier}
        auth = None
        if not self.config.client_secret:  # a public client: PKCE alone binds the code
            form["client_id"] = self.config.client_id
        elif "client_secret_basic" in info.auth_methods or \
                "client_secret_post" not in info.auth_methods:
            auth = (self.config.client_id, self.config.client_secret)
        else:
            form.update(client_id=self.config.client_id,
                        client_secret=self.config.client_secret)
        return self.http.post_form(info.token_endpoint, "token request", form, auth)

    def _verify(self, info: ProviderInfo, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            try:
                token = jwt.decode(id_token, self._key_set(info), algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                token = jwt.decode(id_token, self._key_set(info, refresh=True),
                                   algorithms=ALGORITHMS)
        except ProviderError:
            raise
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInRefused(f"the identity provider's ID token could not be verified "
                                f"({_jose_reason(exc)})") from None
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS, iss={"essential": True, "value": info.issuer},
            aud={"essential": True, "value": self.config.client_id},
            exp={"essential": True}, sub={"essential": True},
            nonce={"essential": True, "value": nonce})
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise SignInRefused("the identity provider's ID token has expired (are the "
                                "clocks of the two servers right?)") from None
        except (MissingClaimError, InvalidClaimError) as exc:
            name = getattr(exc, "claim", "") or _jose_reason(exc)
            raise SignInRefused(f"the identity provider's ID token is not valid for this "
                                f"sign-in (claim {printable(name, 40)})") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInRefused(f"the identity provider's ID token is not valid "
                                f"({_jose_reason(exc)})") from None
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 \
                and claims.get("azp") != self.config.client_id:
            raise SignInRefused("the identity provider's ID token was issued to another "
                                "client (azp)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInRefused("the identity provider's ID token has no subject")
        return claims

    def _userinfo(self, info: ProviderInfo, access_token: str, subject: str
                  ) -> dict[str, Any]:
        """The claims the ID token left out (many providers put profile and groups claims
        in the UserInfo answer only); only if they are about the same subject."""
        extra = self.http.get_json(info.userinfo_endpoint, "user information",
                                   headers={"authorization": f"Bearer {access_token}"})
        if extra.get("sub") != subject:
            raise SignInRefused("the identity provider's user information is about another "
                                "account than its ID token")
        return extra

    def _identity(self, info: ProviderInfo, claims: dict[str, Any]) -> ExternalIdentity:
        username = ""
        for claim in dict.fromkeys((self.config.username_claim, "preferred_username",
                                    "email")):
            value = claims.get(claim)
            if isinstance(value, str) and value.strip():
                username = value.strip()
                break
        if not username:
            raise SignInRefused(f"the identity provider did not say the account's name "
                                f"(claim '{printable(self.config.username_claim, 60)}')")
        groups = claims.get(self.config.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            groups = []
        names = tuple(dict.fromkeys(g for g in groups[:MAX_GROUPS]
                                    if isinstance(g, str) and 0 < len(g) <= MAX_GROUP_CHARS))
        email = claims.get("email")
        name = claims.get("name")
        return ExternalIdentity(
            source="oidc", external_id=f"{info.issuer} {claims['sub']}"[:1024],
            username=username, groups=names,
            email=email if isinstance(email, str) else "",
            display_name=name if isinstance(name, str) else "")

    def close(self) -> None:
        self.http.close()


def _jose_reason(exc: Exception) -> str:
    """What kind of trouble a JOSE error is, without repeating the token it was about."""
    kind = getattr(exc, "error", "") or type(exc).__name__
    return printable(kind, 60)


__all__ = ["OidcClient", "OidcConfig", "ProviderError", "SignInRefused", "SignInUnavailable"]
