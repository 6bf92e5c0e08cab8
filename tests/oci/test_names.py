"""Repository names and tags against the distribution spec's own regular expressions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.errors import RegistryError
from moorage.oci.names import (MAX_NAME_LENGTH, check_name, check_tag, is_valid_tag,
                               lookup_kind)

# Straight from the spec text; `fullmatch` so that nothing (not even "\n") may trail.
SPEC_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

_component = st.from_regex(r"\A[a-z0-9]{1,4}((\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}\Z")


def _name_accepted(name: str) -> bool:
    try:
        assert check_name(name) == name
    except RegistryError as exc:
        assert exc.code == "NAME_INVALID" and exc.status == 400
        return False
    return True


def _tag_accepted(tag: str) -> bool:
    try:
        assert check_tag(tag) == tag
    except RegistryError as exc:
        assert exc.code == "MANIFEST_INVALID" and exc.status == 400
        return False
    assert is_valid_tag(tag)
    return True


@given(st.lists(_component, min_size=1, max_size=6).map("/".join))
def test_names_built_from_the_grammar_are_accepted(name: str) -> None:
    assert _name_accepted(name) == (len(name) <= MAX_NAME_LENGTH)


@given(st.text(st.sampled_from("ab0._-/A\n :"), max_size=40))
def test_names_are_accepted_exactly_when_the_spec_regex_matches(name: str) -> None:
    expected = bool(SPEC_NAME.fullmatch(name)) and len(name) <= MAX_NAME_LENGTH
    assert _name_accepted(name) == expected, repr(name)


@pytest.mark.parametrize("name", ["a", "a/b/c", "a.b", "a_b", "a__b", "a-b", "a---b",
                                  "0", "library/ubuntu", "x" * 255])
def test_valid_names(name: str) -> None:
    assert _name_accepted(name)


@pytest.mark.parametrize("name", ["", "A", "a/B", "a..b", "a/../b", "../a", "a/./b", "a//b",
                                  "/a", "a/", "-a", "a-", "_a", "a_", "a___b", "a.-b",
                                  "a b", "a:b", "é", "x" * 256, "a\n", "a\nb", "\na"])
def test_invalid_names(name: str) -> None:
    assert not _name_accepted(name), repr(name)


@given(st.text(st.sampled_from("aZ9_.-+:/ \n\t"), max_size=140))
def test_tags_are_accepted_exactly_when_the_spec_regex_matches(tag: str) -> None:
    assert _tag_accepted(tag) == bool(SPEC_TAG.fullmatch(tag)), repr(tag)


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_private", "1", "A-B_c.d",
                                 "a" * 128, "UPPER"])
def test_valid_tags(tag: str) -> None:
    assert _tag_accepted(tag)


@pytest.mark.parametrize("tag", ["", "-a", ".a", "a" * 129, "a+b", "a:b", "a/b", "a b",
                                 "latest\n", "\nlatest", "é"])
def test_invalid_tags(tag: str) -> None:
    assert not _tag_accepted(tag), repr(tag)


@pytest.mark.parametrize("reference,kind", [
    ("latest", "tag"), ("v1.0_rc-2", "tag"), ("x" * 128, "tag"),
    ("sha256:" + "a" * 64, "digest"),
    ("sha256:zz", "digest"),          # shaped like one: parse_digest says DIGEST_INVALID
    ("md5:" + "0" * 32, "digest"),
])
def test_lookup_kind_of_tags_and_digests(reference: str, kind: str) -> None:
    assert lookup_kind(reference) == kind


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "-dash", "x" * 129, "a:b:c",
                                       "sp ace", "", "bad+plus", "Sha256:abc"])
def test_a_reference_that_is_neither_names_no_manifest(reference: str) -> None:
    with pytest.raises(RegistryError) as refused:
        lookup_kind(reference)
    assert refused.value.code == "MANIFEST_UNKNOWN" and refused.value.status == 404
