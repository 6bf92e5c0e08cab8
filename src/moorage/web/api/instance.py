"""The instance as a whole: version, edition, features and quotas with their usage."""

from __future__ import annotations

from fastapi import APIRouter

from moorage import __version__
from moorage.web.api.deps import Caller, InstanceDep
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import InstanceInfo, QuotaUsage, ScanningInfo, SignInMethod

router = APIRouter(prefix="/api/v1", tags=["instance"], responses=ERROR_RESPONSES)


# Credentials are optional here: `{}` among the requirements says so in the OpenAPI document.
@router.get("/info", openapi_extra={"security": [{}]})
def info(instance: InstanceDep, _: Caller) -> InstanceInfo:
    """Open to anonymous callers: a client needs the edition before it logs in, to know which
    commands the instance supports. Network allowlists still apply."""
    usage = instance.manager.usage()
    if instance.subscriptions is not None:  # replication: artifact subscriptions in use
        usage["artifact_subscriptions"] = instance.subscriptions.store.count()
    if instance.helm is not None:  # helm: namespaces with charts, chart repositories
        usage["helm_namespaces"], usage["helm_repositories"] = instance.helm.store.counts()
    oidc = instance.oidc
    single_sign_on = [SignInMethod(kind="oidc", display_name=oidc.display_name,
                                   url=oidc.start_path)] if oidc is not None else []
    return InstanceInfo(
        version=__version__, edition=instance.edition.name,  # type: ignore[arg-type]
        auth=instance.settings.auth,  # type: ignore[arg-type]
        features=instance.edition.features(),
        quotas={name: QuotaUsage(limit=limit, used=usage.get(name))
                for name, limit in instance.edition.quotas().items()},
        sign_in=[s for s in ("local", "ldap", "oidc")  # type: ignore[misc]
                 if s in instance.manager.sources],
        single_sign_on=single_sign_on,
        scanning=ScanningInfo(**instance.scans.engines_info())
        if instance.scans is not None else None,
    )
