"""A real OpenID provider (npm `oidc-provider`, installed by `make test` into .npm-packages/)
on a free loopback port, started with a static client and accounts, stopped by PID.

The node script is oidc_provider.mjs beside this file; its login and consent pages are the
package's development interactions (any password for a known login).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import stop_group, wait_until
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / ".npm-packages" / "node_modules" / "oidc-provider"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


@dataclass
class Account:
    name: str
    email: str
    groups: list[str] = field(default_factory=list)


@dataclass
class OidcProvider:
    redirect_uris: list[str]
    accounts: dict[str, Account]
    client_id: str = "moorage"
    client_secret: str = field(default_factory=lambda: "cs-" + secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(
        prefix="moorage-oidc-provider-", suffix=".log")[1]))

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **extra: str) -> dict[str, str]:
        """The environment of a Moorage that signs in through this provider."""
        return {"MOORAGE_OIDC_ISSUER": self.issuer, "MOORAGE_OIDC_CLIENT_ID": self.client_id,
                "MOORAGE_OIDC_CLIENT_SECRET": self.client_secret,
                "MOORAGE_OIDC_SCOPES": "openid profile email groups", **extra}

    def start(self) -> "OidcProvider":
        node = shutil.which("node")
        if node is None or not PACKAGE.exists():
            pytest.fail(f"node and npm's oidc-provider are needed ({PACKAGE}): `make test` "
                        f"installs them")
        config = {"issuer": self.issuer, "port": self.port, "client_id": self.client_id,
                  "client_secret": self.client_secret, "redirect_uris": self.redirect_uris,
                  "cookie_key": secrets.token_urlsafe(32),
                  "package_main": str(PACKAGE / "lib" / "index.js"),
                  "accounts": {login: a.__dict__ for login, a in self.accounts.items()}}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [node, str(SCRIPT), json.dumps(config)], stdout=log, stderr=subprocess.STDOUT,
            cwd=PACKAGE.parent.parent, start_new_session=True)
        log.close()

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited:\n{self.log()}")
            try:
                return httpx.get(self.issuer + "/.well-known/openid-configuration",
                                 timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(answers, bound=120, step=0.2):
            self.stop()
            raise RuntimeError(f"oidc-provider did not answer:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def stop(self) -> None:
        stop_group(self.proc, grace=15)
