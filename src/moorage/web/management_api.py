"""The management API under /api/v1; it lives in the `moorage.web.api` package, one module
per resource. This name stays because app.py mounts it from here."""

from moorage.web.api import create_management_api

__all__ = ["create_management_api"]
