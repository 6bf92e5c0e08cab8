"""Without `oidc_issuer`, nothing of OpenID Connect shows: no button, no `sign_in` entry in
`/api/v1/info`, no start page, and accounts cannot be switched to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer


def test_nothing_of_oidc_without_an_issuer(secure_registry: MoorageServer) -> None:
    base = secure_registry.url
    assert httpx.get(f"{base}/api/v1/info", timeout=60).json()["single_sign_on"] == []
    assert "Sign in with" not in httpx.get(f"{base}/login", timeout=60).text
    start = httpx.get(f"{base}/sso/oidc/start", timeout=60)
    assert start.status_code == 303 and start.headers["location"].startswith("/login?")
    refused = httpx.patch(f"{base}/api/v1/users/admin", json={"source": "oidc"},
                          auth=("admin", ADMIN_PASSWORD), timeout=60)
    assert refused.status_code == 400
    assert "not configured" in refused.text


def test_a_missing_ca_file_stops_serve_with_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(MOORAGE_OIDC_ISSUER="https://sso.example.test", MOORAGE_OIDC_CLIENT_ID="m",
               MOORAGE_OIDC_CA_FILE=str(tmp_path / "missing.pem"))
    done = subprocess.run([sys.executable, "-m", "moorage", "serve", "--data-dir",
                           str(tmp_path / "data"), "--listen", "127.0.0.1:1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "oidc_ca_file" in done.stderr and "missing.pem is not a file" in done.stderr
    assert "Traceback" not in done.stderr
