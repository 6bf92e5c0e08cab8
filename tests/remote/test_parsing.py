"""The remote client's pure parts: challenges, scopes, Link headers, upload ranges, backoff
and Retry-After, configuration checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moorage.remote import RemoteConfig, RemoteConfigError, RetryPolicy
from moorage.remote.auth import (TokenCache, covers, merge_scopes, parse_challenges,
                                 pick_challenge, repository_scope)
from moorage.remote.blobs import parse_range_end
from moorage.remote.client import next_link
from moorage.remote.retry import backoff, retry_after


def test_challenges_with_quoted_commas_and_several_schemes() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:library/alpine:pull,push repository:x/y:pull", '
              'Basic realm="a \\"quoted\\" realm"')
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.docker.io/token"
    assert bearer.service == "registry.docker.io"
    assert bearer.scopes == (repository_scope("library/alpine", "pull", "push"),
                             repository_scope("x/y", "pull"))
    assert basic.scheme == "basic" and basic.realm == 'a "quoted" realm'
    assert pick_challenge(header) == bearer
    assert pick_challenge('Basic realm=moorage').scheme == "basic"
    assert pick_challenge("") is None and pick_challenge("=,=garbage") is None


def test_scope_registry_ports_and_coverage() -> None:
    scopes = merge_scopes([repository_scope("a", "pull"), repository_scope("a", "push"),
                           repository_scope("b", "pull")])
    assert scopes == (repository_scope("a", "pull", "push"), repository_scope("b", "pull"))
    assert covers(scopes, (repository_scope("a", "pull"),))
    assert not covers((repository_scope("a", "pull"),), (repository_scope("a", "push"),))
    cache = TokenCache()
    cache.add((repository_scope("a", "pull", "push"),), "T", expires_at=100.0)
    assert cache.find((repository_scope("a", "pull"),), now=99.0) == "T"
    assert cache.find((repository_scope("a", "pull"),), now=100.0) is None
    assert len(cache) == 0


def test_link_headers() -> None:
    assert next_link(['</v2/_catalog?last=b&n=2>; rel="next"']) == "/v2/_catalog?last=b&n=2"
    assert next_link(['<https://x/a>; rel="prev", <https://x/b>; rel=next']) == "https://x/b"
    assert next_link(['<https://x/a>; rel="prev"']) is None and next_link([]) is None


def test_upload_ranges() -> None:
    assert parse_range_end("0-1023") == 1024
    assert parse_range_end("bytes=0-9") == 10
    assert parse_range_end("0-0") == 0
    assert parse_range_end(None) is None and parse_range_end("junk") is None


def test_backoff_and_retry_after() -> None:
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=4.0, max_retry_after=30.0)
    assert [backoff(policy, n, lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    assert [backoff(policy, n, lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_after("12", policy) == 12.0
    assert retry_after("3600", policy) == 30.0
    assert retry_after("Thu, 01 Jan 1970 00:00:10 GMT", policy, wall=lambda: 5.0) == 5.0
    assert retry_after("soon", policy) is None and retry_after(None, policy) is None


@pytest.mark.parametrize("url, message", [
    ("ftp://registry.example.com", "http(s)://"),
    ("https://registry.example.com/v2/", "no path"),
    ("https://registry.example.com?x=1", "no path"),
    ("https://user:pw@registry.example.com", "not in the URL"),
    ("http://registry.example.com", "plain http"),
])
def test_configurations_that_cannot_work_are_refused(url: str, message: str) -> None:
    with pytest.raises(RemoteConfigError, match=re.escape(message)) as refused:
        RemoteConfig(url).check()
    assert "user:pw" not in str(refused.value)


def test_half_credentials_and_missing_ca_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RemoteConfigError, match="both a username and a password"):
        RemoteConfig("https://r.example", username="u").check()
    with pytest.raises(RemoteConfigError, match="does not exist"):
        RemoteConfig("https://r.example", ca_file=tmp_path / "none.pem").check()
