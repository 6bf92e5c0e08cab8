"""HTTPS (issue 15 item 4, the single-certificate part): skopeo and podman push and pull
over HTTPS with a CA made in the test, the bearer token flow with its realm on the host the
client asked for, HTTP/2, a renewed certificate served without a restart, and a pair that
cannot be served refused at start with the reason."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.clients.tools import ContainerStore, skopeo
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.certs import Authority
from tests.support.images import random_image
from tests.support.server import MoorageServer

CREDS = f"admin:{ADMIN_PASSWORD}"


class HttpsServer(MoorageServer):
    scheme = "https"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def https(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    cert, key, _ = ca.issue("registry", ["localhost", "registry.test"])
    server = HttpsServer(tmp_path_factory.mktemp("https") / "data", extra_args=[
        "--workers", "2"], env={**SECURED, **ROOMY, "MOORAGE_TLS_CERT": str(cert),
                                "MOORAGE_TLS_KEY": str(key)})
    server.verify = ca.context()
    server.start()
    yield server
    server.stop()


def served_serial(server: MoorageServer, ca: Authority) -> int:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    with context.wrap_socket(__import__("socket").create_connection(
            ("127.0.0.1", server.port), timeout=10), server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_token_flow_over_https_names_the_host_asked_for(https: HttpsServer, ca: Authority
                                                        ) -> None:
    for host in ("127.0.0.1", "localhost"):
        base = f"https://{host}:{https.port}"
        challenge = httpx.get(f"{base}/v2/", verify=ca.context())
        assert challenge.status_code == 401
        assert f'realm="{base}/auth/token"' in challenge.headers["www-authenticate"]
        token = httpx.get(f"{base}/auth/token", verify=ca.context(), auth=(
            "admin", ADMIN_PASSWORD), params={"service": "moorage"}).json()["token"]
        answer = httpx.get(f"{base}/v2/", verify=ca.context(),
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
        httpx.get(f"{https.url}/v2/")


def test_http2_is_negotiated(https: HttpsServer, ca: Authority) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed (Debian package curl)")
    done = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2",
                           "--cacert", str(ca.ca_file), f"{https.url}/v2/"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "2", done


@pytest.mark.slow
def test_skopeo_and_podman_push_and_pull_over_https(https: HttpsServer, ca: Authority,
                                                    tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca.ca_file, certs / "ca.crt")  # the form skopeo and podman read
    layout = tmp_path / "layout"
    random_image(layout, "v1")
    target = f"docker://{https.host}/secure/app:v1"
    skopeo("copy", "--dest-cert-dir", str(certs), "--dest-creds", CREDS, f"oci:{layout}:v1",
           target)
    out = tmp_path / "out"
    skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", CREDS, target,
           f"oci:{out}:v1")
    assert (out / "index.json").exists()
    refused = skopeo("copy", "--src-creds", CREDS, target, f"oci:{tmp_path / 'no'}:v1",
                     check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr
    podman = ContainerStore("podman", tmp_path / "podman", "vfs")
    try:
        podman("pull", "--cert-dir", str(certs), "--creds", CREDS,
               f"{https.host}/secure/app:v1")
        podman("tag", f"{https.host}/secure/app:v1", f"{https.host}/secure/app:v2")
        podman("push", "--cert-dir", str(certs), "--creds", CREDS,
               f"{https.host}/secure/app:v2")
    finally:
        podman.cleanup()
    listed = httpx.get(f"{https.url}/v2/secure/app/tags/list", verify=ca.context(),
                       auth=("admin", ADMIN_PASSWORD)).json()
    assert sorted(listed["tags"]) == ["v1", "v2"]


@pytest.mark.slow
def test_a_renewed_certificate_is_served_without_a_restart(ca: Authority, tmp_path: Path
                                                           ) -> None:
    cert, key, first = ca.issue("renew", ["localhost"])
    server = HttpsServer(tmp_path / "data", env={
        **SECURED, "MOORAGE_TLS_CERT": str(cert), "MOORAGE_TLS_KEY": str(key)})
    server.verify = ca.context()
    server.start()
    try:
        assert served_serial(server, ca) == first
        pid = server.proc.pid if server.proc else None
        _, _, second = ca.issue("renew", ["localhost"])  # the same files, renewed
        # The workers are replaced one after another, so for a while a connection may meet an
        # old worker or a new one: done when 20 connections in a row all get the renewed
        # certificate. The deadline only bounds a hang (the watch looks every 5 s).
        deadline = time.monotonic() + 300
        in_a_row = 0
        while in_a_row < 20 and time.monotonic() < deadline:
            try:
                renewed = served_serial(server, ca) == second
            except OSError as exc:  # never: the old worker serves until the new one has
                pytest.fail(f"a connection was refused during the reload: {exc}")
            in_a_row = in_a_row + 1 if renewed else 0
            if not renewed:
                time.sleep(0.5)
        assert in_a_row == 20, "the renewed certificate is not served by every worker"
        assert server.proc is not None and server.proc.poll() is None
        assert server.proc.pid == pid  # the same server: its workers were respawned
        assert httpx.get(f"{server.url}/v2/", verify=ca.context()).status_code == 401
    finally:
        server.stop()


def serve_with(cert: Path, key: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "moorage", "serve", "--listen",
                           "127.0.0.1:1", "--data-dir", str(tmp_path / "refused")],
                          env={**__import__("os").environ, "MOORAGE_TLS_CERT": str(cert),
                               "MOORAGE_TLS_KEY": str(key)},
                          capture_output=True, text=True, timeout=120)


def test_a_pair_that_cannot_be_served_is_refused_at_start(ca: Authority, tmp_path: Path
                                                          ) -> None:
    expired_cert, expired_key, _ = ca.issue("expired", ["localhost"], days=-1, start_days=-5)
    done = serve_with(expired_cert, expired_key, tmp_path)
    assert done.returncode == 2 and "the certificate expired on" in done.stderr, done.stderr
    cert, _, _ = ca.issue("one", ["localhost"])
    _, other_key, _ = ca.issue("two", ["localhost"])
    done = serve_with(cert, other_key, tmp_path)
    assert done.returncode == 2 and "does not belong to the certificate" in done.stderr, \
        done.stderr
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    sec1 = tmp_path / "sec1.key"
    sec1.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    done = serve_with(cert, sec1, tmp_path)
    assert done.returncode == 2 and "openssl pkcs8 -topk8" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
