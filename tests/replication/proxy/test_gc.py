"""Proxied blobs and garbage collection, with the real `moorage gc` command (no grace
period): a blob cached while its manifest still waits for its other blobs (`proxy_pending`)
stays, and counts against the namespace's storage only once the manifest is stored, and
then once; when nothing references it any more it is collected like any blob."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.replication.proxy.conftest import ADMIN, CountedDistribution, api, create_proxy, seed
from tests.support.certs import Authority
from tests.support.images import random_image
from tests.support.processes import wait_until
from tests.support.server import MoorageServer

ACCEPT = {"accept": "application/vnd.oci.image.manifest.v1+json"}


def _gc(server: MoorageServer, tmp_path: Path) -> dict[str, object]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "cli"), "MOORAGE_URL": server.url,
           "MOORAGE_USERNAME": ADMIN[0], "MOORAGE_PASSWORD": ADMIN_PASSWORD}
    done = subprocess.run([sys.executable, "-m", "moorage", "gc", "--grace", "0", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded", job
    return job["result"]  # type: ignore[no-any-return]


def _stored(server: MoorageServer, digest: str) -> bool:
    hex_ = digest.split(":", 1)[1]
    return (server.data_dir / "blobs" / "sha256" / hex_[:2] / hex_).exists()


def _used(server: MoorageServer, namespace: str) -> int:
    with api(server) as client:
        return int(client.get(f"/namespaces/{namespace}").json()["storage_used"])


def test_a_pending_blob_survives_gc_counts_once_and_goes_when_unreferenced(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    random_image(tmp_path / "img", "1", layers=2, layer_size=256 * 1024, seed=77)
    seed(upstream, tmp_path / "img", "1", "team/held:1")
    create_proxy(moorage, upstream, authority, "held")
    with api(moorage) as client:
        assert client.patch("/namespaces/held", json={"storage_quota": 64 << 20}).status_code == 200
    base = f"{moorage.url}/v2/held/team/held"
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        doc = http.get(f"{base}/manifests/1", headers=ACCEPT).json()
        blobs = [doc["config"], *doc["layers"]]
        first = blobs[1]["digest"]
        assert http.get(f"{base}/blobs/{first}").status_code == 200
        # the manifest still waits for its config and second layer: nothing counted yet
        assert _used(moorage, "held") == 0
        result = _gc(moorage, tmp_path)
        assert first not in result["blobs"], result  # type: ignore[operator]
        assert _stored(moorage, first)
        # and it is still this repository's: served again without asking the upstream
        assert http.get(f"{base}/blobs/{first}").status_code == 200
        assert upstream.requests()[("GET", f"/v2/team/held/blobs/{first}")] == 1

        for blob in blobs:
            assert http.get(f"{base}/blobs/{blob['digest']}").status_code == 200
        assert wait_until(lambda: http.get(f"{moorage.url}/api/v1/repositories/held/team/held"
                                           "/tags").status_code == 200, 120)
        total = sum(b["size"] for b in blobs)
        assert _used(moorage, "held") == total
        for blob in blobs:  # pulled again: counted once still
            assert http.get(f"{base}/blobs/{blob['digest']}").status_code == 200
        assert _used(moorage, "held") == total
        assert {b["digest"] for b in blobs}.isdisjoint(_gc(moorage, tmp_path)["blobs"])  # type: ignore[arg-type]

    # nothing references them any more: collected like any blob
    with api(moorage) as client:
        gone = client.delete("/repositories/held/team/held")
        assert gone.status_code == 204, gone.text
    result = _gc(moorage, tmp_path)
    assert {b["digest"] for b in blobs} <= set(result["blobs"]), result  # type: ignore[arg-type]
    assert not any(_stored(moorage, b["digest"]) for b in blobs)
    assert _used(moorage, "held") == 0
