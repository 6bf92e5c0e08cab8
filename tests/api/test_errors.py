"""Error answers: the spec's JSON body, code and status on every refusal; never a 500.

Clients branch on `errors[].code` and on the status (e.g. 404 BLOB_UNKNOWN means "upload it",
416 means "resume from Range"), so a wrong code is a broken push, and a 500 or a stack trace
is both a crash and an information leak.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import (OCI_MANIFEST, Image, assert_error, canonical,
                               error_codes, image_manifest, push_blob, push_image, sha256,
                               start_upload, unique_repo)
from tests.support.server import MoorageServer


# The distribution spec's error codes (its "Error Codes" table, code-1 to code-14).
SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
              "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
              "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
              "TOOMANYREQUESTS"}


@dataclass
class World:
    """Content on the shared server that error requests can aim at."""

    repo: str
    image: Image
    blob: bytes
    upload: str  # Location of an upload holding 10 bytes

    @property
    def blob_digest(self) -> str:
        return sha256(self.blob)


@pytest.fixture(scope="module")
def world(registry: MoorageServer) -> World:
    with httpx.Client(base_url=registry.url) as client:
        repo = unique_repo("err")
        image = push_image(client, repo, tag="latest")
        blob = b"0123456789" * 10
        push_blob(client, repo, blob)
        upload = start_upload(client, repo)
        assert client.patch(upload, content=b"x" * 10,
                            headers={"Content-Range": "0-9"}).status_code == 202
        return World(repo, image, blob, upload)


@dataclass(frozen=True)
class Case:
    id: str
    request: Callable[[httpx.Client, World], httpx.Response]
    status: int
    code: str | None


def _fresh_upload(c: httpx.Client, w: World) -> str:
    location = start_upload(c, w.repo)
    c.patch(location, content=b"abc", headers={"Content-Range": "0-2"})
    return location


CASES = [
    Case("blob-unknown", lambda c, w: c.get(f"/v2/{w.repo}/blobs/{sha256(b'?')}"),
         404, "BLOB_UNKNOWN"),
    Case("blob-delete-unknown", lambda c, w: c.delete(f"/v2/{w.repo}/blobs/{sha256(b'?')}"),
         404, "BLOB_UNKNOWN"),
    Case("blob-bad-digest", lambda c, w: c.get(f"/v2/{w.repo}/blobs/sha256:zz"),
         400, "DIGEST_INVALID"),
    Case("blob-range-unsatisfiable", lambda c, w: c.get(
        f"/v2/{w.repo}/blobs/{w.blob_digest}", headers={"Range": "bytes=1000-"}), 416, "SIZE_INVALID"),
    Case("upload-unknown", lambda c, w: c.get(f"/v2/{w.repo}/blobs/uploads/{'a' * 32}"),
         404, "BLOB_UPLOAD_UNKNOWN"),
    Case("upload-patch-out-of-order", lambda c, w: c.patch(
        _fresh_upload(c, w), content=b"zz", headers={"Content-Range": "10-11"}), 416,
        "BLOB_UPLOAD_INVALID"),
    Case("upload-put-digest-mismatch", lambda c, w: c.put(
        _fresh_upload(c, w), params={"digest": sha256(b"other")}), 400, "DIGEST_INVALID"),
    Case("upload-put-no-digest", lambda c, w: c.put(_fresh_upload(c, w)),
         400, "DIGEST_INVALID"),
    Case("post-digest-mismatch", lambda c, w: c.post(
        f"/v2/{w.repo}/blobs/uploads/", params={"digest": sha256(b"a")}, content=b"b"),
         400, "DIGEST_INVALID"),
    Case("manifest-unknown-tag", lambda c, w: c.get(f"/v2/{w.repo}/manifests/nope"),
         404, "MANIFEST_UNKNOWN"),
    Case("manifest-unknown-digest", lambda c, w: c.get(
        f"/v2/{w.repo}/manifests/{sha256(b'?')}"), 404, "MANIFEST_UNKNOWN"),
    Case("manifest-invalid-json", lambda c, w: c.put(
        f"/v2/{w.repo}/manifests/bad", content=b"{oops",
        headers={"Content-Type": OCI_MANIFEST}), 400, "MANIFEST_INVALID"),
    Case("manifest-blob-unknown", lambda c, w: c.put(
        f"/v2/{w.repo}/manifests/bad", content=image_manifest(w.image.config, [b"?"])[0],
        headers={"Content-Type": OCI_MANIFEST}), 400, "MANIFEST_BLOB_UNKNOWN"),
    Case("manifest-digest-mismatch", lambda c, w: c.put(
        f"/v2/{w.repo}/manifests/{sha256(b'?')}", content=w.image.manifest,
        headers={"Content-Type": OCI_MANIFEST}), 400, "DIGEST_INVALID"),
    Case("manifest-too-large", lambda c, w: c.put(
        f"/v2/{w.repo}/manifests/big", content=b" " * ((4 << 20) + 1),
        headers={"Content-Type": OCI_MANIFEST}), 413, None),
    Case("tag-invalid", lambda c, w: c.put(
        f"/v2/{w.repo}/manifests/-bad", content=w.image.manifest,
        headers={"Content-Type": OCI_MANIFEST}), 400, "MANIFEST_INVALID"),
    Case("manifest-get-not-a-reference", lambda c, w: c.get(
        f"/v2/{w.repo}/manifests/.INVALID_MANIFEST_NAME"), 404, "MANIFEST_UNKNOWN"),
    Case("manifest-delete-not-a-reference", lambda c, w: c.delete(
        f"/v2/{w.repo}/manifests/.INVALID_MANIFEST_NAME"), 404, "MANIFEST_UNKNOWN"),
    Case("name-invalid", lambda c, w: c.get("/v2/Upper/Case/tags/list"), 400, "NAME_INVALID"),
    Case("name-unknown", lambda c, w: c.get(f"/v2/{unique_repo()}/tags/list"),
         404, "NAME_UNKNOWN"),
    Case("tags-bad-n", lambda c, w: c.get(f"/v2/{w.repo}/tags/list", params={"n": "x"}),
         400, "UNSUPPORTED"),
    Case("catalog-bad-n", lambda c, w: c.get("/v2/_catalog", params={"n": "-1"}), 400, "UNSUPPORTED"),
    Case("method-not-allowed", lambda c, w: c.post(f"/v2/{w.repo}/tags/list"),
         405, "UNSUPPORTED"),
    Case("referrers-bad-digest", lambda c, w: c.get(f"/v2/{w.repo}/referrers/nope"),
         400, "DIGEST_INVALID"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_error_has_the_spec_body_code_and_status(client: httpx.Client, world: World,
                                                 case: Case) -> None:
    r = case.request(client, world)
    assert_error(r, case.status, case.code)
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    # Only the codes of the spec's table (a client branches on them), on every 4XX.
    assert set(error_codes(r)) <= SPEC_CODES, r.text
    if r.status_code == 416:
        assert r.headers["content-range"].startswith("bytes */"), r.headers


# -- fuzzing ------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
_ascii = st.text(st.sampled_from(string.printable.strip() + " "), max_size=40)
_hexish = st.text(st.sampled_from("0123456789abcdefABCDEF:g"), min_size=0, max_size=140)
_number = st.one_of(st.integers(-5, 10**20).map(str), st.sampled_from(
    ["", "0", "-0", "+1", "1.0", "1e3", "\u00b2", "\u0663", "99999999999999999999999"]))


@st.composite
def _digest(draw: st.DrawFn, world: World) -> str:
    return draw(st.one_of(
        st.sampled_from([world.image.digest, world.blob_digest, sha256(b"absent")]),
        st.builds(lambda a, h: f"{a}:{h}", st.sampled_from(["sha256", "sha512", "md5", "SHA256",
                                                            ""]), _hexish),
        _text))


@st.composite
def _request(draw: st.DrawFn, world: World) -> dict[str, Any]:
    name = draw(st.one_of(st.just(world.repo), st.just("fz/absent"), _text,
                          st.lists(st.sampled_from(["a", "B", "..", ".", "", "x-y", "_"]),
                                   min_size=1, max_size=4).map("/".join)))
    upload_id = world.upload.rsplit("/", 1)[1]
    ref = draw(st.one_of(st.sampled_from(["latest", "v1", "-x", "a" * 200]),
                         _digest(world), _text))
    enc = quote(name, safe="/").replace(".", "%2E")
    path = draw(st.sampled_from([
        f"/v2/{enc}/manifests/{quote(ref, safe=':')}",
        f"/v2/{enc}/blobs/{quote(draw(_digest(world)), safe=':')}",
        f"/v2/{enc}/blobs/uploads/",
        f"/v2/{enc}/blobs/uploads/{quote(draw(st.one_of(st.just(upload_id), _text)), safe='')}",
        f"/v2/{enc}/tags/list",
        f"/v2/{enc}/referrers/{quote(draw(_digest(world)), safe=':')}",
        "/v2/_catalog",
        f"/v2/{quote(draw(_text), safe='/')}",
    ]))
    params = draw(st.dictionaries(
        st.sampled_from(["digest", "mount", "from", "n", "last", "tag", "artifactType"]),
        st.one_of(_text, _number, _digest(world)), max_size=3))
    headers = draw(st.dictionaries(
        st.sampled_from(["Content-Range", "Range", "Content-Type", "Accept"]),
        st.one_of(_ascii,
                  st.builds(lambda a, b: f"{a}-{b}", _number, _number),
                  st.builds(lambda a, b: f"bytes={a}-{b}", _number, _number),
                  st.sampled_from([OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
                                   "application/vnd.docker.distribution.manifest.v1+json",
                                   "*/*", "application/json"])),
        max_size=3))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
        max_leaves=8)
    manifestish = st.fixed_dictionaries(
        {"schemaVersion": st.sampled_from([2, 1, "2", None])},
        optional={"mediaType": st.sampled_from([OCI_MANIFEST, "x", 5]),
                  "config": json_values, "layers": json_values, "manifests": json_values,
                  "subject": json_values, "annotations": json_values})
    body = draw(st.one_of(st.none(), st.binary(max_size=200),
                          json_values.map(lambda v: json.dumps(v).encode()),
                          manifestish.map(canonical)))
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                   "OPTIONS"]))
    # Header values go out as raw UTF-8 bytes: the server sees them as latin-1 text.
    return {"method": method, "url": path, "params": params,
            "headers": {k: v.encode() for k, v in headers.items()}, "content": body}


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_malformed_requests_never_crash_the_server(client: httpx.Client, world: World,
                                                   data: st.DataObject) -> None:
    request = data.draw(_request(world))
    r = client.request(**request)
    assert r.status_code < 500, (request, r.status_code, r.text[:300])
    text = r.content.decode("utf-8", "replace")
    assert "Traceback" not in text and 'File "' not in text, text[:300]
    if r.status_code >= 400 and request["method"] != "HEAD" and r.content:
        # JSON errors body with the spec's shape and only the spec's codes
        assert set(error_codes(r)) <= SPEC_CODES, (request, r.text[:300])
    if r.status_code == 416:
        assert r.headers["content-range"].startswith("bytes */"), (request, r.headers)


def test_probes_with_edge_values_never_crash(client: httpx.Client, world: World) -> None:
    """Known-hostile values, each on its own so one failure does not hide the others."""
    probes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v2/{world.repo}/tags/list", {"params": {"n": "0"}}),
        ("GET", "/v2/_catalog", {"params": {"n": "0"}}),
        ("GET", f"/v2/{world.repo}/tags/list", {"params": {"n": "\u00b2"}}),
        ("GET", f"/v2/{world.repo}/tags/list", {"params": {"n": "99999999999999999999"}}),
        ("GET", f"/v2/{world.repo}/blobs/{world.blob_digest}",
         {"headers": {"Range": "bytes=99999999999999999999999-"}}),
        ("GET", f"/v2/{world.repo}/blobs/{world.blob_digest}", {"headers": {"Range": "bytes=-"}}),
        ("PATCH", world.upload, {"headers": {"Content-Range": "10-99999999999999999999999"},
                                 "content": b"x"}),
        ("PUT", f"/v2/{world.repo}/manifests/deep",
         {"content": b"[" * 50_000 + b"]" * 50_000, "headers": {"Content-Type": OCI_MANIFEST}}),
        ("PUT", f"/v2/{world.repo}/manifests/bigint",
         {"content": b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
          + world.image.digest.encode() + b'", "size": ' + b"9" * 5000 + b"}}",
          "headers": {"Content-Type": OCI_MANIFEST}}),
        ("GET", f"/v2/{world.repo}/manifests/latest", {"headers": {"Accept": ",,,;;;"}}),
        ("POST", f"/v2/{world.repo}/blobs/uploads/",
         {"params": {"mount": "sha256:" + "0" * 64, "from": "Bad Name"}}),
    ]
    failures = []
    for method, url, kwargs in probes:
        r = client.request(method, url, **kwargs)
        if r.status_code >= 500 or "Traceback" in r.text:
            failures.append((method, url, {k: str(v)[:60] for k, v in kwargs.items()},
                             r.status_code, r.text[:120]))
    assert not failures, failures
