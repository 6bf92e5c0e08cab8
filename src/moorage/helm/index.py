"""index.yaml, generated from the chart metadata rows and cached per namespace.

The cache is a per-process copy of something stored: an entry is served only while the
namespace's generation (store.py), read with one single-row query per request, is the one it
was built under, so a chart pushed or deleted through any worker or replica is in the next
index on every one of them. The generation is also the ETag.

A reader sees only the versions of the repositories they may pull (a private repository in a
public namespace is not listed to anonymous readers): the index is cached per set of visible
repositories, and that set's digest is part of the ETag.
"""

from __future__ import annotations

import hashlib
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


def visible_tag(visible: frozenset[str] | None) -> str:
    """What an ETag adds for a reader who sees only some of the namespace's repositories: a
    digest of which, so that readers who see different sets never share a 304."""
    if visible is None:
        return ""
    digest = hashlib.sha256("\n".join(sorted(visible)).encode()).hexdigest()[:16]
    return f"-{digest}"


class IndexCache:
    """This process's index.yaml per namespace and per set of repositories its reader may
    pull (None: all of them), each filed under the generation it was built from (blocking:
    call from a worker thread). The namespace's rows are kept too, under their generation,
    so that who may see which repository is asked of the rows the index is built from."""

    def __init__(self, store: ChartStore) -> None:
        self.store = store
        self._rows: dict[str, tuple[str, list[ChartRow]]] = {}
        self._cache: dict[tuple[str, frozenset[str] | None], tuple[str, Index]] = {}
        # each version's rendered text, by what it is made of (bounded: cleared when full)
        self._fragments: dict[tuple[str, ...], bytes] = {}
        self._lock = threading.Lock()

    def rows(self, namespace: str) -> tuple[str, list[ChartRow]]:
        """(the namespace's generation, its rows as of that generation)."""
        generation = self.store.generation(namespace)
        with self._lock:
            held = self._rows.get(namespace)
        if held is not None and held[0] == generation:
            return held
        rows = self.store.namespace_rows(namespace)
        # A write after the generation was read makes a newer generation: rows filed under
        # the older one are simply never served again.
        with self._lock:
            if len(self._rows) >= MAX_CACHED_NAMESPACES:
                self._rows.pop(next(iter(self._rows)))
            self._rows[namespace] = (generation, rows)
        return generation, rows

    def get(self, namespace: str, visible: frozenset[str] | None = None,
            held: tuple[str, list[ChartRow]] | None = None) -> tuple[Index, bool]:
        """(the index of the versions in `visible` repositories, whether it came from the
        cache). `held`: what `rows` answered, when the caller asked it first."""
        generation, rows = held if held is not None else self.rows(namespace)
        key = (namespace, visible)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1], True
        if len(self._fragments) > MAX_FRAGMENTS:
            self._fragments.clear()
        shown = rows if visible is None else [r for r in rows if r.repository in visible]
        index = Index(render(shown, time.time(), self._fragments),
                      f'"{generation}{visible_tag(visible)}"')
        with self._lock:
            if len(self._cache) >= MAX_CACHED_NAMESPACES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (generation, index)
        return index, False
