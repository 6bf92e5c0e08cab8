"""Writers that race for the same new rows: each gets its answer, none gets an error.

Two clients pushing images that share a base layer commit the same blob at the same moment,
and skopeo uploads the layers of a new repository in parallel, so several requests create
the same repository at once. Each store below has its own engine, as worker processes and
replicas do. Found by the GC loop test: a push failed with 500 (UNIQUE constraint failed:
blobs.digest) when the check for an existing row and the insert were not atomic.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from moorage.db.access import AccessStore
from moorage.db.metadata import (
    MetadataStore,
    MissingReferences,
    NewManifest,
    open_engine,
    sqlite_url,
)
from moorage.db.migrate import upgrade
from moorage.db.schema import namespaces
from tests.support.postgres import PostgresCluster

WRITERS = 4
ROUNDS = 25


@pytest.fixture(scope="module")
def postgres() -> PostgresCluster:
    """The PostgreSQL cluster the test process shares (tests make databases of their own)."""
    from tests.support.backends import shared

    return shared().postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> list[MetadataStore]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.create_database(f"race_{uuid.uuid4().hex[:8]}")
    upgrade(open_engine(url))
    return [MetadataStore(open_engine(url)) for _ in range(WRITERS)]


def race(stores: list[MetadataStore], action: Callable[[MetadataStore, int], None]) -> None:
    """Run `action` on every store at the same instant, ROUNDS times; re-raise any error."""
    errors: list[BaseException] = []

    def writer(store: MetadataStore) -> None:
        for n in range(ROUNDS):
            barrier.wait()
            try:
                action(store, n)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

    barrier = threading.Barrier(len(stores))
    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def manifest_of(layer: str, number: int) -> NewManifest:
    """Manifest `number` (distinct numbers, distinct manifests), with `layer` as its one layer."""
    content = f'{{"schemaVersion":2,"n":{number}}}'.encode()
    return NewManifest(f"sha256:{number:064x}", "application/vnd.oci.image.manifest.v1+json",
                       content, None, None, None, (layer,), ())


def test_the_same_blob_committed_at_once(stores: list[MetadataStore]) -> None:
    digest = "sha256:" + "ab" * 32

    race(stores, lambda store, n: store.link_blob(f"team/app{n}", f"{digest[:-4]}{n:04d}", 100))
    for n in range(ROUNDS):
        assert stores[0].blob_size_in_repository(f"team/app{n}", f"{digest[:-4]}{n:04d}") == 100


def test_the_same_blob_committed_into_different_new_repositories(
        stores: list[MetadataStore]) -> None:
    digest = "sha256:" + "cd" * 32

    def link(store: MetadataStore, n: int) -> None:
        store.link_blob(f"ns{n}/repo{stores.index(store)}", f"{digest[:-4]}{n:04d}", 7)

    race(stores, link)
    for n in range(ROUNDS):
        for i in range(WRITERS):
            assert stores[0].blob_size_in_repository(f"ns{n}/repo{i}", f"{digest[:-4]}{n:04d}") == 7


def test_uploads_started_at_once_in_a_new_repository(stores: list[MetadataStore]) -> None:
    started: list[str] = []

    def start(store: MetadataStore, n: int) -> None:
        upload_id = uuid.uuid4().hex
        store.create_upload(upload_id, f"fresh{n}/app")
        started.append(upload_id)

    race(stores, start)
    assert len(started) == WRITERS * ROUNDS
    # an upload makes no repository (a refused push must leave none); its first commit does
    assert not any(stores[0].repository_exists(f"fresh{n}/app") for n in range(ROUNDS))
    race(stores, lambda store, n: store.link_blob(
        f"fresh{n}/app", "sha256:" + f"{stores.index(store):02x}" * 32, 7))
    assert all(stores[0].repository_exists(f"fresh{n}/app") for n in range(ROUNDS))


def test_the_same_manifest_pushed_into_several_repositories_at_once(
        stores: list[MetadataStore]) -> None:
    """Each push locks only its own namespace (PostgreSQL), so pushes into repositories of
    different namespaces race for the shared manifest row."""
    layer = "sha256:" + "ef" * 32
    for n in range(ROUNDS):
        for i in range(WRITERS):
            stores[0].link_blob(f"shared{n}-{i}/app", layer, 10)

    race(stores, lambda store, n: store.put_manifest(
        f"shared{n}-{stores.index(store)}/app", manifest_of(layer, n), ["latest"]))
    for n in range(ROUNDS):
        for i in range(WRITERS):
            assert stores[0].tag_digest(f"shared{n}-{i}/app", "latest") == \
                manifest_of(layer, n).digest


def test_different_manifests_sharing_a_layer_pushed_into_one_namespace_at_once(
        stores: list[MetadataStore]) -> None:
    """The namespace counts a shared layer once, whichever push counts it first."""
    layer = "sha256:" + "12" * 32
    for n in range(ROUNDS):
        for i in range(WRITERS):
            stores[0].link_blob(f"team{n}/repo{i}", layer, 1000)

    race(stores, lambda store, n: store.put_manifest(
        f"team{n}/repo{stores.index(store)}",
        manifest_of(layer, n * WRITERS + stores.index(store)), ["v1"]))
    for n in range(ROUNDS):
        with stores[0].engine.connect() as conn:
            used = conn.execute(select(namespaces.c.storage_used)
                                .where(namespaces.c.name == f"team{n}")).scalar_one()
        assert used == 1000


def test_a_namespace_deleted_while_manifests_are_pushed_into_it(
        stores: list[MetadataStore]) -> None:
    """Deleting a namespace and pushing into it take their locks in one order: whichever
    goes first, the other waits, and neither dies of a deadlock (PostgreSQL aborts one of
    two transactions that wait for each other) or of a foreign key to a deleted row. A push
    that comes second finds its layer gone with the namespace and is refused for it."""
    layer = "sha256:" + "34" * 32
    access = AccessStore(stores[-1].engine)
    for n in range(ROUNDS):
        for i in range(WRITERS - 1):
            stores[0].link_blob(f"doomed{n}/repo{i}", layer, 1000)
            stores[0].put_manifest(f"doomed{n}/repo{i}", manifest_of(layer, n * WRITERS + i),
                                   ["old"])

    def act(store: MetadataStore, n: int) -> None:
        i = stores.index(store)
        if i == WRITERS - 1:
            access.delete_namespace(f"doomed{n}")
            return
        try:
            store.put_manifest(f"doomed{n}/repo{i}",
                               manifest_of(layer, (ROUNDS + n) * WRITERS + i), ["new"])
        except MissingReferences:
            pass  # the refusal a client gets once the namespace is gone

    race(stores, act)
    for n in range(ROUNDS):  # whatever survived is counted exactly once
        with stores[0].engine.connect() as conn:
            used = conn.execute(select(namespaces.c.storage_used)
                                .where(namespaces.c.name == f"doomed{n}")).scalar()
        assert used in (None, 1000)


def test_a_repository_deleted_while_layers_are_committed_into_it(
        stores: list[MetadataStore]) -> None:
    """A layer committed just after its repository was deleted recreates the repository,
    as a first push would, instead of failing on the vanished repository's id."""
    digest = "sha256:" + "56" * 32
    for n in range(ROUNDS):
        stores[0].link_blob(f"gone{n}/app", digest, 10)

    def act(store: MetadataStore, n: int) -> None:
        if store is stores[-1]:
            store.delete_repository(f"gone{n}/app")
        else:
            store.link_blob(f"gone{n}/app", f"{digest[:-4]}{stores.index(store):04d}", 10)

    race(stores, act)
    for n in range(ROUNDS):
        for i in range(WRITERS - 1):
            assert stores[0].blob_size_in_repository(
                f"gone{n}/app", f"{digest[:-4]}{i:04d}") in (None, 10)
