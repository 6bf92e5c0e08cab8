"""end-8a, end-8b and the catalog: tag lists and repository lists, with pagination."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.api.helpers import assert_error, push_image, put_manifest, unique_repo

_LINK_RE = re.compile(r'^<([^>]+)>;\s*rel="?next"?$')


def _tag(client: httpx.Client, repo: str, tags: list[str]) -> None:
    """Put several tags on one image (one push of blobs, one manifest PUT per tag)."""
    image = push_image(client, repo, tag=tags[0])
    for tag in tags[1:]:
        assert put_manifest(client, repo, tag, image.manifest, image.media_type).status_code == 201


def _walk(client: httpx.Client, url: str, key: str) -> tuple[list[str], list[int]]:
    """Follow `Link: <...>; rel="next"` to the end; returns the items and each page's size."""
    items: list[str] = []
    sizes: list[int] = []
    for _ in range(1000):
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()[key]
        items += page
        sizes.append(len(page))
        link = r.headers.get("link")
        if link is None:
            return items, sizes
        match = _LINK_RE.match(link.strip())
        assert match, f"malformed Link header {link!r}"
        url = match[1]
    raise AssertionError("pagination never ended")


def test_tags_list_is_sorted_and_complete(client: httpx.Client, repo: str) -> None:
    tags = ["v2", "latest", "v10", "1.0", "beta_1"]
    _tag(client, repo, tags)
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"name": repo, "tags": sorted(tags)}
    assert "link" not in r.headers


def test_tags_list_order_is_case_insensitive(client: httpx.Client, repo: str) -> None:
    """The spec: tags "MUST be in lexical order (i.e. case-insensitive alphanumeric order)"."""
    tags = ["beta", "Alpha", "alpha2", "Zulu", "charlie"]
    _tag(client, repo, tags)
    listed = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert listed == sorted(tags, key=str.lower)


def test_tags_pagination_walks_every_tag_once(client: httpx.Client, repo: str) -> None:
    tags = [f"t{i:02d}" for i in range(7)]
    _tag(client, repo, tags)
    items, sizes = _walk(client, f"/v2/{repo}/tags/list?n=3", "tags")
    assert items == tags
    assert sizes == [3, 3, 1]


def test_tags_page_boundary_exactly_at_the_end(client: httpx.Client, repo: str) -> None:
    """A last page that is exactly full must not advertise an empty next page forever."""
    tags = [f"t{i}" for i in range(4)]
    _tag(client, repo, tags)
    items, sizes = _walk(client, f"/v2/{repo}/tags/list?n=2", "tags")
    assert items == tags
    assert sizes[:2] == [2, 2] and sum(sizes) == 4


def test_tags_link_header_points_at_the_next_page(client: httpx.Client, repo: str) -> None:
    _tag(client, repo, ["a", "b", "c"])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    match = _LINK_RE.match(r.headers["link"])
    assert match
    assert match[1].startswith(f"/v2/{repo}/tags/list?")
    assert "last=b" in match[1] and "n=2" in match[1]


def test_tags_last_without_n(client: httpx.Client, repo: str) -> None:
    _tag(client, repo, ["a", "b", "c", "d"])
    r = client.get(f"/v2/{repo}/tags/list", params={"last": "b"})
    assert r.status_code == 200
    assert r.json()["tags"] == ["c", "d"]


def test_tags_last_that_is_not_a_tag(client: httpx.Client, repo: str) -> None:
    _tag(client, repo, ["a", "c", "e"])
    assert client.get(f"/v2/{repo}/tags/list",
                      params={"n": 5, "last": "b"}).json()["tags"] == ["c", "e"]


def test_tags_n_larger_than_the_list(client: httpx.Client, repo: str) -> None:
    _tag(client, repo, ["a", "b"])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 100})
    assert r.json()["tags"] == ["a", "b"]
    assert "link" not in r.headers


def test_tags_n_zero_is_an_empty_list_without_link(client: httpx.Client, repo: str) -> None:
    """The spec: "When n is zero, this endpoint MUST return an empty list, and MUST NOT
    include a Link header"."""
    _tag(client, repo, ["a", "b"])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == []
    assert "link" not in r.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10", "\u00b2"])
def test_tags_bad_n_is_400(client: httpx.Client, repo: str, n: str) -> None:
    _tag(client, repo, ["a"])
    assert_error(client.get(f"/v2/{repo}/tags/list", params={"n": n}), 400, None)


def test_tags_of_unknown_repository_is_name_unknown(client: httpx.Client) -> None:
    assert_error(client.get(f"/v2/{unique_repo()}/tags/list"), 404, "NAME_UNKNOWN")


def test_tags_of_repository_without_tags_is_empty(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, tag=None)
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200
    assert r.json() == {"name": repo, "tags": []}


def test_catalog_lists_pushed_repositories(client: httpx.Client) -> None:
    prefix = f"cat{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/r{i}" for i in range(3)] + [f"{prefix}/deep/er/r9"]
    for name in names:
        push_image(client, name, tag="x")
    r = client.get("/v2/_catalog")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    listed = r.json()["repositories"]
    assert set(names) <= set(listed)
    assert listed == sorted(listed)


def test_catalog_pagination_walks_every_repository_once(client: httpx.Client) -> None:
    prefix = f"pag{uuid.uuid4().hex[:8]}"
    for i in range(5):
        push_image(client, f"{prefix}/r{i}", tag="x")
    full = client.get("/v2/_catalog").json()["repositories"]
    items, sizes = _walk(client, "/v2/_catalog?n=2", "repositories")
    assert items == full
    assert all(size == 2 for size in sizes[:-1]) and 1 <= sizes[-1] <= 2


def test_catalog_n_zero_is_an_empty_list(client: httpx.Client) -> None:
    push_image(client, unique_repo(), tag="x")
    r = client.get("/v2/_catalog", params={"n": 0})
    assert r.status_code == 200, r.text
    assert r.json()["repositories"] == []
    assert "link" not in r.headers


@pytest.mark.parametrize("n", ["-3", "many", "\u00b2"])
def test_catalog_bad_n_is_400(client: httpx.Client, n: str) -> None:
    assert_error(client.get("/v2/_catalog", params={"n": n}), 400, None)
