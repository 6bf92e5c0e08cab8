"""Pull-path answers cached in a worker are never older than the last acknowledged commit.

Each test moves a tag (or a visibility) through one engine, as another granian worker, the job
worker or the CLI would, and reads it through another engine's cache, as a worker that had
already answered the old value would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from moorage.db.access import AccessStore
from moorage.db.changes import ChangeSignal
from moorage.db.metadata import MetadataStore, NewManifest, open_engine, sqlite_url
from moorage.db.migrate import ensure_schema
from moorage.oci.digest import digest_of

REPO = "team/app"


def _manifest(label: str) -> NewManifest:
    body = ('{"schemaVersion":2,"label":"%s"}' % label).encode()
    return NewManifest(digest=digest_of(body), media_type="application/vnd.oci.image.manifest.v1+json",
                       content=body, subject=None, artifact_type=None, annotations=None,
                       blob_digests=(), child_digests=())


def _store(data: Path) -> MetadataStore:
    engine = open_engine(sqlite_url(data))
    ensure_schema(engine)
    return MetadataStore(engine)


@pytest.fixture
def two_workers(tmp_path: Path) -> tuple[MetadataStore, MetadataStore]:
    return _store(tmp_path), _store(tmp_path)


def test_a_tag_moved_elsewhere_is_seen_at_once(two_workers: tuple[MetadataStore, MetadataStore]) -> None:
    reader, writer = two_workers
    first, second = _manifest("one"), _manifest("two")
    writer.put_manifest(REPO, first, ["latest"])
    assert reader.tag_digest(REPO, "latest") == first.digest
    assert reader.tag_digest(REPO, "latest") == first.digest  # now from the cache
    writer.put_manifest(REPO, second, ["latest"])
    assert reader.tag_digest(REPO, "latest") == second.digest
    writer.delete_tag(REPO, "latest")
    assert reader.tag_digest(REPO, "latest") is None


def test_a_commit_in_another_process_is_seen_at_once(tmp_path: Path) -> None:
    reader = _store(tmp_path)
    first, second = _manifest("one"), _manifest("two")
    reader.put_manifest(REPO, first, ["latest"])
    assert reader.tag_digest(REPO, "latest") == first.digest
    script = (
        "import sys; from tests.db.test_cached_reads import _store, _manifest, REPO; "
        "from pathlib import Path; "
        "_store(Path(sys.argv[1])).put_manifest(REPO, _manifest('two'), ['latest'])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    assert reader.tag_digest(REPO, "latest") == second.digest


def test_visibility_and_blob_links_follow_commits(two_workers: tuple[MetadataStore, MetadataStore]) -> None:
    reader, writer = two_workers
    access_reader, access_writer = AccessStore(reader.engine), AccessStore(writer.engine)
    writer.link_blob(REPO, "sha256:" + "a" * 64, 10)
    assert reader.blob_size_in_repository(REPO, "sha256:" + "a" * 64) == 10
    assert access_reader.repository_visibility(REPO)[0] == "private"
    access_writer.update_repository(REPO, visibility="public")
    assert access_reader.repository_visibility(REPO)[0] == "public"
    writer.unlink_blob(REPO, "sha256:" + "a" * 64)
    assert reader.blob_size_in_repository(REPO, "sha256:" + "a" * 64) is None


def test_an_answer_read_during_a_transaction_is_dropped_at_its_commit(
        two_workers: tuple[MetadataStore, MetadataStore]) -> None:
    """A worker answers (and caches) the old tag while a push's transaction is open; the
    push's commit must make that answer stale, or the old tag would be served until the
    next unrelated commit."""
    reader, writer = two_workers
    first, second = _manifest("one"), _manifest("two")
    writer.put_manifest(REPO, first, [])
    writer.put_manifest(REPO, second, ["latest"])
    with writer.engine.begin() as conn:
        conn.execute(text("UPDATE tags SET digest = :d WHERE name = 'latest'"),
                     {"d": first.digest})
        assert reader.tag_digest(REPO, "latest") == second.digest  # not committed yet
        assert reader.tag_digest(REPO, "latest") == second.digest
    assert reader.tag_digest(REPO, "latest") == first.digest


def test_signal_values_never_repeat(tmp_path: Path) -> None:
    signal = ChangeSignal(tmp_path / "db.changes")
    seen = {signal.current()}
    for _ in range(1000):
        signal.bump()
        seen.add(signal.current())
    assert len(seen) == 1001
    assert ChangeSignal(tmp_path / "db.changes").current() == signal.current()  # shared file


def test_bookkeeping_commits_keep_the_cache(two_workers: tuple[MetadataStore, MetadataStore],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit entries and job claims are committed many times a second under load; they touch
    no table a cached lookup reads, so they must not empty every worker's cache."""
    from moorage.audit.chain import entry_from_event
    from moorage.audit.store import AuditStore
    from moorage.jobs.queue import JobQueue
    from moorage.registry.events import Event

    reader, writer = two_workers
    writer.put_manifest(REPO, _manifest("one"), ["latest"])
    assert reader.tag_digest(REPO, "latest") is not None
    queries: list[str] = []
    query = reader.reads.rows
    monkeypatch.setattr(reader.reads, "rows",
                        lambda sql, params: queries.append(sql) or query(sql, params))
    AuditStore(writer.engine).append([entry_from_event(Event("pull", REPO))])
    JobQueue(writer.engine).claim("w1", {"gc": 1})
    assert reader.tag_digest(REPO, "latest") is not None
    assert queries == []  # answered from the cache
    writer.delete_tag(REPO, "latest")
    assert reader.tag_digest(REPO, "latest") is None
    assert len(queries) == 1


def test_repository_totals_follow_commits_of_other_workers(tmp_path: Path) -> None:
    """The listing's X-Total-Count is kept between commits (counting 100,000 repositories on
    every page is what made a large namespace's listing grow); a repository another worker
    adds or deletes shows in the next total, and the rows of a page stay in name order."""
    writer, reader = _store(tmp_path), _store(tmp_path)
    listing = AccessStore(reader.engine)
    for name in ("team/b", "team/a", "other/c"):
        writer.put_manifest(name, _manifest(name), ["v1"])

    rows, total = listing.repository_page(None, "team", limit=1)
    assert ([r.name for r in rows], total) == (["team/a"], 2)
    assert listing.repository_page(None, "team", limit=1, offset=1)[0][0].name == "team/b"
    assert listing.repository_page(None, None)[1] == 3

    writer.put_manifest("team/0", _manifest("zero"), ["v1"])  # another worker's push
    rows, total = listing.repository_page(None, "team", limit=1)
    assert ([r.name for r in rows], total) == (["team/0"], 3)
    assert listing.repository_page(None, None)[1] == 4
    assert writer.delete_repository("team/b")
    assert listing.repository_page(None, "team")[1] == 2
    assert [r.name for r in listing.repository_page(None, "team")[0]] == ["team/0", "team/a"]
