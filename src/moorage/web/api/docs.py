"""The API reference page (Swagger UI) at /api/v1/docs, with every asset served by Moorage
itself (`/static/apidocs/…`, from the `fastapi-offline` package): it renders on a network
without internet, where a CDN's scripts would leave it blank."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

DOCS_URL = "/api/v1/docs"
ASSETS = "/static/apidocs"


def install_docs_page(api: FastAPI) -> None:
    @api.get(DOCS_URL, include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=api.openapi_url or "", title=api.title,
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png")

    api.state.docs_url = DOCS_URL
