"""The scale-out example (packaging/scale-out/) loads, and works as its README says.

The fast tests load both replicas' TOML files with Moorage's own settings loader and check
`haproxy.cfg` with `haproxy -c`. The slow one deploys the example on loopback: the example's
files with only their addresses (and the S3 keys) replaced, the order of operations of its
README (postgres-init.sql, `moorage migrate`, replica A, replica B, HAProxy), a skopeo push
over HTTPS through HAProxy, and HAProxy's /readyz checks taking both replicas out of rotation
while Redis is away and back in after, then failing over when a replica dies.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from moorage.settings import Settings, load_settings
from tests.packaging.helpers import env_file
from tests.support.images import random_image
from tests.support.server import MoorageServer, free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "packaging" / "scale-out"
REPLICAS = {"replica-a": ("replica-a.toml", "10.0.0.11:5000"),
            "replica-b": ("replica-b.toml", "10.0.0.12:5000")}
SETTLE = 120.0  # an upper bound on a state change showing (a hang), not a margin relied on


def example_settings(name: str, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(EXAMPLE / name, environ=environ or {})


def test_replica_configs_load() -> None:
    a, b = (example_settings(file) for file, _ in REPLICAS.values())
    for settings, (_, address) in zip((a, b), REPLICAS.values()):
        assert settings.listen == address
        assert settings.database_url.startswith("postgresql://")
        assert urlsplit(settings.database_url).password is None  # PGPASSWORD has it
        assert settings.storage_url.startswith("s3://")
        assert settings.redis_url.startswith("redis://")
        assert settings.trusted_proxies
    # replicas are alike but for their address
    assert dataclasses.replace(a, listen=b.listen) == b


def test_replica_configs_load_with_the_environment_file() -> None:
    env = env_file(EXAMPLE / "moorage.env")
    assert env["MOORAGE_CONFIG"] == "/etc/moorage/moorage.toml"
    assert {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    for file, address in REPLICAS.values():
        settings = load_settings(None, environ={**env, "MOORAGE_CONFIG": str(EXAMPLE / file)})
        assert settings == example_settings(file) and settings.listen == address


def test_haproxy_balances_the_two_replicas_on_readyz() -> None:
    config = (EXAMPLE / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+) check$", config, re.M)
    assert servers == [(name, address) for name, (_, address) in REPLICAS.items()]
    assert "http-check send meth GET uri /readyz" in config
    assert "http-check expect status 200" in config
    # the replicas believe the balancer's X-Forwarded-For
    proxies = example_settings("replica-a.toml").trusted_proxies
    assert "option forwardfor" in config and ipaddress.ip_network(proxies)


def self_signed_pem(path: Path, name: str = "127.0.0.1") -> Path:
    """A certificate and its key in one PEM file, as HAProxy's `crt` takes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(name))]), critical=False)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


def replaced(text: str, replacements: dict[str, str]) -> str:
    """The example with its addresses replaced; each must be there (the test follows the
    example, so a change of its shape fails here rather than testing something else)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is not in the example any more"
        text = text.replace(old, new)
    return text


def haproxy_config(folder: Path, tls_port: int, http_port: int,
                   servers: dict[str, str]) -> tuple[Path, Path]:
    """The example's haproxy.cfg on loopback ports; (config, admin socket)."""
    socket_path = folder / "admin.sock"
    config = folder / "haproxy.cfg"
    config.write_text(replaced((EXAMPLE / "haproxy.cfg").read_text(), {
        "log /dev/log local0": "log stdout format raw local0",
        "stats socket /run/haproxy/admin.sock": f"stats socket {socket_path}",
        "bind :443 ssl crt /etc/haproxy/certs/registry.pem":
            f"bind 127.0.0.1:{tls_port} ssl crt {self_signed_pem(folder / 'registry.pem')}",
        "bind :80\n": f"bind 127.0.0.1:{http_port}\n",
        **servers}))
    return config, socket_path


def require(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh installs it)")


def test_haproxy_config_is_valid() -> None:
    require("haproxy")
    folder = Path(tempfile.mkdtemp(prefix="moorage-haproxy-"))
    try:
        config, _ = haproxy_config(folder, free_port(), free_port(), {})
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the example deployed on loopback


class Replica(MoorageServer):
    """`moorage serve --data-dir DIR`, everything else from MOORAGE_CONFIG and the
    environment file: the command line of packaging/moorage.service."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moorage", "serve", "--data-dir", str(self.data_dir)]


class HAProxy:
    def __init__(self, config: Path, admin_socket: Path, log: Path) -> None:
        self.admin_socket = admin_socket
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def _stat(self) -> list[dict[str, str]]:
        """`show stat` on the admin socket, one dict per proxy and server."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        return [row for line in lines[1:] if line
                if (row := dict(zip(header, line.split(","))))["pxname"] == "moorage"
                and row["svname"] not in ("BACKEND", "FRONTEND")]

    def states(self) -> dict[str, str]:
        """server name -> UP, DOWN, ..."""
        return {row["svname"]: row["status"].split()[0] for row in self._stat()}

    def sessions(self, server: str) -> int:
        """requests (sessions) the balancer has sent to a server so far"""
        return next(int(row["stot"] or 0) for row in self._stat() if row["svname"] == server)

    def wait_for(self, expected: dict[str, str]) -> None:
        deadline = time.monotonic() + SETTLE
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "haproxy exited"
            try:
                states = self.states()
            except OSError:
                states = {}
            if states == expected:
                return
            time.sleep(0.2)
        pytest.fail(f"HAProxy shows {states}, not {expected}, after {SETTLE}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # by PID: haproxy -db is one process
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def until(probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SETTLE
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {SETTLE}s: {what}")
        time.sleep(0.2)


def ready(server: MoorageServer) -> bool:
    try:
        return httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict]:
    """PostgreSQL, Redis and SeaweedFS (S3) on loopback, stopped by PID afterwards."""
    require("haproxy", "skopeo", "redis-server")
    from tests.support.postgres import PostgresCluster
    from tests.support.redis_server import RedisServer
    from tests.support.seaweed import SeaweedS3

    started: list = []
    try:
        started.append(PostgresCluster().start())
        started.append(RedisServer().start())
        # the example's bucket name; the README says to create it first
        started.append(SeaweedS3.start(tmp_path / "s3", bucket="moorage-blobs"))
        yield dict(zip(("postgres", "redis", "s3"), started))
    finally:
        for part in reversed(started):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - stop the others all the same
                pass


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_example_deployment_behind_haproxy(services: dict, tmp_path: Path) -> None:
    from tests.support.postgres import _bin

    postgres, redis, s3 = services["postgres"], services["redis"], services["s3"]
    ports = {name: free_port() for name in REPLICAS}
    etc = tmp_path / "etc"
    etc.mkdir()
    addresses = {"10.0.0.20:5432": f"127.0.0.1:{postgres.port}",
                 "10.0.0.30:6379": f"127.0.0.1:{redis.port}",
                 "http://10.0.0.40:9000": s3.endpoint,
                 '"10.0.0.10/32"': '"127.0.0.1/32"'}

    # 1. PostgreSQL: the example's role and database (the cluster's own `moorage` goes first)
    psql = [_bin("psql"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres",
            "-v", "ON_ERROR_STOP=1"]
    for args in (["-c", "DROP DATABASE moorage"], ["-f", str(EXAMPLE / "postgres-init.sql")]):
        done = subprocess.run([*psql, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    # 2. each replica's files: the example's, with loopback addresses and the store's keys
    env = {**env_file(EXAMPLE / "moorage.env"), **s3.env()}
    admin_password = env["MOORAGE_ADMIN_PASSWORD"]
    replicas: dict[str, Replica] = {}
    for name, (file, address) in REPLICAS.items():
        data_dir = tmp_path / name
        config = etc / f"{name}.toml"
        config.write_text(replaced((EXAMPLE / file).read_text(), {
            **addresses, address: f"127.0.0.1:{ports[name]}",
            'data_dir = "/var/lib/moorage"': f'data_dir = "{data_dir}"'}))
        replicas[name] = Replica(data_dir, port=ports[name],
                                 env={**env, "MOORAGE_CONFIG": str(config)})
    a, b = replicas["replica-a"], replicas["replica-b"]
    haproxy: HAProxy | None = None
    short = Path(tempfile.mkdtemp(prefix="moorage-lb-"))  # a unix socket path is short
    try:
        # 3. migrate once, as the README says (serve refuses an unmigrated database)
        migrate = subprocess.run([sys.executable, "-m", "moorage", "migrate"],
                                 env={**os.environ, **a.env}, capture_output=True, text=True,
                                 timeout=300)
        assert migrate.returncode == 0, migrate.stderr

        # 4, 5. replica A, ready; then replica B
        for replica in (a, b):
            replica.start(timeout=180)
            until(lambda: ready(replica), f"{replica.url}/readyz answers 200")
            assert set(httpx.get(f"{replica.url}/readyz").json()["checks"]) == {
                "database", "storage", "redis"}

        # 6. HAProxy: valid, both replicas in rotation
        tls_port, http_port = free_port(), free_port()
        config, admin_socket = haproxy_config(short, tls_port, http_port, {
            address: f"127.0.0.1:{ports[name]}" for name, (_, address) in REPLICAS.items()})
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        haproxy = HAProxy(config, admin_socket, tmp_path / "haproxy.log")
        haproxy.wait_for({"replica-a": "UP", "replica-b": "UP"})

        # 7. clients: HTTPS through the balancer, the token realm on the balancer's HTTPS
        lb = f"127.0.0.1:{tls_port}"
        with httpx.Client(verify=False, timeout=30) as client:
            challenge = client.get(f"https://{lb}/v2/")
            assert challenge.status_code == 401
            assert challenge.headers["www-authenticate"].startswith(
                f'Bearer realm="https://{lb}/auth/token"'), challenge.headers
            plain = client.get(f"http://127.0.0.1:{http_port}/v2/", follow_redirects=False)
            assert plain.status_code == 308
            assert plain.headers["location"] == f"https://127.0.0.1:{http_port}/v2/"
        random_image(tmp_path / "layout", "v1", layers=3)
        push = subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
             f"admin:{admin_password}", f"oci:{tmp_path / 'layout'}:v1",
             f"docker://{lb}/team/app:v1"], capture_output=True, text=True, timeout=300)
        assert push.returncode == 0, push.stderr
        # the requests went to both replicas, and each sees the whole image
        assert haproxy.sessions("replica-a") > 0 and haproxy.sessions("replica-b") > 0
        for replica in (a, b):
            tags = httpx.get(f"{replica.url}/v2/team/app/tags/list",
                             auth=("admin", admin_password), timeout=30)
            assert tags.status_code == 200 and tags.json()["tags"] == ["v1"], tags.text

        # 8. Redis away: /readyz is 503 on both (they still run), HAProxy takes both out
        redis.kill()
        haproxy.wait_for({"replica-a": "DOWN", "replica-b": "DOWN"})
        for replica in (a, b):
            assert httpx.get(f"{replica.url}/healthz").status_code == 200
            answer = httpx.get(f"{replica.url}/readyz", timeout=30)
            assert answer.status_code == 503 and answer.json()["checks"]["redis"]["ok"] is False
        assert httpx.get(f"https://{lb}/v2/", verify=False).status_code == 503
        # ... and back in rotation when Redis answers again
        redis.start()
        haproxy.wait_for({"replica-a": "UP", "replica-b": "UP"})

        # 9. a replica dies: it leaves the rotation, the other serves every request
        b.kill()
        haproxy.wait_for({"replica-a": "UP", "replica-b": "DOWN"})
        for _ in range(6):
            pulled = subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
                 f"admin:{admin_password}", f"docker://{lb}/team/app:v1"],
                capture_output=True, text=True, timeout=120)
            assert pulled.returncode == 0, pulled.stderr
    finally:
        if haproxy is not None:
            haproxy.stop()
        for replica in (a, b):
            replica.kill()
        shutil.rmtree(short, ignore_errors=True)
