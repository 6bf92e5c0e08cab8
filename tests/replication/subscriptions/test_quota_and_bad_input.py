"""The edition's quota `artifact_subscriptions` (personal: none, basic: 5), held by the
database even against concurrent creates on two workers; bad filters refused with the
reason; an unreachable upstream fails the execution with the reason, after its retries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOMY, SECURED
from tests.remote.conftest import Distribution
from tests.replication.rules.conftest import REPLICATION
from tests.replication.rules.helpers import api
from tests.replication.subscriptions.helpers import create, run_subscription, subscription
from tests.support.certs import Authority
from tests.support.server import MoorageServer, free_port


def edition_server(folder: Path, edition: str, **env: str) -> MoorageServer:
    return MoorageServer(folder / "data", extra_args=["--workers", "2"],
                         env={**SECURED, **ROOMY, **REPLICATION, "MOORAGE_EDITION": edition,
                              **env}).start()


def test_personal_edition_has_none(tmp_path: Path) -> None:
    server = edition_server(tmp_path, "personal")
    try:
        body = {"name": "p", "url": "https://registry.example", "upstream": "a/b",
                "repository": "c/d"}
        refused = api(server, "POST", "/subscriptions", json=body)
        assert refused.status_code == 403, refused.text
        assert "basic edition" in refused.text
        listed = api(server, "GET", "/subscriptions")
        assert listed.status_code == 403 and "basic edition" in listed.text
    finally:
        server.kill()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_basic_edition_quota_holds_against_concurrent_creates(tmp_path: Path,
                                                              backend: str) -> None:
    env = {}
    if backend == "postgresql":
        from tests.support.backends import shared
        env["MOORAGE_DATABASE_URL"] = shared().database(migrated=True).url()
    server = edition_server(tmp_path, "basic", **env)
    try:
        def attempt(number: int) -> int:
            body = {"name": f"q{number}", "url": "https://registry.example",
                    "upstream": "library/app", "repository": f"mirror/q{number}"}
            while True:  # 429: the password hashers are busy (24 logins at once)
                code = api(server, "POST", "/subscriptions", json=body).status_code
                if code != 429:
                    return code
                time.sleep(0.2)
        with ThreadPoolExecutor(24) as pool:  # two workers answer them
            codes = list(pool.map(attempt, range(24)))
        assert sorted(codes) == [201] * 5 + [403] * 19, codes
        assert len(api(server, "GET", "/subscriptions").json()) == 5
        refused = api(server, "POST", "/subscriptions", json={
            "name": "more", "url": "https://registry.example", "upstream": "a/b",
            "repository": "c/d"})
        assert refused.status_code == 403
        assert "artifact_subscriptions" in refused.text and "5" in refused.text
        # a delete frees a place
        taken = api(server, "GET", "/subscriptions").json()[0]["name"]
        assert api(server, "DELETE", f"/subscriptions/{taken}").status_code == 204
        assert api(server, "POST", "/subscriptions", json={
            "name": "more", "url": "https://registry.example", "upstream": "a/b",
            "repository": "c/d"}).status_code == 201
    finally:
        server.kill()


@pytest.mark.parametrize("kind,pattern,reason", [
    ("regex", "(a+)+$", "repetition inside a repetition"),
    ("regex", "[unclosed", "does not compile"),
    ("regex", r"(\d)\1", "backreference"),
    ("semver", ">=banana", "not a version"),
    ("semver", "^1 ||", "empty alternative"),
    ("glob", "{a,b", "unclosed"),
])
def test_bad_filters_are_refused_with_the_reason(primary: MoorageServer,
                                                 distribution: Distribution,
                                                 authority: Authority, kind: str,
                                                 pattern: str, reason: str) -> None:
    body = subscription(distribution, authority, "bad", "mirror/bad", filter_kind=kind,
                        filter=pattern)
    refused = api(primary, "POST", "/subscriptions", json=body)
    assert refused.status_code == 400, refused.text
    assert reason in refused.text


def test_bad_fields_and_unreachable_upstream(primary: MoorageServer,
                                             distribution: Distribution,
                                             authority: Authority) -> None:
    for field, value in (("repository", "no-namespace"), ("upstream", "Bad Name"),
                         ("cron", "every day"), ("keep_newest", 0), ("filter_kind", "xpath")):
        body = {**subscription(distribution, authority, "bad", "mirror/bad"), field: value}
        refused = api(primary, "POST", "/subscriptions", json=body)
        assert refused.status_code in (400, 422), (field, refused.text)
    # an upstream where nothing listens: the execution fails, saying why
    body = subscription(distribution, authority, "nowhere", "mirror/nowhere",
                        url=f"https://127.0.0.1:{free_port()}")
    create(primary, body)
    execution = run_subscription(primary, "nowhere")
    assert execution["status"] == "failed", execution
    assert "connect" in execution["message"].lower() or "refused" in \
        execution["message"].lower(), execution
    # an upstream repository that does not exist
    create(primary, subscription(distribution, authority, "missing", "mirror/missing",
                                 upstream="no/such-repository"))
    execution = run_subscription(primary, "missing")
    assert execution["status"] == "failed" and "no/such-repository" in execution["message"]
