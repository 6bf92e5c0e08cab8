"""Helm charts of a namespace (moorage.helm): the charts, a chart's versions with pull
commands for both OCI and the classic chart repository, and one version's values.yaml and
README. The README is Markdown rendered by markdown-it-py with raw HTML turned off (so a
chart's README cannot put markup or script on the page; unsafe link schemes are refused by
markdown-it's own link validation). Installed from app.py on editions with Helm charts; the
namespace page links here.
"""

from __future__ import annotations

from urllib.parse import quote

from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.responses import Response

from moorage.web.console.pages.repositories import registry_host
from moorage.web.console.site import ConsoleSite, Visit

# "commonmark" with html off: raw HTML in the README is shown as text, never rendered
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
MAX_README = 256 * 1024


def render_readme(text: str) -> Markup:
    return Markup(_MARKDOWN.render(text[:MAX_README]))  # noqa: S704 - escaped by markdown-it


async def charts_page(visit: Visit) -> Response:
    name = visit.params["name"]
    answer = await visit.get(f"/api/v1/namespaces/{quote(name, safe='')}/charts")
    if not answer.ok:
        return visit.refused(answer)
    return visit.render("charts.html", title=f"Charts of {name}", namespace=name,
                        charts=answer.data, host=registry_host(visit))


async def chart_page(visit: Visit) -> Response:
    name, chart = visit.params["name"], visit.params["chart"]
    answer = await visit.get(f"/api/v1/namespaces/{quote(name, safe='')}/charts/"
                             f"{quote(chart, safe='')}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.render("charts_versions.html", title=f"Chart {name}/{chart}", namespace=name,
                        chart=chart, versions=answer.data, host=registry_host(visit))


async def version_page(visit: Visit) -> Response:
    name, chart, version = visit.params["name"], visit.params["chart"], visit.params["version"]
    answer = await visit.get(f"/api/v1/namespaces/{quote(name, safe='')}/charts/"
                             f"{quote(chart, safe='')}/{quote(version, safe='')}")
    if not answer.ok:
        return visit.refused(answer)
    return visit.render("charts_version.html", title=f"Chart {name}/{chart} {version}",
                        namespace=name, chart=chart, v=answer.data, host=registry_host(visit),
                        readme=render_readme(answer.data["readme"]))


def install(site: ConsoleSite) -> None:
    site.env.globals["helm_charts"] = True  # the namespace page links to its charts
    site.get("/namespaces/{name}/charts", charts_page)
    site.get("/namespaces/{name}/charts/{chart}", chart_page)
    site.get("/namespaces/{name}/charts/{chart}/{version}", version_page)
