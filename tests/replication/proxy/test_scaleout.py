"""Two replicas on PostgreSQL, SeaweedFS (S3) and Redis: concurrent pulls of an uncached
layer spread over both make one upstream fetch (the claim lives in the shared database),
and the cached image then pulls from either replica."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOMY, SECURED
from tests.replication.proxy.conftest import ADMIN, CountedDistribution, create_proxy, seed
from tests.support.certs import Authority
from tests.support.images import random_image
from tests.support.scaleout import ScaleOut

pytestmark = pytest.mark.slow
MiB = 1 << 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    deployment = ScaleOut(tmp_path_factory.mktemp("proxy-scaleout"), env={**SECURED, **ROOMY})
    try:
        yield deployment.start(replicas=2)
    finally:
        deployment.stop()


def test_concurrent_pulls_on_two_replicas_fetch_an_uncached_layer_once(
        tmp_path: Path, cluster: ScaleOut, upstream: CountedDistribution,
        authority: Authority) -> None:
    first, second = cluster.replicas
    layout = tmp_path / "image"
    random_image(layout, "1", layers=1, layer_size=16 * MiB, seed=7)
    seed(upstream, layout, "1", "team/replicated:1")
    create_proxy(first, upstream, authority, "shared")
    with httpx.Client(auth=ADMIN, timeout=300) as http:
        answer = http.get(f"{second.url}/v2/shared/team/replicated/manifests/1",
                          headers={"accept": "application/vnd.oci.image.manifest.v1+json"})
    assert answer.status_code == 200, answer.text
    layer = answer.json()["layers"][0]

    def pull_layer(i: int) -> str:
        replica = cluster.replicas[i % 2]
        with httpx.Client(auth=ADMIN, timeout=600, follow_redirects=True) as http:
            with http.stream("GET", f"{replica.url}/v2/shared/team/replicated/blobs/"
                                    f"{layer['digest']}") as reply:
                assert reply.status_code == 200, reply.read()
                hasher = hashlib.sha256()
                for chunk in reply.iter_bytes():
                    hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(pull_layer, range(8)))
    assert got == [layer["digest"]] * 8
    assert upstream.requests()[("GET", f"/v2/team/replicated/blobs/{layer['digest']}")] == 1
