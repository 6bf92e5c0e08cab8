"""skopeo against the registry: copies in and out keep digests, and the tag/delete/sync
operations users script with skopeo behave as they do against other registries.

Digests are the contract: a registry that re-serialises a manifest, or drops a child of an
index, breaks signatures and pinned deployments, so every copy here is checked byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.clients.tools import (
    Registry,
    copy_in,
    copy_out,
    get_blob,
    get_manifest,
    inspect,
    inspect_raw,
    list_tags,
    require_tool,
    sha256_digest,
    skopeo,
    unique_repo,
)
from tests.support.images import (
    busybox_image,
    layout_manifest,
    layout_ref,
    multiarch_image,
    random_image,
    read_blob,
)

pytestmark = [pytest.mark.clients]

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(autouse=True)
def _skopeo_installed() -> None:
    require_tool("skopeo")


def fresh_seed() -> int:
    """A seed no other test (or earlier run) used: its blobs exist nowhere yet.

    containers/image keeps a machine-wide blob-info cache and reuses known blobs (even by
    cross-repository mount), which would otherwise hide the code path under test.
    """
    return uuid.uuid4().int & 0xFFFF_FFFF


def test_copy_single_arch_in_and_out_keeps_digest(registry: Registry, tmp_path: Path) -> None:
    """oci: -> docker:// -> oci: leaves the manifest, config and layer bytes unchanged."""
    src = tmp_path / "src"
    digest = busybox_image(src, "v1")
    repo = unique_repo("single")
    ref = f"docker://{registry.host}/{repo}:v1"

    copy_in(f"oci:{src}:v1", ref, "--preserve-digests")

    raw = inspect_raw(ref)
    assert sha256_digest(raw) == digest, "registry serves different manifest bytes than pushed"
    assert raw == read_blob(src, digest)
    info = inspect(ref)
    assert info["Digest"] == digest
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")

    resp = get_manifest(registry, repo, "v1")
    assert resp.status_code == 200, resp.text
    assert resp.headers["Docker-Content-Digest"] == digest
    assert get_manifest(registry, repo, digest).content == raw

    out = tmp_path / "out"
    copy_out(ref, f"oci:{out}:v1", "--preserve-digests")
    assert layout_ref(out, "v1")["digest"] == digest
    _, manifest = layout_manifest(out, "v1")
    for desc in [manifest["config"], *manifest["layers"]]:
        assert read_blob(out, desc["digest"]) == read_blob(src, desc["digest"])


def test_copy_multiarch_index_with_all(registry: Registry, tmp_path: Path) -> None:
    """copy --all of an image index keeps the index digest and every child manifest digest."""
    src = tmp_path / "src"
    index_digest = multiarch_image(src, "multi")
    _, index = layout_manifest(src, "multi")
    children = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert set(children) == {"amd64", "arm64"}
    repo = unique_repo("multi")
    ref = f"docker://{registry.host}/{repo}:multi"

    copy_in(f"oci:{src}:multi", ref, "--all", "--preserve-digests")

    raw = inspect_raw(ref)
    assert sha256_digest(raw) == index_digest
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    for arch, child in children.items():
        child_raw = inspect_raw(f"docker://{registry.host}/{repo}@{child}")
        assert sha256_digest(child_raw) == child, f"{arch} child manifest changed"
        info = inspect(ref, "--override-arch", arch, "--override-os", "linux")
        assert info["Architecture"] == arch
        config = json.loads(child_raw)["config"]
        assert sha256_digest(get_blob(registry, repo, config["digest"])) == config["digest"]

    out = tmp_path / "out"
    copy_out(ref, f"oci:{out}:multi", "--all", "--preserve-digests")
    assert layout_ref(out, "multi")["digest"] == index_digest
    _, out_index = layout_manifest(out, "multi")
    assert [m["digest"] for m in out_index["manifests"]] == list(children.values())
    for child in children.values():
        assert read_blob(out, child) == read_blob(src, child)


def test_inspect_reports_metadata_and_tags(registry: Registry, tmp_path: Path) -> None:
    """skopeo inspect shows the config's fields and all tags; --config returns the config."""
    src = tmp_path / "src"
    digest = busybox_image(src, "1.0")
    _, manifest = layout_manifest(src, "1.0")
    repo = unique_repo("inspect")
    for tag in ("1.0", "latest"):
        copy_in(f"oci:{src}:1.0", f"docker://{registry.host}/{repo}:{tag}", "--preserve-digests")

    info = inspect(f"docker://{registry.host}/{repo}:latest")
    assert info["Name"] == f"{registry.host}/{repo}"
    assert info["Digest"] == digest
    assert sorted(info["RepoTags"]) == ["1.0", "latest"]
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    assert info["Created"].startswith("2024-01-01T00:00:00")
    assert (info["Architecture"], info["Os"]) == ("amd64", "linux")
    assert any(e.startswith("PATH=") for e in info["Env"])

    raw_config = skopeo("inspect", "--config", "--raw", "--tls-verify=false",
                        f"docker://{registry.host}/{repo}:1.0").stdout
    assert sha256_digest(raw_config) == manifest["config"]["digest"]
    assert json.loads(raw_config)["config"]["Cmd"] == ["/bin/sh"]


def test_list_tags(registry: Registry, tmp_path: Path) -> None:
    """list-tags returns every tag, including ones using the whole tag grammar."""
    src = tmp_path / "src"
    random_image(src, "a", layers=1, layer_size=4096, seed=1)
    random_image(src, "b", layers=1, layer_size=4096, seed=2)
    repo = unique_repo("tags")
    tags = {"latest": "a", "1.0": "a", "v2_rc-1": "b", "Release_2024.01-rc1": "b",
            "_under": "a", "x" * 128: "b"}
    for tag, image in tags.items():
        copy_in(f"oci:{src}:{image}", f"docker://{registry.host}/{repo}:{tag}")

    assert sorted(list_tags(f"docker://{registry.host}/{repo}")) == sorted(tags)


def test_delete_removes_manifest(registry: Registry, tmp_path: Path) -> None:
    """skopeo delete removes the manifest (by digest): inspect fails, other tags survive."""
    src = tmp_path / "src"
    gone_digest = random_image(src, "gone", layers=1, layer_size=4096, seed=10)
    keep_digest = random_image(src, "keep", layers=1, layer_size=4096, seed=11)
    repo = unique_repo("delete")
    for tag in ("gone", "keep"):
        copy_in(f"oci:{src}:{tag}", f"docker://{registry.host}/{repo}:{tag}", "--preserve-digests")
    assert inspect(f"docker://{registry.host}/{repo}:gone")["Digest"] == gone_digest

    skopeo("delete", "--tls-verify=false", f"docker://{registry.host}/{repo}:gone")

    failed = skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}:gone",
                    check=False)
    assert failed.returncode != 0, "inspect of a deleted image still succeeds"
    assert "manifest unknown" in failed.stderr.lower(), failed.stderr
    for ref in ("gone", gone_digest):
        resp = get_manifest(registry, repo, ref)
        assert resp.status_code == 404, f"GET manifests/{ref} after delete -> {resp.status_code}"
    assert inspect(f"docker://{registry.host}/{repo}:keep")["Digest"] == keep_digest
    assert list_tags(f"docker://{registry.host}/{repo}") == ["keep"]


def test_sync_repository_between_names(registry: Registry, tmp_path: Path) -> None:
    """skopeo sync docker->docker copies every tag of a repository, digests unchanged."""
    src = tmp_path / "src"
    expected = {
        "busybox": busybox_image(src, "busybox"),
        "r1": random_image(src, "r1", layers=2, layer_size=64 * 1024, seed=fresh_seed()),
        "r2": random_image(src, "r2", layers=1, layer_size=64 * 1024, seed=fresh_seed()),
        "multi": multiarch_image(src, "multi"),
    }
    expected["alias"] = expected["r1"]
    base = unique_repo("sync")
    for tag in expected:
        image = "r1" if tag == "alias" else tag
        copy_in(f"oci:{src}:{image}", f"docker://{registry.host}/{base}-src/app:{tag}",
                "--all", "--preserve-digests")

    skopeo("sync", "--src", "docker", "--dest", "docker", "--all", "--preserve-digests",
           "--src-tls-verify=false", "--dest-tls-verify=false",
           f"{registry.host}/{base}-src/app", f"{registry.host}/{base}-dst")

    dest_repo = f"{base}-dst/app"  # sync appends the source's last path component
    assert sorted(list_tags(f"docker://{registry.host}/{dest_repo}")) == sorted(expected)
    for tag, digest in expected.items():
        raw = inspect_raw(f"docker://{registry.host}/{dest_repo}:{tag}")
        assert sha256_digest(raw) == digest, f"tag {tag} arrived with another digest"


def test_copy_docker_schema2_round_trips(registry: Registry, tmp_path: Path) -> None:
    """--format v2s2 pushes a Docker schema 2 manifest; it is served and copied unchanged."""
    src = tmp_path / "src"
    busybox_image(src, "v1")
    _, oci_manifest = layout_manifest(src, "v1")
    repo = unique_repo("v2s2")
    ref = f"docker://{registry.host}/{repo}:v1"

    copy_in(f"oci:{src}:v1", ref, "--format", "v2s2")

    raw = inspect_raw(ref)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_V2
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert manifest["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert manifest["layers"][0]["digest"] == oci_manifest["layers"][0]["digest"]
    digest = sha256_digest(raw)
    assert inspect(ref)["Digest"] == digest
    resp = get_manifest(registry, repo, "v1", accept=DOCKER_V2)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].split(";")[0] == DOCKER_V2
    assert resp.headers["Docker-Content-Digest"] == digest

    out_dir = tmp_path / "dir"
    copy_out(ref, f"dir:{out_dir}", "--preserve-digests")
    assert sha256_digest((out_dir / "manifest.json").read_bytes()) == digest

    ref2 = f"docker://{registry.host}/{repo}-copy:v1"
    skopeo("copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
           "--preserve-digests", ref, ref2)
    assert sha256_digest(inspect_raw(ref2)) == digest


def test_copy_with_zstd_layers(registry: Registry, tmp_path: Path) -> None:
    """zstd-compressed layers push, are served intact and copy back out unchanged."""
    src = tmp_path / "src"
    random_image(src, "z", layers=2, layer_size=128 * 1024, seed=fresh_seed(), compress=False)
    _, src_manifest = layout_manifest(src, "z")
    config = json.loads(read_blob(src, src_manifest["config"]["digest"]))
    repo = unique_repo("zstd")
    ref = f"docker://{registry.host}/{repo}:z"

    copy_in(f"oci:{src}:z", ref, "--dest-compress-format", "zstd", "--dest-compress")

    raw = inspect_raw(ref)
    manifest = json.loads(raw)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+zstd"] * 2, manifest
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        blob = get_blob(registry, repo, layer["digest"])
        assert len(blob) == layer["size"]
        assert blob[:4] == b"\x28\xb5\x2f\xfd", "layer is not zstd"
        if shutil.which("zstd"):
            plain = subprocess.run(["zstd", "-dc"], input=blob, capture_output=True,
                                   check=True).stdout
            assert sha256_digest(plain) == diff_id, "zstd layer does not decompress to diff_id"

    out = tmp_path / "out"
    copy_out(ref, f"oci:{out}:z", "--preserve-digests")
    assert layout_ref(out, "z")["digest"] == sha256_digest(raw)
    for layer in manifest["layers"]:
        assert sha256_digest(read_blob(out, layer["digest"])) == layer["digest"]

