"""buildah builds FROM an image in the registry and pushes the result back: the CI workflow.

It exercises pulls by a builder, a RUN step on the pulled rootfs, and a push that reuses the
base layer already in the registry (HEAD or cross-repository mount) instead of re-uploading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.tools import (
    ContainerStore,
    Registry,
    copy_in,
    copy_out,
    sha256_digest,
    unique_repo,
)
from tests.support.images import busybox_image, layer_files, layout_manifest, read_blob

pytestmark = [pytest.mark.clients]


def test_buildah_bud_from_registry_and_push(registry: Registry, tmp_path: Path,
                                            buildah_store: ContainerStore) -> None:
    """bud FROM <registry>/base, RUN a step, push; the result has hello.txt over the base."""
    src = tmp_path / "src"
    busybox_image(src, "v1")
    _, base_manifest = layout_manifest(src, "v1")
    base_config = json.loads(read_blob(src, base_manifest["config"]["digest"]))
    base_repo, out_repo = unique_repo("buildah-base"), unique_repo("buildah-out")
    copy_in(f"oci:{src}:v1", f"docker://{registry.host}/{base_repo}:v1", "--preserve-digests")

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/{base_repo}:v1\n"
                                    "RUN echo hello > /hello.txt\n")
    local = f"localhost/{out_repo.rsplit('/', 1)[-1]}:built"
    buildah_store("bud", "--isolation", "chroot", "--tls-verify=false", "--quiet", "-t", local,
                  str(ctx), timeout=300)

    digest_file = tmp_path / "pushed.digest"
    buildah_store("push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file),
                  local, f"docker://{registry.host}/{out_repo}:built")
    pushed = digest_file.read_text().strip()

    out = tmp_path / "out"
    copy_out(f"docker://{registry.host}/{out_repo}:built", f"oci:{out}:built",
             "--preserve-digests")
    digest, manifest = layout_manifest(out, "built")
    assert digest == pushed
    assert len(manifest["layers"]) == 2, manifest
    base_layer = base_manifest["layers"][0]["digest"]
    assert manifest["layers"][0]["digest"] == base_layer, (
        "base layer was re-uploaded with a new digest: did the registry refuse the blob reuse "
        "(HEAD /v2/<repo>/blobs/<digest> or POST .../blobs/uploads/?mount=&from=)?")

    config = json.loads(read_blob(out, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"][0] == base_config["rootfs"]["diff_ids"][0]
    top = layer_files(read_blob(out, manifest["layers"][1]["digest"]))
    assert top.get("hello.txt") == b"hello\n", sorted(top)
    assert sha256_digest(read_blob(out, manifest["layers"][1]["digest"])) == \
        manifest["layers"][1]["digest"]
