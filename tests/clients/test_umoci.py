"""An image authored with umoci (no mediaType field in its manifest, umoci's own tar writer)
pushes with skopeo and comes back unchanged: a registry must not assume docker-made images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clients.tools import (
    Registry,
    copy_in,
    copy_out,
    inspect_raw,
    require_tool,
    run,
    sha256_digest,
    unique_repo,
)
from tests.support.images import layer_files, layout_manifest, read_blob

pytestmark = [pytest.mark.clients]


def test_umoci_layout_push_and_pull(registry: Registry, tmp_path: Path) -> None:
    """umoci init/new/insert/config -> skopeo push -> skopeo pull: same digest, same files."""
    require_tool("umoci")
    require_tool("skopeo")
    content = tmp_path / "content"
    (content / "app").mkdir(parents=True)
    (content / "app" / "motd").write_text("made by umoci\n")
    (content / "app" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (content / "app" / "run.sh").chmod(0o755)

    layout = tmp_path / "layout"
    image = f"{layout}:t1"
    run(["umoci", "init", "--layout", layout])
    run(["umoci", "new", "--image", image])
    run(["umoci", "insert", "--image", image, content / "app", "/app"])
    run(["umoci", "config", "--image", image, "--config.cmd", "/app/run.sh",
         "--config.env", "FOO=bar", "--config.label", "org.example.made-by=umoci",
         "--author", "moorage-tests", "--architecture", "amd64", "--os", "linux"])
    digest, manifest = layout_manifest(layout, "t1")
    assert "mediaType" not in manifest, "umoci now writes mediaType; this case lost its point"

    repo = unique_repo("umoci")
    ref = f"docker://{registry.host}/{repo}:t1"
    copy_in(f"oci:{image}", ref, "--preserve-digests")
    raw = inspect_raw(ref)
    assert sha256_digest(raw) == digest
    assert raw == read_blob(layout, digest)

    out = tmp_path / "out"
    copy_out(ref, f"oci:{out}:t1", "--preserve-digests")
    out_digest, out_manifest = layout_manifest(out, "t1")
    assert out_digest == digest
    config = json.loads(read_blob(out, out_manifest["config"]["digest"]))
    assert "FOO=bar" in config["config"]["Env"]
    assert config["config"]["Labels"] == {"org.example.made-by": "umoci"}
    files: dict[str, bytes | None] = {}
    for layer in out_manifest["layers"]:
        # umoci 0.4 leaves off the tar trailer (opencontainers/umoci#436): read leniently.
        files.update(layer_files(read_blob(out, layer["digest"]), strict=False))
    assert files["app/motd"] == b"made by umoci\n"
    assert files["app/run.sh"] == b"#!/bin/sh\necho hi\n"

    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{out}:t1", bundle])
    assert (bundle / "rootfs" / "app" / "motd").read_text() == "made by umoci\n"
