"""Distribution between registries (issue 18): proxy cache namespaces (proxy/), artifact
subscriptions, replication rules and import. Each part installs itself from app.py."""

from __future__ import annotations

from typing import Any


def install_proxy(settings: Any, engine: Any, registry: Any, manager: Any) -> Any:
    """Proxy cache namespaces (the `proxy_cache` edition switch); the service."""
    from pathlib import Path

    from moorage.replication.proxy import install
    from moorage.store.keys import load_keyring

    data_dir = Path(settings.data_dir).resolve()
    opened: list[Any] = []

    def keyring() -> Any:  # opened on first use: only a sealed password needs it
        if not settings.encryption:
            return None
        if not opened:
            opened.append(load_keyring(settings.master_key_file, data_dir))
        return opened[0]
    return install(engine, registry, manager, keyring, data_dir / "tmp")
