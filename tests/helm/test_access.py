"""Who may read and write charts: the same rules as /v2 (Basic credentials, bearer tokens,
roles, anonymous reads of public namespaces); the chart quotas; the personal edition."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOMY, SECURED
from tests.helm.helpers import ADMIN, api, helm, new_namespace, package, repo
from tests.support.server import MoorageServer
from tests.web.helpers import make_user


def _member(server: MoorageServer, namespace: str, username: str, role: str) -> None:
    resp = api(server).put(f"/namespaces/{namespace}/members/{username}", json={"role": role})
    assert resp.status_code in (200, 201), resp.text


def test_roles_decide_who_reads_uploads_and_deletes(server: MoorageServer,
                                                    tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    guest, developer, stranger = (make_user(server, p) for p in ("guest", "dev", "stranger"))
    _member(server, ns, guest[0], "guest")
    _member(server, ns, developer[0], "developer")
    chart = package(tmp_path, "svc", "1.0.0")
    with repo(server, ns, auth=None) as anonymous:
        resp = anonymous.get("/index.yaml")
        assert resp.status_code == 401, resp.text
        assert resp.headers["www-authenticate"].startswith("Basic")
        assert "authentication required" in resp.json()["error"]
        resp = anonymous.post("/api/charts", content=chart.read_bytes())
        assert resp.status_code == 401, resp.text
    with repo(server, ns, auth=stranger) as client:
        assert client.get("/index.yaml").status_code == 403
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 403
    with repo(server, ns, auth=guest) as client:
        assert client.get("/index.yaml").status_code == 200
        resp = client.post("/api/charts", content=chart.read_bytes())
        assert resp.status_code == 403, resp.text
    with repo(server, ns, auth=developer) as client:
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 201
    with repo(server, ns, auth=guest) as client:
        assert client.get(f"/charts/{chart.name}").content == chart.read_bytes()
        assert client.delete("/api/charts/svc/1.0.0").status_code == 403
    with repo(server, ns, auth=stranger) as client:
        assert client.get(f"/charts/{chart.name}").status_code == 403
    with repo(server, ns, auth=developer) as client:
        assert client.delete("/api/charts/svc/1.0.0").status_code == 403  # developer: no delete
    with repo(server, ns) as client:
        assert client.delete("/api/charts/svc/1.0.0").status_code == 200
    # the audit log has them as any artifact's push, pull and delete, by who did them
    # (written by a flusher: waited for, bounded only against a hang)
    import time
    deadline = time.monotonic() + 120
    while True:
        entries = api(server).get("/audit", params={"repository": f"{ns}/svc"}).json()["entries"]
        seen = {(e["actor"], e["action"]) for e in entries}
        if {(developer[0], "push"), (guest[0], "pull"), ("admin", "delete")} <= seen \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {(developer[0], "push"), (guest[0], "pull"), ("admin", "delete")} <= seen, seen
    # a wrong password is a 401, and the body says so
    resp = httpx.get(f"{server.url}/chartrepo/{ns}/index.yaml", auth=(guest[0], "wrong"),
                     timeout=60)
    assert resp.status_code == 401 and resp.json()["error"]


def test_anonymous_reads_a_public_namespace_through_helm(server: MoorageServer,
                                                         tmp_path: Path) -> None:
    ns = new_namespace(api(server), visibility="public")
    chart = package(tmp_path, "open", "0.0.1")
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 201
    h = helm()
    index = h.repo_index(f"{server.url}/chartrepo/{ns}")
    assert [v["version"] for v in index["entries"]["open"]] == ["0.0.1"]
    out = tmp_path / "out"
    out.mkdir()
    h.pull("open", repo_url=f"{server.url}/chartrepo/{ns}", version="0.0.1", destination=out)
    assert (out / chart.name).read_bytes() == chart.read_bytes()
    with repo(server, ns, auth=None) as anonymous:
        assert anonymous.post("/api/charts", content=chart.read_bytes()).status_code == 401


def test_bearer_tokens_are_honoured_with_their_scope(server: MoorageServer,
                                                     tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    chart = package(tmp_path, "tok", "1.0.0")
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 201

    def token(scope: str) -> str:
        resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN, timeout=60,
                         params={"service": server.host, "scope": scope})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["token"])

    pull = {"authorization": f"Bearer {token(f'repository:{ns}/tok:pull')}"}
    resp = httpx.get(f"{server.url}/chartrepo/{ns}/charts/{chart.name}", headers=pull,
                     timeout=60)
    assert resp.status_code == 200 and resp.content == chart.read_bytes()
    assert httpx.get(f"{server.url}/chartrepo/{ns}/index.yaml", headers=pull,
                     timeout=60).status_code == 200
    other = {"authorization": f"Bearer {token('repository:elsewhere/x:pull')}"}
    resp = httpx.get(f"{server.url}/chartrepo/{ns}/index.yaml", headers=other, timeout=60)
    assert resp.status_code == 403, resp.text
    resp = httpx.post(f"{server.url}/chartrepo/{ns}/api/charts", headers=pull, timeout=60,
                      content=chart.read_bytes())
    assert resp.status_code == 403, resp.text


@pytest.fixture(scope="module")
def small_quota(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    started = MoorageServer(tmp_path_factory.mktemp("helm-quota") / "data", env={
        **SECURED, **ROOMY, "MOORAGE_EDITION": "basic", "MOORAGE_QUOTA_HELM_NAMESPACES": "1",
        "MOORAGE_QUOTA_HELM_REPOSITORIES": "2"}).start()
    yield started
    started.kill()


def test_chart_namespaces_and_repositories_count_against_their_quotas(
        small_quota: MoorageServer, tmp_path: Path) -> None:
    server = small_quota
    ns, other = new_namespace(api(server)), new_namespace(api(server))
    with repo(server, ns) as client:
        for name in ("one", "two"):
            resp = client.post("/api/charts", content=package(tmp_path, name).read_bytes())
            assert resp.status_code == 201, resp.text
        # another version of a chart that exists is no new repository
        resp = client.post("/api/charts", content=package(tmp_path, "one", "2.0.0").read_bytes())
        assert resp.status_code == 201, resp.text
        resp = client.post("/api/charts", content=package(tmp_path, "three").read_bytes())
        assert resp.status_code == 403, resp.text
        assert "quota 'helm_repositories' is 2" in resp.json()["error"]
    with repo(server, other) as client:
        resp = client.post("/api/charts", content=package(tmp_path, "four").read_bytes())
        assert resp.status_code == 403, resp.text
        assert "quota 'helm_namespaces' is 1" in resp.json()["error"]
    # over OCI, the same quota
    client = helm().RegistryClient(plain_http=True, credentials_file=tmp_path / "c.json")
    client.login(server.host, *ADMIN, plain_http=True)
    with pytest.raises(Exception, match="helm_namespaces"):
        client.push(package(tmp_path, "five"), f"oci://{server.host}/{other}")
    info = api(server).get("/info").json()
    assert info["quotas"]["helm_namespaces"] == {"limit": 1, "used": 1}
    assert info["quotas"]["helm_repositories"] == {"limit": 2, "used": 2}
    assert httpx.get(f"{server.url}/v2/{other}/four/tags/list", auth=ADMIN,
                     timeout=60).status_code == 404


@pytest.fixture(scope="module")
def personal(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    started = MoorageServer(tmp_path_factory.mktemp("helm-personal") / "data", env={
        **SECURED, "MOORAGE_EDITION": "personal"}).start()
    yield started
    started.kill()


def test_the_personal_edition_refuses_charts_naming_the_edition_needed(
        personal: MoorageServer, tmp_path: Path) -> None:
    server = personal
    ns = new_namespace(api(server))
    chart = package(tmp_path, "nope")
    with repo(server, ns) as client:
        resp = client.post("/api/charts", content=chart.read_bytes())
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == ("Helm charts needs the basic edition or higher; this "
                                        "instance runs the personal edition")
        assert client.get("/index.yaml").status_code == 403
    resp = api(server).get(f"/namespaces/{ns}/charts")
    assert resp.status_code == 403 and "basic edition" in resp.text
    client = helm().RegistryClient(plain_http=True, credentials_file=tmp_path / "c.json")
    client.login(server.host, *ADMIN, plain_http=True)
    with pytest.raises(Exception, match="Helm charts needs the basic edition"):
        client.push(chart, f"oci://{server.host}/{ns}")
