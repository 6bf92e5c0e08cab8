"""Repository names: multi-component names work everywhere; invalid ones are NAME_INVALID."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.api.helpers import assert_error, push_blob, push_image, sha256

VALID = ["a", "a/b/c", "org/team/project/app", "a.b/c_d/e__f/g-h/i---j", "0/1/2", "x" * 255,
         "/".join(["abc"] * 60) + "/ab"]
INVALID = ["UPPER", "a/B", "a..b", "a/../b", "a/./b", "a//b", "-a", "a-", "a_", "a___b",
           "a.-b", "a/", "x" * 256, "a/" + "b" * 254, "é", "a b", "a\nb", "a:b"]


@pytest.mark.parametrize("name", VALID, ids=lambda n: n[:30])
def test_valid_names_push_and_pull(client: httpx.Client, name: str) -> None:
    assert len(name) <= 255
    image = push_image(client, name, tag="v1")
    r = client.get(f"/v2/{name}/manifests/v1", headers={"Accept": image.media_type})
    assert r.status_code == 200
    assert r.content == image.manifest
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["v1"]}
    assert client.get(f"/v2/{name}/blobs/{sha256(image.config)}").content == image.config


def _paths(name: str) -> list[tuple[str, str]]:
    # Dots are percent-encoded so that the HTTP client cannot normalise `..` and `.` away:
    # the server must see (and refuse) the name exactly as written.
    encoded = quote(name, safe="/").replace(".", "%2E")
    digest = sha256(b"x")
    return [
        ("GET", f"/v2/{encoded}/tags/list"),
        ("GET", f"/v2/{encoded}/manifests/latest"),
        ("PUT", f"/v2/{encoded}/manifests/latest"),
        ("DELETE", f"/v2/{encoded}/manifests/latest"),
        ("GET", f"/v2/{encoded}/blobs/{digest}"),
        ("DELETE", f"/v2/{encoded}/blobs/{digest}"),
        ("POST", f"/v2/{encoded}/blobs/uploads/"),
        ("POST", f"/v2/{encoded}/blobs/uploads/?digest={digest}"),
        ("POST", f"/v2/{encoded}/blobs/uploads/?mount={digest}&from=a"),
        ("GET", f"/v2/{encoded}/blobs/uploads/{'0' * 32}"),
        ("GET", f"/v2/{encoded}/referrers/{digest}"),
    ]


@pytest.mark.parametrize("name", INVALID, ids=lambda n: repr(n[:30]))
def test_invalid_names_are_name_invalid_on_every_endpoint(client: httpx.Client,
                                                          name: str) -> None:
    for method, path in _paths(name):
        r = client.request(method, path, content=b"x" if method in ("PUT", "POST") else None)
        if "\n" in name:
            # A newline cannot be part of any route; refusing it before routing (404) is fine.
            # What matters is that nothing is created: a 4xx, never a 2xx or a 5xx.
            assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        else:
            assert_error(r, 400, "NAME_INVALID")


def test_invalid_name_creates_nothing(client: httpx.Client) -> None:
    data = b"orphan"
    r = client.post("/v2/Bad/Name/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert_error(r, 400, "NAME_INVALID")
    assert "Bad/Name" not in client.get("/v2/_catalog").json()["repositories"]


def test_name_invalid_in_mount_source_falls_back_or_refuses(client: httpx.Client,
                                                            repo: str) -> None:
    digest = push_blob(client, repo, b"mountable")
    r = client.post(f"/v2/{repo}-t/blobs/uploads/", params={"mount": digest, "from": "../evil"})
    assert r.status_code in (202, 400), r.text
    if r.status_code == 400:
        assert_error(r, 400, "NAME_INVALID")
