"""A client for other registries (the Distribution API): the adapter under the proxy cache,
subscriptions, replication and import (issue 18).

    async with RegistryClient(RemoteConfig("https://registry.example.com",
                                           username="u", password="p")) as upstream:
        manifest = await upstream.get_manifest("library/alpine", "3.20")
        async with upstream.open_blob("library/alpine", digest, size=n) as blob:
            async for chunk in blob.chunks():
                ...  # write to our store; an error after the last chunk: discard it

It imports only `oci/` (digests, media types, manifest parsing): a core-level adapter that
any feature may use, and that uses none.
"""

from moorage.remote.blobs import BlobReader, BlobSource, BytesSource, FileSource
from moorage.remote.client import (MANIFEST_ACCEPT, ManifestInfo, PushResult, RegistryClient,
                                   RemoteBlobSource, RemoteManifest, Upload, copy_blob)
from moorage.remote.config import Limits, RemoteConfig, RetryPolicy, Timeouts
from moorage.remote.errors import (DigestMismatch, RemoteAuthError, RemoteConfigError,
                                   RemoteConnectError, RemoteContentError, RemoteError,
                                   RemoteNotFound, RemoteProtocolError, RemoteTimeout,
                                   RemoteTooLarge, RemoteUnavailable, ShortBody)

__all__ = [
    "BlobReader", "BlobSource", "BytesSource", "DigestMismatch", "FileSource", "Limits",
    "MANIFEST_ACCEPT", "ManifestInfo", "PushResult", "RegistryClient", "RemoteAuthError",
    "RemoteBlobSource", "RemoteConfig", "RemoteConfigError", "RemoteConnectError",
    "RemoteContentError", "RemoteError", "RemoteManifest", "RemoteNotFound", "RemoteProtocolError", "RemoteTimeout",
    "RemoteTooLarge", "RemoteUnavailable", "RetryPolicy", "ShortBody", "Timeouts", "Upload",
    "copy_blob",
]
