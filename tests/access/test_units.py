"""Pure rules of the access layer: editions, scopes, networks, tokens, secrets."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from moorage.access.authorization import implied
from moorage.access.editions import Edition, EditionError
from moorage.access.network import client_address, parse_network
from moorage.access.scopes import Scope, parse_scope, parse_scopes
from moorage.access.secrets import hash_password, verify_password
from moorage.access.tokens import TokenInvalid, TokenIssuer, load_or_create_key


def test_personal_edition_quota_names_quota_and_value() -> None:
    edition = Edition("personal")
    edition.check_quota("namespaces", 2)
    with pytest.raises(EditionError) as refused:
        edition.check_quota("namespaces", 3)
    assert "quota 'namespaces' is 3 on the personal edition" in refused.value.message
    assert refused.value.code == "DENIED"


def test_quota_override_wins_over_edition() -> None:
    edition = Edition("personal", {"namespaces": 10})
    edition.check_quota("namespaces", 9)
    assert edition.quota("namespaces") == 10
    assert Edition("advanced").quota("repositories") == 5000


def test_missing_feature_names_the_edition_needed() -> None:
    with pytest.raises(EditionError) as refused:
        Edition("personal").require("network_acl")
    assert "needs the basic edition" in refused.value.message
    Edition("basic").require("webhooks")
    Edition("personal").require("credential_free_pull")


def test_planned_features_and_quotas_are_never_on_or_shown() -> None:
    """The edition table is the product's plan; what this version does not build is off in
    every edition, refused as such, and never listed (issue 13)."""
    advanced = Edition("advanced")
    assert advanced.has("p2p") is False and "p2p" not in advanced.features()
    with pytest.raises(EditionError) as refused:
        advanced.require("p2p")
    assert refused.value.message == "P2P distribution is not part of this version"
    assert set(advanced.quotas()) == {"namespaces", "repositories", "sync_rules",
                                      "artifact_subscriptions", "helm_namespaces",
                                      "helm_repositories"}
    with pytest.raises(ValueError, match="this version has namespaces, repositories"):
        Edition("basic", {"pull_qps": 1})


def test_unknown_edition_or_quota_is_refused() -> None:
    with pytest.raises(ValueError):
        Edition("enterprise")
    with pytest.raises(ValueError):
        Edition("basic", {"bogus": 1})


@pytest.mark.parametrize(("raw", "expected"), [
    ("repository:team/app:pull,push", Scope("repository", "team/app", frozenset({"pull", "push"}))),
    ("repository:a/b/c:*", Scope("repository", "a/b/c", frozenset({"pull", "push", "delete"}))),
    ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"}))),
    ("repository(plugin):x:pull", Scope("repository", "x", frozenset({"pull"}))),
])
def test_scope_parsing(raw: str, expected: Scope) -> None:
    assert parse_scope(raw) == expected


@pytest.mark.parametrize("asked,meant", [
    ({"pull"}, {"pull"}),
    ({"pull", "push"}, {"pull", "push", "delete"}),  # crane asks push,pull before a DELETE
    ({"push"}, {"push", "delete"}),
    ({"delete"}, {"delete"}),
    ({"pull", "push", "delete"}, {"pull", "push", "delete"}),
])
def test_push_implies_delete(asked: set[str], meant: set[str]) -> None:
    assert implied(frozenset(asked)) == frozenset(meant)


def test_malformed_scopes_are_dropped_and_spaces_split() -> None:
    assert parse_scope("nonsense") is None
    assert parse_scope("repository::pull") is None
    scopes = parse_scopes(["repository:a:pull repository:b:push", "junk"])
    assert [s.name for s in scopes] == ["a", "b"]


def test_forwarded_address_is_believed_only_from_trusted_proxies() -> None:
    proxies = [parse_network("127.0.0.1/32"), parse_network("10.0.0.0/8")]
    headers = {"x-forwarded-for": "203.0.113.9, 10.1.2.3"}
    assert client_address("127.0.0.1", headers, proxies, "x-forwarded-for") == \
        ipaddress.ip_address("203.0.113.9")
    # From an untrusted peer the header is a claim anyone could make.
    assert client_address("198.51.100.1", headers, proxies, "x-forwarded-for") == \
        ipaddress.ip_address("198.51.100.1")
    # A client that prepends a fake hop does not get past the rightmost untrusted one.
    spoofed = {"x-forwarded-for": "10.9.9.9, 203.0.113.9"}
    assert client_address("127.0.0.1", spoofed, proxies, "x-forwarded-for") == \
        ipaddress.ip_address("203.0.113.9")


def test_bad_cidr_is_a_readable_error() -> None:
    with pytest.raises(ValueError, match="is not a CIDR"):
        parse_network("10.0.0.0/33")


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not-a-hash", "x")


def test_token_round_trip_and_refusals(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path).private_numbers() == key.private_numbers()
    issuer = TokenIssuer(key, "moorage")
    token = issuer.issue("alice", [Scope("repository", "team/app", frozenset({"pull"}))]).token
    claims = issuer.verify(token)
    assert claims.subject == "alice"
    assert claims.allows("repository", "team/app", "pull")
    assert not claims.allows("repository", "team/app", "push")

    other = TokenIssuer(ec.generate_private_key(ec.SECP256R1()), "moorage")
    forged = other.issue("alice", [Scope("repository", "team/app", frozenset({"push"}))]).token
    with pytest.raises(TokenInvalid, match="another key"):
        issuer.verify(forged)

    head, payload, signature = token.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"pull"', b'"push"')).decode()
    with pytest.raises(TokenInvalid):
        issuer.verify(f"{head}.{tampered_payload}.{signature}")

    expired = jwt.encode({"iss": "moorage", "sub": "alice", "aud": "moorage",
                          "exp": int(time.time()) - 60, "access": []}, key, algorithm="ES256")
    with pytest.raises(TokenInvalid, match="expired"):
        issuer.verify(expired)

    wrong_audience = jwt.encode({"iss": "moorage", "sub": "alice", "aud": "elsewhere",
                                 "exp": int(time.time()) + 60, "access": []}, key,
                                algorithm="ES256")
    with pytest.raises(TokenInvalid):
        issuer.verify(wrong_audience)
