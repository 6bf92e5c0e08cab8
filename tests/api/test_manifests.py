"""end-3, end-7, end-9: pushing, pulling, negotiating and deleting every manifest type."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest

from tests.api.helpers import (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, EMPTY_DIGEST,
                               EMPTY_JSON, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
                               artifact_manifest, assert_error, canonical, descriptor,
                               image_manifest, index_manifest, push_blob, push_image,
                               put_manifest, random_bytes, sha256, sha512, unique_repo)

ALL_MANIFEST_TYPES = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}"


def _pull(client: httpx.Client, repo: str, reference: str,
          accept: str = ALL_MANIFEST_TYPES) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})


def _assert_round_trip(client: httpx.Client, repo: str, reference: str, body: bytes,
                       media_type: str) -> None:
    """GET and HEAD by tag and by digest answer the pushed bytes, type and digest."""
    digest = sha256(body)
    for ref in (reference, digest):
        r = _pull(client, repo, ref)
        assert r.status_code == 200, (ref, r.text)
        assert r.content == body
        assert r.headers["content-type"] == media_type
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-length"] == str(len(body))
        h = client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ALL_MANIFEST_TYPES})
        assert h.status_code == 200
        assert h.content == b""
        assert h.headers["content-type"] == media_type
        assert h.headers["docker-content-digest"] == digest
        assert h.headers["content-length"] == str(len(body))


def _push_ok(client: httpx.Client, repo: str, reference: str, body: bytes,
             media_type: str) -> httpx.Response:
    r = put_manifest(client, repo, reference, body, media_type)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == sha256(body)
    assert r.headers["location"].endswith(f"/v2/{repo}/manifests/{sha256(body)}")
    return r


def test_oci_image_manifest_by_tag(client: httpx.Client, repo: str) -> None:
    config, layer = b'{"os":"linux"}', random_bytes(500)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    # Unusual spacing and key order: the registry must keep the exact bytes (digest!).
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
           "config": descriptor(OCI_CONFIG, config),
           "annotations": {"org.example": "välue"}}
    body = json.dumps(doc, indent=3, ensure_ascii=False).encode() + b"\n"
    _push_ok(client, repo, "v1.0", body, OCI_MANIFEST)
    _assert_round_trip(client, repo, "v1.0", body, OCI_MANIFEST)


def test_oci_image_manifest_by_digest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag=None)
    _assert_round_trip(client, repo, image.digest, image.manifest, OCI_MANIFEST)


def test_oci_manifest_without_media_type_field(client: httpx.Client, repo: str) -> None:
    """mediaType is optional in OCI manifests; the Content-Type says what it is."""
    config = b'{"a":1}'
    push_blob(client, repo, config)
    body = canonical({"schemaVersion": 2, "config": descriptor(OCI_CONFIG, config),
                      "layers": []})
    _push_ok(client, repo, "bare", body, OCI_MANIFEST)
    _assert_round_trip(client, repo, "bare", body, OCI_MANIFEST)


def test_docker_schema2_manifest(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag="docker", docker=True, layers=2)
    assert image.media_type == DOCKER_MANIFEST
    _assert_round_trip(client, repo, "docker", image.manifest, DOCKER_MANIFEST)


def test_oci_index(client: httpx.Client, repo: str) -> None:
    amd = push_image(client, repo, tag=None)
    arm = push_image(client, repo, tag=None)
    body, media_type = index_manifest([
        amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
        arm.descriptor(platform={"architecture": "arm64", "os": "linux"})])
    _push_ok(client, repo, "multi", body, media_type)
    _assert_round_trip(client, repo, "multi", body, OCI_INDEX)


def test_docker_manifest_list(client: httpx.Client, repo: str) -> None:
    amd = push_image(client, repo, tag=None, docker=True)
    arm = push_image(client, repo, tag=None, docker=True)
    body, media_type = index_manifest([
        amd.descriptor(platform={"architecture": "amd64", "os": "linux"}),
        arm.descriptor(platform={"architecture": "arm64", "os": "linux"})], docker=True)
    _push_ok(client, repo, "list", body, media_type)
    _assert_round_trip(client, repo, "list", body, DOCKER_LIST)


def test_nested_index(client: httpx.Client, repo: str) -> None:
    """An index may list other indexes (e.g. attestation layouts); all must resolve."""
    image = push_image(client, repo, tag=None)
    inner, _ = index_manifest([image.descriptor()])
    _push_ok(client, repo, sha256(inner), inner, OCI_INDEX)
    outer, _ = index_manifest([{"mediaType": OCI_INDEX, "digest": sha256(inner),
                                "size": len(inner)}])
    _push_ok(client, repo, "outer", outer, OCI_INDEX)
    _assert_round_trip(client, repo, "outer", outer, OCI_INDEX)


def test_oci_artifact_with_empty_config(client: httpx.Client, repo: str) -> None:
    payload = random_bytes(200)
    assert push_blob(client, repo, EMPTY_JSON) == EMPTY_DIGEST
    push_blob(client, repo, payload)
    body = artifact_manifest("application/vnd.example.thing.v1", [payload], None)
    _push_ok(client, repo, "artifact", body, OCI_MANIFEST)
    _assert_round_trip(client, repo, "artifact", body, OCI_MANIFEST)
    r = client.get(f"/v2/{repo}/blobs/{EMPTY_DIGEST}")
    assert r.status_code == 200
    assert r.content == EMPTY_JSON
    assert r.headers["content-length"] == "2"


def test_sha512_manifest_by_digest(client: httpx.Client, repo: str) -> None:
    config = b'{"sha":512}'
    push_blob(client, repo, config)
    body, media_type = image_manifest(config, [])
    digest = sha512(body)
    r = put_manifest(client, repo, digest, body, media_type)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    r = client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["docker-content-digest"] == digest


def test_retagging_moves_the_tag(client: httpx.Client, repo: str) -> None:
    first = push_image(client, repo, tag="moving")
    second = push_image(client, repo, tag="moving")
    r = _pull(client, repo, "moving")
    assert r.content == second.manifest
    assert _pull(client, repo, first.digest).content == first.manifest


def test_same_manifest_in_two_repositories(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag="a")
    other = unique_repo()
    for blob in (image.config, *image.layers):
        push_blob(client, other, blob)
    _push_ok(client, other, "b", image.manifest, image.media_type)
    assert _pull(client, other, "b").content == image.manifest
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    assert _pull(client, other, image.digest).content == image.manifest


# -- content negotiation ------------------------------------------------------------------


def _push_index(client: httpx.Client, repo: str, tag: str) -> bytes:
    image = push_image(client, repo, tag=None)
    body, media_type = index_manifest([image.descriptor()])
    _push_ok(client, repo, tag, body, media_type)
    return body


def test_accept_that_excludes_the_stored_type_is_manifest_unknown(client: httpx.Client,
                                                                  repo: str) -> None:
    """An old client that only knows image manifests must not be handed an index."""
    _push_index(client, repo, "idx")
    only_images = f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"
    assert_error(_pull(client, repo, "idx", accept=only_images), 404, "MANIFEST_UNKNOWN")
    r = client.head(f"/v2/{repo}/manifests/idx", headers={"Accept": only_images})
    assert r.status_code == 404


def test_accept_listing_the_stored_type_gets_it(client: httpx.Client, repo: str) -> None:
    body = _push_index(client, repo, "idx")
    for accept in (OCI_INDEX, f"{OCI_MANIFEST};q=0.9, {OCI_INDEX};q=0.5", "*/*"):
        r = _pull(client, repo, "idx", accept=accept)
        assert r.status_code == 200, accept
        assert r.content == body
        assert r.headers["content-type"] == OCI_INDEX


def test_accept_given_as_several_headers(client: httpx.Client, repo: str) -> None:
    """Docker sends one Accept header per type; all of them count."""
    body = _push_index(client, repo, "idx")
    r = client.get(f"/v2/{repo}/manifests/idx",
                   headers=[("Accept", OCI_MANIFEST), ("Accept", OCI_INDEX)])
    assert r.status_code == 200
    assert r.content == body


def test_no_accept_header_gets_the_stored_manifest(client: httpx.Client, repo: str) -> None:
    body = _push_index(client, repo, "idx")
    r = client.get(f"/v2/{repo}/manifests/idx", headers={"Accept": ""})
    assert r.status_code == 200
    assert r.content == body


# -- refusals -----------------------------------------------------------------------------


def test_schema1_manifest_is_refused(client: httpx.Client, repo: str) -> None:
    body = canonical({"schemaVersion": 1, "name": repo, "tag": "old", "architecture": "amd64",
                      "fsLayers": [{"blobSum": sha256(b"x")}],
                      "history": [{"v1Compatibility": "{}"}],
                      "signatures": []})
    assert_error(put_manifest(client, repo, "old", body, DOCKER_SCHEMA1_SIGNED), 400,
                 "MANIFEST_INVALID")
    assert_error(put_manifest(client, repo, "old", body,
                              "application/vnd.docker.distribution.manifest.v1+json"), 400,
                 "MANIFEST_INVALID")
    assert_error(_pull(client, repo, "old"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("body", [
    b"", b"not json", b"{", b"[]", b"null", b'"string"', b"\xff\xfe\x00",
    b'{"schemaVersion": 3, "config": {}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "size": 2}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:00", "size": 2}}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
    + EMPTY_DIGEST.encode() + b'", "size": -1}}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
    + EMPTY_DIGEST.encode() + b'", "size": 2}, "layers": {}}',
])
def test_invalid_manifest_is_manifest_invalid(client: httpx.Client, repo: str,
                                              body: bytes) -> None:
    assert_error(put_manifest(client, repo, "bad", body, OCI_MANIFEST), 400, "MANIFEST_INVALID")
    assert_error(_pull(client, repo, "bad"), 404, None)


def test_deeply_nested_json_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    """Hostile JSON must be refused as invalid, not crash the handler (500)."""
    body = b'{"schemaVersion": 2, "annotations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(put_manifest(client, repo, "deep", body, OCI_MANIFEST), 400, "MANIFEST_INVALID")


def test_index_pushed_as_image_manifest_type_is_refused(client: httpx.Client,
                                                        repo: str) -> None:
    """mediaType and Content-Type must agree (the CVE-2021-41190 type confusion)."""
    image = push_image(client, repo, tag=None)
    body, _ = index_manifest([image.descriptor()])
    assert_error(put_manifest(client, repo, "confused", body, OCI_MANIFEST), 400,
                 "MANIFEST_INVALID")


def test_manifest_referencing_a_missing_blob(client: httpx.Client, repo: str) -> None:
    config = b'{"c":1}'
    push_blob(client, repo, config)
    body, media_type = image_manifest(config, [b"layer never pushed"])
    r = put_manifest(client, repo, "missing", body, media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(_pull(client, repo, "missing"), 404, "MANIFEST_UNKNOWN")


def test_manifest_referencing_a_missing_config(client: httpx.Client, repo: str) -> None:
    layer = random_bytes(10)
    push_blob(client, repo, layer)
    body, media_type = image_manifest(b'{"never":"pushed"}', [layer])
    assert_error(put_manifest(client, repo, "missing", body, media_type), 400,
                 "MANIFEST_BLOB_UNKNOWN")


def test_manifest_referencing_a_blob_of_another_repository(client: httpx.Client,
                                                           repo: str) -> None:
    """Pushing a manifest must not grant access to blobs the repository never received."""
    other = unique_repo()
    layer = random_bytes(64)
    push_blob(client, other, layer)
    config = b'{"c":2}'
    push_blob(client, repo, config)
    body, media_type = image_manifest(config, [layer])
    assert_error(put_manifest(client, repo, "sneaky", body, media_type), 400,
                 "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/blobs/{sha256(layer)}"), 404, "BLOB_UNKNOWN")


def test_index_referencing_a_missing_child(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag=None)
    ghost = {"mediaType": OCI_MANIFEST, "digest": sha256(b"ghost manifest"), "size": 14}
    body, media_type = index_manifest([image.descriptor(), ghost])
    assert_error(put_manifest(client, repo, "idx", body, media_type), 400,
                 "MANIFEST_BLOB_UNKNOWN")


def test_index_referencing_a_child_of_another_repository(client: httpx.Client,
                                                         repo: str) -> None:
    elsewhere = push_image(client, unique_repo(), tag=None)
    body, media_type = index_manifest([elsewhere.descriptor()])
    assert_error(put_manifest(client, repo, "idx", body, media_type), 400,
                 "MANIFEST_BLOB_UNKNOWN")


def test_put_by_digest_that_does_not_match_the_body(client: httpx.Client, repo: str) -> None:
    config = b'{"d":1}'
    push_blob(client, repo, config)
    body, media_type = image_manifest(config, [])
    wrong = sha256(body + b" ")
    assert_error(put_manifest(client, repo, wrong, body, media_type), 400, "DIGEST_INVALID")
    assert_error(_pull(client, repo, wrong), 404, "MANIFEST_UNKNOWN")
    assert_error(_pull(client, repo, sha256(body)), 404, "MANIFEST_UNKNOWN")


def test_manifest_over_4_mib_is_413(client: httpx.Client, repo: str) -> None:
    config = b'{"e":1}'
    push_blob(client, repo, config)
    body, media_type = image_manifest(config, [], annotations={"pad": "x" * (4 << 20)})
    r = put_manifest(client, repo, "huge", body, media_type)
    assert r.status_code == 413
    assert_error(_pull(client, repo, "huge"), 404, "MANIFEST_UNKNOWN")


def test_manifest_of_exactly_4_mib_is_accepted(client: httpx.Client, repo: str) -> None:
    """The spec's guidance is that registries accept manifests up to 4 MiB."""
    config = b'{"f":1}'
    push_blob(client, repo, config)
    base, media_type = image_manifest(config, [], annotations={"pad": ""})
    body, _ = image_manifest(config, [], annotations={"pad": "x" * ((4 << 20) - len(base))})
    assert len(body) == 4 << 20
    _push_ok(client, repo, "big", body, media_type)
    assert _pull(client, repo, "big").content == body


@pytest.mark.parametrize("tag", ["-leading-dash", ".leading-dot", "x" * 129, "bad+plus",
                                 "sp ace", "latest\n", "tab\tbed"])
def test_invalid_tag_is_manifest_invalid(client: httpx.Client, repo: str, tag: str) -> None:
    """A PUT to a tag the grammar refuses is 400 MANIFEST_INVALID: the spec's list of error
    codes has no TAG_INVALID, and the request is the manifest's to fix (its tag)."""
    image = push_image(client, repo, tag=None)
    r = put_manifest(client, repo, quote(tag, safe=""), image.manifest, image.media_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert tag not in tags


def test_longest_valid_tag_is_accepted(client: httpx.Client, repo: str) -> None:
    tag = "A_" + "a.b-c" * 25 + "z"
    assert len(tag) == 128
    image = push_image(client, repo, tag=tag)
    assert _pull(client, repo, tag).content == image.manifest


def test_unknown_tag_and_digest_are_manifest_unknown(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, tag="exists")
    assert_error(_pull(client, repo, "nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(_pull(client, repo, sha256(b"nope")), 404, "MANIFEST_UNKNOWN")
    r = client.head(f"/v2/{repo}/manifests/nope")
    assert r.status_code == 404
    assert r.content == b""


def test_manifest_of_unknown_repository_is_404(client: httpx.Client) -> None:
    r = _pull(client, unique_repo(), "latest")
    assert r.status_code == 404
    assert set(_codes(r)) & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"}


def _codes(r: httpx.Response) -> list[str]:
    return [e["code"] for e in r.json()["errors"]]


def test_manifest_is_not_readable_from_another_repository(client: httpx.Client,
                                                          repo: str) -> None:
    image = push_image(client, repo, tag="private")
    other = unique_repo()
    push_image(client, other, tag="mine")
    assert_error(_pull(client, other, image.digest), 404, "MANIFEST_UNKNOWN")
    assert_error(_pull(client, other, "private"), 404, "MANIFEST_UNKNOWN")


# -- deletion and tagging -----------------------------------------------------------------


def test_delete_by_digest_removes_every_tag_pointing_at_it(client: httpx.Client,
                                                           repo: str) -> None:
    image = push_image(client, repo, tag="one")
    _push_ok(client, repo, "two", image.manifest, image.media_type)
    keeper = push_image(client, repo, tag="keeper")
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    for ref in ("one", "two", image.digest):
        assert_error(_pull(client, repo, ref), 404, "MANIFEST_UNKNOWN")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keeper"]
    assert _pull(client, repo, "keeper").content == keeper.manifest
    assert_error(client.delete(f"/v2/{repo}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_tag_removes_only_the_tag(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag="one")
    _push_ok(client, repo, "two", image.manifest, image.media_type)
    assert client.delete(f"/v2/{repo}/manifests/one").status_code == 202
    assert_error(_pull(client, repo, "one"), 404, "MANIFEST_UNKNOWN")
    assert _pull(client, repo, "two").content == image.manifest
    assert _pull(client, repo, image.digest).content == image.manifest
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["two"]


def test_delete_of_unknown_manifest_is_404(client: httpx.Client, repo: str) -> None:
    push_image(client, repo, tag="x")
    assert_error(client.delete(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/{sha256(b'nope')}"), 404,
                 "MANIFEST_UNKNOWN")
    assert client.delete(f"/v2/{unique_repo()}/manifests/x").status_code == 404


def test_put_by_digest_with_tag_parameters_tags_it(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag=None)
    r = put_manifest(client, repo, image.digest, image.manifest, image.media_type,
                     params=[("tag", "a"), ("tag", "b")])
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == image.digest
    assert sorted(client.get(f"/v2/{repo}/tags/list").json()["tags"]) == ["a", "b"]
    for tag in ("a", "b"):
        assert _pull(client, repo, tag).content == image.manifest


def test_put_by_digest_with_tag_parameters_answers_oci_tag(client: httpx.Client,
                                                           repo: str) -> None:
    """end-7b: each applied tag is echoed as `OCI-Tag`, so a client knows it was applied."""
    image = push_image(client, repo, tag=None)
    r = put_manifest(client, repo, image.digest, image.manifest, image.media_type,
                     params=[("tag", "a"), ("tag", "b")])
    assert r.status_code == 201
    echoed = [v.strip() for v in ",".join(r.headers.get_list("oci-tag")).split(",") if v.strip()]
    assert sorted(echoed) == ["a", "b"], r.headers


def test_put_with_an_invalid_tag_parameter_tags_nothing(client: httpx.Client,
                                                        repo: str) -> None:
    image = push_image(client, repo, tag=None)
    r = put_manifest(client, repo, image.digest, image.manifest, image.media_type,
                     params=[("tag", "good"), ("tag", "-bad")])
    assert_error(r, 400, "MANIFEST_INVALID")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


# -- descriptor sizes must be the sizes of what they name ----------------------------------


def _with_size(descriptor_: dict[str, object], size: int) -> dict[str, object]:
    return {**descriptor_, "size": size}


def test_layer_with_a_wrong_size_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    """A descriptor's size is part of what a client verifies; a wrong one must not be stored
    (clients would fail the pull, or trust a size another tool then reads past)."""
    config, layer = canonical({"c": random_bytes(4).hex()}), random_bytes(300)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    for wrong in (299, 301, 0):
        body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": descriptor(OCI_CONFIG, config),
                          "layers": [_with_size(descriptor(OCI_LAYER, layer), wrong)]})
        r = put_manifest(client, repo, "wrong", body, OCI_MANIFEST)
        assert_error(r, 400, "MANIFEST_INVALID")
        assert sha256(layer) in r.text and "300" in r.text, r.text
    assert_error(_pull(client, repo, "wrong"), 404, "MANIFEST_UNKNOWN")
    right, media_type = image_manifest(config, [layer])
    _push_ok(client, repo, "right", right, media_type)


def test_config_with_a_wrong_size_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, tag="first")  # its blobs are already in the repository
    body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": _with_size(descriptor(OCI_CONFIG, image.config),
                                           len(image.config) + 1),
                      "layers": [descriptor(OCI_LAYER, layer) for layer in image.layers]})
    assert_error(put_manifest(client, repo, "second", body, OCI_MANIFEST), 400,
                 "MANIFEST_INVALID")


def test_docker_manifest_with_a_wrong_layer_size_is_manifest_invalid(client: httpx.Client,
                                                                      repo: str) -> None:
    image = push_image(client, repo, tag=None, docker=True, layers=2)
    doc = json.loads(image.manifest)
    doc["layers"][1]["size"] += 7
    assert_error(put_manifest(client, repo, "docker", canonical(doc), DOCKER_MANIFEST), 400,
                 "MANIFEST_INVALID")


def test_mounted_blob_with_a_wrong_size_is_manifest_invalid(client: httpx.Client,
                                                            repo: str) -> None:
    """A blob that came from another repository (mounted, not uploaded here) is checked too."""
    source = push_image(client, unique_repo(), tag="v1")
    for blob in (source.config, *source.layers):
        r = client.post(f"/v2/{repo}/blobs/uploads/",
                        params={"mount": sha256(blob), "from": source.repo})
        assert r.status_code == 201, r.text
    doc = json.loads(source.manifest)
    doc["layers"][0]["size"] -= 1
    assert_error(put_manifest(client, repo, "v1", canonical(doc), OCI_MANIFEST), 400,
                 "MANIFEST_INVALID")
    _push_ok(client, repo, "v1", source.manifest, OCI_MANIFEST)


def test_index_child_with_a_wrong_size_is_manifest_invalid(client: httpx.Client,
                                                           repo: str) -> None:
    amd = push_image(client, repo, tag=None)
    arm = push_image(client, repo, tag=None)
    wrong = _with_size(arm.descriptor(), len(arm.manifest) - 1)
    body, media_type = index_manifest([amd.descriptor(), wrong])
    r = put_manifest(client, repo, "multi", body, media_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert arm.digest in r.text, r.text
    assert_error(_pull(client, repo, "multi"), 404, "MANIFEST_UNKNOWN")


def test_subject_with_a_wrong_size_is_manifest_invalid(client: httpx.Client, repo: str) -> None:
    subject = push_image(client, repo, tag="app")
    payload = random_bytes(50)
    assert push_blob(client, repo, EMPTY_JSON) == EMPTY_DIGEST
    push_blob(client, repo, payload)
    body = artifact_manifest("application/vnd.example.sbom",  [payload],
                             _with_size(subject.descriptor(), len(subject.manifest) + 10))
    assert_error(put_manifest(client, repo, sha256(body), body, OCI_MANIFEST), 400,
                 "MANIFEST_INVALID")
    # A subject the registry does not hold (yet) cannot be checked, and the spec lets a
    # referrer arrive before its subject.
    absent = {"mediaType": OCI_MANIFEST, "digest": sha256(b"not pushed yet"), "size": 123}
    later = artifact_manifest("application/vnd.example.sbom", [payload], absent)
    _push_ok(client, repo, sha256(later), later, OCI_MANIFEST)


def test_empty_config_with_a_wrong_size_is_manifest_invalid(client: httpx.Client,
                                                            repo: str) -> None:
    payload = random_bytes(20)
    push_blob(client, repo, payload)
    doc = json.loads(artifact_manifest("application/vnd.example.thing", [payload], None))
    doc["config"]["size"] = 3
    assert_error(put_manifest(client, repo, "thing", canonical(doc), OCI_MANIFEST), 400,
                 "MANIFEST_INVALID")


# -- references that are neither a tag nor a digest ----------------------------------------

# What the conformance suite asks for ("nonexistent manifest"), and others the grammar
# refuses; each is a manifest this repository cannot hold, which is what 404 says.
_NOT_A_REFERENCE = [".INVALID_MANIFEST_NAME", "-leading-dash", "x" * 129, "bad+plus",
                    "a:b:c", "sp ace"]


@pytest.mark.parametrize("reference", _NOT_A_REFERENCE)
def test_get_and_head_of_a_reference_that_is_no_tag_nor_digest_is_manifest_unknown(
        client: httpx.Client, repo: str, reference: str) -> None:
    """CNCF Distribution answers these 404 (no route matches); the OCI conformance suite's
    "nonexistent manifest" cases expect 404 with MANIFEST_UNKNOWN."""
    push_image(client, repo, tag="latest")
    path = f"/v2/{repo}/manifests/{quote(reference, safe=':')}"
    assert_error(client.get(path, headers={"Accept": OCI_MANIFEST}), 404, "MANIFEST_UNKNOWN")
    assert_error(client.head(path, headers={"Accept": OCI_MANIFEST}), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("reference", _NOT_A_REFERENCE)
def test_delete_of_a_reference_that_is_no_tag_nor_digest_is_manifest_unknown(
        client: httpx.Client, repo: str, reference: str) -> None:
    """Distribution v3.1.1 answers 404 to such a DELETE too; nothing is deleted."""
    image = push_image(client, repo, tag="latest")
    r = client.delete(f"/v2/{repo}/manifests/{quote(reference, safe=':')}")
    assert_error(r, 404, "MANIFEST_UNKNOWN")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest"]
    assert _pull(client, repo, image.digest).status_code == 200


def test_a_malformed_digest_reference_is_still_digest_invalid(client: httpx.Client,
                                                              repo: str) -> None:
    """A reference shaped like a digest whose algorithm or hex is wrong names no tag either;
    it stays 400 DIGEST_INVALID, as Distribution answers it."""
    push_image(client, repo, tag="latest")
    for reference in ("sha256:zz", "md5:" + "0" * 32):
        assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 400, "DIGEST_INVALID")
        assert_error(client.delete(f"/v2/{repo}/manifests/{reference}"), 400, "DIGEST_INVALID")
