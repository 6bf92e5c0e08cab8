"""Tag listings and referrers of a proxy cache namespace are the upstream's (CNCF
Distribution, htpasswd, TLS), through the namespace's name mapping (`lists/app` is
`library/app` upstream), remembered for the TTL; with the upstream down they are what is
cached here, with a log line."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from moorage.oci import mediatypes as mt
from moorage.remote import BytesSource, RegistryClient, RemoteConfig
from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER
from tests.replication.proxy.conftest import ADMIN, CountedDistribution, create_proxy, seed
from tests.support.certs import Authority
from tests.support.images import random_image
from tests.support.processes import wait_until
from tests.support.server import MoorageServer

TTL = 10  # the smallest a proxy cache takes
SBOM = "application/spdx+json"


def _digest(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _attach_sbom(upstream: CountedDistribution, authority: Authority, repo: str,
                       subject: str) -> str:
    """An SBOM referring to `subject`, pushed upstream as oras does on a registry without the
    referrers API (Distribution 2.8): by digest, plus the `sha256-<hex>` index naming it."""
    config = RemoteConfig(f"https://localhost:{upstream.port}", username=BASIC_USER,
                          password=BASIC_PASSWORD, ca_file=authority.ca_file)
    async with RegistryClient(config) as client:
        head = await client.head_manifest(repo, subject)
        assert head is not None
        body = json.dumps({"spdxVersion": "SPDX-2.3", "name": repo}).encode()
        await client.push_blob(repo, _digest(body), BytesSource(body))
        await client.push_blob(repo, mt.EMPTY_DIGEST, BytesSource(mt.EMPTY_JSON))
        doc = json.dumps({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": SBOM,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": SBOM, "digest": _digest(body), "size": len(body)}],
            "subject": {"mediaType": head.media_type, "digest": subject,
                        "size": head.size}}).encode()
        sbom = await client.put_manifest(repo, _digest(doc), doc, mt.OCI_MANIFEST)
        index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "digest": sbom, "size": len(doc),
             "artifactType": SBOM}]}).encode()
        await client.put_manifest(repo, subject.replace(":", "-"), index, mt.OCI_INDEX)
        return sbom


def test_tags_and_referrers_come_from_upstream_and_from_the_cache_when_it_is_down(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    digest = random_image(tmp_path / "one", "1", layers=1, layer_size=64 * 1024, seed=41)
    random_image(tmp_path / "two", "2", layers=1, layer_size=64 * 1024, seed=42)
    seed(upstream, tmp_path / "one", "1", "library/app:1")
    seed(upstream, tmp_path / "two", "2", "library/app:2")
    sbom = asyncio.run(_attach_sbom(upstream, authority, "library/app", digest))
    create_proxy(moorage, upstream, authority, "lists", rewrite_library=True, ttl_seconds=TTL)
    tags_url = f"{moorage.url}/v2/lists/app/tags/list"
    referrers_url = f"{moorage.url}/v2/lists/app/referrers/{digest}"
    accept = {"accept": f"{mt.OCI_MANIFEST}, {mt.OCI_INDEX}"}
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        # nothing pulled yet: the upstream's tags, named as here, and paged here
        listed = http.get(tags_url)
        assert listed.status_code == 200, listed.text
        assert listed.json()["name"] == "lists/app"
        assert set(listed.json()["tags"]) >= {"1", "2"}
        first = http.get(tags_url, params={"n": 1})
        assert first.json()["tags"] == ["1"] and 'rel="next"' in first.headers["link"]
        found = http.get(referrers_url)
        assert found.status_code == 200, found.text
        assert found.headers["content-type"] == mt.OCI_INDEX
        assert [(d["digest"], d.get("artifactType")) for d in found.json()["manifests"]] == [
            (sbom, SBOM)]
        filtered = http.get(referrers_url, params={"artifactType": "application/none"})
        assert filtered.json()["manifests"] == []

        # image 1 pulled through (its manifest, then its blobs): cached here, tagged 1
        manifest = http.get(f"{moorage.url}/v2/lists/app/manifests/1", headers=accept)
        assert manifest.status_code == 200, manifest.text
        doc = manifest.json()
        for blob in [doc["config"], *doc["layers"]]:
            assert http.get(f"{moorage.url}/v2/lists/app/blobs/{blob['digest']}").status_code == 200
        assert wait_until(lambda: http.get(f"{moorage.url}/api/v1/repositories/lists/app/tags")
                          .status_code == 200, 120)

        # the upstream stops; once the TTL has run out, the listings are what is cached
        upstream.kill()
        try:
            time.sleep(TTL + 1)  # the remembered answers age out (no bound on anything)
            offline = http.get(tags_url)
            assert offline.status_code == 200, offline.text
            assert offline.json() == {"name": "lists/app", "tags": ["1"]}
            empty = http.get(referrers_url)
            assert empty.status_code == 200 and empty.json()["manifests"] == []
            assert wait_until(lambda: "upstream failed for the tags of lists/app"
                              in moorage.log(), 120)
        finally:
            upstream.start()
