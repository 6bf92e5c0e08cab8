"""The management API under /api/v1 (FastAPI): namespaces, repositories, accounts, rules.

Handlers are thin: they authenticate the caller (deps.py), call AccessManager and shape the
answer with the models in models.py. One module per resource.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from moorage import __version__
from moorage.web.api.parts import ApiParts
from moorage.web.api import instance as instance_routes
from moorage.web.api import namespaces, network, repositories, sso, tokens, users
from moorage.web.api import gc, jobs, policies
from moorage.web.api import webhooks
from moorage.web.api import audit  # audit
from moorage.web.api import maintenance
from moorage.web.api import domains
from moorage.web.api import advisories  # scan: the advisory database
from moorage.web.api import cve_allowlist  # scan: accepted advisories per namespace
from moorage.web.api import scanners  # scan: Harbor scanner adapters
from moorage.web.api import scans  # scan: requests, reports, SBOMs
from moorage.web.api import signing  # signing: keys, signatures, verification
from moorage.web.api import pull_policies  # blocking: pull policies per namespace
from moorage.web.api import replication  # replication: rules, executions, reports
from moorage.web.api import proxy  # replication: proxy cache namespaces
from moorage.web.api import subscriptions  # replication: artifact subscriptions
from moorage.web.api import imports  # replication: imports from other registries
from moorage.web.api import charts  # helm: charts of a namespace
from moorage.web.api.maintenance import refuse_changes_when_read_only
from moorage.web.api.changes import AnnounceChanges, announce_caller
from moorage.web.api.deps import one_value_each
from moorage.web.api.errors import install_handlers
from moorage.web.api.guard import RequestGuard
from moorage.web.api.docs import install_docs_page

TAGS = [
    {"name": "instance", "description": "version, edition, features, quotas"},
    {"name": "namespaces", "description": "namespaces: visibility, description, "
                                          "credential-free pull"},
    {"name": "members", "description": "roles held in a namespace"},
    {"name": "robots", "description": "robot accounts of a namespace (for CI)"},
    {"name": "repositories", "description": "repositories and their tags"},
    {"name": "users", "description": "user accounts, and who the caller is"},
    {"name": "tokens", "description": "personal access tokens"},
    {"name": "network rules", "description": "CIDR allowlists and trusted networks"},
    {"name": "jobs", "description": "background jobs: garbage collection, retention runs, …"},
    {"name": "immutability", "description": "tags that can be neither moved nor deleted"},
    {"name": "retention", "description": "tag cleanup rules, dry runs and runs"},
    {"name": "webhooks", "description": "event notifications: subscriptions, deliveries, pings"},
    {"name": "audit", "description": "the tamper-evident audit log (administrators)"},
    {"name": "maintenance", "description": "read-only mode for upgrades and storage moves"},
    {"name": "domains", "description": "custom domain names: a certificate per hostname, "
                                       "chosen by SNI"},
    {"name": "single sign-on", "description": "roles in namespaces from directory groups "
                                              "(LDAP, OpenID Connect)"},
    {"name": "scans", "description": "vulnerability scans of images: requests, reports "
                                     "(JSON, CSV), SBOMs, scan on push"},
    {"name": "advisories", "description": "the vulnerability advisory database (read-only; "
                                          "imported with `moorage advisories import`)"},
    {"name": "cve allowlist", "description": "advisories a namespace accepts, with a reason "
                                             "and an optional expiry"},
    {"name": "signing", "description": "image signing (cosign's formats): trusted keys and "
                                       "keyless identities, signatures, verification"},
    {"name": "pull policy", "description": "threat blocking: the images a namespace refuses "
                                           "to serve (severity, unscanned, unsigned)"},
    {"name": "replication", "description": "replication rules to and from other registries, "
                                           "their executions and reports (administrators)"},
    {"name": "subscriptions", "description": "artifact subscriptions: follow an upstream "
                                             "repository's tags into a local repository "
                                             "(administrators)"},
    {"name": "proxy caches", "description": "namespaces that pull through from an upstream "
                                            "registry (administrators)"},
    {"name": "imports", "description": "imports of another registry's repositories, "
                                       "server-side and resumable (administrators)"},
    {"name": "charts", "description": "Helm charts of a namespace: versions, values, README "
                                      "(the chart repository API is at /chartrepo/NAMESPACE)"},
    {"name": "scanners", "description": "Harbor scanner adapters (Trivy's, ...) used as scan "
                                        "engines (administrators)"},
]


def create_management_api(instance: ApiParts) -> FastAPI:
    api = FastAPI(title="Moorage management API", version=__version__,
                  description="Manage a Moorage registry: namespaces, members, robots, "
                              "repositories, users, access tokens and network rules. "
                              "Errors are always {\"error\": {\"code\", \"message\"}}.",
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None,
                  openapi_tags=TAGS,
                  # who is behind each request, for the event bus (changes.py); then
                  # query parameters given twice are refused
                  dependencies=[Depends(announce_caller), Depends(one_value_each),
                                Depends(refuse_changes_when_read_only)])
    api.state.instance = instance
    # The guard sits inside AnnounceChanges, so that what it refuses is announced too.
    api.add_middleware(RequestGuard, instance=instance)  # caller first, bodies bounded
    api.add_middleware(AnnounceChanges, instance=instance)  # management changes → event bus
    install_handlers(api)
    install_docs_page(api)
    # scan routes first: the repository routes' `{name:repository}` would take their paths
    api.include_router(scans.router)
    api.include_router(signing.router)
    for module in (instance_routes, namespaces, repositories, users, tokens, network, sso):
        api.include_router(module.router)
    # lifecycle
    for module in (jobs, gc, policies):
        api.include_router(module.router)
    api.include_router(webhooks.router)  # feature: event notifications
    api.include_router(audit.router)  # audit
    api.include_router(maintenance.router)  # operations: read-only mode
    api.include_router(domains.router)  # feature: custom domain names
    api.include_router(advisories.router)  # scan: the advisory database
    api.include_router(cve_allowlist.router)  # scan: accepted advisories per namespace
    api.include_router(pull_policies.router)  # blocking: pull policies per namespace
    api.include_router(replication.router)  # replication: rules, executions, reports
    api.include_router(proxy.router)  # replication: proxy cache namespaces
    api.include_router(subscriptions.router)  # replication: artifact subscriptions
    api.include_router(imports.router)  # replication: imports from other registries
    api.include_router(charts.router)  # helm: charts of a namespace
    scanners.install(api, instance)  # scan: Harbor scanner adapters (the `scanning` switch)
    return api


__all__ = ["create_management_api"]
