"""Real servers for the proxy cache tests, each a process on a loopback port stopped by PID:
CNCF Distribution with htpasswd Basic auth behind TLS (a CA made in the test) as the
upstream, its access log on so that the tests count what reached it; Moorage with token auth
and two workers; the misbehaving registry of tests/remote."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.remote.conftest import BASIC_PASSWORD, BASIC_USER, Distribution, Misbehaving
from tests.support.certs import Authority
from tests.support.server import MoorageServer

ADMIN = ("admin", ADMIN_PASSWORD)
_ACCESS = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (/v2/[^ ?"]*)[^"]*" (\d{3})')


class CountedDistribution(Distribution):
    """Distribution with its access log on: `requests()` counts (method, path) it served."""

    def command(self) -> list[str]:
        cmd = super().command()
        text = self.config_path.read_text().replace("accesslog:\n    disabled: true",
                                                    "accesslog:\n    disabled: false")
        self.config_path.write_text(text.replace("level: warn", "level: error"))
        return cmd

    def requests(self) -> Counter[tuple[str, str]]:
        seen: Counter[tuple[str, str]] = Counter()
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _ACCESS.search(line)
            if match and match[3] != "401":  # a challenge, answered again with credentials
                seen[(match[1], match[2])] += 1
        return seen


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("proxy-ca"))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory,
             authority: Authority) -> Iterator[CountedDistribution]:
    folder = tmp_path_factory.mktemp("proxy-upstream")
    htpasswd = folder / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD], capture_output=True,
                          text=True, check=True, timeout=60)
    htpasswd.write_text(made.stdout)
    cert, key, _ = authority.issue("dist", ["localhost"])
    server = CountedDistribution(folder / "data", htpasswd, (cert, key), authority).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def moorage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    """Token auth, a known administrator, two workers (state shared through the database)."""
    server = MoorageServer(tmp_path_factory.mktemp("proxy-moorage") / "data",
                           extra_args=["--workers", "2"], env={**SECURED, **ROOMY}).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Misbehaving]:
    server = Misbehaving(tmp_path_factory.mktemp("proxy-misbehaving") / "data").start()
    yield server
    server.kill()


def api(server: MoorageServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=ADMIN, timeout=120)


def seed(upstream: CountedDistribution, layout: Path, tag: str, dest: str) -> None:
    """skopeo copies an OCI layout's image into the upstream (Basic auth, its TLS)."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds",
                    f"{BASIC_USER}:{BASIC_PASSWORD}", f"oci:{layout}:{tag}",
                    f"docker://localhost:{upstream.port}/{dest}"],
                   check=True, capture_output=True, timeout=300)


def create_proxy(server: MoorageServer, upstream: CountedDistribution, authority: Authority,
                 namespace: str, **extra: object) -> dict[str, object]:
    body = {"namespace": namespace, "upstream_url": f"https://localhost:{upstream.port}",
            "username": BASIC_USER, "password": BASIC_PASSWORD,
            "ca_pem": authority.ca_file.read_text(), **extra}
    with api(server) as client:
        answer = client.post("/proxy-caches", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]
