"""Helpers for driving real container clients (skopeo, podman, buildah, umoci) in tests.

Every command goes through `run`, which fails the test with the command line, exit code and
stderr, because a bare "exit status 1" from a Go client is useless when a CI run goes red.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

#: Every manifest media type a client might have pushed; sent as Accept on manifest GETs.
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


class Registry(Protocol):
    """What the client tests need from a registry fixture (Moorage or the Distribution peer)."""

    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...


@dataclass
class Result:
    """Outcome of one command: raw stdout bytes (manifests must be hashed as sent), text stderr."""

    cmd: list[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(cmd: Sequence[str | os.PathLike[str]], *, check: bool = True, timeout: float = 180.0,
        cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
        input: str | None = None) -> Result:
    """Run a command in its own process group; on failure or timeout, fail with its stderr.

    The own group lets a timeout kill helpers the client spawned (conmon, storage helpers)
    instead of leaving them running after the test.
    """
    args = [os.fspath(c) for c in cmd]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = proc.communicate(None if input is None else input.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout}s: {shlex.join(args)}\n"
                             f"--- stderr ---\n{err.decode(errors='replace')[-4000:]}") from None
    result = Result(args, proc.returncode, out, err.decode(errors="replace"))
    if check:
        assert result.returncode == 0, (
            f"command failed with exit code {result.returncode}: {shlex.join(args)}\n"
            f"--- stderr ---\n{result.stderr[-6000:]}\n"
            f"--- stdout ---\n{out.decode(errors='replace')[-2000:]}")
    return result


def require_tool(name: str) -> str:
    """Path of an executable, or skip the test saying which Debian package is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def unique_repo(prefix: str) -> str:
    """A repository name no other test uses, so tests can share one session registry."""
    return f"clients/{prefix}-{uuid.uuid4().hex[:12]}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# skopeo


def skopeo(*args: str | os.PathLike[str], check: bool = True, timeout: float = 180.0) -> Result:
    """`skopeo ARGS...`, failing the test with stderr on a non-zero exit."""
    return run(["skopeo", *args], check=check, timeout=timeout)


def copy_in(src: str, dest: str, *extra: str) -> Result:
    """skopeo copy to the (plain-HTTP) registry; `dest` is a full `docker://` reference."""
    return skopeo("copy", "--quiet", "--dest-tls-verify=false", *extra, src, dest)


def copy_out(src: str, dest: str, *extra: str) -> Result:
    """skopeo copy from the (plain-HTTP) registry; `src` is a full `docker://` reference."""
    return skopeo("copy", "--quiet", "--src-tls-verify=false", *extra, src, dest)


def inspect_raw(ref: str) -> bytes:
    """The manifest bytes exactly as the registry serves them (`skopeo inspect --raw`)."""
    return skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout


def inspect(ref: str, *extra: str) -> dict[str, Any]:
    """`skopeo inspect` of a registry reference, parsed."""
    return skopeo("inspect", "--tls-verify=false", *extra, ref).json()


def list_tags(ref: str) -> list[str]:
    """`skopeo list-tags` of a `docker://host/repo` reference."""
    return skopeo("list-tags", "--tls-verify=false", ref).json()["Tags"]


# ---------------------------------------------------------------------------------------------
# Plain HTTP checks against the registry (what the clients should have caused)


def get_manifest(registry: Registry, repo: str, reference: str,
                 accept: str = MANIFEST_ACCEPT) -> httpx.Response:
    """GET /v2/<repo>/manifests/<reference> with every manifest type accepted."""
    return httpx.get(f"{registry.url}/v2/{repo}/manifests/{reference}",
                     headers={"Accept": accept}, timeout=30)


def get_blob(registry: Registry, repo: str, digest: str) -> bytes:
    """A blob's bytes, checked against its digest."""
    resp = httpx.get(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=60,
                     follow_redirects=True)
    assert resp.status_code == 200, (f"GET /v2/{repo}/blobs/{digest} -> {resp.status_code}: "
                                     f"{resp.text[:500]}")
    assert sha256_digest(resp.content) == digest, f"blob {digest} served with other content"
    return resp.content


def descriptor_of(registry: Registry, repo: str, reference: str) -> dict[str, Any]:
    """The OCI descriptor (mediaType, digest, size) of a manifest, as a referrer's subject."""
    resp = get_manifest(registry, repo, reference)
    assert resp.status_code == 200, (f"GET /v2/{repo}/manifests/{reference} -> "
                                     f"{resp.status_code}: {resp.text[:500]}")
    digest = sha256_digest(resp.content)
    assert resp.headers.get("Docker-Content-Digest") == digest, (
        f"Docker-Content-Digest {resp.headers.get('Docker-Content-Digest')} != "
        f"sha256 of the body {digest}")
    media_type = resp.headers["Content-Type"].split(";")[0].strip()
    return {"mediaType": media_type, "digest": digest, "size": len(resp.content)}


# ---------------------------------------------------------------------------------------------
# podman / buildah with a private store per test


class ContainerStore:
    """podman or buildah bound to a private `--root`/`--runroot` and one storage driver.

    TESTING.md: never mix storage drivers on one root and give each test its own store, so
    tests cannot see each other's images and nothing touches /var/lib/containers/storage.
    """

    def __init__(self, tool: str, base: Path, driver: str) -> None:
        self.tool = tool
        self.base = base
        self.driver = driver
        (base / "root").mkdir(parents=True, exist_ok=True)
        (base / "tmp").mkdir(parents=True, exist_ok=True)
        # podman refuses a --runroot longer than 50 characters, and pytest's tmp_path is
        # longer than that: keep the run state in a short folder of its own.
        self.runroot = Path(tempfile.mkdtemp(prefix=f"{tool}-run-", dir="/tmp"))

    def global_args(self) -> list[str]:
        args = [self.tool, "--storage-driver", self.driver, "--root", str(self.base / "root"),
                "--runroot", str(self.runroot)]
        if self.tool == "podman":
            # podman keeps its runtime state (and events log) in --tmpdir; keep it per test.
            args += ["--tmpdir", str(self.runroot / "libpod"), "--events-backend", "file",
                     "--cgroup-manager", "cgroupfs"]
        return args

    def __call__(self, *args: str | os.PathLike[str], check: bool = True,
                 timeout: float = 180.0, cwd: str | os.PathLike[str] | None = None,
                 input: str | None = None) -> Result:
        # TMPDIR: big temporary files (layer staging) stay inside the test's folder.
        return run([*self.global_args(), *args], check=check, timeout=timeout, cwd=cwd,
                   env={"TMPDIR": str(self.base / "tmp")}, input=input)

    def cleanup(self) -> None:
        """Drop buildah's working containers (no overlay mount outlives the test), then the
        short run folder; the store itself goes with pytest's tmp_path."""
        if self.tool == "buildah":
            self("rm", "--all", check=False, timeout=60)
        shutil.rmtree(self.runroot, ignore_errors=True)
