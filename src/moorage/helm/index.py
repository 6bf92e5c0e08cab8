"""index.yaml, generated from the chart metadata rows and cached per namespace.

The cache is a per-process copy of something stored: an entry is served only while the
namespace's generation (store.py), read with one single-row query per request, is the one it
was built under, so a chart pushed or deleted through any worker or replica is in the next
index on every one of them. The generation is also the ETag.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import yaml

from moorage.helm.chart import sort_versions
from moorage.helm.store import ChartRow, ChartStore

try:  # libyaml's emitter: ~10x faster than PyYAML's pure-Python one
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

MAX_CACHED_NAMESPACES = 256


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


def chart_version(row: ChartRow) -> dict[str, object]:
    """One entry of index.yaml (Helm's ChartVersion): the chart's metadata, where to fetch
    it (relative to the repository's URL, so that it works behind any host name) and the
    sha256 of the `.tgz`, in hex as Helm writes it."""
    entry = {k: v for k, v in row.metadata.items() if v not in (None, "", [], {})}
    entry.update(name=row.name, version=row.version, apiVersion=row.api_version,
                 urls=[f"charts/{row.filename}"], created=rfc3339(row.created),
                 digest=row.chart_digest.removeprefix("sha256:"))
    if row.app_version:
        entry["appVersion"] = row.app_version
    return entry


def entries(rows: list[ChartRow]) -> dict[str, list[dict[str, object]]]:
    """{chart name: [versions, newest first]}, names in order."""
    by_name: dict[str, dict[str, ChartRow]] = {}
    for row in rows:
        by_name.setdefault(row.name, {})[row.version] = row
    return {name: [chart_version(versions[v]) for v in sort_versions(list(versions))]
            for name, versions in sorted(by_name.items())}


def render(rows: list[ChartRow], generated: float) -> bytes:
    doc = {"apiVersion": "v1", "entries": entries(rows), "generated": rfc3339(generated),
           "serverInfo": {}}
    return yaml.dump(doc, Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=1 << 20).encode("utf-8")


@dataclass(frozen=True)
class Index:
    body: bytes
    etag: str


class IndexCache:
    """This process's index.yaml per namespace, each filed under the generation it was built
    from (blocking: call from a worker thread)."""

    def __init__(self, store: ChartStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[str, Index]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str) -> tuple[Index, bool]:
        """(the index, whether it came from the cache)."""
        generation = self.store.generation(namespace)
        with self._lock:
            held = self._cache.get(namespace)
        if held is not None and held[0] == generation:
            return held[1], True
        index = Index(render(self.store.namespace_rows(namespace), time.time()),
                      f'"{generation}"')
        # A write after the generation was read makes a newer generation: this entry, filed
        # under the older one, is simply never served again.
        with self._lock:
            if len(self._cache) >= MAX_CACHED_NAMESPACES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[namespace] = (generation, index)
        return index, False
