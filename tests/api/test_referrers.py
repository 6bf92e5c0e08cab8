"""end-12a, end-12b: the referrers API that signatures, SBOMs and attestations hang off."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import (EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, Image, artifact_manifest,
                               assert_error, canonical, descriptor, index_manifest, push_blob,
                               push_image, put_manifest, random_bytes, sha256)

SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/vnd.example.sbom.v1"


def _attach(client: httpx.Client, repo: str, subject: Image, artifact_type: str,
            annotations: dict[str, str] | None = None) -> bytes:
    payload = random_bytes(64)
    push_blob(client, repo, payload)
    push_blob(client, repo, EMPTY_JSON)
    body = artifact_manifest(artifact_type, [payload], subject.descriptor(), annotations)
    r = put_manifest(client, repo, sha256(body), body, OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert r.headers["oci-subject"] == subject.digest
    return body


@pytest.fixture
def attached(client: httpx.Client, repo: str) -> tuple[Image, bytes, bytes]:
    subject = push_image(client, repo, tag="app")
    signature = _attach(client, repo, subject, SIGNATURE, {"org.example.signer": "alice"})
    sbom = _attach(client, repo, subject, SBOM, {"org.opencontainers.image.created": "2024"})
    return subject, signature, sbom


def _referrers(client: httpx.Client, repo: str, digest: str,
               **params: str) -> httpx.Response:
    r = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return r


def test_referrers_lists_every_artifact_with_type_and_annotations(
        client: httpx.Client, repo: str, attached: tuple[Image, bytes, bytes]) -> None:
    subject, signature, sbom = attached
    manifests = _referrers(client, repo, subject.digest).json()["manifests"]
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {sha256(signature), sha256(sbom)}
    assert by_digest[sha256(signature)] == {
        "mediaType": OCI_MANIFEST, "digest": sha256(signature), "size": len(signature),
        "artifactType": SIGNATURE, "annotations": {"org.example.signer": "alice"}}
    assert by_digest[sha256(sbom)]["artifactType"] == SBOM
    assert by_digest[sha256(sbom)]["size"] == len(sbom)
    assert by_digest[sha256(sbom)]["annotations"] == {"org.opencontainers.image.created": "2024"}


def test_referrers_filter_by_artifact_type(client: httpx.Client, repo: str,
                                           attached: tuple[Image, bytes, bytes]) -> None:
    subject, signature, _ = attached
    r = _referrers(client, repo, subject.digest, artifactType=SIGNATURE)
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sha256(signature)]
    r = _referrers(client, repo, subject.digest, artifactType="application/vnd.none")
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert r.json()["manifests"] == []


def test_unfiltered_referrers_do_not_claim_a_filter(client: httpx.Client, repo: str,
                                                    attached: tuple[Image, bytes, bytes]) -> None:
    subject, _, _ = attached
    assert "oci-filters-applied" not in _referrers(client, repo, subject.digest).headers


def test_referrers_of_unknown_subject_is_an_empty_index(client: httpx.Client,
                                                        repo: str) -> None:
    push_image(client, repo, tag="x")
    r = _referrers(client, repo, sha256(b"nothing refers to this"))
    assert r.json()["manifests"] == []


def test_referrers_in_unknown_repository_is_an_empty_index(client: httpx.Client) -> None:
    r = client.get(f"/v2/nobody/here/referrers/{sha256(b'x')}")
    assert r.status_code in (200, 404)
    if r.status_code == 200:
        assert r.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_artifact_pushed_before_its_subject_is_listed(client: httpx.Client, repo: str) -> None:
    """Registries must accept a referrer whose subject does not exist (yet)."""
    config = canonical({"future": True})
    body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                      "layers": []})
    future = Image(repo, body, OCI_MANIFEST, config)
    referrer = _attach(client, repo, future, SIGNATURE)
    listed = _referrers(client, repo, future.digest).json()["manifests"]
    assert [m["digest"] for m in listed] == [sha256(referrer)]


def test_referrer_without_artifact_type_uses_config_media_type(client: httpx.Client,
                                                               repo: str) -> None:
    """The spec: with no artifactType, the descriptor's artifactType is config.mediaType."""
    subject = push_image(client, repo, tag="app")
    config = b'{"kind":"legacy signature"}'
    push_blob(client, repo, config)
    body = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": descriptor("application/vnd.example.legacy.config", config),
                      "layers": [], "subject": subject.descriptor()})
    assert put_manifest(client, repo, sha256(body), body, OCI_MANIFEST).status_code == 201
    listed = _referrers(client, repo, subject.digest).json()["manifests"]
    assert listed[0]["artifactType"] == "application/vnd.example.legacy.config"


def test_index_with_subject_is_a_referrer(client: httpx.Client, repo: str) -> None:
    subject = push_image(client, repo, tag="app")
    child = push_image(client, repo, tag=None)
    body, media_type = index_manifest([child.descriptor()], subject=subject.descriptor(),
                                      artifactType="application/vnd.example.bundle")
    r = put_manifest(client, repo, "bundle", body, media_type)
    assert r.status_code == 201
    assert r.headers["oci-subject"] == subject.digest
    listed = _referrers(client, repo, subject.digest).json()["manifests"]
    assert listed == [{"mediaType": OCI_INDEX, "digest": sha256(body), "size": len(body),
                       "artifactType": "application/vnd.example.bundle"}]


def test_deleted_referrer_disappears(client: httpx.Client, repo: str,
                                     attached: tuple[Image, bytes, bytes]) -> None:
    subject, signature, sbom = attached
    assert client.delete(f"/v2/{repo}/manifests/{sha256(signature)}").status_code == 202
    listed = _referrers(client, repo, subject.digest).json()["manifests"]
    assert [m["digest"] for m in listed] == [sha256(sbom)]


def test_referrers_are_per_repository(client: httpx.Client, repo: str,
                                      attached: tuple[Image, bytes, bytes]) -> None:
    subject, _, _ = attached
    other = f"{repo}-elsewhere"
    push_image(client, other, tag="x")
    assert _referrers(client, other, subject.digest).json()["manifests"] == []


def test_manifest_without_subject_has_no_oci_subject_header(client: httpx.Client,
                                                            repo: str) -> None:
    image = push_image(client, repo, tag=None)
    r = put_manifest(client, repo, "again", image.manifest, image.media_type)
    assert r.status_code == 201
    assert "oci-subject" not in r.headers


def test_referrers_with_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/referrers/sha256:nothex"), 400, "DIGEST_INVALID")
    assert_error(client.get(f"/v2/{repo}/referrers/latest"), 400, "DIGEST_INVALID")
