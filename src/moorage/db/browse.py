"""Reads for looking around a repository (the management API's tag pages and manifest
details): a page of tags with what their manifests are, manifests by digest, who refers to
what. Each is a few indexed queries, whatever the size of the repository: pages are cut by
the database (LIMIT/OFFSET on the tags' own indexes), never from a full list in Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, select

from moorage.db.metadata import Referrer
from moorage.db.schema import (manifest_references, manifests, repositories,
                               repository_manifests, tags)

# What a tag listing may be sorted by (`-` first: descending); the name breaks ties.
TAG_SORTS = ("name", "pushed", "pulled")
MAX_IN = 500  # digests per IN (...) list


@dataclass(frozen=True, slots=True)
class TagRow:
    name: str
    digest: str
    updated_at: float
    pulled_at: float | None
    media_type: str | None  # None: its manifest is gone (a moment ago)
    size: int | None  # of the manifest itself
    artifact_type: str | None
    subject: str | None


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    media_type: str
    size: int
    content: bytes
    artifact_type: str | None
    subject: str | None
    pushed_at: float | None  # into the repository asked about


class BrowseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def tag_page(self, repository: str, search: str = "", sort: str = "name",
                 limit: int = 100, offset: int = 0) -> tuple[list[TagRow], int] | None:
        """A page of the repository's tags and how many match in all; None when the
        repository does not exist. `search`: part of the tag, any case."""
        with self.engine.connect() as conn:
            repo_id = conn.execute(select(repositories.c.id)
                                   .where(repositories.c.name == repository)).scalar()
            if repo_id is None:
                return None
            conditions = [tags.c.repository_id == repo_id]
            if search:
                conditions.append(func.lower(tags.c.name).contains(search.lower(),
                                                                   autoescape=True))
            descending = sort.startswith("-")
            key = sort.lstrip("-")
            if key == "name":
                order = [func.lower(tags.c.name), tags.c.name]
            elif key == "pushed":
                order = [tags.c.updated_at]
            else:
                order = [func.coalesce(tags.c.pulled_at, 0)]
            ordering = [o.desc() if descending else o.asc() for o in order]
            if key != "name":
                ordering.append(tags.c.name.asc())
            # The page first, on the tags' indexes alone; then its manifests by key.
            page = conn.execute(
                select(tags.c.name, tags.c.digest, tags.c.updated_at, tags.c.pulled_at)
                .where(*conditions).order_by(*ordering).limit(limit).offset(offset)).all()
            total = conn.execute(select(func.count()).select_from(tags)
                                 .where(*conditions)).scalar_one()
            wanted = sorted({r[1] for r in page})
            found = {r[0]: tuple(r[1:]) for r in conn.execute(
                select(manifests.c.digest, manifests.c.media_type, manifests.c.size,
                       manifests.c.artifact_type, manifests.c.subject)
                .where(manifests.c.digest.in_(wanted)))} if wanted else {}
        rows = [TagRow(name, digest, updated, pulled, *found.get(digest, (None,) * 4))
                for name, digest, updated, pulled in page]
        return rows, total

    def contents(self, digests: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """(media type, bytes) of the manifests stored under these digests."""
        wanted = sorted(set(digests))
        found: dict[str, tuple[str, bytes]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), MAX_IN):
                part = wanted[start:start + MAX_IN]
                for digest, media_type, content in conn.execute(
                        select(manifests.c.digest, manifests.c.media_type, manifests.c.content)
                        .where(manifests.c.digest.in_(part))):
                    found[digest] = (media_type, bytes(content))
        return found

    def manifest(self, repository: str, digest: str) -> ManifestRow | None:
        """The manifest if this repository holds it, with when it was pushed there."""
        query = (select(manifests.c.digest, manifests.c.media_type, manifests.c.size,
                        manifests.c.content, manifests.c.artifact_type, manifests.c.subject,
                        repository_manifests.c.pushed_at)
                 .select_from(manifests.join(repository_manifests).join(repositories))
                 .where(repositories.c.name == repository, manifests.c.digest == digest))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return ManifestRow(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6])

    def tags_of(self, repository: str, digest: str, limit: int) -> list[str]:
        """Tags of the repository that point at the digest (by name, at most `limit`)."""
        query = (select(tags.c.name).select_from(tags.join(repositories))
                 .where(repositories.c.name == repository, tags.c.digest == digest)
                 .order_by(tags.c.name).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def indexes_holding(self, repository: str, digest: str, limit: int) -> list[str]:
        """Indexes of the repository that list the manifest as one of theirs."""
        query = (select(manifest_references.c.manifest_digest)
                 .select_from(manifest_references.join(
                     repository_manifests,
                     repository_manifests.c.digest == manifest_references.c.manifest_digest)
                     .join(repositories))
                 .where(repositories.c.name == repository,
                        manifest_references.c.target_digest == digest,
                        manifest_references.c.kind == "manifest")
                 .order_by(manifest_references.c.manifest_digest).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def referrers(self, repository: str, subjects: Iterable[str],
                  limit: int) -> dict[str, list[Referrer]]:
        """The referrers of each subject in the repository (at most `limit` in all), by
        subject; in one query per MAX_IN subjects."""
        wanted = sorted(set(subjects))
        found: dict[str, list[Referrer]] = {}
        count = 0
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), MAX_IN):
                query = (select(manifests.c.subject, manifests.c.digest, manifests.c.media_type,
                                manifests.c.size, manifests.c.artifact_type,
                                manifests.c.annotations)
                         .select_from(manifests.join(repository_manifests).join(repositories))
                         .where(and_(repositories.c.name == repository,
                                     manifests.c.subject.in_(wanted[start:start + MAX_IN])))
                         .order_by(manifests.c.subject, manifests.c.digest)
                         .limit(limit - count))
                for subject, *rest in conn.execute(query):
                    annotations = json.loads(rest[4]) if rest[4] else None
                    found.setdefault(subject, []).append(
                        Referrer(rest[0], rest[1], rest[2], rest[3], annotations))
                    count += 1
                if count >= limit:
                    break
        return found

    def tag_digests(self, repository: str, names: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(names))
        if not wanted:
            return {}
        query = (select(tags.c.name, tags.c.digest).select_from(tags.join(repositories))
                 .where(repositories.c.name == repository, tags.c.name.in_(wanted)))
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(query)}


__all__ = ["BrowseStore", "ManifestRow", "TagRow", "TAG_SORTS"]
