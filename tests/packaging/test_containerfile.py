"""The Containerfile builds with buildah and the image serves with podman (issue 15, item 7).

No route to Docker Hub here, so the base image is made locally: a Debian bookworm minbase
rootfs with Python (debootstrap, from the Debian mirror; kept for a week between runs, as a
pulled base would be: `_cached_base`), imported with buildah. The build
then runs the repository's Containerfile as a user would (`buildah bud`, chroot isolation,
the overlay driver), its pip step reaching PyPI through the host's network; the image runs
with podman from the same store (one `--root`/`--runroot` for both tools, TESTING.md).

Everything lives in the module's own store under a temporary folder, removed at the end;
containers are removed by their id, and volumes by their name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.clients.tools import Result, run
from tests.support.images import random_image
from tests.support.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/moorage-test-base"
IMAGE = "localhost/moorage:test"
DEBIAN_MIRROR = os.environ.get("MOORAGE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
ADMIN_PASSWORD = "image-test-admin-password"
CMD = ["serve", "--listen", "0.0.0.0:5000", "--data-dir", "/var/lib/moorage"]
TEST_EXTRAS = ("pytest", "hypothesis", "oras", "seaweedfs", "schemathesis", "playwright")


@dataclass
class Store:
    """buildah and podman on one private overlay store (same --root and --runroot)."""

    base: Path
    runroot: Path = field(init=False)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.base / "root").mkdir(parents=True)
        (self.base / "tmp").mkdir()
        # podman refuses a --runroot longer than 50 characters; pytest's tmp_path is longer
        self.runroot = Path(tempfile.mkdtemp(prefix="moorage-pack-", dir="/tmp"))

    def _common(self) -> list[str]:
        return ["--storage-driver", "overlay", "--root", str(self.base / "root"),
                "--runroot", str(self.runroot)]

    def buildah(self, *args: str | os.PathLike[str], check: bool = True,
                timeout: float = 300.0) -> Result:
        return run(["buildah", *self._common(), *args], check=check, timeout=timeout,
                   env={"TMPDIR": str(self.base / "tmp")})

    def podman(self, *args: str | os.PathLike[str], check: bool = True,
               timeout: float = 180.0) -> Result:
        return run(["podman", *self._common(), "--tmpdir", str(self.runroot / "libpod"),
                    "--events-backend", "file", "--cgroup-manager", "cgroupfs", *args],
                   check=check, timeout=timeout, env={"TMPDIR": str(self.base / "tmp")})

    def cleanup(self) -> None:
        self.buildah("rm", "--all", check=False, timeout=120)
        # nothing of this store may stay mounted before its folders go
        root = str(self.base / "root")
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted((p for p in points if p.startswith((root, str(self.runroot)))),
                            key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


def _require(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("debootstrap, buildah mount and podman run need root here")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh installs it)")


# The base is the test's stand-in for python:3.11-slim-bookworm, not what is tested: its
# rootfs is kept as a tarball between runs, as a pulled base image would be (`debootstrap`
# took half of the module's time), and made anew when a week old (Debian's updates) or when
# what it is made of changes (the file's name is a hash of the debootstrap arguments).
# MOORAGE_TEST_BASE_CACHE=DIR chooses the folder (default ~/.cache/moorage-tests), `off`
# makes the base anew on every run.
BASE_MAX_AGE = 7 * 24 * 3600.0


def _debootstrap_args(cache: str | None) -> list[str]:
    return ["--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
            *([f"--cache-dir={cache}"] if cache else []), "bookworm"]


def _cached_base() -> Path | None:
    """Where this base's rootfs tarball is kept (None: not kept)."""
    folder = os.environ.get("MOORAGE_TEST_BASE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moorage-tests")
    if folder == "off":
        return None
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    key = hashlib.sha256(json.dumps([_debootstrap_args(None), DEBIAN_MIRROR, arch]).encode())
    return Path(folder) / f"base-{key.hexdigest()[:16]}.tar"


def _fresh(tarball: Path | None) -> bool:
    try:
        return tarball is not None and time.time() - tarball.stat().st_mtime < BASE_MAX_AGE
    except FileNotFoundError:
        return False


def _base_image(store: Store, work: Path) -> None:
    """A bookworm minbase rootfs with python3-venv, as the image `BASE`."""
    tarball = _cached_base()
    # tar keeps owners, modes, hard links, set-uid bits and extended attributes (as cp -a)
    tar = ["tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner"]
    started = time.monotonic()
    if _fresh(tarball):
        assert tarball is not None
        rootfs = None
    else:
        rootfs = work / "rootfs"
        cache = os.environ.get("MOORAGE_TEST_DEBOOTSTRAP_CACHE")  # optional: reuse the .debs
        run(["debootstrap", *_debootstrap_args(cache), rootfs, DEBIAN_MIRROR], timeout=1500)
        store.timings["debootstrap"] = time.monotonic() - started
        if tarball is not None:  # written aside, then renamed: a reader sees all of it or none
            tarball.parent.mkdir(parents=True, exist_ok=True)
            partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
            try:
                run([*tar, "-cf", partial, "-C", rootfs, "."], timeout=600)
                partial.rename(tarball)
            finally:
                partial.unlink(missing_ok=True)
    started = time.monotonic()
    container = store.buildah("from", "scratch").text.strip()
    mount = store.buildah("mount", container).text.strip()
    if rootfs is None:
        run([*tar, "-xpf", tarball, "-C", mount], timeout=600)
    else:
        run(["cp", "-a", f"{rootfs}/.", mount], timeout=600)
    store.buildah("umount", container)
    store.buildah("config", "--cmd", "/bin/bash", container)
    store.buildah("commit", "--quiet", container, BASE, timeout=600)
    store.buildah("rm", container)
    store.timings["import"] = time.monotonic() - started
    if rootfs is not None:
        shutil.rmtree(rootfs)


def _build_args(work: Path) -> list[str]:
    """Behind this machine's TLS-intercepting egress, pip in the build needs the host's CA:
    given for the build's RUN steps only (a bind mount and a pip.conf), never in the image."""
    if not HOST_CA.is_file():
        return []
    conf = ["[global]", f"cert = {HOST_CA}"]
    if os.environ.get("PIP_INDEX_URL"):
        conf.append(f"index-url = {os.environ['PIP_INDEX_URL']}")
    (work / "pip.conf").write_text("\n".join(conf) + "\n")
    return ["-v", f"{HOST_CA}:{HOST_CA}:ro", "-v", f"{work / 'pip.conf'}:/etc/pip.conf:ro"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The Moorage image, built from the repository's Containerfile on a local base."""
    _require("debootstrap", "buildah", "podman", "runc")
    work = tmp_path_factory.mktemp("containerfile")
    store = Store(work / "store")
    try:
        _base_image(store, work)
        started = time.monotonic()
        store.buildah("bud", "--isolation", "chroot", "--build-arg", f"BASE={BASE}",
                      *_build_args(work), "-f", REPO / "Containerfile", "-t", IMAGE, REPO,
                      timeout=1800)
        store.timings["build"] = time.monotonic() - started
        print("\nimage timings (s): " + ", ".join(f"{k} {v:.0f}"
                                                   for k, v in store.timings.items()))
        yield store
    finally:
        store.cleanup()


def _image_config(store: Store) -> dict:
    return store.buildah("inspect", "--type", "image", IMAGE).json()["OCIv1"]["config"]


def test_image_config(store: Store, record_property: pytest.RecordProperty) -> None:
    config = _image_config(store)
    assert config["User"] == "10001:10001"
    assert "5000/tcp" in config["ExposedPorts"]
    assert list(config["Volumes"]) == ["/var/lib/moorage"]
    assert config["Entrypoint"] == ["moorage"] and config["Cmd"] == CMD
    assert "/readyz" in config["Labels"]["io.moorage.healthcheck"]

    base, image = (int(n) for n in store.podman(
        "image", "inspect", "--format", "{{.Size}}", BASE, IMAGE).text.split())
    record_property("image_bytes", image)
    record_property("timings", store.timings)
    print(f"\nimage {image / 1e6:.0f} MB, of which the base {base / 1e6:.0f} MB")

    # the files: Moorage and its runtime dependencies only, and a private data folder
    container = store.buildah("from", IMAGE).text.strip()
    try:
        mount = Path(store.buildah("mount", container).text.strip())
        site = next((mount / "opt/moorage/lib").glob("python3.*/site-packages"))
        installed = {p.name.lower() for p in site.iterdir()}
        assert "moorage" in installed and "granian" in installed and "psycopg" in installed
        for name in (*TEST_EXTRAS, "pip", "setuptools"):
            assert not any(n == name or n.startswith((f"{name}-", f"{name}_")) for n in installed), (
                f"{name} is in the image")
        assert not (mount / "src").exists()
        data = (mount / "var/lib/moorage").stat()
        assert (data.st_uid, data.st_gid, data.st_mode & 0o777) == (10001, 10001, 0o700)
    finally:
        store.buildah("umount", container, check=False)
        store.buildah("rm", container, check=False)


def _wait_ready(store: Store, cid: str, url: str, bound: float = 180.0) -> httpx.Response:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(f"{url}/readyz", timeout=5)
            if resp.status_code == 200:
                return resp
        except httpx.TransportError:
            pass
        state = store.podman("inspect", "--format", "{{.State.Status}}", cid).text.strip()
        if state != "running":
            logs = store.podman("logs", cid, check=False)
            pytest.fail(f"the container is {state}:\n{logs.stdout.decode()}\n{logs.stderr}")
        time.sleep(1)
    logs = store.podman("logs", cid, check=False)
    pytest.fail(f"/readyz did not answer 200 within {bound}s:\n{logs.stderr}")


def _run(store: Store, port: int, volume: str, *env: str) -> str:
    args = ["run", "-d", "-p", f"127.0.0.1:{port}:5000", "--runtime", "runc",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
            "-v", f"{volume}:/var/lib/moorage"]
    for item in env:
        args += ["-e", item]
    return store.podman(*args, IMAGE).text.strip()


def _stop(store: Store, cid: str) -> int:
    """SIGTERM, as a supervisor stops it; the exit code."""
    store.podman("stop", "-t", "30", cid, timeout=120)
    code = int(store.podman("inspect", "--format", "{{.State.ExitCode}}", cid).text.strip())
    store.podman("rm", cid)
    return code


def test_image_serves_and_keeps_its_data(store: Store, tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (scripts/install-system-deps.sh installs it)")
    port, volume = free_port(), f"moorage-test-{uuid.uuid4().hex[:12]}"
    url = f"http://127.0.0.1:{port}"
    started: list[str] = []
    try:
        # 1. the image's defaults: token auth, SQLite and the disk in the volume
        cid = _run(store, port, volume, f"MOORAGE_ADMIN_PASSWORD={ADMIN_PASSWORD}")
        started.append(cid)
        t0 = time.monotonic()
        ready = _wait_ready(store, cid, url)
        print(f"\nready {time.monotonic() - t0:.1f}s after podman run")
        assert ready.json()["status"] == "ready"
        assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
            "database": True, "storage": True}
        assert httpx.get(f"{url}/healthz").status_code == 200
        anonymous = httpx.get(f"{url}/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith(
            f'Bearer realm="{url}/auth/token"')
        assert httpx.get(f"{url}/v2/", auth=("admin", ADMIN_PASSWORD)).status_code == 200
        assert store.podman("exec", cid, "id", "-u").text.strip() == "10001"
        # a push writes to the volume as the unprivileged user
        random_image(tmp_path / "layout", "v1")
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
             f"admin:{ADMIN_PASSWORD}", f"oci:{tmp_path / 'layout'}:v1",
             f"docker://127.0.0.1:{port}/team/app:v1"])
        assert _stop(store, cid) == 0  # a clean stop on SIGTERM
        started.remove(cid)

        # 2. a new container on the same volume, open (MOORAGE_AUTH=off): the data is there
        cid = _run(store, port, volume, "MOORAGE_AUTH=off")
        started.append(cid)
        _wait_ready(store, cid, url)
        assert httpx.get(f"{url}/v2/").status_code == 200
        tags = httpx.get(f"{url}/v2/team/app/tags/list")
        assert tags.status_code == 200 and tags.json()["tags"] == ["v1"]
        assert _stop(store, cid) == 0
        started.remove(cid)
    finally:
        for cid in started:
            store.podman("rm", "--force", "--time", "5", cid, check=False)
        store.podman("volume", "rm", "--force", volume, check=False)
