"""The web console, served by the same app at `/` (site.py); its pages live in `pages/`."""

from moorage.web.console.site import ConsoleSite, Visit

__all__ = ["ConsoleSite", "Visit"]
