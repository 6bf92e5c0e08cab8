"""Immutability holds against every delete that would take an immutable image apart.

A maintainer may delete manifests, blobs and repositories; none of it may remove what an
immutable tag holds: its manifest, the children of its index, the blobs they reference, the
repository or the namespace around them. Only an administrator may force a repository
delete, and the audit log says it was forced. Run on both backends, across processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import (OCI_INDEX, Image, index_manifest, push_image, put_manifest,
                               sha256)
from tests.audit.helpers import wait_for
from tests.lifecycle.helpers import wait_job
from tests.support.secured import Secured
from tests.support.server import MoorageServer
from tests.web.helpers import ADMIN, api, error, grant, make_namespace, make_user

Account = tuple[str, str]


def client(server: MoorageServer, auth: Account) -> httpx.Client:
    """No kept-alive connections: each request may land on another worker process."""
    return httpx.Client(base_url=server.url, auth=auth, timeout=60,
                        limits=httpx.Limits(max_keepalive_connections=0))


@dataclass
class Setup:
    """A namespace with an owner and a maintainer, and under an immutable tag `v1` an index
    of two images, beside a mutable image under `latest`."""

    namespace: str
    repo: str
    owner: Account
    maintainer: Account
    amd: Image
    arm: Image
    index: bytes
    mutable: Image
    rule: int


@pytest.fixture(scope="module")
def accounts(secured: Secured) -> tuple[Account, Account]:
    return make_user(secured.server, "owner"), make_user(secured.server, "maint")


@pytest.fixture
def setup(secured: Secured, accounts: tuple[Account, Account]) -> Iterator[Setup]:
    owner, maintainer = accounts
    server = secured.server
    ns = make_namespace(server, prefix="imm")
    grant(server, ns, owner[0], "owner")
    grant(server, ns, maintainer[0], "maintainer")
    repo = f"{ns}/app"
    with client(server, maintainer) as c:
        amd, arm = push_image(c, repo, tag=None), push_image(c, repo, tag=None)
        index, _ = index_manifest([amd.descriptor(platform={"os": "linux", "architecture": "amd64"}),
                                   arm.descriptor(platform={"os": "linux", "architecture": "arm64"})])
        assert put_manifest(c, repo, "v1", index, OCI_INDEX).status_code == 201
        mutable = push_image(c, repo, tag="latest")
    rule = api(server, "POST", "/immutability", auth=maintainer,
               json={"scope": ns, "tag_pattern": "v*"})
    assert rule.status_code == 201, rule.text
    yield Setup(ns, repo, owner, maintainer, amd, arm, index, mutable, rule.json()["id"])


def _refused(resp: httpx.Response, rule: int) -> str:
    """A /v2 refusal: 403 DENIED (the spec's code for a policy refusal) naming the rule."""
    assert resp.status_code == 403, (resp.status_code, resp.text)
    [err] = resp.json()["errors"]
    assert err["code"] == "DENIED", err
    assert err["detail"]["reason"] == "immutable" and err["detail"]["rule"] == rule, err
    assert f"rule {rule}" in err["message"] and "immutable" in err["message"], err
    return err["message"]


def _api_refused(resp: httpx.Response, rule: int) -> str:
    assert resp.status_code == 403, (resp.status_code, resp.text)
    code, message = error(resp)
    assert code == "IMMUTABLE", (code, message)
    assert f"rule {rule}" in message, message
    return message


def _pullable(server: MoorageServer, auth: Account, s: Setup) -> None:
    """The immutable image is whole: the index, both children and every blob."""
    with client(server, auth) as c:
        got = c.get(f"/v2/{s.repo}/manifests/v1", headers={"Accept": OCI_INDEX})
        assert got.status_code == 200 and got.content == s.index
        for child in (s.amd, s.arm):
            assert c.get(f"/v2/{s.repo}/manifests/{child.digest}").status_code == 200
            for blob in (child.config, *child.layers):
                r = c.get(f"/v2/{s.repo}/blobs/{sha256(blob)}")
                assert r.status_code == 200 and r.content == blob


def test_a_child_of_an_immutable_index_cannot_be_deleted(secured: Secured, setup: Setup) -> None:
    for server in secured.servers:
        with client(server, setup.maintainer) as c:
            message = _refused(c.delete(f"/v2/{setup.repo}/manifests/{setup.arm.digest}"),
                               setup.rule)
            assert setup.arm.digest in message and "v1" in message, message
            # The index itself, by digest and by tag, stays refused as before.
            _refused(c.delete(f"/v2/{setup.repo}/manifests/{sha256(setup.index)}"), setup.rule)
            _refused(c.delete(f"/v2/{setup.repo}/manifests/v1"), setup.rule)
    _pullable(secured.server, setup.maintainer, setup)


def test_a_child_of_a_nested_immutable_index_cannot_be_deleted(secured: Secured,
                                                               setup: Setup) -> None:
    outer, _ = index_manifest([{"mediaType": OCI_INDEX, "digest": sha256(setup.index),
                                "size": len(setup.index)}])
    with client(secured.server, setup.maintainer) as c:
        assert put_manifest(c, setup.repo, "v2", outer, OCI_INDEX).status_code == 201
        assert c.delete(f"/v2/{setup.repo}/manifests/v1").status_code == 403
        message = _refused(c.delete(f"/v2/{setup.repo}/manifests/{setup.amd.digest}"),
                           setup.rule)
        assert setup.amd.digest in message


def test_blobs_of_an_immutable_image_cannot_be_deleted(secured: Secured, setup: Setup) -> None:
    for server in secured.servers:
        with client(server, setup.maintainer) as c:
            for blob in (setup.amd.config, setup.arm.layers[0]):
                message = _refused(c.delete(f"/v2/{setup.repo}/blobs/{sha256(blob)}"),
                                   setup.rule)
                assert sha256(blob) in message and "v1" in message, message
    _pullable(secured.server, setup.maintainer, setup)


def test_what_no_immutable_tag_holds_can_still_be_deleted(secured: Secured,
                                                          setup: Setup) -> None:
    """The refusals are exact: a mutable image's blobs, a child of a mutable index, and the
    mutable tag itself still go."""
    with client(secured.server, setup.maintainer) as c:
        free = push_image(c, setup.repo, tag=None)
        loose, _ = index_manifest([free.descriptor()])
        assert put_manifest(c, setup.repo, "latest-multi", loose, OCI_INDEX).status_code == 201
        assert c.delete(f"/v2/{setup.repo}/manifests/{free.digest}").status_code == 202
        layer = sha256(setup.mutable.layers[0])
        assert c.delete(f"/v2/{setup.repo}/blobs/{layer}").status_code == 202
        assert c.delete(f"/v2/{setup.repo}/manifests/latest").status_code == 202
    _pullable(secured.server, setup.maintainer, setup)


def test_a_repository_with_immutable_tags_cannot_be_deleted(secured: Secured,
                                                            setup: Setup) -> None:
    for who in (setup.maintainer, setup.owner, ADMIN):
        _api_refused(api(secured.server, "DELETE", f"/repositories/{setup.repo}", auth=who),
                     setup.rule)
    # Only an administrator may force it.
    for who in (setup.maintainer, setup.owner):
        forced = api(secured.server, "DELETE", f"/repositories/{setup.repo}", auth=who,
                     params={"force": "true"})
        assert forced.status_code == 403, forced.text
        assert "administrator" in error(forced)[1]
    _pullable(secured.servers[-1], setup.maintainer, setup)
    assert api(secured.server, "GET", f"/repositories/{setup.repo}").status_code == 200


def test_a_namespace_with_immutable_tags_cannot_be_deleted(secured: Secured,
                                                           setup: Setup) -> None:
    for who in (setup.owner, ADMIN):
        message = _api_refused(api(secured.server, "DELETE", f"/namespaces/{setup.namespace}",
                                   auth=who), setup.rule)
        assert setup.repo in message, message
    _pullable(secured.servers[-1], setup.owner, setup)
    # Without immutable tags in it, it goes as before.
    assert api(secured.server, "DELETE", f"/immutability/{setup.rule}",
               auth=setup.owner).status_code == 204
    assert api(secured.servers[-1], "DELETE", f"/namespaces/{setup.namespace}",
               auth=setup.owner).status_code == 204


def test_an_administrator_may_force_a_repository_delete_and_it_is_audited(
        secured: Secured, setup: Setup) -> None:
    forced = api(secured.server, "DELETE", f"/repositories/{setup.repo}",
                 params={"force": "true"})
    assert forced.status_code == 204, forced.text
    assert api(secured.server, "GET", f"/repositories/{setup.repo}").status_code == 404
    found = wait_for(secured.server, lambda es: any(e["result"] == "success" for e in es),
                     repository=setup.repo, action="repository.delete")
    change = next(e for e in found if e["action"] == "repository.delete"
                  and e["result"] == "success")
    assert change["actor"] == "admin" and change["detail"]["params"] == {"force": True}, change
    core = wait_for(secured.server, lambda es: any(e["detail"].get("forced") for e in es),
                    repository=setup.repo, action="delete")
    forced_entry = next(e for e in core if e["detail"].get("forced"))
    assert forced_entry["actor"] == "admin"
    assert forced_entry["detail"]["immutable_tags"] == ["v1"], forced_entry


def test_a_new_rule_applies_at_once_in_every_process(secured: Secured,
                                                     accounts: tuple[Account, Account]) -> None:
    """Rules are read from the database when they are needed, never from a copy a process
    kept: a rule added through one process binds the very next request on any other."""
    _, maintainer = accounts
    server = secured.server
    ns = make_namespace(server, prefix="immnow")
    grant(server, ns, maintainer[0], "maintainer")
    repo = f"{ns}/app"
    with client(server, maintainer) as c:
        images = [push_image(c, repo, tag=None) for _ in range(2)]
    # Every process checks (and so loads) the rules once: a moved tag asks them.
    for n in range(8):
        with client(secured.servers[n % 2], maintainer) as c:
            image = images[n % 2]
            assert put_manifest(c, repo, "v1", image.manifest, image.media_type).status_code == 201
    rule = api(server, "POST", "/immutability", auth=maintainer,
               json={"scope": ns, "tag_pattern": "v*"})
    assert rule.status_code == 201
    # v1 is at images[1]: each of these would move it.
    for n in range(8):
        with client(secured.servers[n % 2], maintainer) as c:
            _refused(put_manifest(c, repo, "v1", images[0].manifest, images[0].media_type),
                     rule.json()["id"])
    assert api(server, "DELETE", f"/immutability/{rule.json()['id']}",
               auth=maintainer).status_code == 204
    for n in range(4):
        with client(secured.servers[n % 2], maintainer) as c:
            image = images[n % 2]
            assert put_manifest(c, repo, "v1", image.manifest, image.media_type).status_code == 201


def test_retention_keeps_the_children_of_an_immutable_index(secured: Secured,
                                                            setup: Setup) -> None:
    """Retention with `untagged` removes untagged manifests, but never the children an
    immutable index needs, and the run does not fail over them."""
    with client(secured.server, setup.maintainer) as c:
        stray = push_image(c, setup.repo, tag=None)
    rule = api(secured.server, "POST", "/retention", auth=setup.maintainer,
               json={"scope": setup.namespace, "tag_pattern": "*", "untagged": True})
    assert rule.status_code == 201, rule.text
    job = api(secured.server, "POST", f"/retention/{rule.json()['id']}/run", json={})
    assert job.status_code == 202, job.text
    done = wait_job(secured.server, job.json())
    assert done["status"] == "succeeded", done
    [plan] = done["result"]["repositories"]
    assert plan["kept"]["v1"] == "immutable"
    assert stray.digest in plan["delete_manifests"]
    assert not {setup.amd.digest, setup.arm.digest} & set(plan["delete_manifests"])
    _pullable(secured.server, setup.maintainer, setup)
    with client(secured.server, setup.maintainer) as c:
        assert c.get(f"/v2/{setup.repo}/manifests/{stray.digest}").status_code == 404


def test_force_from_the_cli(secured: Secured, setup: Setup, tmp_path: Path) -> None:
    def moorage(auth: Account, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / auth[0]),
               "MOORAGE_URL": secured.server.url, "MOORAGE_USERNAME": auth[0],
               "MOORAGE_PASSWORD": auth[1]}
        return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                              text=True, env=env, timeout=120)

    refused = moorage(setup.maintainer, "repo", "delete", setup.repo, "--yes")
    assert refused.returncode == 1 and "immutable" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    not_admin = moorage(setup.maintainer, "repo", "delete", setup.repo, "--yes", "--force")
    assert not_admin.returncode == 1 and "administrator" in not_admin.stderr
    forced = moorage(ADMIN, "repo", "delete", setup.repo, "--yes", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout) == {"deleted": setup.repo, "forced": True}
    assert api(secured.server, "GET", f"/repositories/{setup.repo}").status_code == 404
