"""Assembles the house: settings → adapters → core → features → routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from moorage.db.metadata import MetadataStore, open_engine, sqlite_url
from moorage.registry.events import EventBus
from moorage.registry.service import Registry
from moorage.settings import Settings, load_settings
from moorage.store.filesystem import FilesystemBlobStore
from moorage.web.http import Receive, Scope, Send, respond
from moorage.web.registry_api import RegistryAPI

log = logging.getLogger("moorage")


def build_registry(settings: Settings) -> Registry:
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = MetadataStore(open_engine(sqlite_url(data_dir.resolve())))
    db.create_schema()
    store = FilesystemBlobStore(data_dir)
    return Registry(db, store, EventBus(), settings.manifest_cache_bytes)


class MoorageApp:
    """The ASGI application: /v2 to the registry API, health checks, lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = build_registry(settings)
        self.registry_api = RegistryAPI(self.registry, settings.max_manifest_bytes)
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path.startswith("/v2"):
                await self.registry_api(scope, receive, send)
            elif path in ("/healthz", "/readyz"):
                await respond(send, 200, b'{"status":"ok"}', {"content-type": "application/json"})
            else:
                await respond(send, 404, json.dumps({"errors": [
                    {"code": "NOT_FOUND", "message": "no such page"}]}).encode(),
                    {"content-type": "application/json"})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks.append(asyncio.create_task(self._expire_uploads()))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _expire_uploads(self) -> None:
        """Uploads idle past their TTL are dropped, hourly; until then they can resume."""
        while True:
            try:
                gone = self.registry.uploads.expire(self.settings.upload_ttl_seconds)
                if gone:
                    log.info("expired %d abandoned uploads", gone)
            except Exception:
                log.exception("upload expiry failed")
            await asyncio.sleep(3600)


def create_app() -> MoorageApp:
    """Factory for granian workers: settings come from the environment the CLI exported."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return MoorageApp(settings)
