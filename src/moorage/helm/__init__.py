"""Helm charts (issue 19): OCI charts and ChartMuseum-compatible chart repositories, one
storage.

A chart is one OCI artifact (Helm's config, content and provenance media types) in repository
NAMESPACE/NAME, tagged with its version ('+' as '_'). Pushed by `helm push` or uploaded
through the chart repository API (web/chartrepo.py), it goes through the registry's push
path, so deletion, retention, immutability, replication, audit and webhooks treat it like any
artifact. Its metadata is indexed in the database when the manifest is pushed, and
index.yaml is generated from that index.

Where things are:
- chart.py: media types, Chart.yaml rules, the manifest of an uploaded chart (pure)
- archive.py: reading an uploaded .tgz, bounded
- store.py: the metadata rows and the per-namespace generation
- index.py: index.yaml, cached per namespace per process
- service.py: the push check, the bus handler, upload, provenance, delete

The core imports nothing of this: `install` (called by app.py) registers the manifest check
and the bus handler.
"""

from __future__ import annotations

from sqlalchemy import Engine

from moorage.access.editions import Edition
from moorage.helm.service import HelmService
from moorage.helm.store import ChartStore
from moorage.registry.events import EventBus
from moorage.registry.service import Registry
from moorage.settings import Settings


def install(settings: Settings, engine: Engine, registry: Registry, edition: Edition,
            bus: EventBus) -> HelmService:
    """Recognise charts on push (first among the push checks, so that an edition without
    charts names Helm charts, not OCI artifacts, in its refusal) and index them."""
    service = HelmService(registry, ChartStore(engine), edition,
                          settings.helm_max_upload_bytes, settings.helm_allow_overwrite)
    registry.manifest_checks.insert(0, service.manifest_check)
    bus.subscribe(service.on_event)
    return service


__all__ = ["HelmService", "install"]
