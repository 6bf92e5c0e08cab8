"""The proxy's own rules without a server: the upstream name of a repository (Docker Hub's
library/ rewrite), the bounds of its settings, and the sealing of the upstream password."""

from __future__ import annotations

from pathlib import Path

import pytest

from moorage.access.errors import Invalid
from moorage.oci.errors import RegistryError
from moorage.replication.proxy.service import Settings, check_settings, check_ttl
from moorage.replication.proxy.source import ProxyConfig, ProxySource
from moorage.replication.proxy.store import SealError, seal, unseal
from moorage.store.keys import load_keyring


def _source(rewrite: bool) -> ProxySource:
    return ProxySource(ProxyConfig("hub", 300, rewrite, True, 0.0), None, None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name, rewrite, upstream", [
    ("hub/alpine", True, "library/alpine"),
    ("hub/alpine", False, "alpine"),
    ("hub/bitnami/redis", True, "bitnami/redis"),
    ("hub/a/b/c", False, "a/b/c"),
])
def test_upstream_names(name: str, rewrite: bool, upstream: str) -> None:
    assert _source(rewrite).upstream_name(name) == upstream


@pytest.mark.parametrize("name", ["hub", "hubx/alpine", "other/alpine"])
def test_a_name_outside_the_namespace_has_no_upstream(name: str) -> None:
    with pytest.raises(RegistryError) as caught:
        _source(True).upstream_name(name)
    assert caught.value.code == "NAME_UNKNOWN"


@pytest.mark.parametrize("settings, words", [
    (Settings("https://example.com/v2", None, None, None, False), "no path"),
    (Settings("http://example.com", None, None, None, False), "plain http"),
    (Settings("https://example.com", "u", None, None, False), "password"),
    (Settings("https://example.com", "u:x", "p", None, False), "':'"),
    (Settings("https://example.com", "u", "p\nq", None, False), "one line"),
    (Settings("https://example.com", None, None,
              "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", False), "PEM"),
])
def test_settings_that_cannot_work_are_refused(settings: Settings, words: str) -> None:
    with pytest.raises(Invalid, match=words):
        check_settings(settings)


def test_plain_http_is_for_loopback_or_insecure_upstreams() -> None:
    assert check_settings(Settings("http://127.0.0.1:5000/", None, None, None, False)).url == \
        "http://127.0.0.1:5000"
    assert check_settings(Settings("http://mirror.lan", None, None, None, True)).insecure


@pytest.mark.parametrize("ttl", [0, 9, 7 * 24 * 3600 + 1, True])
def test_the_ttl_is_bounded(ttl: int) -> None:
    with pytest.raises(Invalid):
        check_ttl(ttl)


def test_the_upstream_password_is_sealed_when_encryption_is_on(tmp_path: Path) -> None:
    keyring = load_keyring("", tmp_path, environ={})
    sealed = seal("hunter2-upstream", "hub", keyring)
    assert b"hunter2" not in sealed
    assert unseal(sealed, "hub", keyring) == "hunter2-upstream"
    with pytest.raises(SealError):
        unseal(sealed, "other", keyring)  # bound to its namespace's row
    with pytest.raises(SealError):
        unseal(sealed, "hub", None)
    assert unseal(seal("plain", "hub", None), "hub", None) == "plain"
