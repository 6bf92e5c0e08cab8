"""The console's pages, one module per area; each has `install(site)`.

Features add their own pages the same way, from `app.py`, when they are switched on.
"""

from moorage.web.console.pages import overview

CORE_PAGES = [overview]

__all__ = ["CORE_PAGES"]
