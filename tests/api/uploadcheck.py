"""Checks that a digest names its bytes, for tests that race uploads on several workers or
replicas: the blob as served, the blob files on disk, and a later push of the same content."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import httpx

from tests.api.helpers import sha256


class Target:
    """Two entry points to one registry: two connections' worth of workers or two replicas."""

    def __init__(self, urls: tuple[str, str], data_dir: Path | None) -> None:
        self.urls = urls
        self.data_dir = data_dir  # the blob folder to walk, when blobs are on the local disk
        self.rng = random.Random(12)

    def url(self) -> str:
        return self.rng.choice(self.urls)

    def client(self, index: int = 0) -> httpx.Client:
        return httpx.Client(base_url=self.urls[index], timeout=60.0, follow_redirects=True)


def assert_served_as_named(target: Target, repo: str, digest: str) -> None:
    """The blob, pulled through the registry (redirects followed), hashes to its digest."""
    with target.client(1) as client:
        r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.text
    assert sha256(r.content) == digest, f"{digest} served other bytes"


def assert_every_stored_blob_hashes_to_its_name(target: Target) -> None:
    if target.data_dir is None:
        return  # on S3 the pulls above are the check
    for path in (target.data_dir / "blobs" / "sha256").glob("*/*"):
        if path.name.startswith("."):
            continue
        with open(path, "rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        assert actual == path.name, f"blob file {path.name} holds other bytes ({actual})"


def victim_pushes_and_pulls(target: Target, repo: str, data: bytes) -> None:
    """Someone else pushes the genuine bytes later: they must get them back, not a stored
    impostor kept because "the digest is already there"."""
    digest = sha256(data)
    with target.client(0) as client:
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    assert_served_as_named(target, repo, digest)
