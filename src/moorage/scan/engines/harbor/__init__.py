"""External scanners speaking Harbor's pluggable scanner adapter API (v1.1 report), such as
Aqua's Trivy adapter, as scan engines named "harbor:<adapter name>" (issue 16, item 4).

protocol.py (media types, metadata checks, report -> findings), client.py (HTTP, bounded),
engine.py (one scan: credential, request, polling, conversion), store.py (the
`scanner_adapters` table, sealed secrets), service.py (registration by administrators, the
enabled adapters as engines). `install` builds the service from an instance's parts; the
API router is web/api/scanners.py, the CLI `moorage scanner`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from moorage.access.editions import Edition
from moorage.access.tokens import TokenIssuer
from moorage.scan.engines.harbor.engine import HarborEngine
from moorage.scan.engines.harbor.protocol import AdapterError
from moorage.scan.engines.harbor.service import ScannerService, manifest_media_type
from moorage.scan.engines.harbor.store import AdapterStore
from moorage.settings import Settings
from moorage.store.keys import load_keyring

if TYPE_CHECKING:
    from moorage.registry.service import Registry


def registry_url_for_adapters(settings: Settings) -> str:
    """Where adapters pull images from: `public_url`, else `scan_adapter_registry_url`."""
    return (settings.public_url or settings.scan_adapter_registry_url).rstrip("/")


def install(settings: Settings, engine: Engine, edition: Edition, issuer: TokenIssuer,
            registry: "Registry | None" = None) -> ScannerService:
    """The adapters' service for an instance: behind /api/v1/scanners, and `engines()` for a
    scan (blocking: call it in a worker thread)."""
    keyring = load_keyring(settings.master_key_file, Path(settings.data_dir).resolve()) \
        if settings.encryption else None
    media_type = None
    if registry is not None:
        def of_manifest(repository: str, digest: str) -> str:
            return registry.get_manifest(repository, digest, [], pull=False).media_type
        media_type = manifest_media_type(of_manifest)
    return ScannerService(AdapterStore(engine), edition, keyring, issuer,
                          registry_url_for_adapters(settings),
                          float(settings.scan_adapter_timeout_seconds), media_type)


__all__ = ["AdapterError", "HarborEngine", "ScannerService", "install",
           "registry_url_for_adapters"]
