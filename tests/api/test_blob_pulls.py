"""end-2, end-10, end-11: pulling (whole and ranged), deleting and mounting blobs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.helpers import (assert_error, push_blob, random_bytes, sha256, start_upload,
                               unique_repo)
from tests.support.server import MoorageServer

SIZE = 100


@pytest.fixture
def blob(client: httpx.Client, repo: str) -> tuple[str, bytes]:
    data = random_bytes(SIZE)
    return push_blob(client, repo, data), data


def test_get_blob_returns_bytes_length_and_digest(client: httpx.Client, repo: str,
                                                  blob: tuple[str, bytes]) -> None:
    digest, data = blob
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["docker-content-digest"] == digest


def test_head_blob_has_length_and_digest_but_no_body(client: httpx.Client, repo: str,
                                                     blob: tuple[str, bytes]) -> None:
    digest, data = blob
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["docker-content-digest"] == digest


def test_unknown_blob_is_404_blob_unknown(client: httpx.Client, repo: str,
                                          blob: tuple[str, bytes]) -> None:
    missing = sha256(b"never pushed")
    assert_error(client.get(f"/v2/{repo}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/{repo}/blobs/{missing}"), 404, None)


def test_malformed_blob_digest_is_400(client: httpx.Client, repo: str) -> None:
    for bad in ("sha256:1234", "sha256:" + "G" * 64, "latest", "md5:" + "0" * 32):
        assert_error(client.get(f"/v2/{repo}/blobs/{bad}"), 400, "DIGEST_INVALID")


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-9", 0, 9),           # the first bytes
    ("bytes=40-59", 40, 59),       # the middle
    ("bytes=-10", SIZE - 10, SIZE - 1),   # a suffix
    ("bytes=90-", 90, SIZE - 1),   # open-ended
    ("bytes=95-500", 95, SIZE - 1),  # an end past the blob is cut to the blob
    ("bytes=-500", 0, SIZE - 1),   # a suffix longer than the blob is the whole blob
    ("bytes=99-99", SIZE - 1, SIZE - 1),  # the last byte alone
    ("bytes=5-" + "9" * 5000, 5, SIZE - 1),  # an end of any length is cut to the blob
    ("bytes=-" + "9" * 5000, 0, SIZE - 1),   # so is a suffix of any length
])
def test_range_request_returns_206_with_content_range(client: httpx.Client, repo: str,
                                                      blob: tuple[str, bytes], header: str,
                                                      start: int, end: int) -> None:
    digest, data = blob
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert r.content == data[start:end + 1]
    assert r.headers["content-length"] == str(end - start + 1)


BIG = 3 * (1 << 20) + 17  # more than the 1 MiB pieces a range is read and sent in


@pytest.mark.parametrize("start,end", [
    (0, (1 << 20) - 1),                 # exactly the first piece
    ((1 << 20) - 1, 1 << 20),           # two bytes across the first boundary
    (5, BIG - 2),                       # all but the edges: every piece, cut at both ends
    ((2 << 20) + 3, BIG - 1),           # the tail past the last boundary
    (BIG - 1, BIG - 1),                 # the last byte alone
])
def test_ranges_of_a_multi_mib_blob_are_exact(client: httpx.Client, repo: str, start: int,
                                              end: int) -> None:
    data = random_bytes(BIG)
    digest = push_blob(client, repo, data)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"bytes {start}-{end}/{BIG}"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.content == data[start:end + 1]
    whole = client.get(f"/v2/{repo}/blobs/{digest}")
    assert whole.status_code == 200 and sha256(whole.content) == digest
    past = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={BIG}-"})
    assert_error(past, 416, "SIZE_INVALID")
    assert past.headers["content-range"] == f"bytes */{BIG}"


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=500-600", "bytes=-0",
                                    "bytes=" + "9" * 5000 + "-",
                                    "bytes=" + "1" * 5000 + "-" + "2" * 5000])
def test_unsatisfiable_range_is_416(client: httpx.Client, repo: str, blob: tuple[str, bytes],
                                    header: str) -> None:
    digest, _ = blob
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_error(r, 416, "SIZE_INVALID")
    assert r.headers["content-range"] == f"bytes */{SIZE}"
    head = client.head(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert head.status_code == 416
    assert head.headers["content-range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", [
    "items=0-9",             # another unit: RFC 9110 14.2, the server MUST ignore it
    "bytes=0-9,20-29",       # several ranges: a server MAY ignore the header; we do
    "bytes=0-9, 50-",        # several ranges with a space
    "bytes=abc",             # not a range at all: ignored (14.2, an invalid ranges-specifier)
    "bytes=9-3",             # last before first: an invalid int-range (14.1.1), ignored
    "bytes=",                # an empty range set
    "bytes 0-9",             # not the header's syntax
    "",                      # an empty header
])
def test_a_range_the_server_ignores_answers_the_whole_blob(
        client: httpx.Client, repo: str, blob: tuple[str, bytes], header: str) -> None:
    """A Range header that is not one satisfiable-or-not byte range is ignored: 200 with the
    whole blob (RFC 9110 14.2), never a 416 (which says the range missed the blob)."""
    digest, data = blob
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 200, r.text
    assert r.content == data
    assert "content-range" not in r.headers
    head = client.head(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert head.status_code == 200
    assert head.headers["content-length"] == str(SIZE)


def test_head_with_range_reports_the_partial_length(client: httpx.Client, repo: str,
                                                    blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    r = client.head(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.headers["content-length"] == "10"
    assert r.headers["content-range"] == f"bytes 10-19/{SIZE}"


def test_delete_blob_then_it_is_gone(client: httpx.Client, repo: str,
                                     blob: tuple[str, bytes]) -> None:
    digest, _ = blob
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert_error(client.head(f"/v2/{repo}/blobs/{digest}"), 404, None)
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_in_one_repo_keeps_it_in_another(client: httpx.Client, repo: str) -> None:
    data = random_bytes(64)
    other = unique_repo()
    digest = push_blob(client, repo, data)
    push_blob(client, other, data)
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert client.get(f"/v2/{other}/blobs/{digest}").content == data


def test_blob_pushed_to_one_repo_is_not_readable_from_another(client: httpx.Client,
                                                              repo: str) -> None:
    """Repositories are the unit of access: knowing a digest must not leak its content."""
    digest = push_blob(client, repo, random_bytes(64))
    other = unique_repo()
    push_blob(client, other, b"something so the repository exists")
    assert_error(client.head(f"/v2/{other}/blobs/{digest}"), 404, None)
    assert_error(client.get(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{unique_repo()}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_mount_from_a_repo_holding_the_blob(client: httpx.Client, repo: str) -> None:
    data = random_bytes(300)
    digest = push_blob(client, repo, data)
    target = unique_repo()
    r = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": repo})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/v2/{target}/blobs/{digest}")
    assert r.headers["docker-content-digest"] == digest
    assert client.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mount_from_a_repo_without_the_blob_opens_an_upload(client: httpx.Client,
                                                            repo: str) -> None:
    """The spec's fallback: 202 and a usable upload session, never an error."""
    data = random_bytes(300)
    digest = push_blob(client, repo, data)
    stranger = unique_repo()
    push_blob(client, stranger, b"other content")
    target = unique_repo()
    r = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": stranger})
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert_error(client.head(f"/v2/{target}/blobs/{digest}"), 404, None)
    assert client.put(location, params={"digest": digest}, content=data).status_code == 201
    assert client.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mount_from_an_unknown_repo_opens_an_upload(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, random_bytes(30))
    r = client.post(f"/v2/{unique_repo()}/blobs/uploads/",
                    params={"mount": digest, "from": unique_repo()})
    assert r.status_code == 202
    assert r.headers["location"]


def test_mount_without_from_of_a_blob_the_instance_holds(client: httpx.Client,
                                                         repo: str) -> None:
    data = random_bytes(300)
    digest = push_blob(client, repo, data)
    target = unique_repo()
    r = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/v2/{target}/blobs/{digest}")
    assert client.get(f"/v2/{target}/blobs/{digest}").content == data


def test_mount_without_from_of_an_unknown_blob_opens_an_upload(client: httpx.Client,
                                                               repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(random_bytes(8))})
    assert r.status_code == 202
    assert r.headers["location"]


def test_mounted_blob_survives_deletion_from_its_source(client: httpx.Client, repo: str) -> None:
    data = random_bytes(100)
    digest = push_blob(client, repo, data)
    target = unique_repo()
    assert client.post(f"/v2/{target}/blobs/uploads/",
                       params={"mount": digest, "from": repo}).status_code == 201
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert client.get(f"/v2/{target}/blobs/{digest}").content == data


def _blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


def test_same_blob_in_two_repos_is_stored_once(fresh_registry: MoorageServer) -> None:
    """Deduplication: pushing a shared base layer to N repositories costs its size once."""
    data = random_bytes(50_000)
    with httpx.Client(base_url=fresh_registry.url) as client:
        push_blob(client, "team/one", data)
        push_blob(client, "team/two", data)
        location = start_upload(client, "team/three")
        client.patch(location, content=data)
        assert client.put(location, params={"digest": sha256(data)}).status_code == 201
        for repo in ("team/one", "team/two", "team/three"):
            assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data
    files = _blob_files(fresh_registry.data_dir)
    assert len(files) == 1, files
    assert files[0].read_bytes() == data
