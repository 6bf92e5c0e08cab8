"""Proxy cache namespaces (issue 18, item 2): a namespace bound to an upstream registry
serves pulls through, caching what it serves as ordinary content.

store.py (tables, sealed password), source.py (manifests, the tag TTL, the `Upstream` the
core asks), blobs.py (one fetch per uncached blob across workers, streamed while cached),
service.py (administration, the finder). `install` wires it into an instance; the API is
web/api/proxy.py, the CLI `moorage proxy`, the console's Administration and namespace pages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from moorage.access.management import AccessManager
from moorage.registry.service import Registry
from moorage.replication.proxy.service import ProxyService
from moorage.store.keys import Keyring


def install(engine: Engine, registry: Registry, manager: AccessManager,
            keyring: Callable[[], Keyring | None], work_dir: Path) -> ProxyService:
    """The service, registered as the core's finder of upstreams."""
    service = ProxyService(engine, registry, manager, keyring, work_dir)
    registry.upstreams.finders.append(service.find)
    registry.gc_holds.append(service.hold_pending)
    return service


__all__ = ["ProxyService", "install"]
