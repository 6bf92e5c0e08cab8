"""Presigned blob URLs kept in a worker until the next commit, for redirected blob GETs.

On S3 with `redirect=true` a blob GET is answered with a 307 to a presigned URL. Finding the
object to sign cost a HEAD to the bucket per request (a blob pushed in big chunks is a
pointer at its key that names the data object holding its bytes), plus SigV4's signing and
a hop to a thread. The answer changes only when the blob's bytes move, and they move only
with a commit on the database: a blob's objects are written before the commit that links it
(until then the database says the blob is unknown, and nothing is signed), and GC deletes
them only after the commit that removed its row. So a URL is filed under the commit
signal's value read *before* the lookup (db/changes.py; on PostgreSQL the commit_signal row
that every replica shares, read once per request), and handed out only while the signal
still holds that value: a blob deleted, or deleted and pushed again, anywhere is looked up
afresh by the next request on every worker of every replica. (A request that began before
such a commit may still get the answer it would have got a moment earlier, as before.)

A URL is handed out only within the first quarter of its validity, read from the URL itself
(SigV4's X-Amz-Date and X-Amz-Expires), so a client always has at least three quarters of
it left to follow the redirect; a URL without them is not kept.
"""

from __future__ import annotations

import calendar
import re
import time

from moorage.cache.decisions import KeptUntilCommit
from moorage.db.changes import ChangeSignal, SharedTableSignal

MAX_URLS = 4096  # ~0.5 KiB each
REUSE_FRACTION = 0.25
_DATE = re.compile(r"[?&]X-Amz-Date=(\d{8}T\d{6}Z)(?:&|$)")
_EXPIRES = re.compile(r"[?&]X-Amz-Expires=(\d{1,9})(?:&|$)")


def reusable_until(url: str) -> float | None:
    """The wall-clock time until which a presigned URL may still be handed out."""
    date, expires = _DATE.search(url), _EXPIRES.search(url)
    if date is None or expires is None:
        return None
    signed = calendar.timegm(time.strptime(date[1], "%Y%m%dT%H%M%SZ"))
    return signed + int(expires[1]) * REUSE_FRACTION


class RedirectCache:
    def __init__(self, signal: ChangeSignal | SharedTableSignal | None,
                 limit: int = MAX_URLS) -> None:
        self._kept: KeptUntilCommit[tuple[float, str]] = KeptUntilCommit(signal, limit)

    def version(self) -> bytes | None:
        """Read before looking the blob up (see KeptUntilCommit.version)."""
        return self._kept.version()

    def get(self, digest: str) -> str | None:
        kept = self._kept.get(digest)
        if kept is None or time.time() >= kept[0]:
            return None
        return kept[1]

    def put(self, digest: str, version: bytes | None, url: str) -> None:
        until = reusable_until(url)
        if until is not None and time.time() < until:
            self._kept.put(digest, version, (until, url))
