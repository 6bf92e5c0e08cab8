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
MAX_FRAGMENTS = 200_000  # versions' rendered text kept per process (~300 bytes each)


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


def entry_yaml(row: ChartRow) -> bytes:
    """One version as a list item of index.yaml, indented for its place under its chart's
    key. A YAML document indented as a whole keeps its structure, block scalars included."""
    text = yaml.dump([chart_version(row)], Dumper=_Dumper, default_flow_style=False,
                     sort_keys=False, allow_unicode=True, width=1 << 20)
    return "".join("  " + line for line in text.splitlines(keepends=True)).encode("utf-8")


def render(rows: list[ChartRow], generated: float,
           fragments: dict[tuple[str, ...], bytes] | None = None) -> bytes:
    """index.yaml. Each version's text is kept in `fragments` (when given) under what makes
    it, so that after a change only the versions that are new are rendered again."""
    by_name: dict[str, dict[str, ChartRow]] = {}
    for row in rows:
        by_name.setdefault(row.name, {})[row.version] = row
    out = [b"apiVersion: v1\n"]
    if not by_name:
        out.append(b"entries: {}\n")
    else:
        out.append(b"entries:\n")
    for name, versions in sorted(by_name.items()):
        # quoted: a chart named "true", "null" or "1.0" is still a string key
        out.append(f'  "{name}":\n'.encode())
        for version in sort_versions(list(versions)):
            row = versions[version]
            if fragments is None:
                out.append(entry_yaml(row))
                continue
            key = (row.namespace, row.name, row.version, row.manifest_digest,
                   str(row.created))
            text = fragments.get(key)
            if text is None:
                text = fragments[key] = entry_yaml(row)
            out.append(text)
    out.append(f"generated: '{rfc3339(generated)}'\nserverInfo: {{}}\n".encode())
    return b"".join(out)


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
        # each version's rendered text, by what it is made of (bounded: cleared when full)
        self._fragments: dict[tuple[str, ...], bytes] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str) -> tuple[Index, bool]:
        """(the index, whether it came from the cache)."""
        generation = self.store.generation(namespace)
        with self._lock:
            held = self._cache.get(namespace)
        if held is not None and held[0] == generation:
            return held[1], True
        if len(self._fragments) > MAX_FRAGMENTS:
            self._fragments.clear()
        index = Index(render(self.store.namespace_rows(namespace), time.time(),
                             self._fragments), f'"{generation}"')
        # A write after the generation was read makes a newer generation: this entry, filed
        # under the older one, is simply never served again.
        with self._lock:
            if len(self._cache) >= MAX_CACHED_NAMESPACES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[namespace] = (generation, index)
        return index, False
