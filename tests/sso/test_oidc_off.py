"""Without `oidc_issuer`, nothing of OpenID Connect shows: no button, no `sign_in` entry in
`/api/v1/info`, no start page, and accounts cannot be switched to it."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer


def test_nothing_of_oidc_without_an_issuer(secure_registry: MoorageServer) -> None:
    base = secure_registry.url
    assert httpx.get(f"{base}/api/v1/info", timeout=60).json()["sign_in"] == []
    assert "Sign in with" not in httpx.get(f"{base}/login", timeout=60).text
    start = httpx.get(f"{base}/sso/oidc/start", timeout=60)
    assert start.status_code == 303 and start.headers["location"].startswith("/login?")
    refused = httpx.patch(f"{base}/api/v1/users/admin", json={"source": "oidc"},
                          auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert refused.status_code == 400
    assert "not configured" in refused.text
