"""Token authentication over real HTTP: challenges, the token endpoint, and every refusal."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.access.helpers import (ADMIN, admin_push, bearer, error_code, error_message, push,
                                  token, unique)
from tests.support.server import MoorageServer


def test_missing_credentials_get_a_bearer_challenge(secure_registry: MoorageServer) -> None:
    base = httpx.get(f"{secure_registry.url}/v2/")
    assert base.status_code == 401
    assert error_code(base) == "UNAUTHORIZED"
    challenge = base.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{secure_registry.url}/auth/token"' in challenge
    assert 'service="moorage"' in challenge

    repo = unique("team") + "/app"
    resp = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/latest")
    assert resp.status_code == 401
    assert f'scope="repository:{repo}:pull"' in resp.headers["WWW-Authenticate"]
    upload = httpx.post(f"{secure_registry.url}/v2/{repo}/blobs/uploads/")
    assert upload.status_code == 401
    assert f'scope="repository:{repo}:pull,push"' in upload.headers["WWW-Authenticate"]


def test_token_flow_push_and_pull(secure_registry: MoorageServer) -> None:
    repo = unique("flow") + "/app"
    admin_push(secure_registry, repo)
    pull_token = token(secure_registry, f"repository:{repo}:pull", ADMIN)
    resp = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1", headers=bearer(pull_token))
    assert resp.status_code == 200
    # A pull-only token cannot push, but the admin holds push: a new token will carry it, and
    # the challenge (RFC 6750: 403 insufficient_scope) names the scope to ask for.
    denied = push(secure_registry, repo, "v2", bearer(pull_token))
    assert denied.status_code == 403
    assert f'scope="repository:{repo}:pull,push"' in denied.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]


def test_basic_auth_straight_to_v2(secure_registry: MoorageServer) -> None:
    assert httpx.get(f"{secure_registry.url}/v2/", auth=ADMIN).status_code == 200
    repo = unique("basic") + "/app"
    resp = push(secure_registry, repo, "v1",
                {"Authorization": httpx.BasicAuth(*ADMIN)._auth_header})
    assert resp.status_code == 201, resp.text
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/tags/list", auth=ADMIN).json()["tags"] == ["v1"]


def test_wrong_password_is_refused(secure_registry: MoorageServer) -> None:
    resp = httpx.get(f"{secure_registry.url}/auth/token",
                     params={"service": "moorage", "scope": "repository:x/y:pull"},
                     auth=("admin", "not-the-password"))
    assert resp.status_code == 401
    assert error_code(resp) == "UNAUTHORIZED"
    assert "invalid username or password" in error_message(resp)
    direct = httpx.get(f"{secure_registry.url}/v2/", auth=("admin", "not-the-password"))
    assert direct.status_code == 401
    unknown = httpx.get(f"{secure_registry.url}/v2/", auth=("nobody", "whatever-pass"))
    assert unknown.status_code == 401


def _signing_key(server: MoorageServer) -> ec.EllipticCurvePrivateKey:
    pem = (Path(server.data_dir) / "keys" / "token-signing-es256.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _claims(repo: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": "moorage", "sub": "admin", "aud": "moorage", "iat": now, "nbf": now - 5,
            "exp": now + 300,
            "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}],
            **overrides}


def test_expired_forged_and_tampered_tokens_are_refused(secure_registry: MoorageServer) -> None:
    repo = unique("tok") + "/app"
    admin_push(secure_registry, repo)
    url = f"{secure_registry.url}/v2/{repo}/manifests/v1"

    expired = jwt.encode(_claims(repo, exp=int(time.time()) - 60), _signing_key(secure_registry),
                         algorithm="ES256")
    resp = httpx.get(url, headers=bearer(expired))
    assert resp.status_code == 401 and "expired" in error_message(resp)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]

    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_claims(repo), other_key, algorithm="ES256")
    resp = httpx.get(url, headers=bearer(forged))
    assert resp.status_code == 401 and "another key" in error_message(resp)

    real = token(secure_registry, f"repository:{repo}:pull", ADMIN)
    head, _, signature = real.split(".")
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(_claims(repo)).encode()).decode()
    resp = httpx.get(url, headers=bearer(f"{head}.{payload}.{signature}"))
    assert resp.status_code == 401 and error_code(resp) == "UNAUTHORIZED"

    resp = httpx.get(url, headers=bearer("not-even-a-jwt"))
    assert resp.status_code == 401


def test_oauth2_password_and_refresh_grants(secure_registry: MoorageServer) -> None:
    repo = unique("oauth") + "/app"
    admin_push(secure_registry, repo)
    form = {"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1],
            "service": "moorage", "client_id": "tests", "access_type": "offline",
            "scope": f"repository:{repo}:pull"}
    resp = httpx.post(f"{secure_registry.url}/auth/token", data=form)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("mrg_r_")
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1",
                     headers=bearer(body["access_token"])).status_code == 200

    refreshed = httpx.post(f"{secure_registry.url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "service": "moorage", "client_id": "tests", "scope": f"repository:{repo}:pull"})
    assert refreshed.status_code == 200, refreshed.text
    assert httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1",
                     headers=bearer(refreshed.json()["access_token"])).status_code == 200

    bad = httpx.post(f"{secure_registry.url}/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"] + "x",
        "service": "moorage", "client_id": "tests"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_grant"
    wrong = httpx.post(f"{secure_registry.url}/auth/token", data={**form, "password": "nope"})
    assert wrong.status_code == 401


def test_anonymous_token_holds_nothing_on_private(secure_registry: MoorageServer) -> None:
    repo = unique("anon") + "/app"
    admin_push(secure_registry, repo)
    anon = token(secure_registry, f"repository:{repo}:pull,push")
    claims = jwt.decode(anon, options={"verify_signature": False})
    assert claims["access"] == []
    resp = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1", headers=bearer(anon))
    assert resp.status_code == 401


@pytest.mark.parametrize("edition", ["personal"])
def test_personal_edition_fourth_namespace_is_over_quota(make_registry, edition: str) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_EDITION": edition})
    for n in range(3):
        admin_push(server, f"ns{n}/app")
    refused = push(server, "ns3/app", "v1",
                   bearer(token(server, "repository:ns3/app:pull,push", ADMIN)))
    assert refused.status_code == 403
    assert error_code(refused) == "DENIED"
    assert "quota 'namespaces' is 3 on the personal edition" in error_message(refused)
    # An override in the settings raises it.
    roomy = make_registry("roomy", env={"MOORAGE_EDITION": edition, "MOORAGE_QUOTA_NAMESPACES": "4"})
    for n in range(4):
        admin_push(roomy, f"ns{n}/app")


def test_personal_edition_refuses_oci_artifacts(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_EDITION": "personal"})
    admin_push(server, "team/app")
    refused = push(server, "team/app", "sbom",
                   bearer(token(server, "repository:team/app:pull,push", ADMIN)),
                   artifact_type="application/vnd.example.sbom.v1+json")
    assert refused.status_code == 403
    assert "OCI artifacts (non-image media types) needs the basic edition" in error_message(refused)


def _challenge_params(value: str) -> dict[str, str]:
    """The auth-params of a `Bearer k="v",k2="v2"` challenge, quoted-string escapes undone;
    anything that does not parse as such a list fails the test."""
    import re

    assert value.startswith("Bearer "), value
    rest, params = value[len("Bearer "):], {}
    pair = re.compile(r'([a-z]+)="((?:[^"\\]|\\.)*)"(?:,|$)')
    while rest:
        match = pair.match(rest)
        assert match, f"unparseable challenge: {value!r}"
        params[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
        rest = rest[match.end():]
    return params


@pytest.mark.parametrize("host", ['evil.example", error="injected', 'back\\slash.example',
                                  "spaced host", "ex ample.com:5000/path?x"])
def test_a_bad_host_header_cannot_bend_the_challenge(secure_registry: MoorageServer,
                                                     host: str) -> None:
    resp = httpx.get(f"{secure_registry.url}/v2/", headers={"Host": host})
    assert resp.status_code == 401
    params = _challenge_params(resp.headers["WWW-Authenticate"])
    assert set(params) == {"realm", "service"}, params
    # Not a host name: the realm names the address the request came in on instead.
    assert params["realm"] == f"{secure_registry.url}/auth/token"


def test_a_good_host_header_names_the_realm(secure_registry: MoorageServer) -> None:
    for host in ("registry.example.com:5000", "[::1]:5000", "10.0.0.7"):
        resp = httpx.get(f"{secure_registry.url}/v2/", headers={"Host": host})
        assert _challenge_params(resp.headers["WWW-Authenticate"])["realm"] == \
            f"http://{host}/auth/token"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_time_claims_must_be_numbers(secure_registry: MoorageServer, claim: str) -> None:
    """PyJWT reads "9999999999" as a number; a token we did not write that way is not ours."""
    repo = unique("claims") + "/app"
    admin_push(secure_registry, repo)
    url = f"{secure_registry.url}/v2/{repo}/manifests/v1"
    key = _signing_key(secure_registry)
    good = _claims(repo)
    assert httpx.get(url, headers=bearer(jwt.encode(good, key, algorithm="ES256"))
                     ).status_code == 200
    stringly = jwt.encode({**good, claim: str(good[claim])}, key, algorithm="ES256")
    resp = httpx.get(url, headers=bearer(stringly))
    assert resp.status_code == 401, resp.text
    assert claim in error_message(resp)
