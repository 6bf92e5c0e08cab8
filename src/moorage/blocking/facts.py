"""The facts a pull decision needs, written when their inputs change (never per request).

- A scan finished (`scan.completed`, from a scan or a rescan): the image's status and its
  blocking findings (critical to low, worst first) go to `pull_scan_facts`; an index gets
  the merge of its platforms' (their worst counts), and so does every index above an image
  rescanned alone.
- A signature verdict changed (`signature.verified`, from the signing service): the
  manifest's row in `pull_signed` is written or removed.
- A push needs nothing: a new digest has no facts, which reads as unscanned and unsigned at
  once, with no window in which a pull could pass.
- An image scanned or signed before threat blocking was installed: `backfill`, run when a
  policy is saved (inline for a small namespace, as a durable job with progress otherwise).

The CVE allowlist is not folded in: it is applied when a pull is decided (model.decide),
from the same cached reads, so an entry added, removed or expiring needs no rewrite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from moorage.blocking.model import BlockingFinding, RANK, encode_findings, finding_text
from moorage.blocking.store import BlockingStore
from moorage.registry.events import Event
from moorage.scan.allowlist import id_key
from moorage.scan.model import Finding
from moorage.scan.store import ScanRow, ScanStore

log = logging.getLogger("moorage.blocking")
FINISHED = ("done", "failed")


def blocking_findings(findings: Iterable[Finding]) -> list[BlockingFinding]:
    out = []
    for f in findings:
        level = f.severity.level
        if level not in RANK:
            continue  # "unknown": no rule names it
        keys = tuple(dict.fromkeys(id_key(x) for x in (f.id, *f.aliases)))[:20]
        out.append(BlockingFinding(RANK[level], keys, finding_text(
            level, f.id, f.aliases, f.package.name, f.package.version, f.fixed_versions)))
    return out


class FactsWriter:
    """Turns finished scans and signature verdicts into facts rows."""

    def __init__(self, store: BlockingStore, scans: ScanStore) -> None:
        self.store = store
        self.scans = scans

    def on_event(self, event: Event) -> None:
        """Bus handler (runs where the event is published: a scan job's thread, the
        signing service's request). Errors are logged by the bus and fail nothing."""
        if event.action == "scan.completed" and event.digest:
            images = event.detail.get("images") if isinstance(event.detail, dict) else None
            digests = [str(i["digest"]) for i in images or []
                       if isinstance(i, dict) and isinstance(i.get("digest"), str)]
            self.refresh([*digests, event.digest])
        elif event.action == "signature.verified" and event.digest and event.repository:
            detail = event.detail if isinstance(event.detail, dict) else {}
            signers = detail.get("signers") if isinstance(detail.get("signers"), list) else []
            self.store.set_signed(event.repository, event.digest,
                                  detail.get("verified") is True, [str(s) for s in signers])

    def refresh(self, digests: Iterable[str]) -> int:
        """Write the facts of these manifests (images or indexes) from their stored scans,
        then of the indexes above them; how many rows were written."""
        wanted = list(dict.fromkeys(digests))
        written = self._write(wanted)
        parents = [p for d in wanted for p in self.store.index_parents(d) if p not in wanted]
        return written + self._write(list(dict.fromkeys(parents)))

    def _write(self, digests: list[str]) -> int:
        rows = []
        for digest in digests:
            facts = self._facts(digest)
            if facts is not None:
                rows.append((digest, *facts))
        self.store.put_scan_facts(rows)
        return len(rows)

    def _facts(self, digest: str) -> tuple[str, str] | None:
        """(status, encoded findings) of an image's finished scan, or of an index whose
        scanned platforms have all finished; None while anything is still to come."""
        own = self.scans.get(digest)
        if own is not None:
            return (own.status, encode_findings(blocking_findings(own.findings))) \
                if own.status in FINISHED else None
        rows: list[ScanRow] = [r for r in (self.scans.get(c) for c in
                                           self.store.index_children(digest)) if r is not None]
        if not rows or any(r.status not in FINISHED for r in rows):
            return None
        status = "done" if all(r.status == "done" for r in rows) else "failed"
        merged = [f for r in rows for f in blocking_findings(r.findings)]
        return status, encode_findings(merged)


def backfill(writer: FactsWriter, namespace: str, is_signed: Callable[[str, str], bool] | None,
             progress: Callable[[int, int, str], None] = lambda *a: None,
             check: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Facts for what a namespace held before threat blocking was installed: scans that
    finished without facts, and (with the signing service) each manifest's signed state."""
    store = writer.store
    missing = store.images_without_facts(namespace)
    signable = store.manifests_of(namespace) if is_signed is not None else []
    total = len(missing) + len(signable)
    done = 0
    for n in range(0, len(missing), 100):
        batch = missing[n:n + 100]
        writer.refresh(batch)
        done += len(batch)
        progress(done, total, f"scan facts: {done} of {len(missing)}")
        check()
    signed = 0
    for n, row in enumerate(signable, 1):
        verdict = is_signed(row.repository, row.digest) if is_signed is not None else False
        store.set_signed(row.repository, row.digest, verdict, [])
        signed += int(verdict)
        if n % 100 == 0 or n == len(signable):
            progress(done + n, total, f"signatures: {n} of {len(signable)}")
            check()
    return {"namespace": namespace, "scan_facts": len(missing), "manifests": len(signable),
            "signed": signed}


__all__ = ["FactsWriter", "backfill", "blocking_findings"]
