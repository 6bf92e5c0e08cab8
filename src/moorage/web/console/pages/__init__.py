"""The console's pages, one module per area; each has `install(site)`.

Features add their own pages the same way, from `app.py`, when they are switched on.
"""

from moorage.web.console.pages import (admin, audit, jobs, namespaces, overview, repositories,
                                       rules, webhooks)

CORE_PAGES = [overview, namespaces, repositories, rules, jobs, webhooks, audit, admin]

__all__ = ["CORE_PAGES"]
