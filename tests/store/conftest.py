"""Blob store fixtures: every contract test runs on the filesystem and on a real SeaweedFS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from moorage.store.base import BlobStore
from moorage.store.filesystem import FilesystemBlobStore
from moorage.store.s3 import S3BlobStore
from tests.support.seaweed import SeaweedS3


@pytest.fixture(scope="session")
def seaweed() -> SeaweedS3:
    """The `weed mini` the test process shares (tests/support/backends.py), with a bucket of
    the session's own; tests keep apart by key prefix (or their own bucket)."""
    from tests.support.backends import shared

    return shared().bucket()


def s3_store(seaweed: SeaweedS3, prefix: str, **options: object) -> S3BlobStore:
    return S3BlobStore(seaweed.bucket, prefix, endpoint=seaweed.endpoint, region=seaweed.region,
                       access_key=seaweed.access_key, secret_key=seaweed.secret_key,
                       **options)  # type: ignore[arg-type]


@pytest.fixture(params=["filesystem", "s3"])
def make_store(request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[Callable[[], BlobStore]]:
    """Open stores on one shared location: each call is another replica's view of it."""
    opened: list[BlobStore] = []
    prefix = f"tests/{uuid.uuid4().hex}"

    def make() -> BlobStore:
        store: BlobStore
        if request.param == "filesystem":
            store = FilesystemBlobStore(tmp_path / "store")
        else:
            store = s3_store(request.getfixturevalue("seaweed"), prefix)
        opened.append(store)
        return store

    yield make
    for store in opened:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def store(make_store: Callable[[], BlobStore]) -> BlobStore:
    return make_store()
