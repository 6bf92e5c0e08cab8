"""LDAP over TLS (ldaps:// and StartTLS) against a slapd whose certificate a CA made in the
test signed: the certificate is verified against ldap_ca_file and must name the host asked
for; a wrong CA or a wrong name is a clear sign-in error, never a silent plain connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sso.conftest import PASSWORDS, ldap_env, start_directory, token_answer
from tests.support.certs import Authority
from tests.support.ldap_server import PEOPLE, LdapServer
from tests.web.helpers import api

from moorage.access.identity import SignInUnavailable
from moorage.sso.ldap import LdapConfig, LdapDirectory


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("ldap-ca"))


@pytest.fixture(scope="module")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def tls_directory(authority: Authority) -> Iterator[LdapServer]:
    # its certificate names ldap.moorage.test and 127.0.0.1, not localhost
    server = start_directory(authority, cert_names=("ldap.moorage.test",))
    yield server
    server.stop()


def test_ldaps_with_the_directory_ca_signs_in(start_registry, tls_directory: LdapServer,
                                              authority: Authority) -> None:
    server = start_registry(ldap_env(tls_directory, url=tls_directory.ldaps_url,
                                     ca_file=str(authority.ca_file)))
    assert token_answer(server, "alice", PASSWORDS["alice"]).status_code == 200
    assert api(server, "GET", "/users/alice").json()["source"] == "ldap"
    assert token_answer(server, "alice", "wrong-password").status_code == 401


def test_starttls_with_another_ca_is_a_clear_error(start_registry, tls_directory: LdapServer,
                                                   other_authority: Authority) -> None:
    server = start_registry(ldap_env(tls_directory, starttls="true",
                                     ca_file=str(other_authority.ca_file)))
    refused = token_answer(server, "alice", PASSWORDS["alice"])
    assert refused.status_code == 401
    message = refused.json()["errors"][0]["message"]
    assert "certificate" in message and "could not be verified" in message, message
    assert "admin" in api(server, "GET", "/user").json()["username"]  # local still works


def _directory(url: str, ca: Path, starttls: bool = False) -> LdapDirectory:
    return LdapDirectory(LdapConfig(url=url, user_base=PEOPLE, starttls=starttls,
                                    ca_file=str(ca), cache_seconds=0))


def test_starttls_with_the_right_ca(tls_directory: LdapServer, authority: Authority) -> None:
    found = _directory(tls_directory.url, authority.ca_file, starttls=True).authenticate(
        "bob", PASSWORDS["bob"])
    assert found is not None and found.username == "bob"


def test_ldaps_with_another_ca_fails(tls_directory: LdapServer,
                                     other_authority: Authority) -> None:
    with pytest.raises(SignInUnavailable, match="could not be verified"):
        _directory(tls_directory.ldaps_url, other_authority.ca_file).authenticate(
            "bob", PASSWORDS["bob"])


def test_a_certificate_for_another_name_fails(tls_directory: LdapServer,
                                              authority: Authority) -> None:
    """The right CA, but the certificate names ldap.moorage.test and 127.0.0.1: asked for as
    localhost, the directory is not believed."""
    url = f"ldaps://localhost:{tls_directory.tls_port}"
    with pytest.raises(SignInUnavailable, match="does not name the host"):
        _directory(url, authority.ca_file).authenticate("bob", PASSWORDS["bob"])


def test_the_settings_refuse_ldaps_with_starttls_and_a_missing_ca_file(tmp_path: Path) -> None:
    from moorage.settings import SettingsError, load_settings

    base = {"ldap_url": "ldaps://127.0.0.1:1", "ldap_user_base": PEOPLE}
    with pytest.raises(SettingsError, match="exclude each other"):
        load_settings(environ={}, overrides={**base, "ldap_starttls": True})
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(environ={}, overrides={**base, "ldap_ca_file": str(tmp_path / "no.pem")})
    with pytest.raises(SettingsError, match="ldap_user_base"):
        load_settings(environ={}, overrides={"ldap_url": "ldap://127.0.0.1:1"})
