"""What the Helm tests share: charts made and packaged by the real Helm SDK (Helm 4's own Go
code, helm-python-sdk), provenance files, and clients of the chart repository API."""

from __future__ import annotations

import hashlib
import io
import tarfile
import uuid
from pathlib import Path

import httpx

from tests.conftest import ADMIN_PASSWORD
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)


def helm():  # type: ignore[no-untyped-def]
    import helm_python

    return helm_python


def new_namespace(client: httpx.Client, visibility: str = "private") -> str:
    name = f"hl{uuid.uuid4().hex[:10]}"
    resp = client.post("/namespaces", json={"name": name, "visibility": visibility})
    assert resp.status_code == 201, resp.text
    return name


def api(server: MoorageServer, auth: tuple[str, str] | None = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=auth, timeout=60)


def repo(server: MoorageServer, namespace: str,
         auth: tuple[str, str] | None = ADMIN) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/chartrepo/{namespace}", auth=auth, timeout=120)


def package(tmp_path: Path, name: str, version: str = "0.1.0",
            app_version: str | None = None) -> Path:
    """`helm create NAME` then `helm package`, by the SDK; the .tgz's path."""
    h = helm()
    folder = tmp_path / f"src-{name}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    h.Chart.create(name, folder)
    out = tmp_path / f"pkg-{uuid.uuid4().hex[:6]}"
    out.mkdir()
    return Path(h.package(folder / name, destination=out, version=version,
                          app_version=app_version))


def provenance(chart: Path) -> bytes:
    """A provenance file in Helm's format (Chart.yaml, `...`, the archive's digest) for a
    packaged chart. Its signature block is not a real PGP signature: the registry stores and
    serves it, it does not verify it (as ChartMuseum)."""
    with tarfile.open(chart) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/Chart.yaml"))
        chart_yaml = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    digest = hashlib.sha256(chart.read_bytes()).hexdigest()
    return (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{chart_yaml.rstrip()}\n\n"
            f"...\nfiles:\n  {chart.name}: sha256:{digest}\n"
            "-----BEGIN PGP SIGNATURE-----\n\nwsBcBAEBCgAQBQJnAAAACRB0ZXN0AAAAAA==\n=abcd\n"
            "-----END PGP SIGNATURE-----\n").encode()


def tgz(files: dict[str, bytes]) -> bytes:
    """A gzip-compressed tar of the given files (for bad charts)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small_chart(name: str, version: str) -> bytes:
    """A minimal valid chart (Chart.yaml, values.yaml, one template) made without the SDK:
    thousands of them are made in seconds."""
    chart_yaml = (f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n"
                  f"description: chart {name} at {version}\ntype: application\n").encode()
    return tgz({f"{name}/Chart.yaml": chart_yaml,
                f"{name}/values.yaml": f"replicas: 1\nname: {name}\n".encode(),
                f"{name}/templates/cm.yaml": b"kind: ConfigMap\n"})


def seed(server: MoorageServer, namespace: str, charts: int, versions: int,
         threads: int = 8) -> dict[str, str]:
    """Upload charts × versions through POST /api/charts, `threads` at a time; the sha256
    of each .tgz by its file name."""
    from concurrent.futures import ThreadPoolExecutor

    work = [(f"c{c:03d}", f"1.{v}.0") for c in range(charts) for v in range(versions)]

    def upload(client: httpx.Client, item: tuple[str, str]) -> tuple[str, str]:
        body = small_chart(*item)
        resp = client.post(f"/chartrepo/{namespace}/api/charts", content=body)
        assert resp.status_code == 201, resp.text
        return f"{item[0]}-{item[1]}.tgz", sha256(body)

    # a bearer token: with Basic credentials, every upload would hash the password again
    resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN, timeout=60, params={
        "service": server.host, "scope": f"repository:{namespace}/seed:push"})
    assert resp.status_code == 200, resp.text
    token = f"Bearer {resp.json()['token']}"
    with httpx.Client(base_url=server.url, headers={"authorization": token},
                      timeout=120) as client, ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(lambda item: upload(client, item), work))


def push_token(server: MoorageServer, namespaces: list[str]) -> str:
    """A bearer token of the admin's that may push in the namespaces: uploads sent with it
    are not spread out in time by password hashing, as Basic credentials would be."""
    params = [("service", server.host)] + [("scope", f"repository:{ns}/any:push")
                                           for ns in namespaces]
    resp = httpx.get(f"{server.url}/auth/token", auth=ADMIN, timeout=60, params=params)
    assert resp.status_code == 200, resp.text
    return f"Bearer {resp.json()['token']}"


def race_uploads(token: str, uploads: list[tuple[MoorageServer, str, bytes]]
                 ) -> list[httpx.Response]:
    """POST each (server, namespace, chart) to /chartrepo/NS/api/charts all at once, each on
    its own connection (opened first), released together by a barrier; the answers in order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(len(uploads))

    def upload(item: tuple[MoorageServer, str, bytes]) -> httpx.Response:
        server, namespace, body = item
        with httpx.Client(base_url=server.url, headers={"authorization": token},
                          timeout=120) as client:
            client.get(f"/chartrepo/{namespace}/health")
            start.wait(timeout=120)
            return client.post(f"/chartrepo/{namespace}/api/charts", content=body)

    with ThreadPoolExecutor(len(uploads)) as pool:
        return list(pool.map(upload, uploads))
