"""Custom domain names (issue 15 item 4): several hostnames, each served with its own
certificate chosen by SNI through the TLS front that `moorage serve` runs (HAProxy), domains
added and renewed at runtime without a restart, the token realm on the host the client
asked for, HTTP/2, and pairs that cannot be served refused with the reason."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from tests.clients.tools import ContainerStore, skopeo
from tests.conftest import ADMIN_PASSWORD, ROOMY, SECURED
from tests.support.certs import Authority
from tests.support.images import random_image
from tests.support.server import MoorageServer

HOST_A, HOST_B = "reg-a.moorage.test", "reg-b.moorage.test"
CREDS = f"admin:{ADMIN_PASSWORD}"
pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy (Debian "
                                "package haproxy) is installed by scripts/install-system-deps.sh")


class HttpsServer(MoorageServer):
    scheme = "https"


def moorage_cli(server: MoorageServer, ca: Authority, *args: str
                ) -> subprocess.CompletedProcess[str]:
    """The real `moorage` command against the server, trusting the test CA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"MOORAGE_URL": f"https://localhost:{server.port}", "MOORAGE_USERNAME": "admin",
                "MOORAGE_PASSWORD": ADMIN_PASSWORD, "SSL_CERT_FILE": str(ca.ca_file),
                "NO_COLOR": "1"})
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def served(port: int, server_name: str, ca: Authority | None = None) -> x509.Certificate:
    """The certificate the server presents to a client asking for `server_name` (SNI); with
    `ca`, the handshake also checks it names the host and chains to the CA."""
    if ca is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(ca.ca_file))
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                             server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def wait_until_served(port: int, host: str, serial: int, ca: Authority) -> None:
    """Until every worker of the front presents this certificate (20 handshakes in a row);
    the deadline only bounds a hang (the front looks every few seconds). A refused or failed
    handshake on the way fails the test: a change must never drop a connection."""
    deadline = time.monotonic() + 300
    in_a_row = 0
    while in_a_row < 20:
        assert time.monotonic() < deadline, f"{host} is not served with serial {serial}"
        try:
            renewed = served(port, host, ca).serial_number == serial
        except (OSError, ssl.SSLError) as exc:
            if in_a_row == 0 and "certificate verify failed" in str(exc):
                renewed = False  # the host is not served yet: the default certificate
            else:
                pytest.fail(f"a handshake failed while the front changed: {exc}")
        in_a_row = in_a_row + 1 if renewed else 0
        if not renewed:
            time.sleep(0.5)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("curl")
    if found is None:
        pytest.fail("curl is needed (Debian package curl)")
    return subprocess.run([found, "-sS", *args], capture_output=True, text=True, timeout=120)


def front_pids(server: MoorageServer) -> list[int]:
    """The HAProxy processes whose parent is the server's main process."""
    assert server.proc is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server.proc.pid and b"haproxy" in cmd:
            found.append(int(entry.name))
    return found


def remove_front_sockets(data_dir: Path) -> None:
    """The front's socket folder of a server that was killed (SIGKILL leaves it behind)."""
    cfg = data_dir / "front" / "haproxy.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            if line.strip().startswith("stats socket "):
                folder = Path(line.split()[2]).parent
                if folder.name.startswith("moorage-front-"):
                    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.make(tmp_path_factory.mktemp("domains-ca"))


@pytest.fixture(scope="module")
def front(ca: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    """Two workers behind the TLS front (tls_front = haproxy, so that it runs before any
    domain exists), the default certificate for localhost, then the two domains added
    through the CLI while it runs."""
    cert, key, _ = ca.issue("default", ["localhost"])
    server = HttpsServer(tmp_path_factory.mktemp("domains") / "data", extra_args=[
        "--workers", "2", "--edition", "basic"], env={
        **SECURED, **ROOMY, "MOORAGE_TLS_CERT": str(cert), "MOORAGE_TLS_KEY": str(key),
        "MOORAGE_TLS_FRONT": "haproxy"})
    server.verify = ca.context()
    server.start()
    try:
        pid = server.proc.pid if server.proc else None
        for host, stem in ((HOST_A, "a"), (HOST_B, "b")):
            cert_file, key_file, serial = ca.issue(stem, [host])
            done = moorage_cli(server, ca, "domain", "add", host, "--cert", str(cert_file),
                               "--key", str(key_file))
            assert done.returncode == 0, done
            assert f"Serving {host}" in done.stdout
            wait_until_served(server.port, host, serial, ca)
        assert server.proc is not None and server.proc.pid == pid  # no restart
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def etc_hosts() -> Iterator[None]:
    """The two names on 127.0.0.1 for skopeo and podman (Go resolves through /etc/hosts):
    one line of this process's own, removed exactly afterwards."""
    hosts = Path("/etc/hosts")
    line = f"127.0.0.1 {HOST_A} {HOST_B} # moorage test {os.getpid()}"
    try:
        with hosts.open("a") as out:
            out.write(line + "\n")
    except OSError as exc:
        pytest.skip(f"cannot add the test names to /etc/hosts: {exc}")
    try:
        yield
    finally:
        kept = [ln for ln in hosts.read_text().splitlines() if ln != line]
        hosts.write_text("\n".join(kept) + "\n")


def test_each_host_is_served_its_own_certificate(front: HttpsServer, ca: Authority) -> None:
    for host in (HOST_A, HOST_B):
        done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{front.port}",
                               "-servername", host, "-CAfile", str(ca.ca_file),
                               "-verify_hostname", host],
                              input="", capture_output=True, text=True, timeout=60)
        assert f"subject=CN = {host}" in done.stdout, done.stdout[-2000:]
        assert "Verify return code: 0 (ok)" in done.stdout
        # curl checks the name against the certificate: it fails on a wrong one
        answer = curl("--resolve", f"{host}:{front.port}:127.0.0.1", "--cacert",
                      str(ca.ca_file), "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                      f"https://{host}:{front.port}/v2/")
        assert answer.stdout == "401 2", answer
    # any other name gets the default certificate
    assert served(front.port, "other.moorage.test").subject.rfc4514_string() == "CN=localhost"


def test_token_flow_over_https_with_the_realm_on_the_requested_host(
        front: HttpsServer, ca: Authority, tmp_path: Path) -> None:
    for host in (HOST_A, HOST_B):
        base = f"https://{host}:{front.port}"
        resolve = ["--resolve", f"{host}:{front.port}:127.0.0.1", "--cacert", str(ca.ca_file)]
        challenge = curl(*resolve, "-D", "-", "-o", "/dev/null", f"{base}/v2/")
        assert f'realm="{base}/auth/token"' in challenge.stdout, challenge.stdout
        token = httpx.Response(200, content=curl(
            *resolve, "-u", CREDS, f"{base}/auth/token?service=moorage").stdout).json()["token"]
        allowed = curl(*resolve, "-o", "/dev/null", "-w", "%{http_code}", "-H",
                       f"Authorization: Bearer {token}", f"{base}/v2/")
        assert allowed.stdout == "200"


def test_http2_on_tls(front: HttpsServer, ca: Authority) -> None:
    answer = curl("--http2", "--resolve", f"{HOST_A}:{front.port}:127.0.0.1", "--cacert",
                  str(ca.ca_file), "-o", "/dev/null", "-w", "%{http_version}",
                  f"https://{HOST_A}:{front.port}/v2/")
    assert answer.stdout == "2", answer
    http1 = curl("--http1.1", "--cacert", str(ca.ca_file), "-o", "/dev/null", "-w",
                 "%{http_version}", f"https://localhost:{front.port}/v2/")
    assert http1.stdout == "1.1", http1


def test_the_client_address_is_the_clients_and_forwarding_headers_are_not_believed(
        front: HttpsServer, ca: Authority) -> None:
    """The front says who the client is; a client cannot say it itself, nor pose as the
    front (the secret header is replaced)."""
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Moorage-Front": "guess",
              "X-Forwarded-Proto": "http"}
    answer = httpx.get(f"https://localhost:{front.port}/v2/", headers=forged,
                       verify=ca.context())
    assert answer.status_code == 401
    assert f'realm="https://localhost:{front.port}/auth/token"' in \
        answer.headers["www-authenticate"]
    # a failed login is recorded with the address the front saw, not the forged one
    refused = httpx.get(f"https://localhost:{front.port}/auth/token", headers=forged,
                        auth=("admin", "a-wrong-password"), verify=ca.context())
    assert refused.status_code == 401
    deadline = time.monotonic() + 120  # the audit log is written by a flusher thread
    while True:
        entries = httpx.get(f"https://localhost:{front.port}/api/v1/audit",
                            params={"actor": "admin", "action": "login",
                                    "result": "failure"},
                            auth=("admin", ADMIN_PASSWORD), verify=ca.context()).json()["entries"]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert entries and entries[0]["address"] == "127.0.0.1", entries
    listed = httpx.get(f"https://localhost:{front.port}/api/v1/domains",
                       auth=("admin", ADMIN_PASSWORD), verify=ca.context())
    assert listed.status_code == 200
    assert [d["host"] for d in listed.json()] == [HOST_A, HOST_B]
    assert "PRIVATE KEY" not in listed.text  # the key goes in, never out


def test_domain_list_in_the_cli(front: HttpsServer, ca: Authority) -> None:
    done = moorage_cli(front, ca, "domain", "list")
    assert done.returncode == 0, done
    assert HOST_A in done.stdout and HOST_B in done.stdout
    as_json = moorage_cli(front, ca, "domain", "list", "--json")
    assert '"names"' in as_json.stdout and "PRIVATE KEY" not in as_json.stdout


@pytest.mark.parametrize("case, words", [
    ("mismatched", "the key does not belong to the certificate"),
    ("expired", "the certificate expired on"),
    ("not yet valid", "the certificate is not valid before"),
    ("other host", f"the certificate does not name {HOST_A}"),
    ("not pem", "the certificate is not PEM"),
])
def test_a_pair_that_cannot_be_served_is_refused_with_the_reason(
        front: HttpsServer, ca: Authority, case: str, words: str) -> None:
    cert, key, _ = ca.issue(f"bad-{case.replace(' ', '-')}", [HOST_A])
    if case == "mismatched":
        _, key, _ = ca.issue("bad-other-key", [HOST_A])
    elif case == "expired":
        cert, key, _ = ca.issue("bad-expired", [HOST_A], days=-1, start_days=-5)
    elif case == "not yet valid":
        cert, key, _ = ca.issue("bad-future", [HOST_A], days=10, start_days=2)
    elif case == "other host":
        cert, key, _ = ca.issue("bad-host", ["elsewhere.moorage.test"])
    body = {"host": HOST_A, "certificate": cert.read_text(), "key": key.read_text()}
    if case == "not pem":
        body["certificate"] = "hello"
    answer = httpx.post(f"https://localhost:{front.port}/api/v1/domains", json=body,
                        auth=("admin", ADMIN_PASSWORD), verify=ca.context())
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]["message"]
    # and the CLI says the same, in one line, with a non-zero exit
    if case == "mismatched":
        done = moorage_cli(front, ca, "domain", "add", HOST_A, "--cert", str(cert), "--key",
                           str(key))
        assert done.returncode != 0 and words in done.stderr, done
        assert "Traceback" not in done.stderr
    # the domain is still served with its good certificate
    assert served(front.port, HOST_A, ca).subject.rfc4514_string() == f"CN={HOST_A}"


@pytest.mark.slow
def test_a_renewed_certificate_is_served_without_a_restart_or_a_failed_request(
        front: HttpsServer, ca: Authority) -> None:
    before = served(front.port, HOST_B, ca).serial_number
    pid = front.proc.pid if front.proc else None
    cert, key, renewed = ca.issue("b-renewed", [HOST_B])
    assert renewed != before
    done = moorage_cli(front, ca, "domain", "add", HOST_B, "--cert", str(cert), "--key",
                       str(key))
    assert done.returncode == 0, done
    # requests keep being answered through the change (wait_until_served fails on any
    # failed handshake), and so do whole HTTP requests
    deadline = time.monotonic() + 300
    while served(front.port, HOST_B, ca).serial_number != renewed:
        assert time.monotonic() < deadline
        answer = httpx.get(f"https://localhost:{front.port}/v2/", verify=ca.context())
        assert answer.status_code == 401
        time.sleep(0.2)
    wait_until_served(front.port, HOST_B, renewed, ca)
    assert served(front.port, HOST_A, ca).subject.rfc4514_string() == f"CN={HOST_A}"
    assert front.proc is not None and front.proc.pid == pid


@pytest.mark.slow
def test_skopeo_and_podman_push_and_pull_on_both_hosts(
        front: HttpsServer, ca: Authority, etc_hosts: None, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca.ca_file, certs / "ca.crt")  # the form skopeo and podman read
    layout = tmp_path / "layout"
    random_image(layout, "v1")
    for host in (HOST_A, HOST_B):
        where = f"{host}:{front.port}"
        target = f"docker://{where}/sni/app:{host.split('.')[0]}"
        skopeo("copy", "--dest-cert-dir", str(certs), "--dest-creds", CREDS,
               f"oci:{layout}:v1", target)
        out = tmp_path / f"out-{host}"
        skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", CREDS, target,
               f"oci:{out}:v1")
        assert (out / "index.json").exists()
        podman = ContainerStore("podman", tmp_path / f"podman-{host}", "vfs")
        try:
            podman("pull", "--cert-dir", str(certs), "--creds", CREDS,
                   f"{where}/sni/app:{host.split('.')[0]}")
            podman("tag", f"{where}/sni/app:{host.split('.')[0]}", f"{where}/sni/app:podman-"
                   f"{host.split('.')[0]}")
            podman("push", "--cert-dir", str(certs), "--creds", CREDS,
                   f"{where}/sni/app:podman-{host.split('.')[0]}")
        finally:
            podman.cleanup()
    listed = httpx.get(f"https://localhost:{front.port}/v2/sni/app/tags/list",
                       verify=ca.context(), auth=("admin", ADMIN_PASSWORD)).json()
    assert sorted(listed["tags"]) == ["podman-reg-a", "podman-reg-b", "reg-a", "reg-b"]


@pytest.mark.slow
def test_a_removed_domain_gets_the_default_certificate_and_the_front_lives_with_serve(
        ca: Authority, tmp_path: Path) -> None:
    """auto mode: the front runs because a domain exists at start; a domain removed at
    runtime falls back to the default certificate; a front that dies is started again; and
    when `moorage serve` is killed, its front goes with it."""
    cert, key, _ = ca.issue("auto-default", ["localhost"])
    first = tmp_path / "first"
    server = HttpsServer(first, env={**SECURED, "MOORAGE_TLS_CERT": str(cert),
                                     "MOORAGE_TLS_KEY": str(key)})
    server.verify = ca.context()
    server.start()
    c_cert, c_key, c_serial = ca.issue("c", ["reg-c.moorage.test"])
    done = moorage_cli(server, ca, "domain", "add", "reg-c.moorage.test", "--cert",
                       str(c_cert), "--key", str(c_key))
    assert done.returncode == 0, done
    server.stop()  # granian's own TLS served it so far: a restart brings the front up
    server.start()
    try:
        assert served(server.port, "reg-c.moorage.test", ca).serial_number == c_serial
        (old_front,) = front_pids(server)
        os.kill(old_front, signal.SIGKILL)
        deadline = time.monotonic() + 300
        while True:  # started again by serve
            assert time.monotonic() < deadline, "the front was not started again"
            pids = front_pids(server)
            if pids and pids != [old_front]:
                try:
                    if served(server.port, "reg-c.moorage.test", ca).serial_number == c_serial:
                        break
                except OSError:
                    pass
            time.sleep(0.5)
        done = moorage_cli(server, ca, "domain", "remove", "reg-c.moorage.test")
        assert done.returncode == 0, done
        while served(server.port, "reg-c.moorage.test").subject.rfc4514_string() != \
                "CN=localhost":
            assert time.monotonic() < deadline, "the removed domain is still served"
            time.sleep(0.5)
        (haproxy,) = front_pids(server)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)  # serve dies without a chance to clean up
        while Path(f"/proc/{haproxy}").exists() and \
                "Z" not in Path(f"/proc/{haproxy}/stat").read_text().rsplit(")", 1)[1][:3]:
            assert time.monotonic() < deadline, "the front outlived moorage serve"
            time.sleep(0.2)
    finally:
        server.kill()
        remove_front_sockets(first)


def test_the_personal_edition_refuses_custom_domains(tmp_path: Path, ca: Authority) -> None:
    server = MoorageServer(tmp_path / "data", extra_args=["--edition", "personal"],
                           env=SECURED).start()
    try:
        cert, key, _ = ca.issue("personal", [HOST_A])
        answer = httpx.post(f"{server.url}/api/v1/domains", auth=("admin", ADMIN_PASSWORD),
                            json={"host": HOST_A, "certificate": cert.read_text(),
                                  "key": key.read_text()})
        assert answer.status_code == 403
        assert "custom domain names needs the basic edition" in \
            answer.json()["error"]["message"]
        listed = httpx.get(f"{server.url}/api/v1/domains", auth=("admin", ADMIN_PASSWORD))
        assert listed.status_code == 403
    finally:
        server.stop()


def test_no_private_key_reaches_the_log(front: HttpsServer, ca: Authority) -> None:
    """Added through the CLI, refused or renewed: the keys' bytes are nowhere in the log."""
    log = front.log_path.read_text(errors="replace")
    assert "added by admin" in log  # the additions were logged, without their keys
    for stem in ("a", "b"):
        body = "".join((ca.folder / f"{stem}.key").read_text().splitlines()[1:-1])
        assert body[:40] not in log and "PRIVATE KEY" not in log


def test_serve_refuses_in_one_line_when_the_front_is_needed_and_haproxy_is_missing(
        ca: Authority, tmp_path: Path) -> None:
    cert, key, _ = ca.issue("no-haproxy", ["localhost"])
    path = ":".join(p for p in os.environ.get("PATH", "").split(":")
                    if p and not (Path(p) / "haproxy").exists())
    done = subprocess.run([sys.executable, "-m", "moorage", "serve", "--listen",
                           "127.0.0.1:1", "--data-dir", str(tmp_path / "data")],
                          env={**os.environ, **SECURED, "PATH": path,
                               "MOORAGE_TLS_CERT": str(cert), "MOORAGE_TLS_KEY": str(key),
                               "MOORAGE_TLS_FRONT": "haproxy"},
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done
    said = [line for line in done.stderr.splitlines() if line.startswith("moorage:")]
    assert len(said) == 1 and "HAProxy, which is not installed" in said[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_renewed_default_certificate_is_served_by_the_front_without_a_restart(
        front: HttpsServer, ca: Authority) -> None:
    """The tls_cert/tls_key files renewed in place (certbot's way): the front takes them up,
    and the domains keep their own certificates."""
    pid = front.proc.pid if front.proc else None
    _, _, renewed = ca.issue("default", ["localhost"])  # the same files the server was given
    wait_until_served(front.port, "localhost", renewed, ca)
    assert served(front.port, HOST_A, ca).subject.rfc4514_string() == f"CN={HOST_A}"
    assert front.proc is not None and front.proc.pid == pid


def https_scaleout(root: Path, ca: Authority, env: dict[str, str]) -> Any:
    """Two replicas on the shared PostgreSQL, S3 and Redis, each behind its own front."""
    from tests.support.scaleout import ScaleOut

    class Cluster(ScaleOut):
        def add_replica(self) -> MoorageServer:
            replica = HttpsServer(self.root / f"replica{len(self.replicas)}", env=self.env())
            replica.verify = ca.context()
            replica.start()
            self.replicas.append(replica)
            return replica

    return Cluster(root, env=env).start()


@pytest.mark.slow
def test_every_replica_serves_a_domain_added_through_another(ca: Authority,
                                                            tmp_path: Path) -> None:
    cert, key, _ = ca.issue("replicas-default", ["localhost"])
    cluster = https_scaleout(tmp_path, ca, {
        **SECURED, **ROOMY, "MOORAGE_TLS_CERT": str(cert), "MOORAGE_TLS_KEY": str(key),
        "MOORAGE_TLS_FRONT": "haproxy"})
    try:
        first, second = cluster.replicas
        d_cert, d_key, serial = ca.issue("replicated", ["reg-d.moorage.test"])
        done = moorage_cli(first, ca, "domain", "add", "reg-d.moorage.test", "--cert",
                           str(d_cert), "--key", str(d_key))
        assert done.returncode == 0, done
        for replica in (first, second):
            wait_until_served(replica.port, "reg-d.moorage.test", serial, ca)
        done = moorage_cli(second, ca, "domain", "remove", "reg-d.moorage.test")
        assert done.returncode == 0, done
        deadline = time.monotonic() + 300
        while served(first.port, "reg-d.moorage.test").subject.rfc4514_string() != \
                "CN=localhost":
            assert time.monotonic() < deadline, "the removed domain is still served"
            time.sleep(0.5)
    finally:
        cluster.stop()
        for replica in cluster.replicas:
            remove_front_sockets(replica.data_dir)
