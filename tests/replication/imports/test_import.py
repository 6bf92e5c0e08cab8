"""Imports from a real Distribution (htpasswd Basic auth behind TLS) into a real Moorage:
a whole registry of 200 repositories, one namespace, a list of repositories, into a prefix;
bad input that fails clearly; the edition switch; audit entries."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from tests.remote.conftest import Distribution
from tests.replication.imports.conftest import moorage
from tests.replication.imports.helpers import (BULK, Seeded, digests_at, expected, show,
                                               source_auth, start_import, wait_finished)
from tests.replication.rules.conftest import BASIC_USER
from tests.replication.rules.helpers import api
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    server = moorage(tmp_path_factory.mktemp("import-whole"))
    yield server
    server.kill()


@pytest.mark.slow
def test_a_whole_registry_of_200_repositories_is_imported(
        whole: MoorageServer, distribution: Distribution, seeded: Seeded, authority) -> None:  # type: ignore[no-untyped-def]
    assert len(seeded.images) == 200
    started = start_import(whole, url=distribution.url, **source_auth(str(authority.ca_file)))
    assert started["status"] in ("pending", "running") and started["has_password"]
    done = wait_finished(whole, started["id"])
    assert done["status"] == "succeeded", done
    assert (done["repositories_done"], done["repositories_total"]) == (200, 200)
    assert (done["tags_done"], done["tags_total"]) == (200, 200)
    assert done["errors"] == [] and done["repositories_failed"] == done["tags_failed"] == 0
    # every blob was fetched once: the bytes are exactly the images' blobs
    assert done["bytes"] == sum(seeded.sizes.values())
    assert asyncio.run(digests_at(whole, seeded.images)) == expected(seeded.images)
    log = api(whole, "GET", f"/imports/{started['id']}/log").json()["log"]
    assert "200 repositories to import" in log and "bulk/app-042" in log
    assert source_auth(str(authority.ca_file))["password"] not in log
    listed = api(whole, "GET", "/imports").json()
    assert listed[0]["id"] == started["id"] and listed[0]["status"] == "succeeded"
    # audit entries: who started it, what it wrote (as the import), how it ended
    actor = f"import:{started['id']}"
    created = _audit(whole, action="import.create")
    assert created[0]["actor"] == "admin" and created[0]["result"] == "success"
    ended = _audit(whole, action="import.succeeded")
    assert ended[0]["actor"] == actor and ended[0]["detail"]["repositories"] == 200
    pushes = _audit(whole, action="push", actor=actor)
    assert pushes and all(e["repository"] in seeded.images for e in pushes)


def _audit(server: MoorageServer, **query: str) -> list[dict]:
    """The audit entries that match (written a moment after the event: waited for)."""
    deadline = time.monotonic() + 60
    while True:
        entries = api(server, "GET", "/audit", params=query).json()["entries"]
        if entries or time.monotonic() > deadline:
            return entries  # type: ignore[no-any-return]
        time.sleep(0.2)


def test_a_namespace_is_imported_into_a_prefix(importer: MoorageServer,
                                               distribution: Distribution, seeded: Seeded,
                                               authority) -> None:  # type: ignore[no-untyped-def]
    job = start_import(importer, url=distribution.url, namespace="team", into="ns",
                       **source_auth(str(authority.ca_file)))
    done = wait_finished(importer, job["id"])
    assert done["status"] == "succeeded", done
    team = seeded.named("team")
    assert (done["repositories_done"], done["tags_done"]) == (len(team), len(team))
    assert asyncio.run(digests_at(importer, team, "ns/")) == expected(team)
    others = {k: v for k, v in seeded.images.items() if k in ("other/a", "bulk/app-001")}
    assert asyncio.run(digests_at(importer, others, "ns/")) == {k: None for k in others}
    items = api(importer, "GET", f"/imports/{job['id']}/items").json()
    assert {i["repository"] for i in items} == set(team)
    assert all(i["state"] == "done" for i in items)


def test_a_list_of_repositories_is_imported(importer: MoorageServer,
                                            distribution: Distribution, seeded: Seeded,
                                            authority) -> None:  # type: ignore[no-untyped-def]
    wanted = ["other/b", "bulk/app-007"]
    job = start_import(importer, url=distribution.url, repositories=wanted, into="listed",
                       **source_auth(str(authority.ca_file)))
    done = wait_finished(importer, job["id"])
    assert done["status"] == "succeeded", done
    assert done["repositories"] == wanted and done["repositories_total"] == 2
    chosen = {k: seeded.images[k] for k in wanted}
    assert asyncio.run(digests_at(importer, chosen, "listed/")) == expected(chosen)
    assert done["bytes"] == sum(seeded.sizes[k] for k in wanted)


def test_a_missing_repository_is_an_item_error_and_the_rest_goes_on(
        importer: MoorageServer, distribution: Distribution, seeded: Seeded,
        authority) -> None:  # type: ignore[no-untyped-def]
    job = start_import(importer, url=distribution.url, repositories=["team/a", "no/such"],
                       into="partly", **source_auth(str(authority.ca_file)))
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "the rest was imported" in done["message"], done
    assert done["repositories_done"] == 1 and done["repositories_failed"] == 1
    assert [e["item"] for e in done["errors"]] == ["no/such"]
    assert "no/such" in done["errors"][0]["error"]
    team_a = {"team/a": seeded.images["team/a"]}
    assert asyncio.run(digests_at(importer, team_a, "partly/")) == expected(team_a)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("fields, status, words", [
    ({"url": "ftp://example.com"}, 400, "http(s)://host"),
    ({"url": "https://user:pw@example.com"}, 400, "not in the URL"),
    ({"url": "http://registry.example.com"}, 400, "plain http"),
    ({"url": "https://example.com/path"}, 400, "no path"),
    ({"url": "https://example.com", "namespace": "a", "repositories": ["b"]}, 400,
     "not both"),
    ({"url": "https://example.com", "repositories": ["UPPER"]}, 400, "not a valid"),
    ({"url": "https://example.com", "into": "Bad Prefix"}, 400, "not a valid"),
    ({"url": "https://example.com", "username": "u"}, 400, "both a username"),
    ({"url": "https://example.com", "kind": "quay"}, 422, "kind"),
])
def test_bad_input_is_refused_clearly(importer: MoorageServer, fields: dict, status: int,
                                      words: str) -> None:
    reply = api(importer, "POST", "/imports", json=fields)
    assert reply.status_code == status, reply.text
    assert words in reply.text


def test_an_unreachable_source_fails_with_the_reason(importer: MoorageServer) -> None:
    job = start_import(importer, url=f"http://127.0.0.1:{_closed_port()}")
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "connection failed" in done["message"], done


def test_refused_credentials_fail_at_once_with_the_reason(
        importer: MoorageServer, distribution: Distribution, authority) -> None:  # type: ignore[no-untyped-def]
    job = start_import(importer, url=distribution.url, username=BASIC_USER,
                       password="not-the-password-5521", ca_pem=authority.ca_file.read_text())
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "refused" in done["message"], done
    assert "not-the-password-5521" not in str(done)
    log = api(importer, "GET", f"/imports/{job['id']}/log").json()["log"]
    assert "attempt 2" not in log  # a refusal is not retried
    assert "not-the-password-5521" not in log


def test_an_untrusted_certificate_fails_with_the_reason(
        importer: MoorageServer, distribution: Distribution) -> None:
    job = start_import(importer, url=distribution.url, repositories=["team/a"])
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "not trusted" in done["message"], done


def test_cancel_stops_a_running_import_and_keeps_what_is_done(
        importer: MoorageServer, distribution: Distribution, seeded: Seeded,
        authority) -> None:  # type: ignore[no-untyped-def]
    # 64 KiB/s: about 2.5 s a repository, so it is still running when cancelled
    job = start_import(importer, url=distribution.url, namespace="bulk", into="cancelled",
                       bandwidth=64 << 10, **source_auth(str(authority.ca_file)))
    deadline = time.monotonic() + 300
    while show(importer, job["id"])["repositories_done"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = api(importer, "POST", f"/imports/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert "cancelled by admin" in cancelled.json()["message"]
    again = api(importer, "POST", f"/imports/{job['id']}/cancel")
    assert again.status_code == 400 and "already ended" in again.text
    # the running job notices before its next item (or blob) and stops, saying so in a line
    # of its own (each copied tag's line names its destination, cancelled/bulk/...: any
    # "cancelled" in the log was there before the job stopped)
    while not any(line.split(" ", 1)[-1] == "cancelled" for line in api(
            importer, "GET", f"/imports/{job['id']}/log").json()["log"].splitlines()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stopped = show(importer, job["id"])
    assert stopped["status"] == "cancelled" and 1 <= stopped["repositories_done"] < BULK
    time.sleep(3)
    assert show(importer, job["id"])["tags_done"] == stopped["tags_done"]
    kept = {k: seeded.images[k] for k in ("bulk/app-000",)}
    assert asyncio.run(digests_at(importer, kept, "cancelled/")) == expected(kept)
    missing = api(importer, "POST", "/imports/999999/cancel")
    assert missing.status_code == 404


def test_the_personal_edition_refuses_imports(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = moorage(tmp_path_factory.mktemp("import-personal"), MOORAGE_EDITION="personal")
    try:
        reply = api(server, "POST", "/imports", json={"url": "https://example.com"})
        assert reply.status_code == 403, reply.text
        assert "basic or advanced edition" in reply.text and "personal" in reply.text
        assert api(server, "GET", "/imports").status_code == 403
    finally:
        server.kill()
