"""Import an advisory dump into the metadata database, incrementally.

For each record read (reader.py; Alpine secdb converted by secdb.py):
- unchanged (same `modified` and content hash as stored): nothing is written;
- new: added; changed: replaced (its package and alias rows with it);
- withdrawn (`withdrawn` set): dropped if stored, never added;
- unusable (malformed JSON/YAML, over a size limit, not an OSV record, unsafe name): skipped
  with its reason; the import goes on.

A dump is taken as *complete for the ecosystems it holds* (osv.dev's per-ecosystem
`all.zip`, a whole advisory repository): a stored advisory all of whose ecosystems the dump
covers, and which the dump no longer holds, is removed ("removed" in the summary), since
keeping it would report a vulnerability its database has taken back. `partial=True` (the
CLI's `--partial`) adds and updates without removing, for a folder of a few records. When some
entries of the dump could not be read, nothing is removed (an unreadable record may be one
still in force) and the summary says how many stale advisories were kept and why.

Blocking and CPU-bound: run it from a command or a worker thread, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from moorage.scan.advisories import osv, reader, secdb
from moorage.scan.advisories.reader import Limits, SourceError
from moorage.scan.advisories.store import AdvisoryStore, Prepared, prepare

Progress = Callable[[int, int], None]  # (entries done, entries in all)
BATCH = 500
MAX_SKIPPED_LISTED = 200


@dataclass
class ImportSummary:
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    removed: int = 0
    stale_kept: int = 0  # gone from the dump, kept because some entries were unreadable
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    writes: int = 0
    seconds: float = 0.0
    # (ecosystem, normalised name) of the packages named by added, updated, withdrawn or
    # removed (stale) advisories, under their new keys and, for records that were stored,
    # their old ones too (an update that drops a package must reach the images holding it):
    # the stored images holding one are rescanned (scan/service.py)
    changed_keys: set[tuple[str, str]] = field(default_factory=set)

    def skip(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append({"entry": name[:300], "reason": reason[:300]})

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "added": self.added, "updated": self.updated,
                "unchanged": self.unchanged, "withdrawn": self.withdrawn,
                "removed": self.removed, "stale_kept": self.stale_kept,
                "skipped": self.skipped_count, "skipped_entries": self.skipped,
                "writes": self.writes, "seconds": round(self.seconds, 3)}


class _Batch:
    """Records waiting to be compared with what is stored and written, a batch at a time."""

    def __init__(self, store: AdvisoryStore, summary: ImportSummary) -> None:
        self.store, self.summary = store, summary
        self.pending: dict[str, Prepared] = {}
        self.withdrawn: set[str] = set()
        self.seen: set[str] = set()
        self.ecosystems: set[str] = set()
        self.keys: dict[str, set[tuple[str, str]]] = {}  # of the records in this batch

    def add(self, name: str, record: dict[str, Any]) -> None:
        try:
            prepared = prepare(record)
        except osv.BadRecord as exc:
            self.summary.skip(name, str(exc))
            return
        ident = prepared.advisory.id
        if ident in self.seen:
            self.summary.skip(name, f"{ident} appears twice in the dump; the first is kept")
            return
        self.seen.add(ident)
        self.ecosystems.update(prepared.ecosystems)
        self.keys[ident] = {(a.ecosystem, osv.normalize_name(a.ecosystem, a.name))
                            for a in prepared.advisory.affected}
        if prepared.advisory.withdrawn:
            self.withdrawn.add(ident)
        else:
            self.pending[ident] = prepared
        if len(self.pending) + len(self.withdrawn) >= BATCH:
            self.flush()

    def flush(self) -> None:
        stored = self.store.stored(list(self.pending) + list(self.withdrawn))
        gone = [i for i in self.withdrawn if i in stored]
        for ident in gone:
            self.summary.changed_keys.update(self.keys.get(ident, ()))
        # the keys stored records were filed under, before they change or go
        changing = gone + [i for i, p in self.pending.items() if i in stored and not (
            stored[i].content_hash == p.content_hash
            and stored[i].modified == p.advisory.modified[:64])]
        self.summary.changed_keys.update(self.store.keys_of(changing))
        self.summary.withdrawn += len(self.withdrawn)
        self.store.remove(gone)
        write: list[Prepared] = []
        replace: set[str] = set()
        for ident, prepared in self.pending.items():
            old = stored.get(ident)
            if old is None:
                self.summary.added += 1
                write.append(prepared)
            elif (old.content_hash == prepared.content_hash
                  and old.modified == prepared.advisory.modified[:64]):
                self.summary.unchanged += 1
            else:
                self.summary.updated += 1
                write.append(prepared)
                replace.add(ident)
        for prepared in write:
            self.summary.changed_keys.update(self.keys.get(prepared.advisory.id, ()))
        try:
            self.store.put(write, replace)
        except IntegrityError:
            raise SourceError("the advisories changed under this import (another import at "
                              "the same time?): run it again") from None
        self.pending.clear()
        self.withdrawn.clear()
        self.keys.clear()


def run_import(source: Path, store: AdvisoryStore, *, partial: bool = False,
               limits: Limits | None = None, progress: Progress | None = None
               ) -> ImportSummary:
    """Import `source` (a folder or a zip) into `store`. Raises SourceError when the source
    as a whole is unusable (missing, not a zip, over a limit); what was written before a limit
    was hit stays (each batch is its own transaction) and nothing is removed."""
    limits = limits or Limits()
    started = time.time()
    writes_before = store.writes
    summary = ImportSummary(str(source))
    total = reader.count(source, limits)
    batch = _Batch(store, summary)
    alpine: dict[str, dict[str, Any]] = {}  # secdb records, merged over the dump's files
    done = 0
    for entry in reader.entries(source, limits):
        done += 1
        if progress:
            progress(done, total)
        if entry.data is None:
            summary.skip(entry.name, entry.problem)
            continue
        try:
            document = reader.decode(entry.name, entry.data)
            if secdb.is_secdb(document):
                for record in secdb.convert(document):
                    merged = alpine.setdefault(record["id"], record)
                    if merged is not record:
                        merged["affected"].extend(record["affected"])
                        merged["aliases"] = sorted(set(merged["aliases"]) | set(record["aliases"]))
                continue
        except osv.BadRecord as exc:
            summary.skip(entry.name, str(exc))
            continue
        batch.add(entry.name, document)
    for ident in sorted(alpine):
        batch.add(f"secdb:{ident}", alpine[ident])
    batch.flush()
    if not partial:
        stale = [i for i in store.ids_only_in(batch.ecosystems) if i not in batch.seen]
        if summary.skipped_count:
            summary.stale_kept = len(stale)
        else:
            summary.changed_keys.update(store.keys_of(stale))
            summary.removed = store.remove(stale)
    summary.writes = store.writes - writes_before
    summary.seconds = time.time() - started
    store.record_import(str(source), started, summary.as_dict())
    return summary


__all__ = ["ImportSummary", "Limits", "SourceError", "run_import"]
