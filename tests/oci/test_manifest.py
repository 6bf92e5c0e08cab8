"""Manifest parsing: types, references, refusals, and robustness against any input."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.oci import mediatypes as mt
from moorage.oci.errors import RegistryError
from moorage.oci.manifest import Manifest, parse_manifest


def _d(media_type: str, seed: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


CONFIG = _d(mt.OCI_CONFIG, "config")
LAYER = _d("application/vnd.oci.image.layer.v1.tar+gzip", "layer")
CHILD = _d(mt.OCI_MANIFEST, "child", platform={"os": "linux", "architecture": "amd64"})


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _invalid(body: bytes, content_type: str | None = mt.OCI_MANIFEST) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        parse_manifest(body, content_type)
    assert info.value.code == "MANIFEST_INVALID"
    assert info.value.status == 400
    return info.value


def test_oci_image_manifest_lists_config_and_layers() -> None:
    m = parse_manifest(_body({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                              "config": CONFIG, "layers": [LAYER]}), mt.OCI_MANIFEST)
    assert m.media_type == mt.OCI_MANIFEST
    assert [d.digest for d in m.blobs] == [CONFIG["digest"], LAYER["digest"]]
    assert m.children == ()
    assert m.subject is None
    assert not m.is_index
    # Without artifactType, referrers report the config's media type (spec rule).
    assert m.artifact_type == mt.OCI_CONFIG


def test_docker_schema2_manifest() -> None:
    m = parse_manifest(_body({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                              "config": _d("application/vnd.docker.container.image.v1+json", "c"),
                              "layers": [_d("application/vnd.docker.image.rootfs.diff.tar.gzip",
                                            "l")]}), mt.DOCKER_MANIFEST)
    assert m.media_type == mt.DOCKER_MANIFEST
    assert len(m.blobs) == 2


def test_foreign_layers_are_not_required_blobs() -> None:
    """Windows base layers live on Microsoft's servers; the registry never holds them."""
    foreign = _d(mt.DOCKER_FOREIGN_LAYER, "foreign", urls=["https://example.com/l"])
    m = parse_manifest(_body({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
                              "config": CONFIG, "layers": [foreign, LAYER]}), mt.DOCKER_MANIFEST)
    assert [d.digest for d in m.blobs] == [CONFIG["digest"], LAYER["digest"]]


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_LIST])
def test_indexes_list_children_not_blobs(media_type: str) -> None:
    m = parse_manifest(_body({"schemaVersion": 2, "mediaType": media_type,
                              "manifests": [CHILD]}), media_type)
    assert m.media_type == media_type
    assert m.is_index
    assert m.blobs == ()
    assert [d.digest for d in m.children] == [CHILD["digest"]]


def test_empty_index_is_valid() -> None:
    m = parse_manifest(_body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}),
                       mt.OCI_INDEX)
    assert m.children == ()


def test_artifact_with_subject_and_annotations() -> None:
    subject = _d(mt.OCI_MANIFEST, "subject")
    m = parse_manifest(_body({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2},
        "layers": [LAYER], "subject": subject, "annotations": {"k": "v"}}), mt.OCI_MANIFEST)
    assert m.artifact_type == "application/vnd.example.sig"
    assert m.subject is not None and m.subject.digest == subject["digest"]
    assert m.annotations == {"k": "v"}
    assert mt.EMPTY_DIGEST in [d.digest for d in m.blobs]


def test_media_type_may_come_from_the_body_alone() -> None:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [CHILD]}
    assert parse_manifest(_body(doc), None).media_type == mt.OCI_INDEX
    assert parse_manifest(_body(doc), "application/json").media_type == mt.OCI_INDEX


def test_media_type_may_come_from_the_header_alone() -> None:
    doc = {"schemaVersion": 2, "config": CONFIG, "layers": []}
    assert parse_manifest(_body(doc), mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST
    assert parse_manifest(_body(doc), f"{mt.OCI_MANIFEST}; charset=utf-8").media_type == \
        mt.OCI_MANIFEST


def test_shape_decides_when_nothing_declares_a_type() -> None:
    assert parse_manifest(_body({"schemaVersion": 2, "manifests": []}), None).is_index
    assert parse_manifest(_body({"schemaVersion": 2, "config": CONFIG}), None).media_type == \
        mt.OCI_MANIFEST


def test_header_and_body_types_must_agree() -> None:
    """A document read as one type by the registry and another by clients is an attack."""
    _invalid(_body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [CHILD]}),
             mt.OCI_MANIFEST)
    _invalid(_body({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG}),
             mt.DOCKER_MANIFEST)


@pytest.mark.parametrize("content_type,doc", [
    (mt.DOCKER_SCHEMA1_SIGNED, {"schemaVersion": 1, "fsLayers": []}),
    (mt.DOCKER_SCHEMA1, {"schemaVersion": 1, "fsLayers": []}),
    (None, {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}),
    (mt.OCI_MANIFEST, {"schemaVersion": 1, "config": CONFIG}),
    ("application/json", {"schemaVersion": 2, "mediaType": mt.DOCKER_SCHEMA1}),
])
def test_schema1_is_refused(content_type: str | None, doc: dict[str, Any]) -> None:
    _invalid(_body(doc), content_type)


@pytest.mark.parametrize("body", [
    b"", b"{", b"not json", b"\xff\xfe", b"[]", b"null", b"1", b'"s"',
    _body({"schemaVersion": 3, "config": CONFIG}),
    _body({"schemaVersion": "2", "config": CONFIG}),
    _body({"config": CONFIG}),
    _body({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}),
    _body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}),
    _body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": {}}),
    _body({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [1]}),
    _body({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": CONFIG}),
    _body({"schemaVersion": 2, "mediaType": "application/vnd.unknown+json", "config": CONFIG}),
    _body({"schemaVersion": 2, "mediaType": 7, "config": CONFIG}),
    _body({"schemaVersion": 2, "config": "x"}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "digest": "sha256:short"}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "digest": None}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "mediaType": ""}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "size": -1}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "size": 1.5}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "size": True}}),
    _body({"schemaVersion": 2, "config": {**CONFIG, "size": "10"}}),
    _body({"schemaVersion": 2, "config": CONFIG, "layers": "x"}),
    _body({"schemaVersion": 2, "config": CONFIG, "layers": [None]}),
    _body({"schemaVersion": 2, "config": CONFIG, "subject": "x"}),
    _body({"schemaVersion": 2, "config": CONFIG, "artifactType": 5}),
    _body({"schemaVersion": 2, "config": CONFIG, "annotations": []}),
    _body({"schemaVersion": 2}),
], ids=lambda b: b.decode("utf-8", "replace")[-48:])
def test_invalid_documents_are_manifest_invalid(body: bytes) -> None:
    _invalid(body)


def test_deeply_nested_json_is_manifest_invalid() -> None:
    """JSON nested beyond the parser's recursion limit is a refusal, not a crash."""
    _invalid(b"[" * 100_000 + b"]" * 100_000)
    _invalid(b'{"schemaVersion": 2, "annotations": ' + b'{"a":' * 100_000 + b"1"
             + b"}" * 100_001)


def test_huge_integer_is_manifest_invalid() -> None:
    _invalid(b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "'
             + CONFIG["digest"].encode() + b'", "size": ' + b"9" * 5000 + b"}}")


def _check_result_or_invalid(body: bytes, content_type: str | None) -> None:
    try:
        m = parse_manifest(body, content_type)
    except RegistryError as exc:
        assert exc.code == "MANIFEST_INVALID"
        return
    assert isinstance(m, Manifest)
    assert m.media_type in mt.MANIFEST_TYPES


_content_types = st.sampled_from([None, "", mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST,
                                  mt.DOCKER_LIST, mt.DOCKER_SCHEMA1, "application/json",
                                  "text/plain"])


@settings(max_examples=300)
@given(st.binary(max_size=400), _content_types)
def test_random_bytes_only_ever_raise_registry_error(body: bytes, content_type: str | None) -> None:
    _check_result_or_invalid(body, content_type)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10)
_descriptor_like = st.one_of(_json, st.fixed_dictionaries(
    {"mediaType": st.one_of(st.sampled_from(sorted(mt.MANIFEST_TYPES)), _json),
     "digest": st.one_of(st.just(CONFIG["digest"]), _json),
     "size": st.one_of(st.integers(-2, 2**70), _json)}))


@settings(max_examples=300)
@given(st.fixed_dictionaries(
    {"schemaVersion": st.one_of(st.just(2), _json)},
    optional={"mediaType": st.one_of(st.sampled_from(sorted(mt.MANIFEST_TYPES)), _json),
              "config": _descriptor_like, "layers": st.lists(_descriptor_like, max_size=3),
              "manifests": st.lists(_descriptor_like, max_size=3), "subject": _descriptor_like,
              "artifactType": _json, "annotations": _json}), _content_types)
def test_random_manifest_shapes_only_ever_raise_registry_error(
        doc: dict[str, Any], content_type: str | None) -> None:
    _check_result_or_invalid(_body(doc), content_type)


def test_one_digest_with_two_sizes_is_manifest_invalid() -> None:
    """Content has one size; two descriptors of one digest that disagree cannot both be right."""
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG,
           "layers": [LAYER, {**LAYER, "size": LAYER["size"] + 1}]}
    assert LAYER["digest"] in _invalid(_body(doc)).message
    same = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": CONFIG,
            "layers": [LAYER, LAYER]}
    assert len(parse_manifest(_body(same), mt.OCI_MANIFEST).blobs) == 3
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
             "manifests": [CHILD, {**CHILD, "size": 99}]}
    _invalid(_body(index), mt.OCI_INDEX)


def test_empty_descriptor_must_have_the_empty_size() -> None:
    """The empty JSON blob is `{}`: two bytes, whatever a manifest claims."""
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 3},
           "layers": [LAYER]}
    assert "2" in _invalid(_body(doc)).message
