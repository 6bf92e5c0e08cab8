"""Repositories and their tags. Repositories come into being with their first push; here
they are listed, described, made public or private, and deleted.

Names contain slashes, so the routes take `{name:path}`. `NAME/tags` is the tag list of NAME
and `NAME/tags/TAG` one of its tags, whatever the method: the repository routes take any
other name (`{name:repository}`), so that a path means one resource only, and a method the
tag routes do not take is a 405 rather than a request about a repository `team/app/tags`.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from starlette.convertors import Convertor, register_url_convertor

from moorage.oci.errors import RegistryError
from moorage.oci.names import check_tag
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import Repository, RepositoryUpdate, Tag, when


class _RepositoryName(Convertor[str]):
    """A repository name in a path, except the forms that address tags (see above)."""

    regex = r"(?!.+/tags(?:/[^/]+)?$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("repository", _RepositoryName())

router = APIRouter(prefix="/api/v1/repositories", tags=["repositories"],
                   responses=ERROR_RESPONSES)


@router.get("")
def list_repositories(instance: InstanceDep, principal: User,
                      namespace: str | None = Query(None, description="only this namespace")
                      ) -> list[Repository]:
    """The repositories the caller can see."""
    return [Repository.of(r) for r in instance.manager.list_repositories(principal, namespace)]


@router.get("/{name:path}/tags")
def list_tags(name: str, instance: InstanceDep, principal: User) -> list[Tag]:
    """Each tag with the digest it points at and when it last moved."""
    instance.manager.get_repository(principal, name)
    records = instance.registry.db.tag_records(name)
    if records is None:  # deleted a moment ago
        raise RegistryError("NAME_UNKNOWN", f"repository {name} does not exist")
    return [Tag(name=t, digest=d, updated_at=when(u)) for t, d, u in records]  # type: ignore[arg-type]


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
