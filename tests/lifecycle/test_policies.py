"""Tag immutability and retention rules, driven through the API and the registry protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from tests.access.helpers import api, error_message, unique
from tests.conftest import ADMIN_PASSWORD
from tests.lifecycle.helpers import admin_client, digest, make_image, push, wait_job
from tests.support.server import MoorageServer


def test_immutable_tag_cannot_move_or_go_but_signatures_can_be_pushed(
        secure_registry: MoorageServer) -> None:
    ns = unique("imm")
    image, other = make_image([os.urandom(5000)]), make_image([os.urandom(5000)])
    with admin_client(secure_registry) as client:
        assert push(client, f"{ns}/app", "v1", image).status_code == 201
        rule = api(secure_registry, "POST", "/immutability",
                   json={"scope": ns, "tag_pattern": "v*", "exclude_pattern": "v*-dev"})
        assert rule.status_code == 201, rule.text

        overwrite = push(client, f"{ns}/app", "v1", other)
        assert overwrite.status_code == 403
        assert "is immutable" in error_message(overwrite) and "overwritten" in error_message(overwrite)
        assert client.delete(f"/v2/{ns}/app/manifests/v1").status_code == 403
        assert client.delete(f"/v2/{ns}/app/manifests/{image.digest}").status_code == 403
        assert push(client, f"{ns}/app", "v1", image).status_code == 201, "same digest is fine"

        # A cosign-style signature tag for it, and a referrer, are never blocked.
        sig_tag = f"sha256-{image.digest[7:]}.sig"
        assert push(client, f"{ns}/app", sig_tag, make_image([b"signature 1"])).status_code == 201
        assert push(client, f"{ns}/app", sig_tag, make_image([b"signature 2"])).status_code == 201
        subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": image.digest, "size": len(image.manifest)}
        sbom = make_image([b"sbom"], subject=subject)
        assert push(client, f"{ns}/app", "v1-sbom", sbom).status_code == 201
        assert push(client, f"{ns}/app", "v1-sbom", make_image([b"sbom2"], subject=subject)).status_code == 201

        # Tags outside the pattern, or excluded, stay mutable.
        assert push(client, f"{ns}/app", "latest", image).status_code == 201
        assert push(client, f"{ns}/app", "latest", other).status_code == 201
        assert push(client, f"{ns}/app", "v2-dev", image).status_code == 201
        assert push(client, f"{ns}/app", "v2-dev", other).status_code == 201

        assert api(secure_registry, "DELETE", f"/immutability/{rule.json()['id']}").status_code == 204
        assert push(client, f"{ns}/app", "v1", other).status_code == 201  # at once


def test_immutability_needs_basic_edition(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry(env={"MOORAGE_EDITION": "personal"})
    api(server, "POST", "/namespaces", json={"name": "team"})
    resp = api(server, "POST", "/immutability", json={"scope": "team", "tag_pattern": "*"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "EDITION"


def _run(server: MoorageServer, rule_id: int, dry_run: bool) -> dict[str, object]:
    job = api(server, "POST", f"/retention/{rule_id}/run", json={"dry_run": dry_run})
    assert job.status_code == 202, job.text
    finished = wait_job(server, job.json())
    assert finished["status"] == "succeeded", finished
    return finished["result"]


def test_retention_dry_run_and_real_run_agree(secure_registry: MoorageServer) -> None:
    ns = unique("ret")
    repo = f"{ns}/app"
    images = {f"v{n}": make_image([os.urandom(3000)], f"v{n}") for n in range(6)}
    with admin_client(secure_registry) as client:
        for tag, image in images.items():
            # one push after the other: each tag's push time is later than the one before
            # (a push takes milliseconds; the clock counts nanoseconds), so v5 is the newest
            assert push(client, repo, tag, image).status_code == 201
        assert push(client, repo, "release-1", images["v0"]).status_code == 201
        stray = make_image([os.urandom(100)], "untagged")
        assert push(client, repo, None, stray).status_code == 201
        subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": images["v1"].digest, "size": len(images["v1"].manifest)}
        signature = make_image([b"sig of v1"], subject=subject)
        assert push(client, repo, None, signature).status_code == 201

        rule = api(secure_registry, "POST", "/retention", json={
            "scope": ns, "tag_pattern": "v*", "keep_last": 2, "untagged": True,
            "always_keep": "release-*"})
        assert rule.status_code == 201, rule.text
        rule_id = rule.json()["id"]

        preview = _run(secure_registry, rule_id, dry_run=True)
        tags_after_preview = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert len(tags_after_preview) == 7, "a dry run deletes nothing"
        done = _run(secure_registry, rule_id, dry_run=False)
        assert preview["repositories"] == done["repositories"]

        plan = done["repositories"][0]  # type: ignore[index]
        assert sorted(plan["delete_tags"]) == ["v0", "v1", "v2", "v3"]
        tags = client.get(f"/v2/{repo}/tags/list").json()["tags"]
        assert tags == ["release-1", "v4", "v5"]
        # v0 keeps its manifest (release-1 points at it); v1's signature went with v1.
        gone = set(plan["delete_manifests"])
        assert {images["v1"].digest, images["v2"].digest, images["v3"].digest,
                stray.digest, signature.digest} == gone
        assert client.get(f"/v2/{repo}/manifests/{images['v0'].digest}").status_code == 200
        referrers = client.get(f"/v2/{repo}/referrers/{images['v1'].digest}").json()
        assert referrers["manifests"] == []


def test_retention_from_the_cli(secure_registry: MoorageServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ns = unique("cli")
    with admin_client(secure_registry) as client:
        for n in range(3):
            assert push(client, f"{ns}/app", f"b{n}", make_image([os.urandom(500)])).status_code == 201
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "MOORAGE_URL": secure_registry.url,
           "MOORAGE_USERNAME": "admin", "MOORAGE_PASSWORD": ADMIN_PASSWORD}

    def moorage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    added = moorage("retention", "add", ns, "--keep-last", "1", "--json")
    assert added.returncode == 0, added.stderr
    rule_id = json.loads(added.stdout)["id"]
    dry = moorage("retention", "run", str(rule_id), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert sorted(json.loads(dry.stdout)["result"]["repositories"][0]["delete_tags"]) == ["b0", "b1"]
    table = moorage("retention", "list")
    assert table.returncode == 0 and ns in table.stdout
    real = moorage("retention", "run", str(rule_id))
    assert real.returncode == 0, real.stderr
    assert "b0" in real.stdout
    assert httpx.get(f"{secure_registry.url}/v2/{ns}/app/tags/list",
                     auth=("admin", ADMIN_PASSWORD)).json()["tags"] == ["b2"]
    immut = moorage("immutability", "add", f"{ns}/app", "--pattern", "b*")
    assert immut.returncode == 0, immut.stderr
    gc = moorage("gc", "--dry-run", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["result"]["dry_run"] is True


@pytest.mark.parametrize("seed", [1, 2])
def test_storage_usage_never_drifts(make_registry, seed: int) -> None:  # type: ignore[no-untyped-def]
    """After a random sequence of pushes, deletes and GC runs, the namespace's usage equals
    the sum of the distinct blobs its manifests reference."""
    import random

    server = make_registry(f"drift{seed}", env={"MOORAGE_GC_GRACE_SECONDS": "0",
                                                "MOORAGE_GC_SCHEDULE": ""})
    from tests.lifecycle.helpers import run_gc

    rng = random.Random(seed)
    pool = [os.urandom(rng.randint(100, 5000)) for _ in range(8)]
    live: dict[tuple[str, str], object] = {}  # (repo, digest) -> image
    with admin_client(server) as client:
        for step in range(40):
            roll = rng.random()
            if roll < 0.55 or not live:
                repo = f"team/r{rng.randint(0, 2)}"
                image = make_image(rng.sample(pool, rng.randint(1, 3)), f"{step}")
                assert push(client, repo, f"t{step}", image).status_code == 201
                live[(repo, image.digest)] = image
            elif roll < 0.85:
                repo, digest = rng.choice(sorted(live))
                assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
                del live[(repo, digest)]
            else:
                run_gc(server)
            expected_blobs: dict[str, int] = {}
            for image in live.values():
                expected_blobs.update(image.blob_sizes)  # type: ignore[attr-defined]
            used = api(server, "GET", "/namespaces/team").json()["storage_used"]
            assert used == sum(expected_blobs.values()), f"drift after step {step}"


def test_storage_quota_refuses_the_push_that_would_pass_it(make_registry) -> None:  # type: ignore[no-untyped-def]
    server = make_registry()
    api(server, "POST", "/namespaces", json={"name": "small"})
    assert api(server, "PATCH", "/namespaces/small",
               json={"storage_quota": 20_000}).status_code == 200
    with admin_client(server) as client:
        assert push(client, "small/app", "a", make_image([os.urandom(10_000)])).status_code == 201
        big = os.urandom(15_000)  # refused as it arrives (tests/lifecycle/test_quota_refusals.py)
        refused = client.post("/v2/small/app/blobs/uploads/", content=big,
                              params={"digest": digest(big)})
        assert refused.status_code == 403
        assert "storage quota of namespace small is 20000 bytes" in error_message(refused)
        assert client.get("/v2/small/app/tags/list").json()["tags"] == ["a"]


def _cli(server: MoorageServer, tmp_path) -> Callable[..., subprocess.CompletedProcess[str]]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "MOORAGE_URL": server.url,
           "MOORAGE_USERNAME": "admin", "MOORAGE_PASSWORD": ADMIN_PASSWORD, "COLUMNS": "200"}

    def moorage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
    return moorage


def test_retention_output_says_why_each_tag_stays(secure_registry: MoorageServer,
                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every repository the rule covers is in the result, and every tag it considered is
    either going or kept with its reason; durations read as people wrote them (30d)."""
    ns = unique("why")
    with admin_client(secure_registry) as client:
        for n in range(3):
            assert push(client, f"{ns}/app", f"b{n}", make_image([os.urandom(500)])).status_code == 201
        assert push(client, f"{ns}/quiet", "keep-me", make_image([os.urandom(500)])).status_code == 201
    moorage = _cli(secure_registry, tmp_path)

    added = moorage("retention", "add", ns, "--keep-last", "1", "--always-keep", "keep-*", "--json")
    assert added.returncode == 0, added.stderr
    rule_id = str(json.loads(added.stdout)["id"])
    dry = moorage("retention", "run", rule_id, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plans = {p["repository"]: p for p in json.loads(dry.stdout)["result"]["repositories"]}
    assert set(plans) == {f"{ns}/app", f"{ns}/quiet"}, "a repository where nothing goes is listed"
    assert plans[f"{ns}/quiet"]["delete_tags"] == []
    assert plans[f"{ns}/quiet"]["kept"] == {"keep-me": "matches always-keep 'keep-*'"}
    assert plans[f"{ns}/app"]["kept"] == {"b2": "among the newest 1"}
    assert plans[f"{ns}/app"]["delete_reasons"] == {"b0": "beyond the newest 1",
                                                    "b1": "beyond the newest 1"}

    shown = moorage("retention", "run", rule_id, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    row = lambda repo, tag: next((l for l in lines if repo in l and f" {tag} " in f" {l} "), "")
    assert "keep" in row(f"{ns}/quiet", "keep-me") and "always-keep" in row(f"{ns}/quiet", "keep-me")
    assert "among the newest 1" in row(f"{ns}/app", "b2")
    assert "would delete" in row(f"{ns}/app", "b0") and "beyond the newest 1" in row(f"{ns}/app", "b0")

    aged = moorage("retention", "add", ns, "--older-than", "30d", "--json")
    assert aged.returncode == 0, aged.stderr
    listed = moorage("retention", "list", "--namespace", ns)
    assert listed.returncode == 0, listed.stderr
    assert "30d" in listed.stdout and "2592000" not in listed.stdout, listed.stdout
    young = moorage("retention", "run", str(json.loads(aged.stdout)["id"]), "--dry-run")
    assert young.returncode == 0, young.stderr
    assert "younger than 30d" in young.stdout and "2592000" not in young.stdout, young.stdout


def test_rules_are_edited_and_retention_rules_disabled_in_place(
        secure_registry: MoorageServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An immutability rule's patterns and a retention rule's settings change without
    deleting and re-creating the rule (same id, API and CLI); a disabled immutability rule
    protects nothing until enabled; a disabled retention rule stays listed, its schedule
    paused."""
    ns = unique("edit")
    moorage = _cli(secure_registry, tmp_path)
    first, second = make_image([os.urandom(800)]), make_image([os.urandom(800)])
    with admin_client(secure_registry) as client:
        assert push(client, f"{ns}/app", "v1", first).status_code == 201
        assert push(client, f"{ns}/app", "release-1", first).status_code == 201
        made = moorage("immutability", "add", ns, "--pattern", "v*", "--json")
        assert made.returncode == 0, made.stderr
        imm_id = json.loads(made.stdout)["id"]
        assert push(client, f"{ns}/app", "v1", second).status_code == 403

        edited = moorage("immutability", "update", str(imm_id), "--pattern", "release-*",
                         "--exclude", "*-rc", "--json")
        assert edited.returncode == 0, edited.stderr
        assert json.loads(edited.stdout)["id"] == imm_id
        assert json.loads(edited.stdout)["exclude_pattern"] == "*-rc"
        assert push(client, f"{ns}/app", "v1", second).status_code == 201, "v* is free again"
        assert push(client, f"{ns}/app", "release-1", second).status_code == 403
        cleared = api(secure_registry, "PATCH", f"/immutability/{imm_id}",
                      json={"exclude_pattern": None})
        assert cleared.status_code == 200 and cleared.json()["exclude_pattern"] is None
        assert api(secure_registry, "PATCH", "/immutability/999999",
                   json={"tag_pattern": "x"}).status_code == 404
        assert api(secure_registry, "PATCH", f"/immutability/{imm_id}",
                   json={"tag_pattern": " "}).status_code in (400, 422)
        # Disabled, the rule stays listed and protects nothing; enabled, it protects again.
        off = moorage("immutability", "disable", str(imm_id))
        assert off.returncode == 0 and "disabled" in off.stdout, off.stderr
        assert push(client, f"{ns}/app", "release-1", first).status_code == 201
        listed = moorage("immutability", "list", "--namespace", ns)
        assert "disabled" in listed.stdout, listed.stdout
        on = moorage("immutability", "enable", str(imm_id), "--json")
        assert on.returncode == 0 and json.loads(on.stdout)["enabled"] is True, on.stderr
        assert push(client, f"{ns}/app", "release-1", second).status_code == 403

    added = moorage("retention", "add", ns, "--keep-last", "1", "--schedule", "0 4 * * *", "--json")
    assert added.returncode == 0, added.stderr
    ret_id = json.loads(added.stdout)["id"]
    off = moorage("retention", "disable", str(ret_id))
    assert off.returncode == 0, off.stderr
    rule = api(secure_registry, "GET", "/retention", params={"namespace": ns}).json()[0]
    assert rule["id"] == ret_id and rule["enabled"] is False
    listed = moorage("retention", "list", "--namespace", ns)
    assert "disabled" in listed.stdout, listed.stdout

    changed = moorage("retention", "update", str(ret_id), "--keep-last", "3", "--older-than",
                      "7d", "--tags", "b*", "--clear", "schedule", "--json")
    assert changed.returncode == 0, changed.stderr
    body = json.loads(changed.stdout)
    assert (body["id"], body["keep_last"], body["older_than_seconds"], body["tag_pattern"],
            body["schedule"], body["enabled"]) == (ret_id, 3, 7 * 86400, "b*", None, False)
    on = moorage("retention", "enable", str(ret_id), "--json")
    assert on.returncode == 0 and json.loads(on.stdout)["enabled"] is True, on.stderr
    bad = api(secure_registry, "PATCH", f"/retention/{ret_id}", json={"schedule": "0 0 31 2 *"})
    assert bad.status_code in (400, 422), bad.text
    assert api(secure_registry, "GET", "/retention",
               params={"namespace": ns}).json()[0]["keep_last"] == 3, "a refused edit changes nothing"

    paths = httpx.get(f"{secure_registry.url}/api/v1/openapi.json", timeout=60).json()["paths"]
    assert "patch" in paths["/api/v1/retention/{rule_id}"]
    assert "patch" in paths["/api/v1/immutability/{rule_id}"]


def test_a_maintainer_reads_the_runs_of_their_retention_rules(
        secure_registry: MoorageServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Whoever may run a namespace's retention rule reads that run's job (a dry run is only
    worth its result), through the API and with `moorage retention run`; every other job,
    the job list and the job types stay an administrator's."""
    ns = unique("mine")
    maintainer, stranger = unique("maint"), unique("stranger")
    password = "maintainer-password"
    for name in (maintainer, stranger):
        assert api(secure_registry, "POST", "/users",
                   json={"username": name, "password": password}).status_code == 201
    assert api(secure_registry, "POST", "/namespaces", json={"name": ns}).status_code == 201
    assert api(secure_registry, "PUT", f"/namespaces/{ns}/members/{maintainer}",
               json={"role": "maintainer"}).status_code == 200
    with admin_client(secure_registry) as client:
        for n in range(2):
            assert push(client, f"{ns}/app", f"t{n}", make_image([os.urandom(500)])).status_code == 201
    mine = (maintainer, password)
    rule = api(secure_registry, "POST", "/retention", auth=mine,
               json={"scope": ns, "keep_last": 1})
    assert rule.status_code == 201, rule.text
    job = api(secure_registry, "POST", f"/retention/{rule.json()['id']}/run", auth=mine,
              json={"dry_run": True})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    read = api(secure_registry, "GET", f"/jobs/{job_id}", auth=mine)
    assert read.status_code == 200, read.text
    assert read.json()["type"] == "retention" and "log" in read.json()
    assert api(secure_registry, "GET", f"/jobs/{job_id}",
               auth=(stranger, password)).status_code == 403
    # Another kind of job, and one that does not exist, are refused alike: no oracle.
    gc_job = api(secure_registry, "POST", "/gc", json={"dry_run": True})
    other_id = gc_job.json()["id"] if gc_job.status_code == 202 else job_id + 1000000
    assert api(secure_registry, "GET", f"/jobs/{other_id}", auth=mine).status_code == 403
    assert api(secure_registry, "GET", "/jobs/99999999", auth=mine).status_code == 403
    assert api(secure_registry, "GET", "/jobs/99999999").status_code == 404
    assert api(secure_registry, "GET", "/jobs", auth=mine).status_code == 403
    assert api(secure_registry, "GET", "/jobs/types", auth=mine).status_code == 403
    types = api(secure_registry, "GET", "/jobs/types")
    assert types.status_code == 200 and {"gc", "retention"} <= set(types.json())

    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "MOORAGE_URL": secure_registry.url,
           "MOORAGE_USERNAME": maintainer, "MOORAGE_PASSWORD": password, "COLUMNS": "200"}
    followed = subprocess.run([sys.executable, "-m", "moorage", "retention", "run",
                               str(rule.json()["id"]), "--dry-run"], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
    assert followed.returncode == 0, followed.stderr
    assert "among the newest 1" in followed.stdout and "would delete" in followed.stdout
    listed = _cli(secure_registry, tmp_path)("jobs", "types", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"gc", "retention"} <= set(json.loads(listed.stdout))
    table = _cli(secure_registry, tmp_path)("jobs", "types")
    assert table.returncode == 0 and "retention" in table.stdout, table.stderr
