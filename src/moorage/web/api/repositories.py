"""Repositories and their tags. Repositories come into being with their first push; here
they are listed, described, made public or private, and deleted.

Names contain slashes, so the routes take `{name:path}`. `NAME/tags` is the tag list of NAME
and `NAME/tags/TAG` one of its tags, whatever the method: the repository routes take any
other name (`{name:repository}`), so that a path means one resource only, and a method the
tag routes do not take is a 405 rather than a request about a repository `team/app/tags`.
`NAME/manifests/REFERENCE` is likewise one manifest of NAME, described; `NAME/scans` and
`NAME/manifests/REFERENCE/vulnerabilities|sbom|fixes` are the scanner's (web/api/scans.py).

Listings come a page at a time, cut by the database: `limit` (at most 1000) and `offset`,
with the number of matches in all in `X-Total-Count` and the next page in a `Link` header
(rel="next"), so that the body stays the plain list older callers read.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from moorage.oci.errors import RegistryError
from moorage.oci.names import check_tag
from moorage.policy.immutability import ImmutabilityPolicy
from moorage.registry.browse import ManifestInfo, ReferrerNode, TagInfo
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import (INT32_MAX, HistoryEntry, ImageConfig, Layer,
                                    ManifestChild, ManifestDetails, Platform, Referrer,
                                    Repository, RepositoryUpdate, Tag, TagPlatform, when)

MAX_PAGE = 1000
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="at most this many (1000 at most)")]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="skip this many first")]
Search = Annotated[str, Query(max_length=128, description="only names holding this text, "
                                                          "in any case")]
RepositorySort = Literal["name", "-name", "pushed", "-pushed", "tags", "-tags", "created",
                         "-created"]
TagSort = Literal["name", "-name", "pushed", "-pushed", "pulled", "-pulled"]


class _RepositoryName(Convertor[str]):
    """A repository name in a path, except the forms that address tags and manifests (see
    above)."""

    regex = (r"(?!.+/(?:tags(?:/[^/]+)?|manifests/[^/]+"
             r"(?:/(?:vulnerabilities|sbom|fixes|signatures))?|scans|signatures)$).+")

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("repository", _RepositoryName())

router = APIRouter(prefix="/api/v1/repositories", tags=["repositories"],
                   responses=ERROR_RESPONSES)


def _paged(request: Request, response: Response, total: int, offset: int, limit: int,
           shown: int) -> None:
    """X-Total-Count, and a Link to the next page when there is one."""
    response.headers["X-Total-Count"] = str(total)
    if offset + shown < total and shown:
        following = request.url.include_query_params(offset=offset + shown, limit=limit)
        origin = request.app.state.instance.access.public_url  # empty: a path, see RegistryAPI
        response.headers["Link"] = f'<{origin}{following.path}?{following.query}>; rel="next"'


@router.get("")
def list_repositories(request: Request, response: Response, instance: InstanceDep,
                      principal: User,
                      namespace: str | None = Query(None, description="only this namespace"),
                      q: Search = "", sort: RepositorySort = "name", limit: Limit = MAX_PAGE,
                      offset: Offset = 0) -> list[Repository]:
    """The repositories the caller can see, a page at a time: `sort` by name, last push,
    tag count or creation (`-` first: descending; the name breaks ties)."""
    rows, total = instance.manager.repository_page(principal, namespace, q, sort, limit,
                                                   offset)
    _paged(request, response, total, offset, limit, len(rows))
    return [Repository.of(r) for r in rows]


@router.get("/{name:path}/tags")
def list_tags(name: str, request: Request, response: Response, instance: InstanceDep,
              principal: User, q: Search = "", sort: TagSort = "name", limit: Limit = MAX_PAGE,
              offset: Offset = 0) -> list[Tag]:
    """Each tag with the digest it points at, when it was pushed and last pulled, what its
    manifest is (kind, size, an index's platforms) and whether an immutability rule locks
    it; a page at a time, by name (`pushed`, `pulled`: oldest first; `-` first: newest)."""
    instance.manager.require_repository_action(principal, name, "pull")
    policy = ImmutabilityPolicy(instance.policies)
    rules = policy.rules()

    def protecting(repository: str, tag: str) -> int | None:
        rule = policy.protecting_rule(repository, tag, rules)
        return rule.id if rule is not None else None

    page = instance.registry.browse.tags(name, q, sort, limit, offset, protecting)
    if page is None:  # deleted a moment ago
        raise RegistryError("NAME_UNKNOWN", f"repository {name} does not exist")
    infos, total = page
    _paged(request, response, total, offset, limit, len(infos))
    tags = [tag_model(t) for t in infos]
    if instance.scans is not None:  # scan: each tag's last report, counted by severity
        found = instance.scans.tag_summaries(
            ((t.digest, [p.digest for p in t.platforms]) for t in infos), name)
        for tag in tags:
            tag.vulnerabilities = found.get(tag.digest)
    if instance.signing is not None:  # signing: each tag's stored verification
        results = instance.signing.store.results(name, (t.digest for t in infos))
        for tag in tags:
            row = results.get(tag.digest)
            tag.signature = ("verified" if row.verified else "not verified") \
                if row is not None and row.signatures else "unsigned"
    return tags


@router.get("/{name:path}/manifests/{reference}")
def get_manifest(name: str, reference: str, instance: InstanceDep,
                 principal: User) -> ManifestDetails:
    """One manifest, by tag or digest, as a person reads it: its layers and config (created,
    platform, environment, entrypoint, labels, history), an index's children, and the tree
    of what refers to it. Needs the right to pull the repository. Bounded: a config over
    1 MiB is not read, lists stop at 1000 entries, the referrers tree at 4 levels and 200
    manifests (`truncated`, `referrers_truncated` say when)."""
    instance.manager.require_repository_action(principal, name, "pull")
    registry = instance.registry
    return manifest_model(registry.browse.manifest(name, reference, registry.resolve))


@router.delete("/{name:path}/tags/{tag}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tag(name: str, tag: str, instance: InstanceDep, principal: User) -> None:
    """Removes the tag only; the manifest stays, reachable by digest, until cleaned up.
    Needs the delete permission (maintainer or higher)."""
    # Checked first: Registry.delete_manifest takes a digest too, and would then delete the
    # manifest itself, which is not what a request to remove a tag means.
    check_tag(tag)
    instance.manager.require_repository_action(principal, name, "delete")
    instance.registry.delete_manifest(name, tag)


@router.get("/{name:repository}")
def get_repository(name: str, instance: InstanceDep, principal: User) -> Repository:
    return Repository.of(instance.manager.get_repository(principal, name))


@router.patch("/{name:repository}")
def update_repository(name: str, body: RepositoryUpdate, instance: InstanceDep,
                      principal: User) -> Repository:
    """Only the fields present change. Needs maintainer or higher."""
    return Repository.of(instance.manager.update_repository(principal, name, body.visibility,
                                                            body.description))


@router.delete("/{name:repository}", status_code=status.HTTP_204_NO_CONTENT)
def delete_repository(name: str, instance: InstanceDep, principal: User,
                      force: bool = Query(False, description="delete it even though it holds "
                                                             "immutable tags (administrators "
                                                             "only; the audit log records it)")
                      ) -> None:
    """Removes its tags and manifest links; the bytes go with garbage collection. Refused
    (403 IMMUTABLE) while it holds immutable tags, unless an administrator forces it."""
    instance.manager.require_repository_delete(principal, name, force)
    instance.registry.delete_repository(name, force=force)


def tag_model(t: TagInfo) -> Tag:
    return Tag(name=t.name, digest=t.digest, updated_at=when(t.updated_at),  # type: ignore[arg-type]
               pulled_at=when(t.pulled_at), media_type=t.media_type,
               artifact_type=t.artifact_type, kind=t.kind,  # type: ignore[arg-type]
               size=t.size, immutable=t.immutable, immutable_rule=t.immutable_rule,
               referrer=t.referrer,
               platforms=[TagPlatform(os=p.os, architecture=p.architecture, variant=p.variant,
                                      os_version=p.platform.os_version, digest=p.digest,
                                      size=p.size) for p in t.platforms])


def _referrer(node: ReferrerNode) -> Referrer:
    return Referrer(digest=node.digest, media_type=node.media_type,
                    artifact_type=node.artifact_type, size=node.size,
                    kind=node.kind, tag=node.tag, created=node.created,  # type: ignore[arg-type]
                    annotations=node.annotations,
                    referrers=[_referrer(n) for n in node.referrers])


def manifest_model(m: ManifestInfo) -> ManifestDetails:
    config = None
    if m.config is not None:
        c = m.config
        config = ImageConfig(
            digest=c.digest, media_type=c.media_type, size=c.size, read=c.read, note=c.note,
            created=c.created, author=c.author, architecture=c.architecture, os=c.os,
            variant=c.variant, os_version=c.os_version, user=c.user,
            working_dir=c.working_dir, entrypoint=c.entrypoint, cmd=c.cmd, env=c.env,
            labels=c.labels, exposed_ports=c.exposed_ports, volumes=c.volumes,
            stop_signal=c.stop_signal, truncated=c.truncated,
            history=[HistoryEntry(created=h.created, created_by=h.created_by,
                                  comment=h.comment, empty_layer=h.empty_layer)
                     for h in c.history])
    return ManifestDetails(
        repository=m.repository, digest=m.digest, media_type=m.media_type, size=m.size,
        kind=m.kind, artifact_type=m.artifact_type,  # type: ignore[arg-type]
        pushed_at=when(m.pushed_at), tags=m.tags, annotations=m.annotations,
        subject=m.subject, total_size=m.total_size, config=config,
        layers=[Layer(digest=x.digest, media_type=x.media_type, size=x.size, title=x.title,
                      foreign=x.foreign) for x in m.layers],
        children=[ManifestChild(
            digest=c.digest, media_type=c.media_type, size=c.size,
            platform=(Platform(os=c.platform.os, architecture=c.platform.architecture,
                               variant=c.platform.variant, os_version=c.platform.os_version)
                      if c.platform else None),
            image_size=c.image_size, attestation=c.attestation) for c in m.children],
        indexes=m.indexes, referrers=[_referrer(n) for n in m.referrers],
        referrers_truncated=m.referrers_truncated, truncated=m.truncated)
