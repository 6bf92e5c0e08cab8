"""end-4a, end-4b, end-5, end-6, end-13, end-14: every way of pushing a blob, and its errors."""

from __future__ import annotations

import socket
import time

import httpx

from tests.api.helpers import (assert_error, push_blob, random_bytes, range_end, sha256, sha512,
                               start_upload, upload_range_end)
from tests.support.server import MoorageServer


def _get_blob(client: httpx.Client, repo: str, digest: str) -> bytes:
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, (r.status_code, r.text)
    return r.content


def test_monolithic_post_with_digest_creates_the_blob(client: httpx.Client, repo: str) -> None:
    data = random_bytes(1000)
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201
    assert r.headers["location"].endswith(f"/v2/{repo}/blobs/{digest}")
    assert r.headers["docker-content-digest"] == digest
    assert _get_blob(client, repo, digest) == data


def test_post_then_put_with_the_whole_body(client: httpx.Client, repo: str) -> None:
    data = random_bytes(5000)
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["location"]
    assert location
    r = client.put(location, params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/v2/{repo}/blobs/{sha256(data)}")
    assert r.headers["docker-content-digest"] == sha256(data)
    assert _get_blob(client, repo, sha256(data)) == data


def test_empty_blob_round_trips(client: httpx.Client, repo: str) -> None:
    """Zero-byte blobs exist in real images (empty layers); they must push and pull."""
    digest = push_blob(client, repo, b"")
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == "0"


def test_blob_larger_than_one_write_batch_keeps_its_digest(client: httpx.Client,
                                                           repo: str) -> None:
    """Several MiB cross the server's internal write batches; the bytes must not shift."""
    data = random_bytes(3 * 1024 * 1024 + 17)
    digest = push_blob(client, repo, data)
    assert _get_blob(client, repo, digest) == data


def test_chunked_upload_then_put_without_body(client: httpx.Client, repo: str) -> None:
    data = random_bytes(10_000)
    location = start_upload(client, repo)
    chunks = [data[0:3000], data[3000:3001], data[3001:7000], data[7000:]]
    offset = 0
    for chunk in chunks:
        r = client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert r.status_code == 202, r.text
        offset += len(chunk)
        assert range_end(r.headers["range"]) == offset - 1
        assert r.headers["location"]
        location = r.headers["location"]  # clients follow the latest Location
    r = client.put(location, params={"digest": sha256(data)})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/v2/{repo}/blobs/{sha256(data)}")
    assert _get_blob(client, repo, sha256(data)) == data


def test_chunked_upload_with_final_chunk_in_put(client: httpx.Client, repo: str) -> None:
    data = random_bytes(9000)
    location = start_upload(client, repo)
    r = client.patch(location, content=data[:4000], headers={"Content-Range": "0-3999"})
    assert r.status_code == 202
    r = client.put(r.headers["location"], params={"digest": sha256(data)}, content=data[4000:],
                   headers={"Content-Range": f"4000-{len(data) - 1}"})
    assert r.status_code == 201, r.text
    assert _get_blob(client, repo, sha256(data)) == data


def test_patch_without_content_range_appends(client: httpx.Client, repo: str) -> None:
    """Docker's streamed upload sends one PATCH with no Content-Range at all."""
    data = random_bytes(7000)
    location = start_upload(client, repo)
    r = client.patch(location, content=data)
    assert r.status_code == 202
    assert range_end(r.headers["range"]) == len(data) - 1
    assert client.put(r.headers["location"], params={"digest": sha256(data)}).status_code == 201
    assert _get_blob(client, repo, sha256(data)) == data


def test_out_of_order_chunk_is_416_and_upload_resumes(client: httpx.Client, repo: str) -> None:
    data = random_bytes(6000)
    location = start_upload(client, repo)
    assert client.patch(location, content=data[:2000],
                        headers={"Content-Range": "0-1999"}).status_code == 202
    # A chunk that skips ahead: refused, and the answer says where the upload really is.
    r = client.patch(location, content=data[3000:4000], headers={"Content-Range": "3000-3999"})
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert range_end(r.headers["range"]) == 1999
    assert r.headers["location"]
    # RFC 9110 (15.5.17): a 416 names the current length of what the range was about.
    assert r.headers["content-range"] == "bytes */2000"
    # A chunk that overlaps what is already there: also out of order.
    r = client.patch(location, content=data[1000:2500], headers={"Content-Range": "1000-2499"})
    assert_error(r, 416, None)
    assert upload_range_end(client, location) == 1999
    # Resuming from the reported offset completes the right blob.
    r = client.patch(location, content=data[2000:], headers={
        "Content-Range": f"2000-{len(data) - 1}"})
    assert r.status_code == 202
    assert client.put(location, params={"digest": sha256(data)}).status_code == 201
    assert _get_blob(client, repo, sha256(data)) == data


def test_out_of_order_final_chunk_in_put_is_416_and_upload_survives(client: httpx.Client,
                                                                    repo: str) -> None:
    """The closing PUT may carry the last chunk; it obeys the same in-order rule (416)."""
    data = random_bytes(6000)
    location = start_upload(client, repo)
    assert client.patch(location, content=data[:2000],
                        headers={"Content-Range": "0-1999"}).status_code == 202
    r = client.put(location, params={"digest": sha256(data)}, content=data[4000:],
                   headers={"Content-Range": f"4000-{len(data) - 1}"})
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["content-range"] == "bytes */2000"
    assert upload_range_end(client, location) == 1999
    assert client.patch(location, content=data[2000:4000],
                        headers={"Content-Range": "2000-3999"}).status_code == 202
    r = client.put(location, params={"digest": sha256(data)}, content=data[4000:],
                   headers={"Content-Range": f"4000-{len(data) - 1}"})
    assert r.status_code == 201
    assert _get_blob(client, repo, sha256(data)) == data


def test_malformed_content_range_is_416(client: httpx.Client, repo: str) -> None:
    """Still 416 (as Distribution answers), with the spec's code for a refused chunk, the
    upload's offset in `Range` and, as RFC 9110 asks of every 416, `Content-Range`."""
    location = start_upload(client, repo)
    assert client.patch(location, content=b"xyz", headers={"Content-Range": "0-2"}
                        ).status_code == 202
    for value in ("garbage", "5-2", "a-b", "-5"):
        r = client.patch(location, content=b"abc", headers={"Content-Range": value})
        assert_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert r.headers["content-range"] == "bytes */3"
        assert range_end(r.headers["range"]) == 2
    assert upload_range_end(client, location) == 2


def test_upload_status_reports_progress(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    location = r.headers["location"]
    upload_id = r.headers["docker-upload-uuid"]
    assert upload_id and upload_id in location
    r = client.get(location)
    assert r.status_code == 204
    assert range_end(r.headers["range"]) == 0
    assert r.headers["location"]
    assert r.headers["docker-upload-uuid"] == upload_id
    client.patch(location, content=b"x" * 1234, headers={"Content-Range": "0-1233"})
    r = client.get(location)
    assert r.status_code == 204
    assert r.headers["range"] in ("0-1233", "bytes=0-1233")
    assert r.headers["location"].endswith(location.split("/v2/", 1)[1])
    assert r.headers["docker-upload-uuid"] == upload_id


def test_delete_upload_cancels_it(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    client.patch(location, content=b"partial", headers={"Content-Range": "0-6"})
    assert client.delete(location).status_code == 204
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(location, content=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(location, params={"digest": sha256(b"partial")}), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/blobs/{sha256(b'partial')}"), 404, None)


def test_digest_mismatch_on_put_is_refused_and_leaves_nothing(client: httpx.Client,
                                                              repo: str) -> None:
    data = random_bytes(3000)
    claimed = sha256(b"something else entirely")
    location = start_upload(client, repo)
    client.patch(location, content=data, headers={"Content-Range": f"0-{len(data) - 1}"})
    assert_error(client.put(location, params={"digest": claimed}), 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/blobs/{claimed}"), 404, None)
    assert_error(client.head(f"/v2/{repo}/blobs/{sha256(data)}"), 404, None)
    assert_error(client.get(f"/v2/{repo}/blobs/{claimed}"), 404, "BLOB_UNKNOWN")
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_digest_mismatch_on_monolithic_post_leaves_nothing(client: httpx.Client,
                                                           repo: str) -> None:
    data = random_bytes(2000)
    claimed = sha256(b"not this")
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/blobs/{claimed}"), 404, None)
    assert_error(client.head(f"/v2/{repo}/blobs/{sha256(data)}"), 404, None)


def test_put_without_digest_is_refused(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert_error(client.put(location, content=b"data"), 400, "DIGEST_INVALID")


def test_put_with_malformed_digest_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    for bad in ("sha256:xyz", "md5:" + "0" * 32, "nocolon", "sha256:" + "A" * 64):
        assert_error(client.put(location, params={"digest": bad}, content=b""), 400,
                     "DIGEST_INVALID")


def test_sha512_blobs_push_and_pull(client: httpx.Client, repo: str) -> None:
    data = random_bytes(4096)
    digest = sha512(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest


def test_sha512_chunked_upload(client: httpx.Client, repo: str) -> None:
    data = random_bytes(5000)
    location = start_upload(client, repo)
    client.patch(location, content=data[:2500], headers={"Content-Range": "0-2499"})
    client.patch(location, content=data[2500:], headers={"Content-Range": "2500-4999"})
    assert client.put(location, params={"digest": sha512(data)}).status_code == 201
    assert _get_blob(client, repo, sha512(data)) == data


def test_sha512_mismatch_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha512(b"other")},
                    content=b"data")
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(client.head(f"/v2/{repo}/blobs/{sha512(b'other')}"), 404, None)


def test_unknown_upload_session_is_404(client: httpx.Client, repo: str) -> None:
    for upload in ("0" * 32, "not-a-real-session"):
        location = f"/v2/{repo}/blobs/uploads/{upload}"
        assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(client.patch(location, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(client.put(location, params={"digest": sha256(b"x")}, content=b"x"), 404,
                     "BLOB_UPLOAD_UNKNOWN")
        assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_session_belongs_to_its_repository(client: httpx.Client, repo: str) -> None:
    """An upload id is not a capability usable from any repository path."""
    location = start_upload(client, repo)
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    other = f"/v2/{repo}-other/blobs/uploads/{upload_id}"
    assert_error(client.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(other, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert upload_range_end(client, location) == 0


def test_dropped_chunk_leaves_upload_at_previous_offset(registry: MoorageServer,
                                                        client: httpx.Client, repo: str) -> None:
    """A client that disconnects mid-PATCH can resume from the last acknowledged offset."""
    data = random_bytes(1000 + (2 << 20))
    location = start_upload(client, repo)
    assert client.patch(location, content=data[:1000],
                        headers={"Content-Range": "0-999"}).status_code == 202
    rest = data[1000:]
    with socket.create_connection(("127.0.0.1", registry.port)) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: {registry.host}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(rest)}\r\n"
            f"Content-Range: 1000-{len(data) - 1}\r\n\r\n".encode() + rest[: 1 << 20])
        time.sleep(0.3)
    deadline = time.monotonic() + 120  # bounds a hang only
    while upload_range_end(client, location) != 999 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upload_range_end(client, location) == 999
    assert client.patch(location, content=rest,
                        headers={"Content-Range": f"1000-{len(data) - 1}"}).status_code == 202
    assert client.put(location, params={"digest": sha256(data)}).status_code == 201
    assert _get_blob(client, repo, sha256(data)) == data


def test_completed_upload_session_is_gone(client: httpx.Client, repo: str) -> None:
    """After the closing PUT the session URL is spent; reusing it must not alter the blob."""
    data = b"complete"
    location = start_upload(client, repo)
    assert client.put(location, params={"digest": sha256(data)}, content=data).status_code == 201
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(location, content=b"more"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_a_content_range_with_numbers_of_any_length_is_refused_not_a_server_error(
        client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    for value in ("0-" + "9" * 5000, "9" * 5000 + "-" + "9" * 5001, "bytes 0-" + "9" * 30):
        r = client.patch(location, content=b"abc", headers={"Content-Range": value})
        assert_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert r.headers["content-range"] == "bytes */0"
    assert upload_range_end(client, location) == 0  # nothing of it was written
