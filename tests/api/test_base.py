"""end-1: the version check every client makes first, and requests outside the API."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import assert_error


def test_get_v2_answers_200_with_api_version(client: httpx.Client) -> None:
    """Clients decide the registry speaks the v2 protocol from this exact answer."""
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_head_v2_answers_200_without_body(client: httpx.Client) -> None:
    r = client.head("/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert r.content == b""


def test_v2_without_trailing_slash_also_answers(client: httpx.Client) -> None:
    """Some clients ping `/v2` without the slash; a redirect or 404 would break them."""
    assert client.get("/v2").status_code == 200


def test_every_api_answer_carries_the_api_version_header(client: httpx.Client) -> None:
    """Errors too: clients read the header from whatever answer they get."""
    r = client.get("/v2/no/such/repo/manifests/latest")
    assert r.status_code == 404
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_v2_refuses_other_methods_with_405(client: httpx.Client, method: str) -> None:
    assert_error(client.request(method, "/v2/"), 405, "UNSUPPORTED")


def test_unknown_endpoint_under_v2_is_a_json_404(client: httpx.Client) -> None:
    assert_error(client.get("/v2/some/repo/nothing-here"), 404, None)


@pytest.mark.parametrize("method,path", [
    ("POST", "/v2/a/b/manifests/latest"),
    ("PATCH", "/v2/a/b/manifests/latest"),
    ("PUT", "/v2/a/b/tags/list"),
    ("DELETE", "/v2/a/b/tags/list"),
    ("POST", f"/v2/a/b/blobs/sha256:{'0' * 64}"),
    ("PUT", f"/v2/a/b/blobs/sha256:{'0' * 64}"),
    ("PUT", "/v2/_catalog"),
])
def test_wrong_method_on_a_known_endpoint_is_405(client: httpx.Client, method: str,
                                                 path: str) -> None:
    assert_error(client.request(method, path), 405, "UNSUPPORTED")
