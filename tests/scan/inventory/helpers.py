"""Images built by the tests: tar layers written with `tarfile` (gzip, zstd or plain), their
manifests and configs put in a real filesystem blob store, and a store wrapper that counts
the bytes read of each blob (the per-layer cache must read none of a cached layer)."""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from moorage.store.filesystem import FilesystemBlobStore

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    link: str = ""


def file(name: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(name, data.encode() if isinstance(data, str) else data, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, type=tarfile.SYMTYPE, mode=0o777, link=target)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, type=tarfile.LNKTYPE, link=target)


def directory(name: str) -> Entry:
    return Entry(name, type=tarfile.DIRTYPE, mode=0o755)


def whiteout(path: str) -> Entry:
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"")


def opaque(directory_path: str) -> Entry:
    return file(f"{directory_path}/.wh..wh..opq", b"")


def tar(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.linkname = entry.type, entry.mode, entry.link
            info.size = len(entry.data) if entry.type == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(entry.data) if info.size else None)
    return out.getvalue()


def compress(data: bytes, kind: str = "gzip") -> bytes:
    if kind == "gzip":
        return gzip.compress(data, 6)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class CountingStore(FilesystemBlobStore):
    """The real filesystem store, counting the bytes handed out per digest."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.bytes_read: collections.Counter[str] = collections.Counter()

    def read(self, digest: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        for chunk in super().read(digest, start, end, chunk_size):
            self.bytes_read[digest] += len(chunk)
            yield chunk


def put(store: FilesystemBlobStore, data: bytes) -> str:
    digest = digest_of(data)
    store.put(digest, data)
    return digest


def image(store: FilesystemBlobStore, layers: list[bytes], *, arch: str = "amd64",
          variant: str | None = None, media_type: str = LAYER_GZIP) -> bytes:
    """Puts the layers (already compressed) and a config in the store; returns the image
    manifest's bytes (also stored, as an OCI layout would hold it)."""
    platform = {"os": "linux", "architecture": arch} | ({"variant": variant} if variant else {})
    diff_ids = [digest_of(layer) for layer in layers]  # not the true diff ids; unused here
    config = json.dumps(platform | {"rootfs": {"type": "layers", "diff_ids": diff_ids},
                                    "config": {}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(store, config), "size": len(config)},
        "layers": [{"mediaType": media_type, "digest": put(store, layer), "size": len(layer)}
                   for layer in layers],
    }).encode()
    put(store, manifest)
    return manifest


def index(store: FilesystemBlobStore, images: list[tuple[dict[str, str], bytes]]) -> bytes:
    doc = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest_of(m), "size": len(m), "platform": p}
                      for p, m in images],
    }).encode()
    put(store, doc)
    return doc


DEBIAN_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

ALPINE_OS_RELEASE = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"""


def metadata(name: str, version: str, license_: str = "") -> str:
    """A wheel's METADATA header block (Metadata-Version 2.1), as pip installs it."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             "Summary: a package the test installed"]
    if license_:
        lines.append(f"License: {license_}")
    return "\n".join(lines) + "\n\nThe long description is the body.\n"
