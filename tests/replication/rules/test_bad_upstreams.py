"""Pull rules from a registry that misbehaves: every execution fails with the reason, after
its bounded attempts (a never-answering upstream too, by its step timeout), and nothing
unverified is stored here. Edition and quota refusals name what is missing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.remote.conftest import Misbehaving
from tests.remote.misbehaving import LAYER_DIGEST, MANIFEST_DIGEST
from tests.replication.rules.conftest import moorage
from tests.replication.rules.helpers import (ADMIN, api, client_for, create_rule,
                                             manifest_digest, run, run_rule)
from tests.support.processes import wait_until
from tests.support.server import MoorageServer


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """Steps time out after 2 s of silence; an execution has 2 attempts."""
    server = moorage(tmp_path_factory.mktemp("repl-impatient"),
                     MOORAGE_REPLICATION_STEP_TIMEOUT="2", MOORAGE_REPLICATION_ATTEMPTS="2",
                     MOORAGE_QUOTA_SYNC_RULES="6")
    yield server
    server.kill()


def job_of(server: MoorageServer, execution: dict[str, Any]) -> dict[str, Any]:
    return api(server, "GET", f"/jobs/{execution['job_id']}").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("repository,reason", [
    ("garbage", "not a usable manifest"),
    ("wrongdigest", "hash to"),
    ("cutlayer", "bytes"),  # the layer ends early
    ("badlayer", "digest"),  # the layer's bytes are not its digest
    ("silent", "timed out"),  # never answers: the step timeout fails it
    ("looplayer", "redirect loop"),  # the layer redirects round in a circle
])
def test_a_bad_upstream_fails_the_execution_with_its_reason(
        impatient: MoorageServer, misbehaving: Misbehaving, repository: str,
        reason: str) -> None:
    create_rule(impatient, name=f"bad-{repository}", mode="pull", url=misbehaving.url,
                repositories=repository, tags="latest", destination_namespace="bad",
                on_event=False)
    execution = run_rule(impatient, f"bad-{repository}")
    assert execution["status"] == "failed", execution
    text = (execution["message"] + " ".join(e["error"] for e in execution["errors"])).lower()
    assert reason in text, execution
    assert execution["errors"][0]["artifact"] == f"{repository}:latest"
    # The handler marks the execution failed; its worker marks the job a moment later, once
    # the handler has returned.
    wait_until(lambda: job_of(impatient, execution)["status"] != "running", bound=120)
    job = job_of(impatient, execution)
    assert job["status"] == "failed" and job["attempts"] == 2  # retried, within its bound

    async def nothing_stored() -> None:
        async with client_for(impatient, *ADMIN) as client:
            assert await manifest_digest(client, f"bad/{repository}", "latest") is None
            assert await manifest_digest(client, f"bad/{repository}", MANIFEST_DIGEST) is None
            # the layer never verified is not there (a verified config may be: it is good)
            assert await client.blob_size(f"bad/{repository}", LAYER_DIGEST) is None
    run(nothing_stored())


def test_quota_and_bad_input(impatient: MoorageServer, misbehaving: Misbehaving) -> None:
    existing = len(api(impatient, "GET", "/replication/rules").json())
    for n in range(6 - existing):
        create_rule(impatient, name=f"fill-{n}", mode="pull", url=misbehaving.url,
                    repositories="good", tags="latest", on_event=False)
    refused = api(impatient, "POST", "/replication/rules",
                  json={"name": "one-too-many", "mode": "pull", "url": misbehaving.url})
    assert refused.status_code == 403, refused.text
    assert "sync_rules" in refused.text and "6" in refused.text
    for body, words in (
            ({"name": "Bad Name", "mode": "push", "url": misbehaving.url}, "rule name"),
            ({"name": "x", "mode": "sideways", "url": misbehaving.url}, "mode"),
            ({"name": "x", "mode": "push", "url": "ftp://example.com"}, "url"),
            ({"name": "x", "mode": "push", "url": "http://example.com"}, "insecure"),
            ({"name": "x", "mode": "push", "url": misbehaving.url, "cron": "every day"},
             "cron"),
            ({"name": "x", "mode": "push", "url": misbehaving.url, "username": "u"},
             "password"),
            ({"name": "x", "mode": "push", "url": misbehaving.url, "bandwidth": 10},
             "bandwidth"),
            ({"name": "x", "mode": "push", "url": misbehaving.url, "tags": "{a,b"},
             "unclosed")):
        reply = api(impatient, "POST", "/replication/rules", json=body)
        assert reply.status_code in (400, 403, 422), (body, reply.text)
        assert words in reply.text.lower() or reply.status_code == 403, (body, reply.text)
    assert api(impatient, "GET", "/replication/rules/no-such-rule").status_code == 404
    anonymous = api(impatient, "GET", "/replication/rules", auth=None)
    assert anonymous.status_code == 401


def test_editions_without_replication_name_the_edition(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    server = moorage(tmp_path_factory.mktemp("repl-basic"), MOORAGE_EDITION="basic")
    try:
        reply = api(server, "GET", "/replication/rules")
        assert reply.status_code == 403 and "advanced edition" in reply.text, reply.text
    finally:
        server.kill()
