"""The cosign vectors of shared/fixtures/cosign/ turned into what a registry holds.

containers/image keeps a cosign signature in its "dir" layout as `\\x00sigstore-json\\n` and
JSON {"mimeType", "payload" (base64), "annotations"}; cosign keeps the same three things as
one layer of the `.sig` manifest: the payload bytes as the blob, mimeType as the descriptor's
media type, the annotations as the descriptor's annotations. `sig_layer` does that
conversion; `registry_read` is a blob store over the blobs of built artifacts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from moorage.signing import artifacts, keys, verify
from tests.support.fixtures import SHARED_FIXTURES

COSIGN = SHARED_FIXTURES / "cosign"
DIR_PREFIX = b"\x00sigstore-json\n"


def sig_layer(path: Path) -> artifacts.Blob:
    raw = path.read_bytes()
    assert raw.startswith(DIR_PREFIX), path
    doc = json.loads(raw[len(DIR_PREFIX):])
    return artifacts.Blob(doc["mimeType"], base64.b64decode(doc["payload"]), doc["annotations"])


def manifest_digest(case: str) -> str:
    return "sha256:" + hashlib.sha256((COSIGN / case / "manifest.json").read_bytes()).hexdigest()


def registry_read(*arts: artifacts.Artifact) -> Callable[[str, int], bytes | None]:
    """A blob reader over the artifacts' blobs that honours the size bound, as a store would."""
    blobs = {blob.digest: blob.data for art in arts for blob in art.blobs}

    def read(digest: str, max_bytes: int) -> bytes | None:
        data = blobs.get(digest)
        return None if data is None or len(data) > max_bytes else data
    return read


def candidates(layers: list[artifacts.Blob], source: str = "repo:sha256-x.sig"
               ) -> list[verify.Candidate]:
    art = artifacts.legacy_signature_manifest(layers)
    return verify.candidates_of(art.manifest, art.media_type, registry_read(art), source=source)


def trusted_key(name: str, path: Path | None = None, scope: str = "instance") -> verify.TrustedKey:
    public = keys.load_public_key((path or COSIGN / f"{name}.pub").read_bytes())
    return verify.TrustedKey(id=f"id-{name}", name=name, scope=scope, key=public)
