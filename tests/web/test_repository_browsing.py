"""Looking around repositories through /api/v1: pages of repositories and tags (search, sort,
bounds), a tag's size and platforms, its last pull and immutability lock, and one manifest
described with its layers, config, children and referrers, for those who may pull it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.secured import Secured
from tests.support.server import MoorageServer
from tests.web.conftest import People
from tests.web.helpers import (ADMIN, OCI_MANIFEST, api, digest, error, grant, make_namespace,
                               push_image)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
         "size": 2}


def put_blob(server: MoorageServer, repo: str, data: bytes,
             auth: tuple[str, str] = ADMIN) -> str:
    resp = httpx.post(f"{server.url}/v2/{repo}/blobs/uploads/", auth=auth,
                      params={"digest": digest(data)}, content=data)
    assert resp.status_code == 201, resp.text
    return digest(data)


def put_manifest(server: MoorageServer, repo: str, reference: str, manifest: dict[str, Any],
                 media_type: str = OCI_MANIFEST) -> tuple[str, int]:
    body = json.dumps(manifest).encode()
    resp = httpx.put(f"{server.url}/v2/{repo}/manifests/{reference}", auth=ADMIN, content=body,
                     headers={"Content-Type": media_type})
    assert resp.status_code == 201, resp.text
    return digest(body), len(body)


def image(server: MoorageServer, repo: str, tag: str | None, arch: str = "amd64",
          env: list[str] | None = None, labels: dict[str, str] | None = None,
          layers: int = 2) -> tuple[str, int, int]:
    """An image with a real config; (digest, manifest size, config + layers size)."""
    blobs = [f"{arch} layer {i} {time.time_ns()}".encode() * (i + 3) for i in range(layers)]
    config = json.dumps({
        "created": "2024-05-01T12:00:00Z", "architecture": arch, "os": "linux",
        "config": {"Env": env or ["PATH=/usr/bin"], "Entrypoint": ["/bin/app"],
                   "Cmd": ["--serve"], "WorkingDir": "/srv", "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [digest(b) for b in blobs]},
        "history": [{"created": "2024-05-01T12:00:00Z", "created_by": f"step {i}"}
                    for i in range(layers)]}).encode()
    for data in (config, *blobs):
        put_blob(server, repo, data)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": digest(b), "size": len(b)} for b in blobs]}
    found, size = put_manifest(server, repo, tag or digest(json.dumps(manifest).encode()),
                               manifest)
    return found, size, len(config) + sum(len(b) for b in blobs)


def artifact(server: MoorageServer, repo: str, subject: tuple[str, int, str],
             artifact_type: str, payload: bytes, tag: str | None = None) -> str:
    """An artifact referring to `subject` (digest, size, media type); pushed by digest."""
    put_blob(server, repo, payload)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": EMPTY,
                "layers": [{"mediaType": artifact_type, "digest": digest(payload),
                            "size": len(payload)}],
                "subject": {"mediaType": subject[2], "digest": subject[0], "size": subject[1]},
                "annotations": {"org.opencontainers.image.created": "2024-05-02T00:00:00Z"}}
    body = json.dumps(manifest).encode()
    found, _ = put_manifest(server, repo, tag or digest(body), manifest)
    return found


def listing(server: MoorageServer, path: str, auth: tuple[str, str] = ADMIN,
            **params: Any) -> tuple[list[dict[str, Any]], int, str | None]:
    resp = api(server, "GET", path, auth=auth, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json(), int(resp.headers["x-total-count"]), resp.headers.get("link")


def test_repositories_come_in_pages_searched_and_sorted_by_the_database(
        secured: Secured) -> None:
    server, other = secured.servers
    ns = make_namespace(server)
    names = [f"{ns}/svc-{i}" for i in range(5)] + [f"{ns}/db_100%"[:-1], f"{ns}/web"]
    for i, name in enumerate(names):
        for t in range(i % 3 + 1):
            push_image(server, name, f"v{t}")
    everything = sorted(names)

    page, total, link = listing(server, "/repositories", namespace=ns, limit=3)
    assert [r["name"] for r in page] == everything[:3] and total == len(names)
    assert link is not None and "offset=3" in link and "limit=3" in link
    assert all(r["last_pushed_at"] for r in page)
    rest, _, _ = listing(other, "/repositories", namespace=ns, limit=3, offset=3)
    last, _, end = listing(server, "/repositories", namespace=ns, limit=3, offset=6)
    assert [r["name"] for r in page + rest + last] == everything and end is None

    found, total, _ = listing(other, "/repositories", namespace=ns, q="SVC-")
    assert total == 5 and all("svc-" in r["name"] for r in found)
    # LIKE's wildcards are text like any other: `_` and `%` match only themselves.
    assert listing(server, "/repositories", namespace=ns, q="db_")[1] == 1
    assert listing(server, "/repositories", namespace=ns, q="b%")[1] == 0
    assert listing(server, "/repositories", namespace=ns, q="v_")[1] == 0

    by_tags, _, _ = listing(server, "/repositories", namespace=ns, sort="-tags")
    counts = [r["tag_count"] for r in by_tags]
    assert counts == sorted(counts, reverse=True)
    assert [r["name"] for r in by_tags if r["tag_count"] == 3] == \
        sorted(r["name"] for r in by_tags if r["tag_count"] == 3)  # ties: by name
    newest, _, _ = listing(server, "/repositories", namespace=ns, sort="-pushed", limit=1)
    assert newest[0]["name"] == names[-1]
    assert listing(server, "/repositories", namespace=ns, sort="-name")[0][0]["name"] == \
        everything[-1]

    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"sort": "size"},
                {"q": "x" * 129}):
        refused = api(server, "GET", "/repositories", params=bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert error(refused)[0] == "INVALID"


def test_a_private_namespace_stays_out_of_sight(secure_registry: MoorageServer,
                                                people: People) -> None:
    ns = make_namespace(secure_registry)
    repo = f"{ns}/hidden"
    tagged, _, _ = image(secure_registry, repo, "v1")
    outsider, member = people.carol, people.bob
    grant(secure_registry, ns, member[0], "guest")

    assert listing(secure_registry, "/repositories", auth=outsider, namespace=ns)[1] == 0
    assert listing(secure_registry, "/repositories", auth=outsider, q="hidden")[0] == [] or \
        repo not in [r["name"] for r in listing(secure_registry, "/repositories",
                                                auth=outsider, q="hidden")[0]]
    for path in (f"/repositories/{repo}/tags", f"/repositories/{repo}/manifests/v1",
                 f"/repositories/{repo}/manifests/{tagged}"):
        refused = api(secure_registry, "GET", path, auth=outsider)
        assert refused.status_code == 404, (path, refused.text)
        assert error(refused)[0] == "NOT_FOUND"
        assert repo in error(refused)[1]  # says which, and nothing of what it holds
        assert api(secure_registry, "GET", path, auth=None).status_code == 401
        assert api(secure_registry, "GET", path, auth=member).status_code == 200
    assert listing(secure_registry, "/repositories", auth=member, namespace=ns)[1] == 1

    # Public now: anyone signed in sees it and its manifests.
    assert api(secure_registry, "PATCH", f"/repositories/{repo}",
               json={"visibility": "public"}).status_code == 200
    assert listing(secure_registry, "/repositories", auth=outsider, namespace=ns)[1] == 1
    assert api(secure_registry, "GET", f"/repositories/{repo}/manifests/v1",
               auth=outsider).status_code == 200

    # Private on its own in a public namespace: listed to nobody the repository itself hides
    # from (the listing follows GET /repositories/{name}).
    shared = make_namespace(secure_registry, visibility="public")
    own = f"{shared}/own"
    image(secure_registry, own, "v1")
    assert api(secure_registry, "PATCH", f"/repositories/{own}",
               json={"visibility": "private"}).status_code == 200
    assert api(secure_registry, "GET", f"/repositories/{own}", auth=outsider).status_code == 404
    assert listing(secure_registry, "/repositories", auth=outsider, namespace=shared)[1] == 0
    assert listing(secure_registry, "/repositories", namespace=shared)[1] == 1


def test_tags_in_pages_with_size_platforms_and_lock(secured: Secured) -> None:
    server = secured.server
    ns = make_namespace(server)
    repo = f"{ns}/app"
    amd, amd_size, amd_bytes = image(server, repo, None, "amd64")
    arm, arm_size, arm_bytes = image(server, repo, None, "arm64")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size,
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
    put_manifest(server, repo, "multi", index, OCI_INDEX)
    single, _, single_bytes = image(server, repo, "1.0")
    for i in range(3):
        push_image(server, repo, f"old-{i}")
    rule = api(server, "POST", "/immutability", json={"scope": f"{ns}/**",
                                                      "tag_pattern": "1.*"})
    assert rule.status_code == 201, rule.text

    tags, total, link = listing(server, f"/repositories/{repo}/tags", limit=2)
    assert total == 5 and [t["name"] for t in tags] == ["1.0", "multi"] and link
    by_name = {t["name"]: t for t in listing(server, f"/repositories/{repo}/tags")[0]}
    assert by_name["1.0"]["kind"] == "image" and by_name["1.0"]["size"] == single_bytes
    assert by_name["1.0"]["immutable"] is True
    assert by_name["1.0"]["immutable_rule"] == rule.json()["id"]
    assert by_name["multi"]["immutable"] is False and by_name["multi"]["kind"] == "index"
    assert [(p["os"], p["architecture"], p["variant"], p["digest"], p["size"])
            for p in by_name["multi"]["platforms"]] == [
        ("linux", "amd64", None, amd, amd_bytes), ("linux", "arm64", "v8", arm, arm_bytes)]
    assert by_name["multi"]["size"] == amd_bytes + arm_bytes
    assert by_name["1.0"]["pulled_at"] is None

    searched, total, _ = listing(server, f"/repositories/{repo}/tags", q="OLD")
    assert total == 3 and [t["name"] for t in searched] == ["old-0", "old-1", "old-2"]
    newest, _, _ = listing(server, f"/repositories/{repo}/tags", sort="-pushed", limit=1)
    assert newest[0]["name"] == "old-2"
    second, _, end = listing(server, f"/repositories/{repo}/tags", limit=4, offset=4)
    assert len(second) == 1 and end is None
    for bad in ({"limit": 0}, {"limit": 5000}, {"offset": -3}, {"sort": "size"}):
        assert api(server, "GET", f"/repositories/{repo}/tags",
                   params=bad).status_code == 422, bad

    # A disabled rule protects nothing.
    assert api(server, "PATCH", f"/immutability/{rule.json()['id']}",
               json={"enabled": False}).status_code == 200
    assert listing(server, f"/repositories/{repo}/tags", q="1.0")[0][0]["immutable"] is False


def test_a_pull_by_tag_records_when(secured: Secured) -> None:
    secure_registry, other = secured.servers  # pulled from one, read from the other
    ns = make_namespace(secure_registry)
    repo = f"{ns}/app"
    push_image(secure_registry, repo, "v1")
    push_image(secure_registry, repo, "v2")
    assert httpx.head(f"{secure_registry.url}/v2/{repo}/manifests/v2", auth=ADMIN,
                      headers={"Accept": OCI_MANIFEST}).status_code == 200  # not a pull
    before = time.time()
    pulled = httpx.get(f"{secure_registry.url}/v2/{repo}/manifests/v1", auth=ADMIN,
                       headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200
    deadline = time.monotonic() + 60  # the write is off the request path: wait for it
    while True:
        tags = {t["name"]: t for t in listing(other, f"/repositories/{repo}/tags")[0]}
        if tags["v1"]["pulled_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    from datetime import datetime

    when = datetime.fromisoformat(tags["v1"]["pulled_at"]).timestamp()
    assert before - 1 <= when <= time.time() + 1
    assert tags["v2"]["pulled_at"] is None  # a HEAD is no pull


def test_a_manifest_described(secure_registry: MoorageServer) -> None:
    server = secure_registry
    ns = make_namespace(server)
    repo = f"{ns}/app"
    tagged, size, total = image(server, repo, "v1", env=["A=1", "PATH=/bin"],
                                labels={"org.example.team": "shop"}, layers=3)
    shown = api(server, "GET", f"/repositories/{repo}/manifests/v1")
    assert shown.status_code == 200, shown.text
    m = shown.json()
    assert (m["digest"], m["size"], m["kind"], m["tags"]) == (tagged, size, "image", ["v1"])
    assert m["total_size"] == total and len(m["layers"]) == 3
    assert sum(x["size"] for x in m["layers"]) + m["config"]["size"] == total
    config = m["config"]
    assert config["read"] and config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["env"] == ["A=1", "PATH=/bin"] and config["labels"] == {"org.example.team": "shop"}
    assert (config["entrypoint"], config["cmd"], config["working_dir"]) == \
        (["/bin/app"], ["--serve"], "/srv")
    assert [h["created_by"] for h in config["history"]] == ["step 0", "step 1", "step 2"]
    assert api(server, "GET", f"/repositories/{repo}/manifests/{tagged}").json()["digest"] == tagged

    for reference in ("nope", "sha256:" + "0" * 64):
        missing = api(server, "GET", f"/repositories/{repo}/manifests/{reference}")
        assert missing.status_code == 404 and error(missing)[0] == "MANIFEST_UNKNOWN"
    assert api(server, "GET", f"/repositories/{repo}/manifests/sha256:xyz").status_code == 400
    assert api(server, "GET", f"/repositories/{ns}/none/manifests/v1").status_code == 404


def test_an_index_and_the_referrers_tree(secure_registry: MoorageServer) -> None:
    server = secure_registry
    ns = make_namespace(server)
    repo = f"{ns}/app"
    amd, amd_size, amd_bytes = image(server, repo, None, "amd64")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size,
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    top, top_size = put_manifest(server, repo, "v1", index, OCI_INDEX)
    sbom = artifact(server, repo, (top, top_size, OCI_INDEX), "application/spdx+json",
                    b'{"spdxVersion": "SPDX-2.3"}')
    sbom_size = len(httpx.get(f"{server.url}/v2/{repo}/manifests/{sbom}", auth=ADMIN,
                              headers={"Accept": OCI_MANIFEST}).content)
    signature = artifact(server, repo, (sbom, sbom_size, OCI_MANIFEST),
                         "application/vnd.cncf.notary.signature", b"sig")
    # cosign's tag scheme: a signature stored under sha256-<hex>.sig, without a subject
    legacy, _, _ = image(server, repo, f"{top.replace(':', '-')}.sig", layers=1)

    m = api(server, "GET", f"/repositories/{repo}/manifests/v1").json()
    assert m["kind"] == "index" and m["total_size"] == amd_bytes
    assert [(c["digest"], c["platform"]["architecture"], c["image_size"])
            for c in m["children"]] == [(amd, "amd64", amd_bytes)]
    tree = {r["digest"]: r for r in m["referrers"]}
    assert set(tree) == {sbom, legacy}
    assert tree[sbom]["kind"] == "sbom" and tree[sbom]["artifact_type"] == "application/spdx+json"
    assert tree[sbom]["created"] == "2024-05-02T00:00:00Z"
    assert [(r["digest"], r["kind"]) for r in tree[sbom]["referrers"]] == [(signature,
                                                                            "signature")]
    assert tree[legacy]["kind"] == "signature" and tree[legacy]["tag"].endswith(".sig")
    assert m["referrers_truncated"] is False

    child = api(server, "GET", f"/repositories/{repo}/manifests/{amd}").json()
    assert child["indexes"] == [top] and child["tags"] == []
    referring = api(server, "GET", f"/repositories/{repo}/manifests/{sbom}").json()
    assert referring["subject"] == top and referring["kind"] == "artifact"
    assert referring["config"]["read"] is False  # the empty config is no image config


@pytest.mark.parametrize("path", ["/repositories/team/app/manifests/v1"])
def test_manifest_route_takes_only_get(secure_registry: MoorageServer, path: str) -> None:
    answer = api(secure_registry, "DELETE", path)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
