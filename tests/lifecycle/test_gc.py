"""Online garbage collection: exact, and safe while clients push and pull."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.access.helpers import api
from tests.lifecycle.helpers import admin_client, make_image, pull, push, run_gc
from tests.support.server import MoorageServer

# A grace period no machine, however loaded, crosses within a test: what a test means to be
# collectable is collected with an explicit `grace: 0` (the cutoff is the instant the job
# runs, after everything the test did), never by sleeping past a short grace period.
GRACE = "3600"


@pytest.fixture
def server(make_registry) -> MoorageServer:  # type: ignore[no-untyped-def]
    return make_registry(env={"MOORAGE_GC_GRACE_SECONDS": GRACE, "MOORAGE_GC_SCHEDULE": ""})


def blob_files(server: MoorageServer) -> set[str]:
    root = Path(server.data_dir) / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in root.glob("*/*")}


def test_gc_frees_exactly_what_nothing_references(server: MoorageServer) -> None:
    shared = os.urandom(50_000)
    a = make_image([shared, os.urandom(30_000)], "a")
    b = make_image([shared, os.urandom(40_000)], "b")
    with admin_client(server) as client:
        assert push(client, "team/app", "a", a).status_code == 201
        assert push(client, "team/app", "b", b).status_code == 201
        assert client.delete(f"/v2/team/app/manifests/{a.digest}").status_code == 202
        unique_to_a = set(a.blobs) - set(b.blobs)

        assert run_gc(server)["blobs_deleted"] == 0, "all of it is within the grace period"
        preview = run_gc(server, dry_run=True, grace="0")
        result = run_gc(server, grace="0")
        assert set(result["blobs"]) == unique_to_a
        assert set(preview["blobs"]) == unique_to_a, "dry run and real run must agree"
        assert result["bytes_freed"] == sum(len(a.blobs[d]) for d in unique_to_a)
        assert result["manifests"] == [a.digest]
        assert not unique_to_a & blob_files(server), "freed bytes are gone from the disk"
        assert pull(client, "team/app", "b").blobs == b.blobs
        assert run_gc(server, grace="0")["blobs_deleted"] == 0, "a second run finds nothing more"


def test_gc_spares_what_is_younger_than_the_grace_period(server: MoorageServer) -> None:
    with admin_client(server) as client:
        image = make_image([os.urandom(10_000)])
        for blob_digest, data in image.blobs.items():  # uploaded, manifest not yet pushed
            client.post("/v2/team/wip/blobs/uploads/", params={"digest": blob_digest},
                        content=data)
        assert run_gc(server)["blobs_deleted"] == 0
        # ... and the grace period is what spared them: without one they would go.
        assert set(run_gc(server, dry_run=True, grace="0")["blobs"]) == set(image.blobs)
        assert push(client, "team/wip", "v1", image).status_code == 201


def test_gc_in_a_loop_never_breaks_pushes_or_pulls(server: MoorageServer) -> None:
    """Many clients push and pull while GC runs again and again (with the server's grace
    period, longer than any push takes: that is what keeps a push's blobs until its manifest
    arrives); afterwards GC without a grace period frees exactly the blobs of the images that
    were deleted, and every surviving image pulls whole."""
    rng = random.Random(7)
    pool = [os.urandom(rng.randint(1_000, 30_000)) for _ in range(12)]
    stop = threading.Event()
    gc_runs: list[dict[str, object]] = []
    failures: list[str] = []

    def collector() -> None:
        while not stop.is_set():
            try:
                gc_runs.append(run_gc(server))
            except AssertionError as exc:  # pragma: no cover - reported below
                failures.append(f"gc: {exc}")

    pushed: dict[str, object] = {}

    def client_loop(worker: int) -> None:
        local = random.Random(worker)
        with admin_client(server) as client:
            for n in range(12):
                layers = local.sample(pool, 2) + [os.urandom(2_000)]
                image = make_image(layers, f"{worker}-{n}")
                repo, tag = f"team/app{worker}", f"v{n}"
                try:
                    resp = push(client, repo, tag, image)
                except AssertionError as exc:  # a blob upload refused: in this thread, the
                    failures.append(f"push {repo}:{tag}: {exc}")  # test must still see it
                    continue
                if resp.status_code != 201:
                    failures.append(f"push {repo}:{tag} -> {resp.status_code} {resp.text}")
                    continue
                pushed[f"{repo}:{tag}"] = image
                try:
                    assert pull(client, repo, tag).blobs == image.blobs
                except AssertionError as exc:
                    failures.append(f"pull {repo}:{tag}: {exc}")

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    clients = [threading.Thread(target=client_loop, args=(w,)) for w in range(3)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    stop.set()
    gc_thread.join()
    assert not failures, failures[:5]
    assert len(gc_runs) >= 2, "GC should have run while the clients worked"

    # Delete half the images; after the grace period GC frees exactly their unique blobs.
    names = sorted(pushed)
    deleted, kept = names[::2], names[1::2]
    with admin_client(server) as client:
        for ref in deleted:
            repo, _, tag = ref.partition(":")
            image = pushed[ref]
            assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202  # type: ignore[attr-defined]
        kept_blobs = set().union(*(pushed[r].blobs for r in kept))  # type: ignore[attr-defined]
        deleted_blobs = set().union(*(pushed[r].blobs for r in deleted))  # type: ignore[attr-defined]
        result = run_gc(server, grace="0")
        assert set(result["blobs"]) == deleted_blobs - kept_blobs
        for ref in kept:
            repo, _, tag = ref.partition(":")
            assert pull(client, repo, tag).blobs == pushed[ref].blobs  # type: ignore[attr-defined]


def test_worker_can_run_apart_from_the_server(make_registry) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    server = make_registry(env={"MOORAGE_RUN_WORKERS": "false", "MOORAGE_GC_SCHEDULE": ""})
    job = api(server, "POST", "/gc", json={"dry_run": True}).json()
    time.sleep(1.0)
    assert api(server, "GET", f"/jobs/{job['id']}").json()["status"] == "queued"
    done = subprocess.run([sys.executable, "-m", "moorage", "worker", "--once", "--data-dir",
                           str(server.data_dir)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MOORAGE_GC_SCHEDULE": ""})
    assert done.returncode == 0, done.stderr
    finished = api(server, "GET", f"/jobs/{job['id']}").json()
    assert finished["status"] == "succeeded" and "dry run" in finished["log"]


def test_gc_needs_an_administrator(secure_registry: MoorageServer) -> None:
    resp = httpx.post(f"{secure_registry.url}/api/v1/gc", json={})
    assert resp.status_code == 401


def test_gc_dry_run_shows_what_would_go(server: MoorageServer, tmp_path: Path) -> None:
    """`moorage gc --dry-run` lists each manifest, repository link and blob a run would
    remove, with the blobs' sizes, not only counts; the JSON result has the same."""
    import json
    import subprocess
    import sys

    from tests.conftest import ADMIN_PASSWORD

    keep, doomed = make_image([os.urandom(3_000)], "keep"), make_image([os.urandom(7_000)], "doomed")
    with admin_client(server) as client:
        assert push(client, "team/app", "keep", keep).status_code == 201
        assert push(client, "team/app", "doomed", doomed).status_code == 201
        assert client.delete(f"/v2/team/app/manifests/{doomed.digest}").status_code == 202
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "MOORAGE_URL": server.url,
           "MOORAGE_USERNAME": "admin", "MOORAGE_PASSWORD": ADMIN_PASSWORD, "COLUMNS": "250"}

    def moorage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    shown = moorage("gc", "--dry-run", "--grace", "0")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(doomed.digest in line and "manifest" in line for line in lines), shown.stdout
    for blob, data in doomed.blobs.items():
        row = next((line for line in lines if blob in line and "blob" in line), "")
        assert str(len(data)) in row.replace(",", "") or f"{len(data) / 1024:.1f} KiB" in row, \
            shown.stdout
        assert any(blob in line and "team/app" in line for line in lines), shown.stdout
    assert not any(b in shown.stdout for b in keep.blobs), "what stays is not listed"

    as_json = moorage("gc", "--dry-run", "--grace", "0", "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)["result"]
    assert {b["digest"]: b["size"] for b in result["blob_sizes"]} == doomed.blob_sizes
    assert {(link["repository"], link["digest"]) for link in result["links"]} == \
        {("team/app", d) for d in doomed.blobs}
    assert run_gc(server, grace="0")["blobs_deleted"] == len(doomed.blobs), "a dry run deleted nothing"
