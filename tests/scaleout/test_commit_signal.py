"""The pull path's answers cached in every replica's workers are never older than the last
acknowledged change, made on any replica or by any other process on the database.

Two replicas of 2 workers each share one PostgreSQL database. Each test first asks replica B
the same thing several times over fresh connections (so that its workers have the answer
cached), changes it through replica A (or another process), and asks B again at once: every
answer must already be the new one. Caching is checked too: the shared commit signal
(`commit_signal`, db/changes.py) must not change on reads and bookkeeping alone, or the caches
would be emptied on every pull.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.access.helpers import ADMIN, api
from tests.conftest import ROOMY, SECURED
from tests.lifecycle.helpers import OCI_MANIFEST, make_image, pull, push
from tests.support.scaleout import ScaleOut
from tests.support.server import MoorageServer

pytestmark = pytest.mark.skipif("scaleout" not in os.environ.get(
    "MOORAGE_TEST_BACKENDS", "embedded,scaleout"), reason="scale-out backend not selected")

ASKED = 6  # requests over fresh connections: each worker of a replica is likely to get some


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    root: Path = tmp_path_factory.mktemp("commit-signal")
    cluster = ScaleOut(root, env={**SECURED, **ROOMY, "MOORAGE_WORKERS": "2"})
    try:
        yield cluster.start(replicas=2)
    finally:
        cluster.stop()


def _manifest(replica: MoorageServer, repo: str, reference: str,
              auth: tuple[str, str] | None = ADMIN) -> httpx.Response:
    """One GET on a connection of its own (httpx.get opens one per call)."""
    return httpx.get(f"{replica.url}/v2/{repo}/manifests/{reference}", auth=auth,
                     headers={"Accept": OCI_MANIFEST}, timeout=60)


def _statuses(replica: MoorageServer, repo: str, reference: str,
              auth: tuple[str, str] | None = ADMIN) -> set[int]:
    return {_manifest(replica, repo, reference, auth).status_code for _ in range(ASKED)}


def _signal(cluster: ScaleOut) -> bytes:
    assert cluster.postgres is not None
    engine = create_engine(cluster.postgres.url().replace("postgresql://",
                                                           "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return bytes(conn.execute(text("SELECT value FROM commit_signal")).scalar_one())
    finally:
        engine.dispose()


def _push(replica: MoorageServer, repo: str, tag: str, label: str):  # type: ignore[no-untyped-def]
    image = make_image([os.urandom(1000)], label)
    with httpx.Client(base_url=replica.url, auth=ADMIN, timeout=60) as client:
        assert push(client, repo, tag, image).status_code == 201
    return image


def test_a_tag_moved_on_one_replica_is_pulled_at_its_new_digest_on_the_other(
        cluster: ScaleOut) -> None:
    a, b = cluster.replicas[:2]
    first = _push(a, "signal/moving", "latest", "first")
    for image in (_push(a, "signal/moving", "other", "second"), first,
                  _push(a, "signal/moving", "third", "third")):
        for _ in range(ASKED):  # B's workers keep what the tag named until now
            assert _manifest(b, "signal/moving", "latest").status_code == 200
        with httpx.Client(base_url=a.url, auth=ADMIN, timeout=60) as ca:
            assert push(ca, "signal/moving", "latest", image).status_code == 201
        seen = {_manifest(b, "signal/moving", "latest").headers["Docker-Content-Digest"]
                for _ in range(ASKED)}
        assert seen == {image.digest}
    with httpx.Client(base_url=b.url, auth=ADMIN, timeout=60) as cb:
        assert pull(cb, "signal/moving", "latest").digest == image.digest


def test_a_namespace_made_private_on_one_replica_refuses_anonymous_pulls_on_the_other(
        cluster: ScaleOut) -> None:
    a, b = cluster.replicas[:2]
    assert api(a, "POST", "/namespaces", json={"name": "opened",
                                               "visibility": "public"}).status_code == 201
    _push(a, "opened/app", "v1", "public")
    assert _statuses(b, "opened/app", "v1", auth=None) == {200}  # granted, and kept
    assert api(a, "PATCH", "/namespaces/opened",
               json={"visibility": "private"}).status_code == 200
    assert _statuses(b, "opened/app", "v1", auth=None) == {401}
    assert api(a, "PATCH", "/namespaces/opened",
               json={"visibility": "public"}).status_code == 200
    assert _statuses(b, "opened/app", "v1", auth=None) == {200}


def test_a_permission_revoked_on_one_replica_is_refused_on_the_other(cluster: ScaleOut) -> None:
    a, b = cluster.replicas[:2]
    _push(a, "guarded/app", "v1", "guarded")
    created = api(a, "POST", "/namespaces/guarded/robots", json={"name": "ci",
                                                                 "role": "guest"})
    assert created.status_code == 201, created.text
    robot = (created.json()["username"], created.json()["secret"])
    assert _statuses(b, "guarded/app", "v1", auth=robot) == {200}
    # a network rule: the namespace only for clients on 10.9.0.0/16 (these come from loopback)
    rule = api(a, "POST", "/network-rules", json={"cidr": "10.9.0.0/16", "kind": "allow",
                                                  "namespace": "guarded"})
    assert rule.status_code == 201, rule.text
    assert _statuses(b, "guarded/app", "v1", auth=robot) == {403}
    assert api(a, "DELETE", f"/network-rules/{rule.json()['id']}").status_code == 204
    assert _statuses(b, "guarded/app", "v1", auth=robot) == {200}
    # the robot itself
    assert api(a, "DELETE", "/namespaces/guarded/robots/ci").status_code == 204
    # 401; 429 once the robot's failed logins lock its name out: refused either way
    assert _statuses(b, "guarded/app", "v1", auth=robot) <= {401, 429}


def test_a_repository_deleted_on_one_replica_is_gone_on_the_other(cluster: ScaleOut) -> None:
    a, b = cluster.replicas[:2]
    image = _push(a, "doomed/app", "v1", "doomed")
    layer = next(d for d, data in image.blobs.items() if len(data) == 1000)
    for _ in range(ASKED):
        assert _manifest(b, "doomed/app", "v1").status_code == 200
        assert _manifest(b, "doomed/app", image.digest).status_code == 200
        assert httpx.head(f"{b.url}/v2/doomed/app/blobs/{layer}", auth=ADMIN).status_code == 200
    assert api(a, "DELETE", "/repositories/doomed/app").status_code == 204
    assert _statuses(b, "doomed/app", "v1") == {404}
    assert _statuses(b, "doomed/app", image.digest) == {404}
    assert {httpx.head(f"{b.url}/v2/doomed/app/blobs/{layer}", auth=ADMIN).status_code
            for _ in range(ASKED)} == {404}


def test_a_write_by_another_process_on_the_database_is_seen_at_once(cluster: ScaleOut) -> None:
    """What the CLI and `moorage worker` do: write through their own engine, no replica
    involved (here: a tag deleted by the metadata store, as retention does)."""
    a, b = cluster.replicas[:2]
    _push(a, "outside/app", "v1", "outside")
    assert _statuses(b, "outside/app", "v1") == {200}
    script = ("import sys\n"
              "from moorage.db.metadata import MetadataStore, open_engine\n"
              "store = MetadataStore(open_engine(sys.argv[1]))\n"
              "store.delete_tag('outside/app', 'v1')\n")
    assert cluster.postgres is not None
    done = subprocess.run([sys.executable, "-c", script, cluster.postgres.url()],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert _statuses(b, "outside/app", "v1") == {404}


def test_pulls_reads_and_audit_entries_leave_the_signal_be(cluster: ScaleOut) -> None:
    """Bookkeeping stays unobserved and a transaction that only reads changes nothing: else
    every pull would empty every worker's cache on every replica."""
    a, b = cluster.replicas[:2]
    image = _push(a, "quiet/app", "v1", "quiet")
    assert _statuses(b, "quiet/app", "v1") == {200}  # first pulls: pulled_at set (unobserved)
    newest = _newest_audit_id(a)
    before = _signal(cluster)
    for replica in (a, b):
        with httpx.Client(base_url=replica.url, auth=ADMIN, timeout=60) as client:
            for _ in range(3):
                assert pull(client, "quiet/app", "v1").digest == image.digest
                assert client.get("/v2/quiet/app/tags/list").status_code == 200
                assert api(replica, "GET", "/repositories").status_code == 200
                token = client.get("/auth/token", params={
                    "service": "moorage", "scope": "repository:quiet/app:pull"})
                assert token.status_code == 200  # a login: an audit entry
                assert httpx.get(f"{replica.url}/v2/quiet/app/manifests/v1",
                                 auth=("admin", "wrong")).status_code == 401
    deadline = time.monotonic() + 120  # bounds a hang only: entries are written off the loop
    while _newest_audit_id(a) <= newest and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _newest_audit_id(a) > newest  # the logins and refusals were audited...
    assert _signal(cluster) == before  # ...and nothing changed the signal


def _newest_audit_id(replica: MoorageServer) -> int:
    page = api(replica, "GET", "/audit", params={"limit": 1})
    assert page.status_code == 200, page.text
    entries = page.json()["entries"]
    return int(entries[0]["id"]) if entries else 0
