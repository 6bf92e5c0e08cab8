"""Pull policies on two replicas sharing PostgreSQL, S3 (SeaweedFS) and Redis: the pull
path's reads on PostgreSQL (no per-process cache there at all), and every edit (a policy, an
allowlist entry) made through one replica followed by the next pull through the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blocking.helpers import (VULNERABLE, api, blocking_ids, error_of, image,
                                    manifest, new_namespace, push, set_policy, skopeo_pull,
                                    token, wait_report)
from tests.clients.tools import require_tool
from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.scan.service.helpers import OSV_PYPA, moorage
from tests.support.server import MoorageServer

pytestmark = [pytest.mark.clients, pytest.mark.slow,
              pytest.mark.skipif("scaleout" not in BACKENDS,
                                 reason="MOORAGE_TEST_BACKENDS leaves scale-out out")]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MoorageServer]]:
    from tests.support.scaleout import ScaleOut

    require_tool("skopeo")
    cluster = ScaleOut(tmp_path_factory.mktemp("blocking-scaleout"),
                       env={**SECURED, **ROOMY, "MOORAGE_SCAN_ON_PUSH": "true"})
    try:
        cluster.start(replicas=2)
        assert cluster.postgres is not None
        for folder in (OSV_PYPA / "jinja2", OSV_PYPA / "urllib3"):
            done = moorage("advisories", "import", "--partial", "--json", "--database-url",
                           cluster.postgres.url(), str(folder))
            assert done.returncode == 0, done.stderr
        yield cluster.replicas
    finally:
        cluster.stop()


def test_edits_through_one_replica_are_followed_by_pulls_through_the_other(
        replicas: list[MoorageServer], tmp_path: Path) -> None:
    one, other = replicas
    with api(one) as client:
        ns = new_namespace(client)
        repo = f"{ns}/app"
        push(one, image(tmp_path, "vuln", VULNERABLE), f"{repo}:1.0")
        found = wait_report(client, repo, "1.0")
        high = [f for f in found["findings"] if f["severity"]["level"] in ("critical", "high")]
        assert high and blocking_ids(found, ("critical", "high"))
        set_policy(client, ns, severity="high", block_unscanned=True)
    refused = skopeo_pull(other, f"{repo}:1.0", tmp_path / "a")
    assert refused.returncode != 0 and f"pull policy of namespace {ns}" in refused.stderr
    with api(other) as client:
        for f in high:
            resp = client.post(f"/namespaces/{ns}/cve-allowlist",
                               json={"id": f["id"], "reason": "accepted on the other"})
            assert resp.status_code in (200, 201), resp.text
    assert skopeo_pull(one, f"{repo}:1.0", tmp_path / "b").returncode == 0
    with api(other) as client:
        resp = client.delete(f"/namespaces/{ns}/cve-allowlist/{high[0]['id']}")
        assert resp.status_code == 204, resp.text
    bearer = token(one, repo)
    for server in (one, other, one, other):
        refused_now = manifest(server, repo, "1.0", bearer)
        assert refused_now.status_code == 403, refused_now.text
        assert "(severity rule)" in error_of(refused_now)["message"]
    with api(one) as client:
        set_policy(client, ns)
    for server in (other, one):
        assert manifest(server, repo, "1.0", bearer).status_code == 200
    # a fresh push through one replica is refused as unscanned through the other at once
    with api(other) as client:
        set_policy(client, ns, block_unscanned=True)
        resp = client.put(f"/namespaces/{ns}/scan-settings", json={"scan_on_push": False})
        assert resp.status_code == 200
    push(one, image(tmp_path, "vuln2", (*VULNERABLE, ("pyyaml", "5.1"))), f"{repo}:2.0")
    fresh = manifest(other, repo, "2.0", bearer)
    assert fresh.status_code == 403 and "not scanned yet" in error_of(fresh)["message"]
