"""Digests: what parses, what is refused, and that valid digests round-trip exactly."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moorage.oci.digest import ALGORITHMS, Digest, digest_of, is_digest, parse_digest
from moorage.oci.errors import RegistryError

HEX = "0123456789abcdef"


@given(st.binary(max_size=512))
def test_any_sha256_of_content_parses_and_round_trips(data: bytes) -> None:
    value = "sha256:" + hashlib.sha256(data).hexdigest()
    parsed = parse_digest(value)
    assert parsed == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert str(parsed) == value


@given(st.text(st.sampled_from(HEX), min_size=64, max_size=64))
def test_any_64_lowercase_hex_is_a_sha256_digest(hexpart: str) -> None:
    assert str(parse_digest(f"sha256:{hexpart}")) == f"sha256:{hexpart}"


@given(st.text(st.sampled_from(HEX), min_size=128, max_size=128))
def test_any_128_lowercase_hex_is_a_sha512_digest(hexpart: str) -> None:
    parsed = parse_digest(f"sha512:{hexpart}")
    assert parsed.algorithm == "sha512" and parsed.hex == hexpart


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_is_digest_invalid(value: str) -> None:
    try:
        parsed = parse_digest(value)
    except RegistryError as exc:
        assert exc.code == "DIGEST_INVALID"
        assert exc.status == 400
    else:
        assert parsed.algorithm in ALGORITHMS
        assert len(parsed.hex) == ALGORITHMS[parsed.algorithm]
        assert set(parsed.hex) <= set(HEX)
        assert str(parsed) == value


@pytest.mark.parametrize("value", [
    "", ":", "sha256", "sha256:", ":" + "a" * 64,
    "sha256:" + "a" * 63, "sha256:" + "a" * 65,       # wrong length
    "sha256:" + "A" * 64,                             # uppercase hex is not canonical
    "sha256:" + "g" * 64,                             # not hex
    "sha512:" + "a" * 64,                             # sha512 needs 128 hex
    "md5:" + "a" * 32, "sha1:" + "a" * 40,            # algorithms a registry must not trust
    "SHA256:" + "a" * 64,
    "sha256:" + "a" * 64 + "\n",                      # trailing newline
    " sha256:" + "a" * 64, "sha256:" + "a" * 64 + " ",
    "sha256::" + "a" * 64, "sha256:" + "a" * 32 + ":" + "a" * 31,
    "sha256:" + "\u0661" * 64,                        # non-ASCII digits
])
def test_malformed_digests_are_digest_invalid(value: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_digest(value)
    assert info.value.code == "DIGEST_INVALID"


def test_huge_input_is_refused_quickly() -> None:
    with pytest.raises(RegistryError):
        parse_digest("sha256:" + "a" * 100_000)


def test_digest_of_matches_hashlib() -> None:
    assert digest_of(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert digest_of(b"abc", "sha512") == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    assert digest_of(b"{}") == ("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f6"
                                "1caaff8a")


def test_hasher_matches_the_algorithm() -> None:
    d = parse_digest(digest_of(b"x", "sha512"))
    h = d.hasher()
    h.update(b"x")
    assert h.hexdigest() == d.hex


@pytest.mark.parametrize("reference,expected", [
    ("latest", False), ("v1.0", False), ("sha256:" + "a" * 64, True), ("sha256:bad", True)])
def test_is_digest_tells_references_apart(reference: str, expected: bool) -> None:
    """A reference with a colon is a digest (tags cannot contain one), valid or not."""
    assert is_digest(reference) is expected
