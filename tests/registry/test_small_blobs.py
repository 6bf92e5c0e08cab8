"""Small blobs kept in memory (registry/small_blobs.py), on real stores: the filesystem keeps
none (its blobs go out with sendfile), the encrypted store keeps the plaintext once checked,
and bytes that are not the digest's are refused, never kept. The setting is bounded. Over
HTTP on S3 with redirects, tests/scaleout/test_redirects.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from moorage.oci.errors import RegistryError
from moorage.registry.small_blobs import SMALL_BLOB_MAX, SmallBlobs
from moorage.settings import SettingsError, load_settings
from moorage.store.encrypted import EncryptedBlobStore, Keyring
from moorage.store.filesystem import FilesystemBlobStore


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_filesystem_store_keeps_nothing(tmp_path: Path) -> None:
    assert not SmallBlobs(FilesystemBlobStore(tmp_path), 1 << 20).holds(10)


def test_kept_once_checked_and_wrong_bytes_refused(tmp_path: Path) -> None:
    inner = FilesystemBlobStore(tmp_path / "store")
    store = EncryptedBlobStore(inner, Keyring.open(tmp_path / "master.keys", create=True))
    small = SmallBlobs(store, 1 << 20)
    assert small.holds(SMALL_BLOB_MAX) and not small.holds(SMALL_BLOB_MAX + 1)
    assert not SmallBlobs(store, 0).holds(10)

    data = os.urandom(3000)
    store.put(_digest(data), data)
    assert asyncio.run(small.read(_digest(data), len(data))) == data
    inner.delete(_digest(data))  # kept: answered without the store
    assert asyncio.run(small.read(_digest(data), len(data))) == data

    # Stored under another blob's digest (same length): refused, and not kept.
    other, wrong = os.urandom(3000), os.urandom(3000)
    store.put(_digest(other), wrong)
    for _ in range(2):
        with pytest.raises(RegistryError) as refused:
            asyncio.run(small.read(_digest(other), len(other)))
        assert refused.value.code == "BLOB_UNKNOWN"
    missing = os.urandom(10)
    with pytest.raises(RegistryError) as unknown:
        asyncio.run(small.read(_digest(missing), len(missing)))
    assert unknown.value.code == "BLOB_UNKNOWN"


@pytest.mark.parametrize("value", ["-1", str((1 << 30) + 1)])
def test_the_setting_is_bounded(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="small_blob_cache_bytes"):
        load_settings(environ={"MOORAGE_SMALL_BLOB_CACHE_BYTES": value},
                      overrides={"data_dir": tmp_path})
