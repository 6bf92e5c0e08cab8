"""What the threat blocking tests share: namespaces with a policy, images built from the
scan tests' layers and pushed with skopeo, pulls through skopeo and podman, and raw /v2
requests with a bearer token."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.clients.tools import ContainerStore, Result, skopeo
from tests.scan.inventory.helpers import compress, file, tar
from tests.scan.service.helpers import (ADMIN, api, base_layer, layout, push, python_layer,
                                        wait_report)
from tests.support.server import MoorageServer

__all__ = ["ADMIN", "api", "base_layer", "layout", "push", "python_layer", "wait_report"]

VULNERABLE = (("Jinja2", "2.10"), ("urllib3", "1.24.1"))
CLEAN = (("Jinja2", "3.1.6"),)
WAIT = 300.0  # bounds a hang only


def new_namespace(client: httpx.Client, scan_on_push: bool = True) -> str:
    name = f"blk{uuid.uuid4().hex[:10]}"
    resp = client.post("/namespaces", json={"name": name})
    assert resp.status_code == 201, resp.text
    resp = client.put(f"/namespaces/{name}/scan-settings", json={"scan_on_push": scan_on_push})
    assert resp.status_code == 200, resp.text
    return name


def set_policy(client: httpx.Client, namespace: str, **rules: Any) -> dict[str, Any]:
    body = {"severity": None, "block_unscanned": False, "block_unsigned": False,
            "exempt_robots": [], **rules}
    resp = client.put(f"/namespaces/{namespace}/pull-policy", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def image(tmp_path: Path, name: str, packages: tuple[tuple[str, str], ...]) -> Path:
    """A new image each call. Scan facts belong to a digest wherever it is stored, and two
    builds of the same packages in one second are byte-identical (gzip records the time in
    seconds): without the marker, an image meant to be unscanned could be one another test
    already had scanned, and pass a block-unscanned policy."""
    marker = compress(tar([file("etc/moorage-test-image", uuid.uuid4().bytes)]))
    return layout(tmp_path / name, [base_layer(), python_layer(*packages), marker])


def skopeo_pull(server: MoorageServer, ref: str, dest: Path,
                creds: tuple[str, str] = ADMIN) -> Result:
    return skopeo("copy", "--src-tls-verify=false", "--src-creds", f"{creds[0]}:{creds[1]}",
                  f"docker://{server.host}/{ref}", f"oci:{dest}:x", check=False, timeout=300)


def podman_pull(podman: ContainerStore, server: MoorageServer, ref: str,
                creds: tuple[str, str] = ADMIN) -> Result:
    return podman("pull", "--tls-verify=false", "--creds", f"{creds[0]}:{creds[1]}",
                  f"{server.host}/{ref}", check=False, timeout=300)


def token(server: MoorageServer, repository: str, creds: tuple[str, str] = ADMIN) -> str:
    resp = httpx.get(f"{server.url}/auth/token", auth=creds, timeout=60, params={
        "service": server.host, "scope": f"repository:{repository}:pull"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


ACCEPT = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json"])


def manifest(server: MoorageServer, repository: str, reference: str, bearer: str,
             method: str = "GET") -> httpx.Response:
    return httpx.request(method, f"{server.url}/v2/{repository}/manifests/{reference}",
                         headers={"Authorization": f"Bearer {bearer}", "Accept": ACCEPT},
                         timeout=60)


def wait_until(check: Any, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.3)


def blocking_ids(report: dict[str, Any], levels: tuple[str, ...]) -> list[str]:
    return sorted({f["id"] for f in report["findings"] if f["severity"]["level"] in levels})


def error_of(resp: httpx.Response) -> dict[str, Any]:
    return json.loads(resp.content)["errors"][0]
