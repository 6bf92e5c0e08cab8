"""Charts with the real Helm SDK: over OCI and through the classic chart repository, one
storage; ChartMuseum's answers to bad input; conflicts, immutability, deletion."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.helm.helpers import (ADMIN, api, helm, new_namespace, package, provenance, repo,
                                sha256, tgz)
from tests.support.server import MoorageServer


def oci_client(server: MoorageServer, tmp_path: Path, creds: tuple[str, str] = ADMIN):  # type: ignore[no-untyped-def]
    client = helm().RegistryClient(plain_http=True, credentials_file=tmp_path / "creds.json")
    client.login(server.host, *creds, plain_http=True)
    return client


def catalog(server: MoorageServer, namespace: str) -> list[str]:
    resp = httpx.get(f"{server.url}/v2/_catalog", auth=ADMIN, timeout=60)
    assert resp.status_code == 200, resp.text
    return [r for r in resp.json()["repositories"] if r.startswith(namespace + "/")]


def test_a_chart_pushed_over_oci_is_in_the_classic_repository(server: MoorageServer,
                                                               tmp_path: Path) -> None:
    """helm push (plain HTTP), tags, pull; then the same chart by name and version from
    index.yaml, which Helm's own loader reads, with the .tgz's sha256 as digest."""
    h = helm()
    ns = new_namespace(api(server))
    chart = package(tmp_path, "web", "1.2.3+build.7", app_version="4.5")
    client = oci_client(server, tmp_path)
    client.push(chart, f"oci://{server.host}/{ns}")
    assert client.tags(f"oci://{server.host}/{ns}/web") == ["1.2.3+build.7"]
    pulled = tmp_path / "oci"
    pulled.mkdir()
    client.pull(f"oci://{server.host}/{ns}/web", version="1.2.3+build.7", destination=pulled)
    assert (pulled / "web-1.2.3+build.7.tgz").read_bytes() == chart.read_bytes()

    index = h.repo_index(f"{server.url}/chartrepo/{ns}", username=ADMIN[0], password=ADMIN[1])
    [entry] = index["entries"]["web"]
    assert entry["version"] == "1.2.3+build.7" and entry["appVersion"] == "4.5"
    assert entry["digest"] == sha256(chart.read_bytes())
    assert entry["urls"] == ["charts/web-1.2.3+build.7.tgz"]  # relative: any host name
    classic = tmp_path / "classic"
    classic.mkdir()
    h.pull("web", repo_url=f"{server.url}/chartrepo/{ns}", version="1.2.3+build.7",
           destination=classic, username=ADMIN[0], password=ADMIN[1])
    assert (classic / "web-1.2.3+build.7.tgz").read_bytes() == chart.read_bytes()


def test_a_chart_uploaded_with_its_provenance_is_pulled_over_oci(server: MoorageServer,
                                                                 tmp_path: Path) -> None:
    """POST /api/charts (multipart chart + prov) with httpx, then helm pull oci://; the
    .prov is served beside the chart; the binary upload and POST /api/prov work too."""
    ns = new_namespace(api(server))
    chart = package(tmp_path, "api", "0.3.0")
    prov = provenance(chart)
    with repo(server, ns) as client:
        resp = client.post("/api/charts", files={"chart": (chart.name, chart.read_bytes()),
                                                 "prov": (chart.name + ".prov", prov)})
        assert resp.status_code == 201, resp.text
        assert resp.json() == {"saved": True}
        assert client.get(f"/charts/{chart.name}.prov").content == prov
        assert client.get(f"/charts/{chart.name}").content == chart.read_bytes()
        version = client.get("/api/charts/api/0.3.0").json()
        assert version["digest"] == sha256(chart.read_bytes())

        other = package(tmp_path, "worker", "2.0.0")
        resp = client.post("/api/charts", content=other.read_bytes(),
                           headers={"content-type": "application/octet-stream"})
        assert resp.status_code == 201, resp.text
        assert client.get(f"/charts/{other.name}.prov").status_code == 404
        resp = client.post("/api/prov", content=provenance(other))
        assert resp.status_code == 201, resp.text
        assert client.get(f"/charts/{other.name}.prov").content == provenance(other)
        # Harbor's path works as an alias of ChartMuseum's
        third = package(tmp_path, "batch", "1.0.0")
        resp = httpx.post(f"{server.url}/api/chartrepo/{ns}/charts", auth=ADMIN, timeout=60,
                          files={"chart": (third.name, third.read_bytes())})
        assert resp.status_code == 201, resp.text
        listing = client.get("/api/charts").json()
        assert sorted(listing) == ["api", "batch", "worker"]
    out = tmp_path / "out"
    out.mkdir()
    client_oci = oci_client(server, tmp_path)
    for name, version, source in (("api", "0.3.0", chart), ("worker", "2.0.0", other)):
        client_oci.pull(f"oci://{server.host}/{ns}/{name}", version=version, destination=out)
        assert (out / source.name).read_bytes() == source.read_bytes()
    # the provenance file is a layer of the chart's OCI manifest, with Helm's media type
    manifest = httpx.get(f"{server.url}/v2/{ns}/worker/manifests/2.0.0", auth=ADMIN,
                         headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
                         timeout=60).json()
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        "application/vnd.cncf.helm.chart.provenance.v1.prov"]


CHART_YAML = b"apiVersion: v2\nname: NAME\nversion: VERSION\n"


def _chart(name: str = "good", version: str = "1.0.0", folder: str | None = None) -> bytes:
    text = CHART_YAML.replace(b"NAME", name.encode()).replace(b"VERSION", version.encode())
    return tgz({f"{folder or name}/Chart.yaml": text, f"{folder or name}/values.yaml": b"a: 1\n"})


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"this is not a chart at all", 400, "not a chart"),
    (tgz({"good/values.yaml": b"a: 1\n"}), 400, "no <name>/Chart.yaml"),
    (_chart(version="1.0"), 400, "not a valid SemVer 2 version"),
    (_chart(version="latest-and-greatest"), 400, "not a valid SemVer 2 version"),
    (_chart(name="../../etc"), 400, "unsafe path"),
    (_chart(name="a/b", folder="ab"), 400, "path characters"),
    (tgz({"../evil/Chart.yaml": CHART_YAML}), 400, "unsafe path"),
    (_chart(name="good").replace(b"\x1f\x8b", b"\x1f\x8b", 1)[:40], 400, "cannot be read"),
], ids=["not-gzip", "no-chart-yaml", "short-version", "word-version", "dotdot-name",
        "slash-name", "traversal-member", "truncated"])
def test_bad_charts_are_refused_and_nothing_is_stored(server: MoorageServer, body: bytes,
                                                      status: int, words: str) -> None:
    ns = new_namespace(api(server))
    with repo(server, ns) as client:
        resp = client.post("/api/charts", content=body)
        assert resp.status_code == status, resp.text
        assert words in resp.json()["error"]
        assert client.get("/api/charts").json() == {}
    assert catalog(server, ns) == []


def test_an_upload_over_the_size_limit_is_refused_early(server: MoorageServer) -> None:
    """100 MiB, streamed: refused from its Content-Length before the body is read, and when
    sent without a length, as soon as it passes the limit."""
    ns = new_namespace(api(server))
    sent = {"bytes": 0}

    def body():  # type: ignore[no-untyped-def]
        chunk = b"\0" * (1 << 20)
        for _ in range(100):
            sent["bytes"] += len(chunk)
            yield chunk

    with repo(server, ns) as client:
        resp = client.post("/api/charts", content=body(),
                           headers={"content-length": str(100 << 20)})
        assert resp.status_code == 413, resp.text
        assert "larger than the limit" in resp.json()["error"]
        sent["bytes"] = 0
        try:
            resp = client.post("/api/charts", content=body())  # chunked: no length
        except httpx.HTTPError:
            pass  # the server may close the connection while the client still sends
        else:
            assert resp.status_code == 413, resp.text
        assert client.get("/api/charts").json() == {}
    assert catalog(server, ns) == []


def test_a_provenance_file_for_a_missing_chart_is_refused(server: MoorageServer,
                                                          tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    chart = package(tmp_path, "ghost", "1.0.0")
    with repo(server, ns) as client:
        resp = client.post("/api/prov", content=provenance(chart))
        assert resp.status_code == 404, resp.text
        assert "upload the chart before its provenance file" in resp.json()["error"]
        resp = client.post("/api/prov", content=b"not a provenance file")
        assert resp.status_code == 400, resp.text
        assert client.get("/api/charts").json() == {}
    assert catalog(server, ns) == []


def test_an_existing_version_is_a_conflict_unless_forced_but_never_an_immutable_tag(
        server: MoorageServer, tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    first = package(tmp_path, "app", "1.0.0", app_version="1")
    second = package(tmp_path, "app", "1.0.0", app_version="2")
    with repo(server, ns) as client:
        assert client.post("/api/charts", content=first.read_bytes()).status_code == 201
        resp = client.post("/api/charts", content=second.read_bytes())
        assert resp.status_code == 409, resp.text
        assert "already exists" in resp.json()["error"]
        assert client.get("/api/charts/app/1.0.0").json()["appVersion"] == "1"
        resp = client.post("/api/charts", params={"force": "true"}, content=second.read_bytes())
        assert resp.status_code == 201, resp.text
        assert client.get("/api/charts/app/1.0.0").json()["appVersion"] == "2"
        resp = api(server).post("/immutability", json={"scope": f"{ns}/*", "tag_pattern": "*"})
        assert resp.status_code == 201, resp.text
        resp = client.post("/api/charts", params={"force": "true"}, content=first.read_bytes())
        assert resp.status_code == 409, resp.text
        assert "immutable" in resp.json()["error"]
        assert client.get("/api/charts/app/1.0.0").json()["appVersion"] == "2"
        resp = client.delete("/api/charts/app/1.0.0")
        assert resp.status_code == 409, resp.text


def test_deleting_a_version_removes_its_provenance_and_its_tag(server: MoorageServer,
                                                               tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    chart = package(tmp_path, "gone", "0.1.0")
    keep = package(tmp_path, "gone", "0.2.0")
    with repo(server, ns) as client:
        resp = client.post("/api/charts", files={"chart": (chart.name, chart.read_bytes()),
                                                 "prov": ("p", provenance(chart))})
        assert resp.status_code == 201, resp.text
        assert client.post("/api/charts", content=keep.read_bytes()).status_code == 201
        resp = client.delete("/api/charts/gone/0.1.0")
        assert resp.status_code == 200 and resp.json() == {"deleted": True}
        assert client.get(f"/charts/{chart.name}.prov").status_code == 404
        assert client.get(f"/charts/{chart.name}").status_code == 404
        assert client.head("/api/charts/gone/0.1.0").status_code == 404
        assert client.delete("/api/charts/gone/0.1.0").status_code == 404
        assert [v["version"] for v in client.get("/api/charts/gone").json()] == ["0.2.0"]
        index = yaml.safe_load(client.get("/index.yaml").text)
        assert [v["version"] for v in index["entries"]["gone"]] == ["0.2.0"]
    tags = httpx.get(f"{server.url}/v2/{ns}/gone/tags/list", auth=ADMIN, timeout=60).json()
    assert tags["tags"] == ["0.2.0"]


def test_the_index_is_revalidated_and_follows_changes_on_every_worker(
        server: MoorageServer, tmp_path: Path) -> None:
    ns = new_namespace(api(server))
    with repo(server, ns) as client:
        empty = client.get("/index.yaml")
        assert empty.status_code == 200 and yaml.safe_load(empty.text)["entries"] == {}
        chart = package(tmp_path, "cached", "1.0.0")
        assert client.post("/api/charts", content=chart.read_bytes()).status_code == 201
        etags = set()
        for _ in range(6):  # two workers: each answers some of these
            resp = client.get("/index.yaml")
            assert list(yaml.safe_load(resp.text)["entries"]) == ["cached"]
            etags.add(resp.headers["etag"])
        assert len(etags) == 1 and empty.headers["etag"] not in etags
        etag = etags.pop()
        for _ in range(4):
            resp = client.get("/index.yaml", headers={"if-none-match": etag})
            assert resp.status_code == 304 and resp.content == b""
        assert client.delete("/api/charts/cached/1.0.0").status_code == 200
        for _ in range(4):
            resp = client.get("/index.yaml", headers={"if-none-match": etag})
            assert resp.status_code == 200 and yaml.safe_load(resp.text)["entries"] == {}


def test_a_chart_pushed_to_a_repository_not_named_after_it_is_refused(
        server: MoorageServer, tmp_path: Path) -> None:
    """The chart's config is validated on any OCI push: a chart whose name is not its
    repository's (here through the Distribution API itself) is MANIFEST_INVALID."""
    ns = new_namespace(api(server))
    chart = package(tmp_path, "right", "1.0.0")
    client = oci_client(server, tmp_path)
    client.push(chart, f"oci://{server.host}/{ns}")
    manifest = httpx.get(f"{server.url}/v2/{ns}/right/manifests/1.0.0", auth=ADMIN, timeout=60,
                         headers={"accept": "application/vnd.oci.image.manifest.v1+json"})
    for blob in [manifest.json()["config"], *manifest.json()["layers"]]:
        resp = httpx.post(f"{server.url}/v2/{ns}/wrong/blobs/uploads/", auth=ADMIN, timeout=60,
                          params={"mount": blob["digest"], "from": f"{ns}/right"})
        assert resp.status_code == 201, resp.text
    resp = httpx.put(f"{server.url}/v2/{ns}/wrong/manifests/1.0.0", auth=ADMIN, timeout=60,
                     content=manifest.content,
                     headers={"content-type": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status_code == 400, resp.text
    assert "a chart's repository is named after it" in resp.text


def test_yaml_that_json_lacks_and_a_multipart_without_its_chart(server: MoorageServer) -> None:
    """A Chart.yaml with a date (YAML has them, JSON not) is stored with it as text; a
    multipart upload without a `chart` field is a 400 that names it."""
    ns = new_namespace(api(server))
    chart_yaml = (b"apiVersion: v2\nname: dated\nversion: 1.0.0\n"
                  b"annotations:\n  released: 2024-01-31\n  42: answer\n")
    body = tgz({"dated/Chart.yaml": chart_yaml})
    with repo(server, ns) as client:
        resp = client.post("/api/charts", content=body)
        assert resp.status_code == 201, resp.text
        version = client.get("/api/charts/dated/1.0.0").json()
        assert version["annotations"]["released"] == "2024-01-31"
        assert yaml.safe_load(client.get("/index.yaml").text)["entries"]["dated"]
        resp = client.post("/api/charts", files={"other": ("x.tgz", body)})
        assert resp.status_code == 400 and "no 'chart' field" in resp.json()["error"]


def test_a_retention_rule_deletes_old_chart_versions_from_the_index(
        server: MoorageServer) -> None:
    """Charts are tags like any others: a keep-last-2 rule leaves the two newest versions,
    and index.yaml follows at once."""
    import time

    ns = new_namespace(api(server))
    with repo(server, ns) as client:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            body = tgz({"kept/Chart.yaml": f"apiVersion: v2\nname: kept\nversion: {version}\n"
                        .encode()})
            assert client.post("/api/charts", content=body).status_code == 201
            time.sleep(1.1)  # distinct push times: "newest" is by push time
        rule = api(server).post("/retention", json={"scope": f"{ns}/*", "keep_last": 2})
        assert rule.status_code == 201, rule.text
        job = api(server).post(f"/retention/{rule.json()['id']}/run", json={"dry_run": False})
        assert job.status_code in (200, 201, 202), job.text
        deadline = time.monotonic() + 120  # bounds a hang only
        while True:
            state = api(server).get(f"/jobs/{job.json()['id']}").json()
            if state["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert state["status"] == "succeeded", state
        index = yaml.safe_load(client.get("/index.yaml").text)
        assert [v["version"] for v in index["entries"]["kept"]] == ["1.2.0", "1.1.0"]
        assert client.get("/charts/kept-1.0.0.tgz").status_code == 404
