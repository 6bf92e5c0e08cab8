"""Charts on two replicas sharing PostgreSQL, S3 (SeaweedFS) and Redis: a chart uploaded
through one replica is in the other's index.yaml (whose per-replica cache follows the
namespace's generation row), is pulled through it over OCI, and a delete through the other
is followed by the first; simultaneous first uploads through both stop at the chart
repositories' quota (the claims' table lock on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import BACKENDS, ROOMY, SECURED
from tests.helm.helpers import (ADMIN, api, helm, new_namespace, package, push_token,
                                race_uploads, repo, sha256, small_chart)
from tests.support.server import MoorageServer

QUOTA = 8  # chart repositories: the test below fills what the others leave

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("scaleout" not in BACKENDS,
                                 reason="MOORAGE_TEST_BACKENDS leaves scale-out out")]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MoorageServer]]:
    from tests.support.scaleout import ScaleOut

    cluster = ScaleOut(tmp_path_factory.mktemp("helm-scaleout"),
                       env={**SECURED, **ROOMY, "MOORAGE_EDITION": "basic",
                            "MOORAGE_QUOTA_HELM_REPOSITORIES": str(QUOTA)})
    try:
        cluster.start(replicas=2)
        yield cluster.replicas
    finally:
        cluster.stop()


def test_a_change_through_one_replica_is_in_the_others_index(
        replicas: list[MoorageServer], tmp_path: Path) -> None:
    one, other = replicas
    ns = new_namespace(api(one))
    first = package(tmp_path, "shared", "1.0.0")
    with repo(one, ns) as a, repo(other, ns) as b:
        assert yaml.safe_load(b.get("/index.yaml").text)["entries"] == {}  # cached empty
        assert a.post("/api/charts", content=first.read_bytes()).status_code == 201
        [entry] = yaml.safe_load(b.get("/index.yaml").text)["entries"]["shared"]
        assert entry["digest"] == sha256(first.read_bytes())
        etag = a.get("/index.yaml").headers["etag"]
        assert b.get("/index.yaml", headers={"if-none-match": etag}).status_code == 304
    client = helm().RegistryClient(plain_http=True, credentials_file=tmp_path / "c.json")
    client.login(other.host, *ADMIN, plain_http=True)
    second = package(tmp_path, "shared", "2.0.0")
    client.push(second, f"oci://{other.host}/{ns}")
    index = helm().repo_index(f"{one.url}/chartrepo/{ns}", username=ADMIN[0],
                              password=ADMIN[1])
    assert [v["version"] for v in index["entries"]["shared"]] == ["2.0.0", "1.0.0"]
    with repo(other, ns) as b, repo(one, ns) as a:
        assert b.delete("/api/charts/shared/1.0.0").status_code == 200
        versions = yaml.safe_load(a.get("/index.yaml").text)["entries"]["shared"]
        assert [v["version"] for v in versions] == ["2.0.0"]
        assert a.get(f"/charts/{first.name}").status_code == 404
        assert a.get(f"/charts/{second.name}").content == second.read_bytes()


def test_simultaneous_first_uploads_through_both_replicas_stop_at_the_quota(
        replicas: list[MoorageServer]) -> None:
    one, other = replicas
    ns = new_namespace(api(one))
    used = api(one).get("/info").json()["quotas"]["helm_repositories"]["used"]
    left = QUOTA - used
    racers = left + 6
    assert left > 0
    uploads = [(replicas[i % 2], ns, small_chart(f"race{i}", "1.0.0")) for i in range(racers)]
    answers = race_uploads(push_token(one, [ns]), uploads)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * left + [403] * (racers - left), [r.text for r in answers]
    assert all(f"quota 'helm_repositories' is {QUOTA}" in r.json()["error"]
               for r in answers if r.status_code == 403)
    with repo(other, ns) as client:
        assert len(client.get("/api/charts").json()) == left
    assert api(other).get("/info").json()["quotas"]["helm_repositories"] == \
        {"limit": QUOTA, "used": QUOTA}
