"""Build OCI image layouts on disk for client tests, with the standard library only.

Tests need images that real clients (skopeo, podman, buildah, oras) accept, without
downloading anything. Everything here is deterministic -- fixed mtimes, owners, gzip
headers and JSON encoding -- so the same call always yields the same digests and a test
can assert that a digest survives a push/pull round trip byte for byte.

Layout written (OCI image-layout 1.0): ``oci-layout``, ``index.json`` and
``blobs/sha256/<hex>``. Several tags may share one layout: each call adds (or replaces)
the ``index.json`` entry whose ``org.opencontainers.image.ref.name`` is the tag, so
``skopeo copy oci:DIR:TAG ...`` addresses each image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"

#: Fixed timestamp (2024-01-01T00:00:00Z) for tar entries and config "created".
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"

BUSYBOX = Path("/bin/busybox")
#: Applets linked to busybox in the image: enough for `/bin/sh -c "..."` build steps.
BUSYBOX_APPLETS = (
    "sh", "ash", "ls", "echo", "cat", "cp", "mv", "rm", "mkdir", "rmdir", "ln", "touch",
    "chmod", "chown", "true", "false", "env", "id", "sleep", "test", "[", "grep", "sed",
    "head", "tail", "wc", "uname", "whoami", "hostname", "pwd", "sort", "find", "tar",
    "gzip", "sha256sum", "date", "stat", "printf", "vi",
)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor of a blob written into a layout."""

    media_type: str
    digest: str
    size: int

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of bytes, the form registries and clients use."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact JSON in insertion order (Go's field order), so digests never vary run to run."""
    return json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------
# Layout plumbing


def init_layout(dest_dir: str | Path) -> Path:
    """Create an empty layout (idempotent: an existing index.json is kept)."""
    root = Path(dest_dir)
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    if not (root / "index.json").exists():
        (root / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": []}))
    return root


def write_blob(dest_dir: str | Path, data: bytes, media_type: str) -> Descriptor:
    """Store bytes content-addressed under blobs/sha256/ and describe them."""
    digest = sha256_digest(data)
    path = Path(dest_dir) / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return Descriptor(media_type, digest, len(data))


def read_blob(layout_dir: str | Path, digest: str) -> bytes:
    """Bytes of a blob in a layout, by digest."""
    algo, hexpart = digest.split(":", 1)
    return (Path(layout_dir) / "blobs" / algo / hexpart).read_bytes()


def tag_in_layout(dest_dir: str | Path, tag: str, desc: Descriptor) -> None:
    """Point `tag` at a manifest or index in index.json, replacing an older entry of that tag."""
    root = Path(dest_dir)
    index = json.loads((root / "index.json").read_bytes())
    manifests = [m for m in index.get("manifests", [])
                 if (m.get("annotations") or {}).get(REF_NAME) != tag]
    manifests.append(desc.to_json(annotations={REF_NAME: tag}))
    index["manifests"] = manifests
    index.setdefault("schemaVersion", 2)
    (root / "index.json").write_bytes(canonical_json(index))


def layout_ref(layout_dir: str | Path, tag: str) -> dict[str, Any]:
    """The index.json descriptor tagged `tag` (raises KeyError if absent)."""
    index = json.loads((Path(layout_dir) / "index.json").read_bytes())
    for entry in index.get("manifests", []):
        if (entry.get("annotations") or {}).get(REF_NAME) == tag:
            return entry
    raise KeyError(f"tag {tag!r} not in {layout_dir}/index.json: {index}")


def layout_manifest(layout_dir: str | Path, tag: str) -> tuple[str, dict[str, Any]]:
    """(digest, parsed manifest or index) of the image tagged `tag`, checking the bytes' hash."""
    entry = layout_ref(layout_dir, tag)
    raw = read_blob(layout_dir, entry["digest"])
    assert sha256_digest(raw) == entry["digest"], "layout blob does not match its digest"
    return entry["digest"], json.loads(raw)


# ---------------------------------------------------------------------------------------------
# Tar and image building


@dataclass(frozen=True)
class Entry:
    """One tar member: a file (data), a directory (data None, no target) or a symlink."""

    name: str
    data: bytes | None = None
    mode: int | None = None  # default: 0o755 for directories, 0o644 for files
    symlink_to: str | None = None


def make_tar(entries: list[Entry]) -> bytes:
    """A deterministic tar: root-owned, fixed mtime, USTAR headers, entries in given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = e.mode if e.mode is not None else (0o755 if e.data is None else 0o644)
            if e.symlink_to is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = e.symlink_to
                info.mode = 0o777
                tar.addfile(info)
            elif e.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """gzip with mtime 0 and no file name, so the compressed digest is reproducible."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_image(dest_dir: str | Path, tag: str | None, layer_tars: list[bytes], *,
                arch: str = "amd64", cmd: list[str] | None = None, compress: bool = True,
                variant: str | None = None,
                annotations: dict[str, str] | None = None) -> Descriptor:
    """Write config, layers and manifest for uncompressed layer tars; tag it if `tag` is given.

    The config's `rootfs.diff_ids` are digests of the *uncompressed* tars, as the image spec
    requires; the layer blobs are gzip (or plain tar with compress=False).
    """
    root = init_layout(dest_dir)
    layers: list[Descriptor] = []
    for tar_bytes in layer_tars:
        if compress:
            layers.append(write_blob(root, gzip_bytes(tar_bytes), MEDIA_LAYER_GZIP))
        else:
            layers.append(write_blob(root, tar_bytes, MEDIA_LAYER_TAR))
    config: dict[str, Any] = {"created": CREATED, "architecture": arch}
    if variant:
        config["variant"] = variant
    config |= {
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd or ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(t) for t in layer_tars]},
        "history": [{"created": CREATED, "created_by": f"tests.support.images layer {i}"}
                    for i in range(len(layer_tars))],
    }
    config_desc = write_blob(root, canonical_json(config), MEDIA_CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    if annotations:
        manifest["annotations"] = annotations
    desc = write_blob(root, canonical_json(manifest), MEDIA_MANIFEST)
    if tag is not None:
        tag_in_layout(root, tag, desc)
    return desc


def busybox_rootfs_tar() -> bytes:
    """A runnable root filesystem: Debian's static busybox, applet symlinks, minimal /etc."""
    entries = [
        Entry("bin/"), Entry("bin/busybox", BUSYBOX.read_bytes(), mode=0o755),
        *[Entry(f"bin/{name}", symlink_to="busybox") for name in BUSYBOX_APPLETS],
        Entry("etc/"),
        Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                            b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        Entry("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        Entry("etc/hostname", b"moorage-test\n"),
        Entry("root/", mode=0o700),
        Entry("tmp/", mode=0o1777),
    ]
    return make_tar(entries)


def busybox_image(dest_dir: str | Path, tag: str, arch: str = "amd64") -> str:
    """A one-layer busybox image (really runnable on amd64); returns the manifest digest.

    `arch` only labels the config: the binary is always the host's amd64 busybox.
    """
    return write_image(dest_dir, tag, [busybox_rootfs_tar()], arch=arch).digest


def random_image(dest_dir: str | Path, tag: str, layers: int = 2, layer_size: int = 256 * 1024,
                 seed: int = 0, compress: bool = True) -> str:
    """An image whose layers are tars holding `layer_size` random bytes each (seeded).

    Random bytes defeat compression and deduplication, so pushes move real data; different
    seeds give different blobs. Returns the manifest digest.
    """
    rng = random.Random(seed)
    tars = [make_tar([Entry("data/"),
                      Entry(f"data/layer-{i}.bin", rng.randbytes(layer_size))])
            for i in range(layers)]
    return write_image(dest_dir, tag, tars, cmd=["/bin/true"], compress=compress,
                       annotations={"org.opencontainers.image.description": f"random seed={seed}"}
                       ).digest


def multiarch_image(dest_dir: str | Path, tag: str,
                    platforms: tuple[tuple[str, str | None], ...] = (("amd64", None),
                                                                     ("arm64", "v8"))) -> str:
    """An image index over one small image per linux platform; returns the index digest."""
    root = init_layout(dest_dir)
    children: list[dict[str, Any]] = []
    for arch, variant in platforms:
        tar_bytes = make_tar([Entry("etc/"),
                              Entry("etc/arch", f"{arch}{variant or ''}\n".encode())])
        desc = write_image(root, None, [tar_bytes], arch=arch, variant=variant)
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        children.append(desc.to_json(platform=platform))
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": children}
    desc = write_blob(root, canonical_json(index), MEDIA_INDEX)
    tag_in_layout(root, tag, desc)
    return desc.digest


def layer_files(blob: bytes, strict: bool = True) -> dict[str, bytes | None]:
    """Members of a gzip or plain tar layer blob: name -> file bytes (None for non-files).

    Lets tests check what a client put into a layer (e.g. a RUN step's output file).
    strict=False tolerates a tar whose last block padding and end-of-archive marker are
    missing, which umoci 0.4 writes (opencontainers/umoci#436; umoci and runc accept it).
    """
    data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    files: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        while True:
            try:
                member = tar.next()
            except tarfile.ReadError:
                if strict:
                    raise
                break
            if member is None:
                break
            name = member.name.removeprefix("./").rstrip("/")
            fh = tar.extractfile(member) if member.isfile() else None
            files[name] = fh.read() if fh is not None else None
    return files
