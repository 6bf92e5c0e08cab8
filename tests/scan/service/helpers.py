"""Images built by the scan service tests, pushed with skopeo, and the reports read back
through the API; the expected findings computed from the fixture's own OSV records."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.clients.tools import copy_in
from tests.conftest import ADMIN_PASSWORD
from tests.scan.pypi_reference import OSV_PYPA  # noqa: F401 - re-exported for the scan tests
from tests.scan.inventory.helpers import DEBIAN_OS_RELEASE, compress, file, metadata, tar
from tests.support.fixtures import SHARED_FIXTURES
from tests.support.server import MoorageServer

DPKG_STATUS = SHARED_FIXTURES / "dpkg" / "status-bookworm-minbase"
ADMIN = ("admin", ADMIN_PASSWORD)
SITE = "usr/lib/python3/dist-packages"
WAIT = 300.0  # bounds a hang only


def base_layer() -> bytes:
    """Debian 12: its os-release and the fixture's real dpkg database."""
    return compress(tar([file("etc/os-release", DEBIAN_OS_RELEASE),
                         file("var/lib/dpkg/status", DPKG_STATUS.read_bytes())]))


def python_layer(*packages: tuple[str, str]) -> bytes:
    return compress(tar([file(f"{SITE}/{name}-{version}.dist-info/METADATA",
                              metadata(name, version)) for name, version in packages]))


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layout(folder: Path, layers: list[bytes], tag: str = "t") -> Path:
    """An OCI image layout holding one amd64 image of these (gzip) layers, tagged `tag`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    config = json.dumps({"os": "linux", "architecture": "amd64", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(x).hexdigest() for x in layers]}}
                        ).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_blob(folder, config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **_blob(folder, x)} for x in layers]}).encode()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(folder, manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return folder


def push(server: MoorageServer, folder: Path, ref: str, tag: str = "t") -> str:
    """skopeo copy of the layout to `ref` (repo:tag); the manifest digest."""
    copy_in(f"oci:{folder}:{tag}", f"docker://{server.host}/{ref}",
            "--dest-creds", f"{ADMIN[0]}:{ADMIN[1]}", "--preserve-digests")
    return json.loads((folder / "index.json").read_text())["manifests"][0]["digest"]


def api(server: MoorageServer, auth: tuple[str, str] | None = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=auth, timeout=60)


def report(client: httpx.Client, repo: str, ref: str, **params: Any) -> dict[str, Any]:
    resp = client.get(f"/repositories/{repo}/manifests/{ref}/vulnerabilities", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_report(client: httpx.Client, repo: str, ref: str, *, until: Any = None
                ) -> dict[str, Any]:
    """The report once its scan has finished (and `until(report)` holds)."""
    deadline = time.monotonic() + WAIT
    while True:
        found = report(client, repo, ref)
        if found["status"] in ("done", "failed") and (until is None or until(found)):
            return found
        assert time.monotonic() < deadline, f"no finished report of {repo}:{ref}: {found}"
        time.sleep(0.5)


def moorage(*args: str, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    base.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env={**base, "NO_COLOR": "1", "COLUMNS": "200",
                                          **(env or {})}, input=input, timeout=600)


def import_advisories(server: MoorageServer, *folders: Path) -> dict[str, Any]:
    """`moorage advisories import --partial` of each folder into the server's database."""
    out: dict[str, Any] = {}
    for folder in folders:
        done = moorage("advisories", "import", "--partial", "--json", "--data-dir",
                       str(server.data_dir), str(folder))
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
    return out
