"""What must hold when uploads race and when a namespace mixes public and private charts:
the chart quotas under simultaneous first uploads, one winner among simultaneous uploads of
one new version (ChartMuseum's 409 for the others), and a chart repository's listings
showing each reader only the charts they may pull."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOMY, SECURED
from tests.helm.helpers import (ADMIN, api, helm, new_namespace, provenance, push_token,
                                race_uploads, repo, sha256, small_chart, tgz)
from tests.support.server import MoorageServer
from tests.web.helpers import make_user

RACERS = 10


def _race(server: MoorageServer, namespaces: list[str],
          uploads: list[tuple[str, bytes]]) -> list[httpx.Response]:
    token = push_token(server, namespaces)
    return race_uploads(token, [(server, ns, body) for ns, body in uploads])


def _charts(server: MoorageServer, namespace: str) -> dict[str, list[str]]:
    with repo(server, namespace) as client:
        resp = client.get("/api/charts")
        assert resp.status_code == 200, resp.text
        return {name: [v["version"] for v in versions]
                for name, versions in resp.json().items()}


def _quota_server(tmp_path_factory: pytest.TempPathFactory, namespaces: int,
                  repositories: int) -> MoorageServer:
    return MoorageServer(tmp_path_factory.mktemp("helm-race") / "data",
                         extra_args=["--workers", "2"], env={
                             **SECURED, **ROOMY, "MOORAGE_EDITION": "basic",
                             "MOORAGE_QUOTA_HELM_NAMESPACES": str(namespaces),
                             "MOORAGE_QUOTA_HELM_REPOSITORIES": str(repositories)}).start()


@pytest.fixture(scope="module")
def few_repositories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = _quota_server(tmp_path_factory, namespaces=100, repositories=5)
    yield started
    started.kill()


@pytest.fixture(scope="module")
def few_namespaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = _quota_server(tmp_path_factory, namespaces=3, repositories=1000)
    yield started
    started.kill()


def test_simultaneous_first_uploads_stop_at_the_repositories_quota(
        few_repositories: MoorageServer) -> None:
    server = few_repositories
    ns = new_namespace(api(server))
    uploads = [(ns, small_chart(f"race{i}", "1.0.0")) for i in range(RACERS)]
    answers = _race(server, [ns], uploads)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 5 + [403] * (RACERS - 5), [r.text for r in answers]
    refusals = [r.json()["error"] for r in answers if r.status_code == 403]
    assert all("quota 'helm_repositories' is 5" in e for e in refusals), refusals
    assert len(_charts(server, ns)) == 5
    info = api(server).get("/info").json()
    assert info["quotas"]["helm_repositories"] == {"limit": 5, "used": 5}
    # the refused charts left nothing behind: no repository, and the places stay taken
    refused = [f"race{i}" for i, r in enumerate(answers) if r.status_code == 403]
    assert httpx.get(f"{server.url}/v2/{ns}/{refused[0]}/tags/list", auth=ADMIN,
                     timeout=60).status_code == 404
    with repo(server, ns) as client:
        resp = client.post("/api/charts", content=small_chart("late", "1.0.0"))
        assert resp.status_code == 403 and "helm_repositories" in resp.json()["error"]
        # a new version of a stored chart is no new repository
        stored = next(iter(_charts(server, ns)))
        resp = client.post("/api/charts", content=small_chart(stored, "2.0.0"))
        assert resp.status_code == 201, resp.text


def test_simultaneous_first_uploads_into_new_namespaces_stop_at_its_quota(
        few_namespaces: MoorageServer) -> None:
    server = few_namespaces
    spaces = [new_namespace(api(server)) for _ in range(RACERS)]
    uploads = [(ns, small_chart("first", "1.0.0")) for ns in spaces]
    answers = _race(server, spaces, uploads)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 3 + [403] * (RACERS - 3), [r.text for r in answers]
    assert all("quota 'helm_namespaces' is 3" in r.json()["error"]
               for r in answers if r.status_code == 403)
    assert sum(bool(_charts(server, ns)) for ns in spaces) == 3
    assert api(server).get("/info").json()["quotas"]["helm_namespaces"] == \
        {"limit": 3, "used": 3}


@pytest.fixture(scope="module")
def few_repositories_oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    started = _quota_server(tmp_path_factory, namespaces=100, repositories=4)
    yield started
    started.kill()


def _oci_push(server: MoorageServer, token: str, repository: str, chart: bytes,
              start: threading.Barrier) -> httpx.Response:
    """Push a chart over OCI as `helm push` does (config, content layer, manifest tagged with
    its version): the blobs first, then the manifest when every racer is ready."""
    name = repository.rsplit("/", 1)[1]
    config = json.dumps({"apiVersion": "v2", "name": name, "version": "1.0.0"}).encode()
    with httpx.Client(base_url=f"{server.url}/v2/{repository}", timeout=120,
                      headers={"authorization": token}) as client:
        for blob in (config, chart):
            resp = client.post("/blobs/uploads/", params={"digest": f"sha256:{sha256(blob)}"},
                               content=blob)
            assert resp.status_code == 201, resp.text
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                       "digest": f"sha256:{sha256(config)}", "size": len(config)},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                        "digest": f"sha256:{sha256(chart)}", "size": len(chart)}]}).encode()
        start.wait(timeout=120)
        return client.put("/manifests/1.0.0", content=manifest, headers={
            "content-type": "application/vnd.oci.image.manifest.v1+json"})


def test_simultaneous_oci_pushes_of_new_charts_stop_at_the_repositories_quota(
        few_repositories_oci: MoorageServer) -> None:
    server = few_repositories_oci
    ns = new_namespace(api(server))
    names = [f"oci{i}" for i in range(RACERS)]
    resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN, timeout=60, params=[
        ("service", server.host)] + [("scope", f"repository:{ns}/{n}:pull,push") for n in names])
    assert resp.status_code == 200, resp.text
    token = f"Bearer {resp.json()['token']}"
    start = threading.Barrier(RACERS)
    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(lambda n: _oci_push(server, token, f"{ns}/{n}",
                                                    small_chart(n, "1.0.0"), start), names))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 4 + [403] * (RACERS - 4), [r.text for r in answers]
    assert all("quota 'helm_repositories' is 4" in r.text for r in answers
               if r.status_code == 403)
    assert len(_charts(server, ns)) == 4
    assert api(server).get("/info").json()["quotas"]["helm_repositories"] == \
        {"limit": 4, "used": 4}


def test_simultaneous_uploads_of_one_new_version_have_one_winner(
        server: MoorageServer) -> None:
    ns = new_namespace(api(server))
    # the same chart version, each archive different (its description), so the winner's
    # bytes can be told from the others'
    bodies = [_described(i) for i in range(RACERS)]
    assert len({sha256(b) for b in bodies}) == RACERS
    answers = _race(server, [ns], [(ns, b) for b in bodies])
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * (RACERS - 1), [r.text for r in answers]
    assert all("same-1.0.0.tgz" in r.json()["error"] for r in answers if r.status_code == 409)
    winner = next(b for b, r in zip(bodies, answers) if r.status_code == 201)
    with repo(server, ns) as client:
        assert client.get("/charts/same-1.0.0.tgz").content == winner
        [entry] = yaml.safe_load(client.get("/index.yaml").text)["entries"]["same"]
        assert entry["digest"] == sha256(winner)
        # and the version is taken afterwards too, until forced
        resp = client.post("/api/charts", content=bodies[0] if bodies[0] != winner
                           else bodies[1])
        assert resp.status_code == 409, resp.text


def _described(i: int) -> bytes:
    chart_yaml = (f"apiVersion: v2\nname: same\nversion: 1.0.0\n"
                  f"description: upload number {i}\n").encode()
    return tgz({"same/Chart.yaml": chart_yaml, "same/values.yaml": b"replicas: 1\n"})


def test_a_private_chart_repository_in_a_public_namespace_is_listed_only_to_who_may_pull_it(
        server: MoorageServer, tmp_path: Path) -> None:
    ns = new_namespace(api(server), visibility="public")
    secret = small_chart("secret", "1.0.0")
    (tmp_path / "secret-1.0.0.tgz").write_bytes(secret)
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=small_chart("open", "1.0.0")).status_code \
            == 201
        resp = client.post("/api/charts", files={
            "chart": ("secret-1.0.0.tgz", secret),
            "prov": ("secret-1.0.0.tgz.prov", provenance(tmp_path / "secret-1.0.0.tgz"))})
        assert resp.status_code == 201, resp.text
        everyone = client.get("/index.yaml").headers["etag"]
    resp = api(server).patch(f"/repositories/{ns}/secret", json={"visibility": "private"})
    assert resp.status_code == 200, resp.text
    reader, stranger = make_user(server, "reader"), make_user(server, "stranger")
    resp = api(server).put(f"/namespaces/{ns}/members/{reader[0]}", json={"role": "guest"})
    assert resp.status_code in (200, 201), resp.text

    # anonymous: Helm's own index loader, and every listing, show only the public chart
    index = helm().repo_index(f"{server.url}/chartrepo/{ns}")
    assert sorted(index["entries"]) == ["open"]
    for auth, sees_secret in ((None, False), (stranger, False), (reader, True),
                              (ADMIN, True)):
        with repo(server, ns, auth=auth) as client:
            resp = client.get("/index.yaml")
            assert resp.status_code == 200, resp.text
            assert sorted(yaml.safe_load(resp.text)["entries"]) == \
                (["open", "secret"] if sees_secret else ["open"]), auth
            listed = client.get("/api/charts")
            assert sorted(listed.json()) == (["open", "secret"] if sees_secret
                                             else ["open"]), auth
            # the ETag is the visible set's: a reader seeing less never revalidates against
            # the index of one seeing more
            etag = resp.headers["etag"]
            assert (etag == everyone) == sees_secret, (auth, etag, everyone)
            if not sees_secret:
                again = client.get("/index.yaml", headers={"if-none-match": everyone})
                assert again.status_code == 200 and "secret" not in again.text
                assert client.get("/index.yaml", headers={"if-none-match": etag}) \
                    .status_code == 304
            # the chart's own routes refuse who may not pull it
            for path in ("/api/charts/secret", "/api/charts/secret/1.0.0",
                         "/api/charts/secret/latest", "/charts/secret-1.0.0.tgz",
                         "/charts/secret-1.0.0.tgz.prov"):
                resp = client.get(path)
                if sees_secret:
                    assert resp.status_code == 200, (auth, path, resp.text)
                else:
                    assert resp.status_code == (401 if auth is None else 403), \
                        (auth, path, resp.status_code, resp.text)
            assert client.get("/charts/open-1.0.0.tgz").status_code == 200
    h = helm()
    out = tmp_path / "pulled"
    out.mkdir()
    with pytest.raises(Exception):
        h.pull("secret", repo_url=f"{server.url}/chartrepo/{ns}", version="1.0.0",
               destination=out)
    assert not list(out.iterdir())
