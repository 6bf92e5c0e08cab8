"""The rules a custom domain's pair must pass, and the sealing of its key (pure, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.domains.certs import PairError, check_pem, names_host, normal_host
from moorage.domains.store import SealError, seal, unseal
from moorage.store.keys import Keyring, generate_key
from tests.support.certs import Authority


@pytest.mark.parametrize("pattern, host, covered", [
    ("reg.example.com", "reg.example.com", True),
    ("REG.example.com", "reg.example.com", True),
    ("*.example.com", "reg.example.com", True),
    ("*.example.com", "example.com", False),  # a wildcard is one whole label, never none
    ("*.example.com", "a.b.example.com", False),
    ("reg.example.com", "other.example.com", False),
])
def test_a_certificate_name_covers_a_host_as_rfc_6125_says(pattern: str, host: str,
                                                           covered: bool) -> None:
    assert names_host(pattern, host) is covered


@pytest.mark.parametrize("given", ["", "a b", "-bad.example", "x" * 254, "reg_1.example",
                                   "reg.example.com/path", "ünï.example"])
def test_a_host_that_is_not_a_dns_name_is_refused(given: str) -> None:
    with pytest.raises(PairError, match="is not a host name"):
        normal_host(given)


def test_hosts_are_stored_lower_case_without_the_root_dot() -> None:
    assert normal_host(" Reg.Example.COM. ") == "reg.example.com"


def test_a_wildcard_certificate_serves_a_host_it_covers(tmp_path: Path) -> None:
    ca = Authority.make(tmp_path)
    cert, key, _ = ca.issue("wild", ["*.example.test"])
    info = check_pem("reg.example.test", cert.read_bytes(), key.read_bytes())
    assert info.names == ("*.example.test",)
    with pytest.raises(PairError, match="does not name example.test"):
        check_pem("example.test", cert.read_bytes(), key.read_bytes())


def test_an_encrypted_or_oversized_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    ca = Authority.make(tmp_path)
    cert, _, _ = ca.issue("enc", ["reg.example.test"])
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    with pytest.raises(PairError, match="the key is encrypted"):
        check_pem("reg.example.test", cert.read_bytes(), encrypted)
    with pytest.raises(PairError, match="at most 64 KiB"):
        check_pem("reg.example.test", cert.read_bytes() * 200, encrypted)


def test_a_sealed_key_opens_only_for_its_host_and_with_the_master_key() -> None:
    keyring = Keyring.from_environment(generate_key())
    pem = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"
    sealed = seal(pem, "reg.example.test", keyring)
    assert b"secret" not in sealed
    assert unseal(sealed, "reg.example.test", keyring) == pem
    with pytest.raises(SealError, match="cannot be opened"):
        unseal(sealed, "other.example.test", keyring)  # moved to another row
    with pytest.raises(SealError, match="encryption at rest is off"):
        unseal(sealed, "reg.example.test", None)
    other = Keyring.from_environment(generate_key())
    with pytest.raises(SealError, match="cannot be opened"):
        unseal(sealed, "reg.example.test", other)
    assert seal(pem, "reg.example.test", None) == pem  # without encryption: as given
