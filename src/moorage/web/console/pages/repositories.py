"""Console pages: repositories (being built)."""

from __future__ import annotations

from moorage.web.console.site import ConsoleSite


def install(site: ConsoleSite) -> None:
    """Adds this area's routes and navigation entry."""
