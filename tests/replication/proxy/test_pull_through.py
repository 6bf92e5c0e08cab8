"""Pull through a proxy cache namespace: podman pulls from Moorage (two workers), which pulls
from CNCF Distribution (htpasswd, TLS with a test CA); the upstream's access log counts what
reached it. The tag TTL's clock is the check time stored in the database: a test moves it back
(as time passing would) instead of waiting."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.clients.tools import ContainerStore
from tests.remote.misbehaving import BIG_LAYER, BIG_LAYER_DIGEST, LAYER_DIGEST
from tests.replication.proxy.conftest import (ADMIN, CountedDistribution, api, create_proxy,
                                              seed)
from tests.support.certs import Authority
from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER
from tests.support.images import multiarch_image, random_image
from tests.support.processes import wait_until
from tests.support.server import MoorageServer

MiB = 1 << 20


def _store(tmp_path: Path, name: str) -> ContainerStore:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    return ContainerStore("podman", tmp_path / name, "vfs")


def _pull(store: ContainerStore, server: MoorageServer, ref: str, check: bool = True,
          platform: str | None = None):  # type: ignore[no-untyped-def]
    extra = ["--platform", platform] if platform else []
    return store("pull", "--tls-verify=false", "--creds", f"{ADMIN[0]}:{ADMIN[1]}", *extra,
                 f"{server.host}/{ref}", check=check, timeout=600)


def _age_tag_checks(server: MoorageServer, seconds: float) -> None:
    """As if `seconds` had passed since every tag was last checked upstream."""
    with sqlite3.connect(server.data_dir / "moorage.db", timeout=60) as db:
        db.execute("UPDATE proxy_tags SET checked_at = checked_at - ?", (seconds,))


def _manifest_requests(upstream: CountedDistribution, repo: str) -> tuple[int, int]:
    """(GETs, HEADs) of manifests of `repo` that reached the upstream."""
    seen = upstream.requests()
    gets = sum(n for (m, p), n in seen.items()
               if m == "GET" and p.startswith(f"/v2/{repo}/manifests/"))
    heads = sum(n for (m, p), n in seen.items()
                if m == "HEAD" and p.startswith(f"/v2/{repo}/manifests/"))
    return gets, heads


def _failures(server: MoorageServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=60).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("moorage_proxy_upstream_failures_total{"))


def test_podman_pulls_through_within_ttl_after_it_and_with_the_upstream_down(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    layout = tmp_path / "image"
    digest = random_image(layout, "1", layers=2, layer_size=512 * 1024, seed=18)
    seed(upstream, layout, "1", "library/app:1")
    created = create_proxy(moorage, upstream, authority, "hub", rewrite_library=True)
    assert created["has_password"] is True and "password" not in created
    with api(moorage) as client:
        checked = client.post("/proxy-caches/hub/check").json()
    assert checked["check_ok"] is True, checked

    _pull(_store(tmp_path, "p1"), moorage, "hub/app:1")  # one segment: library/ upstream
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        answer = http.head(f"{moorage.url}/v2/hub/app/manifests/1",
                           headers={"accept": "application/vnd.oci.image.manifest.v1+json"})
    assert answer.headers["docker-content-digest"] == digest
    gets, heads = _manifest_requests(upstream, "library/app")
    assert gets >= 1
    # stored through the normal put path, as the proxy: the tag is an ordinary tag, and
    # the audit log names proxy:hub as the pusher
    with api(moorage) as client:
        tags = client.get("/repositories/hub/app/tags").json()
        assert [(t["name"], t["digest"]) for t in tags] == [("1", digest)]
        assert wait_until(lambda: client.get("/audit", params={
            "actor": "proxy:hub", "action": "push"}).json()["entries"], 120)

    # within the TTL: a fresh client's pull makes no upstream manifest request at all
    _pull(_store(tmp_path, "p2"), moorage, "hub/app:1")
    assert _manifest_requests(upstream, "library/app") == (gets, heads)

    # the TTL has run out: one HEAD, no GET (the digest did not change)
    _age_tag_checks(moorage, 301)
    _pull(_store(tmp_path, "p3"), moorage, "hub/app:1")
    assert _manifest_requests(upstream, "library/app") == (gets, heads + 1)

    # what is cached is ordinary content: listed as a repository of the namespace
    with api(moorage) as client:
        repos = client.get("/repositories", params={"namespace": "hub"}).json()
    assert "hub/app" in str(repos)

    # the upstream stops: the cached image still pulls (its tag's TTL expired), and the
    # failure is logged once and counted
    before = _failures(moorage)
    upstream.kill()
    try:
        _age_tag_checks(moorage, 301)
        _pull(_store(tmp_path, "p4"), moorage, "hub/app:1")
        assert _failures(moorage) > before
        assert wait_until(lambda: "upstream failed for hub/app:1" in moorage.log(), 120)
        # something never cached: a clear 502 registry error, not a 500
        with httpx.Client(auth=ADMIN, timeout=120) as http:
            missing = http.get(f"{moorage.url}/v2/hub/other/manifests/1")
        assert missing.status_code == 502, missing.text
        assert missing.json()["errors"][0]["code"] == "UNKNOWN"
        assert "upstream" in missing.json()["errors"][0]["message"]
    finally:
        upstream.start()


def test_concurrent_pulls_of_an_uncached_layer_fetch_it_once(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    layout = tmp_path / "big"
    random_image(layout, "1", layers=1, layer_size=64 * MiB, seed=64)
    seed(upstream, layout, "1", "team/big:1")
    create_proxy(moorage, upstream, authority, "mirror")
    with httpx.Client(auth=ADMIN, timeout=300) as http:
        answer = http.get(f"{moorage.url}/v2/mirror/team/big/manifests/1",
                          headers={"accept": "application/vnd.oci.image.manifest.v1+json"})
        assert answer.status_code == 200, answer.text
    layer = answer.json()["layers"][0]  # as the upstream has it (skopeo may recompress)
    assert layer["size"] >= 64 * MiB

    def pull_layer(_: int) -> str:
        with httpx.Client(auth=ADMIN, timeout=600) as http:
            with http.stream("GET", f"{moorage.url}/v2/mirror/team/big/blobs/"
                                    f"{layer['digest']}") as reply:
                assert reply.status_code == 200, reply.read()
                hasher = hashlib.sha256()
                for chunk in reply.iter_bytes():
                    hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(pull_layer, range(8)))
    assert got == [layer["digest"]] * 8
    fetches = upstream.requests()[("GET", f"/v2/team/big/blobs/{layer['digest']}")]
    assert fetches == 1


@pytest.mark.parametrize("repo, digest", [("wrongdigest", LAYER_DIGEST),
                                           ("wrongbig", BIG_LAYER_DIGEST)])
def test_wrong_bytes_from_upstream_fail_the_pull_and_store_nothing(
        misbehaving, moorage: MoorageServer, repo: str, digest: str) -> None:  # type: ignore[no-untyped-def]
    """A small blob is refused before the response starts (502); a large one has already
    started streaming when its last byte turns out wrong, and is cut short."""
    with api(moorage) as client:
        made = client.post("/proxy-caches", json={"namespace": "bad",
                                                  "upstream_url": misbehaving.url})
    assert made.status_code in (201, 409), made.text
    url = f"{moorage.url}/v2/bad/{repo}/blobs/{digest}"
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        try:
            reply = http.get(url)
        except httpx.RemoteProtocolError:
            pass  # cut short: the client never had a complete blob
        else:
            assert reply.status_code == 502, reply.status_code
            assert "not the digest asked for" in reply.json()["errors"][0]["message"]
    hexdigest = digest.split(":")[1]
    assert not (moorage.data_dir / "blobs" / "sha256" / hexdigest[:2] / hexdigest).exists()
    with sqlite3.connect(moorage.data_dir / "moorage.db", timeout=60) as db:
        assert db.execute("SELECT count(*) FROM blobs WHERE digest = ?",
                          (digest,)).fetchone()[0] == 0
    assert wait_until(lambda: f"upstream failed for bad/{repo}@" in moorage.log(), 120)


def test_pushes_into_a_proxy_namespace_are_refused(upstream: CountedDistribution,
                                                    moorage: MoorageServer,
                                                    authority: Authority) -> None:
    create_proxy(moorage, upstream, authority, "readonly")
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        refused = http.post(f"{moorage.url}/v2/readonly/app/blobs/uploads/")
        manifest = http.put(f"{moorage.url}/v2/readonly/app/manifests/1", content=b"{}",
                            headers={"content-type": "application/vnd.oci.image.manifest.v1+json"})
    for answer in (refused, manifest):
        assert answer.status_code == 403, answer.text
        error = answer.json()["errors"][0]
        assert error["code"] == "DENIED" and "proxy cache" in error["message"]


@pytest.mark.parametrize("body, status, words", [
    ({"namespace": "x1", "upstream_url": "ftp://example.com"}, 400, "http"),
    ({"namespace": "x2", "upstream_url": "http://registry.example.com"}, 400, "plain http"),
    ({"namespace": "x3", "upstream_url": "https://u:p@example.com"}, 400, "credentials"),
    ({"namespace": "x4", "upstream_url": "https://example.com", "ttl_seconds": 1}, 400, "ttl"),
    ({"namespace": "x5", "upstream_url": "https://example.com", "username": "u"}, 400, "password"),
    ({"namespace": "x6", "upstream_url": "https://example.com", "ca_pem": "nope"}, 400, "PEM"),
    ({"namespace": "Bad Name", "upstream_url": "https://example.com"}, 400, "namespace"),
    ({"namespace": "x7", "upstream_url": "https://example.com", "extra": 1}, 400, "extra"),
    ({"namespace": "x8", "upstream_url": "x" * 3000}, 400, "2048"),
])
def test_bad_input_to_the_api_is_refused_clearly(moorage: MoorageServer, body: dict[str, object],
                                                 status: int, words: str) -> None:
    with api(moorage) as client:
        answer = client.post("/proxy-caches", json=body)
    assert answer.status_code in (status, 422), answer.text
    assert words.lower() in answer.text.lower()
    assert "Traceback" not in answer.text


def test_only_administrators_manage_proxy_caches_and_secrets_stay_inside(
        moorage: MoorageServer, upstream: CountedDistribution, authority: Authority) -> None:
    create_proxy(moorage, upstream, authority, "secret")
    with api(moorage) as client:
        assert client.post("/users", json={"username": "plain", "password":
                                           "plain-user-password-1"}).status_code == 201
        listed = client.get("/proxy-caches")
        assert client.get("/proxy-caches/nosuch").status_code == 404
        changed = client.patch("/proxy-caches/secret", json={"ttl_seconds": 600})
        assert changed.status_code == 200 and changed.json()["ttl_seconds"] == 600
        assert changed.json()["has_password"] is True
    assert listed.status_code == 200
    assert "secret" in [p["namespace"] for p in listed.json()]
    from tests.remote.conftest import BASIC_PASSWORD
    assert BASIC_PASSWORD not in listed.text
    plain = httpx.get(f"{moorage.url}/api/v1/proxy-caches",
                      auth=("plain", "plain-user-password-1"), timeout=120)
    assert plain.status_code == 403
    assert BASIC_PASSWORD not in moorage.log_path.read_text(errors="replace")


def test_a_multi_arch_index_is_served_and_only_the_asked_platform_fetched(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    layout = tmp_path / "multi"
    index_digest = multiarch_image(layout, "1")
    subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", "--dest-creds",
                    f"{BASIC_USER}:{BASIC_PASSWORD}", f"oci:{layout}:1",
                    f"docker://localhost:{upstream.port}/team/multi:1"],
                   check=True, capture_output=True, timeout=300)
    create_proxy(moorage, upstream, authority, "arch")
    _pull(_store(tmp_path, "arm"), moorage, "arch/team/multi:1", platform="linux/arm64")
    index = json.loads(httpx.get(f"{moorage.url}/v2/arch/team/multi/manifests/1", auth=ADMIN,
                                 headers={"accept": "application/vnd.oci.image.index.v1+json"},
                                 timeout=120).content)
    children = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    seen = upstream.requests()
    assert seen[("GET", f"/v2/team/multi/manifests/{children['arm64']}")] == 1
    assert seen[("GET", f"/v2/team/multi/manifests/{children['amd64']}")] == 0  # lazily
    # the pulled platform is stored as ordinary content; the index waits for its children
    with sqlite3.connect(moorage.data_dir / "moorage.db", timeout=60) as db:
        stored = {r[0] for r in db.execute("SELECT digest FROM manifests")}
    assert children["arm64"] in stored and index_digest not in stored
    # a second pull of the same platform: answered from the cache
    _pull(_store(tmp_path, "arm2"), moorage, "arch/team/multi:1", platform="linux/arm64")
    assert upstream.requests()[("GET", f"/v2/team/multi/manifests/{children['arm64']}")] == 1
    # the other platform pulled too: the index is complete and stored, its tag ordinary
    _pull(_store(tmp_path, "amd"), moorage, "arch/team/multi:1", platform="linux/amd64")
    with api(moorage) as client:
        tags = client.get("/repositories/arch/team/multi/tags").json()
    assert [(t["name"], t["digest"]) for t in tags] == [("1", index_digest)]


def test_a_tag_moved_upstream_is_followed_after_the_ttl(
        tmp_path: Path, upstream: CountedDistribution, moorage: MoorageServer,
        authority: Authority) -> None:
    first = random_image(tmp_path / "v1", "v", layers=1, layer_size=64 * 1024, seed=1)
    second = random_image(tmp_path / "v2", "v", layers=1, layer_size=64 * 1024, seed=2)
    seed(upstream, tmp_path / "v1", "v", "team/moving:v")
    create_proxy(moorage, upstream, authority, "follow")
    accept = {"accept": "application/vnd.oci.image.manifest.v1+json"}
    url = f"{moorage.url}/v2/follow/team/moving/manifests/v"
    with httpx.Client(auth=ADMIN, timeout=120, headers=accept) as http:
        assert http.get(url).headers["docker-content-digest"] == first
        seed(upstream, tmp_path / "v2", "v", "team/moving:v")
        # within the TTL the cache answers what it checked last
        assert http.get(url).headers["docker-content-digest"] == first
        _age_tag_checks(moorage, 301)
        assert http.get(url).headers["docker-content-digest"] == second
    assert upstream.requests()[("GET", f"/v2/team/moving/manifests/{second}")] == 1


@pytest.mark.parametrize("repo, words", [("unavailable", "HTTP 503"),
                                         ("garbage", "not a usable manifest"),
                                         ("wrongdigest", "hash to")])
def test_a_failing_upstream_gives_a_clear_error_for_what_is_not_cached(
        misbehaving, moorage: MoorageServer, repo: str, words: str) -> None:  # type: ignore[no-untyped-def]
    with api(moorage) as client:
        made = client.post("/proxy-caches", json={"namespace": "down",
                                                  "upstream_url": misbehaving.url})
    assert made.status_code in (201, 409), made.text
    before = _failures(moorage)
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        answer = http.get(f"{moorage.url}/v2/down/{repo}/manifests/latest")
    assert answer.status_code == 502, answer.text
    error = answer.json()["errors"][0]
    assert error["code"] == "UNKNOWN" and words in error["message"]
    assert _failures(moorage) > before


def test_the_first_client_gets_bytes_before_the_upstream_sent_the_whole_layer(
        misbehaving, moorage: MoorageServer) -> None:  # type: ignore[no-untyped-def]
    """The upstream sends half the layer and then nothing: the client already receives most
    of that half (the last chunk is held back until the whole layer is verified)."""
    with api(moorage) as client:
        made = client.post("/proxy-caches", json={"namespace": "slow",
                                                  "upstream_url": misbehaving.url})
    assert made.status_code == 201, made.text
    received = 0
    with httpx.Client(auth=ADMIN, timeout=120) as http:
        with http.stream("GET", f"{moorage.url}/v2/slow/stallingbig/blobs/"
                                f"{BIG_LAYER_DIGEST}") as reply:
            assert reply.status_code == 200
            assert int(reply.headers["content-length"]) == len(BIG_LAYER)
            for chunk in reply.iter_raw():
                received += len(chunk)
                if received >= 1 << 20:
                    break  # while the upstream is silent: streamed, not stored first
    assert 1 << 20 <= received < len(BIG_LAYER) // 2
