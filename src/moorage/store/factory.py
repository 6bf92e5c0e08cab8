"""Choose and open the blob store from the `storage_url` setting (parsed by location.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from moorage.settings import Settings, SettingsError
from moorage.store.base import BlobStore
from moorage.store.filesystem import FilesystemBlobStore
from moorage.store.location import S3Location, StorageUrlInvalid, parse_storage_url

if TYPE_CHECKING:
    from moorage.store.s3 import S3BlobStore

__all__ = ["S3Location", "open_blob_store", "open_s3_store", "parse_storage_url"]


def open_s3_store(location: S3Location, access_key: str | None = None,
                  secret_key: str | None = None) -> "S3BlobStore":
    from moorage.store.s3 import S3BlobStore  # boto3 loads only when S3 is configured

    return S3BlobStore(location.bucket, location.prefix, endpoint=location.endpoint,
                       region=location.region, access_key=access_key, secret_key=secret_key,
                       redirect=location.redirect, public_endpoint=location.public_endpoint,
                       redirect_expires=location.redirect_expires)


def open_blob_store(settings: Settings, data_dir: Path, check: bool = True) -> BlobStore:
    """The blob store the settings ask for. With `check`, an S3 bucket that cannot be reached
    (wrong endpoint, keys or bucket name) fails here, at start-up, not on the first push."""
    try:
        location = parse_storage_url(settings.storage_url)
    except StorageUrlInvalid as exc:
        raise SettingsError(str(exc)) from None
    if location is None:
        return FilesystemBlobStore(Path(data_dir))
    store = open_s3_store(location)
    if check:
        try:
            store.check()
        except Exception as exc:
            store.close()
            raise SettingsError(f"setting 'storage_url': cannot reach bucket "
                                f"{location.bucket!r} at {location.endpoint or 'AWS'}: {exc}"
                                ) from None
    return store
