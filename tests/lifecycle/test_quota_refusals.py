"""A push the storage quota refuses stores nothing and leaves no repository behind: blobs are
checked when they arrive, over real HTTP against a real server."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.access.helpers import api, error_message
from tests.lifecycle.helpers import admin_client, digest, make_image, push
from tests.support.server import MoorageServer


def stored_blobs(server: MoorageServer) -> set[str]:
    """The blob files in the data folder."""
    root = server.data_dir / "blobs"
    return {f"{p.parent.parent.name}:{p.name}" for p in root.rglob("*") if p.is_file()}


def staged(server: MoorageServer) -> list[Path]:
    return [p for p in (server.data_dir / "uploads").rglob("*") if p.is_file()]


def refused_by_quota(resp: httpx.Response) -> None:
    assert resp.status_code == 403, (resp.status_code, resp.text)
    assert resp.json()["errors"][0]["code"] == "DENIED"
    assert "storage quota of namespace small is 20000 bytes" in error_message(resp)


def test_blobs_past_the_storage_quota_are_refused_as_they_arrive_and_leave_nothing(
        make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_QUOTA_REPOSITORIES": "2"})
    api(server, "POST", "/namespaces", json={"name": "small"})
    assert api(server, "PATCH", "/namespaces/small",
               json={"storage_quota": 20_000}).status_code == 200
    with admin_client(server) as client:
        kept = make_image([os.urandom(10_000)])
        assert push(client, "small/app", "a", kept).status_code == 201
        before = stored_blobs(server)
        big = os.urandom(15_000)

        # monolithic: refused before the body is stored
        refused_by_quota(client.post("/v2/small/big/blobs/uploads/",
                                     params={"digest": digest(big)}, content=big))
        # chunked: the closing PUT is refused, and the staged bytes go
        started = client.post("/v2/small/big/blobs/uploads/")
        assert started.status_code == 202
        patched = client.patch(started.headers["Location"], content=big,
                               headers={"Content-Type": "application/octet-stream"})
        assert patched.status_code == 202
        refused_by_quota(client.put(patched.headers["Location"], params={"digest": digest(big)}))
        assert client.get(patched.headers["Location"]).status_code == 404

        # an image whose config fits and whose layer does not: the config goes again too
        image = make_image([big], "too big")
        config, cfg_bytes = next((d, b) for d, b in image.blobs.items() if b != big)
        assert client.post("/v2/small/big/blobs/uploads/", params={"digest": config},
                           content=cfg_bytes).status_code == 201
        refused_by_quota(client.post("/v2/small/big/blobs/uploads/",
                                     params={"digest": digest(big)}, content=big))
        assert client.head(f"/v2/small/big/blobs/{config}").status_code == 404

        assert stored_blobs(server) == before
        assert staged(server) == []
        assert client.get("/v2/small/big/tags/list").status_code == 404
        assert "small/big" not in client.get("/v2/_catalog").json()["repositories"]
        used = api(server, "GET", "/namespaces/small").json()["storage_used"]
        assert used == sum(kept.blob_sizes.values())

        # the refused pushes left no repository to count against the quota of 2
        assert push(client, "small/other", "a", make_image([os.urandom(1_000)])).status_code == 201


def test_a_manifest_refused_by_the_quota_leaves_no_repository(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry()
    api(server, "POST", "/namespaces", json={"name": "small"})
    assert api(server, "PATCH", "/namespaces/small",
               json={"storage_quota": 20_000}).status_code == 200
    with admin_client(server) as client:
        # blobs that each fit when they arrive, but not together: the manifest is refused
        first = make_image([os.urandom(12_000)])
        second = make_image([os.urandom(4_000), os.urandom(4_000)])
        assert push(client, "small/one", "a", first).status_code == 201
        before = stored_blobs(server)
        refused = push(client, "small/two", "a", second)
        refused_by_quota(refused)
        assert stored_blobs(server) == before  # the blobs only the refused push linked went
        assert "small/two" not in client.get("/v2/_catalog").json()["repositories"]
        assert client.head(f"/v2/small/two/blobs/{next(iter(second.blobs))}").status_code == 404
