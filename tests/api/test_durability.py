"""Restarts and crashes: uploads resume, half blobs never show, acknowledged pushes survive.

Each test owns its server (`fresh_registry`) because it stops, kills and restarts it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import (assert_error, push_image, random_bytes, range_end, sha256,
                               start_upload, upload_range_end)
from tests.support.server import MoorageServer

ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.oci.image.index.v1+json")


@pytest.fixture
def client(fresh_registry: MoorageServer) -> Iterator[httpx.Client]:
    """A client on the test's own server; the port survives restarts, so it stays valid."""
    with httpx.Client(base_url=fresh_registry.url, timeout=30.0) as c:
        yield c


def test_chunked_upload_continues_across_a_restart(fresh_registry: MoorageServer,
                                                   client: httpx.Client) -> None:
    data = random_bytes(300_000)
    location = start_upload(client, "crash/restart")
    r = client.patch(location, content=data[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status_code == 202
    fresh_registry.restart()
    assert upload_range_end(client, location) == 99_999
    r = client.patch(location, content=data[100_000:200_000],
                     headers={"Content-Range": "100000-199999"})
    assert r.status_code == 202, r.text
    fresh_registry.restart()
    r = client.put(location, params={"digest": sha256(data)}, content=data[200_000:])
    assert r.status_code == 201, r.text
    assert client.get(f"/v2/crash/restart/blobs/{sha256(data)}").content == data


def test_wrong_digest_after_a_restart_is_still_refused(fresh_registry: MoorageServer,
                                                       client: httpx.Client) -> None:
    """The digest check must not be lost with the in-memory hash state."""
    data = random_bytes(50_000)
    location = start_upload(client, "crash/verify")
    client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    fresh_registry.restart()
    assert_error(client.put(location, params={"digest": sha256(data + b"!")}), 400,
                 "DIGEST_INVALID")
    assert_error(client.head(f"/v2/crash/verify/blobs/{sha256(data)}"), 404, None)


def _send_partial_patch(server: MoorageServer, location: str, start: int, chunk: bytes,
                        sent: int) -> socket.socket:
    """Begin a PATCH of `chunk` but send only its first `sent` bytes, leaving it in flight."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(chunk)}\r\n"
        f"Content-Range: {start}-{start + len(chunk) - 1}\r\n\r\n".encode() + chunk[:sent])
    return sock


def test_sigkill_during_a_chunk_leaves_a_resumable_upload(fresh_registry: MoorageServer,
                                                          client: httpx.Client) -> None:
    data = random_bytes(100_000 + (4 << 20))
    digest = sha256(data)
    location = start_upload(client, "crash/kill")
    assert client.patch(location, content=data[:100_000],
                        headers={"Content-Range": "0-99999"}).status_code == 202
    sent = 3 << 20
    sock = _send_partial_patch(fresh_registry, location, 100_000, data[100_000:], sent)
    try:
        # Wait until the server has started writing the in-flight chunk, then crash it.
        deadline = time.monotonic() + 120  # bounds a hang only
        while upload_range_end(client, location) < 100_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        fresh_registry.kill()
    finally:
        sock.close()
    fresh_registry.start()

    # No half blob anywhere, whatever the staging area holds.
    assert_error(client.head(f"/v2/crash/kill/blobs/{digest}"), 404, None)
    assert_error(client.get(f"/v2/crash/kill/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # The upload is still there, and its offset is one the client can resume from.
    end = upload_range_end(client, location)
    assert 99_999 <= end < 100_000 + sent, end
    offset = end + 1
    r = client.patch(location, content=data[offset:],
                     headers={"Content-Range": f"{offset}-{len(data) - 1}"})
    assert r.status_code == 202, r.text
    assert range_end(r.headers["range"]) == len(data) - 1
    r = client.put(location, params={"digest": digest})
    assert r.status_code == 201, r.text
    assert client.get(f"/v2/crash/kill/blobs/{digest}").content == data


def test_sigkill_before_the_closing_put_keeps_the_upload(fresh_registry: MoorageServer,
                                                         client: httpx.Client) -> None:
    data = random_bytes(20_000)
    location = start_upload(client, "crash/beforeput")
    client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    fresh_registry.kill()
    fresh_registry.start()
    assert_error(client.head(f"/v2/crash/beforeput/blobs/{sha256(data)}"), 404, None)
    assert upload_range_end(client, location) == len(data) - 1
    assert client.put(location, params={"digest": sha256(data)}).status_code == 201
    assert client.get(f"/v2/crash/beforeput/blobs/{sha256(data)}").content == data


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_acknowledged_push_survives_shutdown_and_crash(fresh_registry: MoorageServer,
                                                       client: httpx.Client, how: str) -> None:
    """Once the registry said 201, the image is there after any kind of stop."""
    image = push_image(client, "durable/app", tag="v1", layers=2, layer_size=100_000)
    by_digest = push_image(client, "durable/app", tag=None)
    client.delete("/v2/durable/app/manifests/v1")  # deletes are acknowledged writes too
    assert client.put("/v2/durable/app/manifests/v2", content=image.manifest,
                      headers={"Content-Type": image.media_type}).status_code == 201
    if how == "SIGTERM":
        fresh_registry.stop()
    else:
        fresh_registry.kill()
    fresh_registry.start()

    r = client.get("/v2/durable/app/manifests/v2", headers={"Accept": ACCEPT})
    assert r.status_code == 200
    assert r.content == image.manifest
    assert r.headers["docker-content-digest"] == image.digest
    assert client.get(f"/v2/durable/app/manifests/{by_digest.digest}",
                      headers={"Accept": ACCEPT}).content == by_digest.manifest
    assert_error(client.get("/v2/durable/app/manifests/v1", headers={"Accept": ACCEPT}), 404,
                 "MANIFEST_UNKNOWN")
    for blob in (image.config, *image.layers):
        assert client.get(f"/v2/durable/app/blobs/{sha256(blob)}").content == blob
    assert client.get("/v2/durable/app/tags/list").json()["tags"] == ["v2"]
    assert "durable/app" in client.get("/v2/_catalog").json()["repositories"]
