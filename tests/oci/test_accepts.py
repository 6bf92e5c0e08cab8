"""Content negotiation: which stored manifest types a client's Accept headers admit."""

from __future__ import annotations

import pytest

from moorage.oci import mediatypes as mt
from moorage.oci.manifest import accepts


@pytest.mark.parametrize("media_type", sorted(mt.MANIFEST_TYPES))
def test_no_accept_admits_everything(media_type: str) -> None:
    """Old clients send no Accept at all and must still pull."""
    assert accepts([], media_type)
    assert accepts([""], media_type)


@pytest.mark.parametrize("wildcard", ["*/*", "application/*", "*/*;q=0.1"])
def test_wildcards_admit_everything(wildcard: str) -> None:
    assert accepts([wildcard], mt.OCI_INDEX)


def test_exact_type_is_admitted() -> None:
    assert accepts([mt.OCI_INDEX], mt.OCI_INDEX)
    assert accepts([mt.DOCKER_MANIFEST], mt.DOCKER_MANIFEST)


def test_index_is_not_admitted_by_an_image_only_accept() -> None:
    image_only = [f"{mt.OCI_MANIFEST}, {mt.DOCKER_MANIFEST}"]
    assert not accepts(image_only, mt.OCI_INDEX)
    assert not accepts(image_only, mt.DOCKER_LIST)
    assert accepts(image_only, mt.OCI_MANIFEST)


def test_types_in_one_comma_separated_header() -> None:
    assert accepts([f"{mt.OCI_MANIFEST},{mt.OCI_INDEX}"], mt.OCI_INDEX)


def test_types_across_several_headers() -> None:
    assert accepts([mt.OCI_MANIFEST, mt.DOCKER_LIST], mt.DOCKER_LIST)
    assert not accepts([mt.OCI_MANIFEST, mt.DOCKER_MANIFEST], mt.DOCKER_LIST)


def test_parameters_and_quality_values_are_ignored_for_matching() -> None:
    assert accepts([f"{mt.OCI_INDEX}; q=0.5"], mt.OCI_INDEX)
    assert accepts([f"  {mt.OCI_INDEX.upper()} ;q=1"], mt.OCI_INDEX)


def test_generic_json_only_is_a_legacy_client() -> None:
    assert accepts(["application/json"], mt.OCI_INDEX)
    assert not accepts([f"application/json, {mt.OCI_MANIFEST}"], mt.OCI_INDEX)


def test_unrelated_types_admit_nothing() -> None:
    assert not accepts(["text/html"], mt.OCI_MANIFEST)
