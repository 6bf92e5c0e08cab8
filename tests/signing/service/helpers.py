"""Images pushed with skopeo, the `moorage` command as a subprocess, and polling of stored
verification results for the signing service tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.scan.inventory.helpers import compress, file, tar
from tests.scan.service.helpers import layout, push
from tests.support.fixtures import SHARED_FIXTURES
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
COSIGN = SHARED_FIXTURES / "cosign"
FIXTURE_KEY = COSIGN / "keys" / "pemsigstorekey.pem"  # password "hello"
FIXTURE_PUBLIC_B64 = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqULfHWfhG2"
                      "mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==")
WAIT = 180.0  # bounds a hang only


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


class Cli:
    """`moorage` with its own config folder, credentials from the environment."""

    def __init__(self, server: MoorageServer, home: Path) -> None:
        self.server = server
        self.home = home

    def env(self, extra: dict[str, str] | None = None,
            user: tuple[str, str] = ADMIN) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("MOORAGE_") and k != "COSIGN_PASSWORD"}
        base.update({"XDG_CONFIG_HOME": str(self.home), "NO_COLOR": "1",
                     "MOORAGE_URL": self.server.url, "MOORAGE_USERNAME": user[0],
                     "MOORAGE_PASSWORD": user[1]})
        return {**base, **(extra or {})}

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None,
                 user: tuple[str, str] = ADMIN, cwd: Path | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "moorage", *args], input=input,
                              capture_output=True, text=True, env=self.env(env, user),
                              timeout=WAIT, cwd=cwd)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "moorage", *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env(env))

    def ok(self, *args: str, **kw: Any) -> str:
        result = self(*args, **kw)
        assert result.code == 0, (args, result)
        return result.stdout

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw))


def api(server: MoorageServer, auth: tuple[str, str] | None = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=auth, timeout=60)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def namespace(server: MoorageServer, prefix: str = "sig") -> str:
    name = unique(prefix)
    with api(server) as client:
        assert client.post("/namespaces", json={"name": name}).status_code == 201
    return name


def push_image(server: MoorageServer, folder: Path, ref: str) -> str:
    """A one-layer image of its own (unique bytes) pushed with skopeo; its digest."""
    layer = compress(tar([file("etc/hostname", f"{ref} {uuid.uuid4().hex}\n")]))
    return push(server, layout(folder / unique("layout"), [layer]), ref)


def signatures(server: MoorageServer, repo: str, ref: str) -> dict[str, Any]:
    with api(server) as client:
        resp = client.get(f"/repositories/{repo}/manifests/{ref}/signatures")
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll until `check` returns something true; bounds a hang only."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def registry_get(server: MoorageServer, path: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return httpx.get(f"{server.url}/v2/{path}", auth=ADMIN, headers=headers, timeout=60)


def huge_post(server: MoorageServer, path: str, size: int = 4 << 20) -> int:
    """POST a body over the API's limit, streamed (chunked) as a client that keeps sending
    does; the status of the answer, which comes before the body is all sent."""
    import base64 as b64

    from tests.web.helpers import chunked, raw_request

    basic = b64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    head = "\n".join([f"POST /api/v1{path} HTTP/1.1", "Host: moorage",
                      "Content-Type: application/json", f"Authorization: Basic {basic}",
                      "Transfer-Encoding: chunked", ""])
    answer = raw_request(server, head, chunked(size, prefix=b'{"name": "'))
    return answer.status
