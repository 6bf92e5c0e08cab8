"""`moorage chart …`: the Helm charts of a namespace, their versions, and deletion.

Charts come from `helm push oci://HOST/NAMESPACE` or the chart repository at
HOST/chartrepo/NAMESPACE (`helm repo add`, `POST /api/charts`); this reads them through
/api/v1/namespaces/NAMESPACE/charts.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, confirm, details, print_json, say, table, when
from moorage.units import human_size

app = typer.Typer(help="Helm charts (OCI charts and chart repositories, one storage).",
                  no_args_is_help=True)


def _split(text: str) -> tuple[str, str, str | None]:
    """NAMESPACE/CHART or NAMESPACE/CHART:VERSION."""
    path, _, version = text.partition(":")
    namespace, _, chart = path.partition("/")
    if not namespace or not chart or "/" in chart:
        raise typer.BadParameter(f"{text!r}: expected NAMESPACE/CHART or NAMESPACE/CHART:VERSION")
    return namespace, chart, version or None


def _base(namespace: str, chart: str | None = None) -> str:
    path = f"/namespaces/{segment(namespace)}/charts"
    return f"{path}/{segment(chart)}" if chart else path


@app.command("list")
def list_(namespace: Annotated[str, typer.Argument(help="The namespace.")],
          json_out: JsonFlag = False) -> None:
    """List the charts of a namespace, each with its newest version."""
    with connect() as api:
        found = api.get(_base(namespace))
    if json_out:
        print_json(found)
        return
    table(["CHART", "LATEST", "APP VERSION", "VERSIONS", "DESCRIPTION", "UPDATED"],
          [(c["name"], c["latest_version"], c["app_version"] or "-", c["versions"],
            c["description"], when(c["updated_at"])) for c in found],
          empty=f"no charts in {namespace}")


def show_version(v: dict[str, Any]) -> None:
    details([("chart", v["name"]), ("version", v["version"]),
             ("app version", v["app_version"] or None), ("api version", v["api_version"]),
             ("description", v["description"] or None),
             ("keywords", ", ".join(v["keywords"]) or None), ("icon", v["icon"] or None),
             ("created", when(v["created"])), ("digest", v["digest"]),
             ("size", human_size(v["size"])), ("provenance", "yes" if v["provenance"] else "no"),
             ("oci", f"{v['repository']}:{v['tag']}")])
    if v.get("maintainers"):
        say("")
        table(["MAINTAINER", "EMAIL"], [(m.get("name", ""), m.get("email", ""))
                                        for m in v["maintainers"]])
    if v.get("dependencies"):
        say("")
        table(["DEPENDENCY", "VERSION", "REPOSITORY"],
              [(d.get("name", ""), d.get("version", ""), d.get("repository", ""))
               for d in v["dependencies"]])


@app.command("show")
def show(chart: Annotated[str, typer.Argument(
             help="NAMESPACE/CHART for its versions, NAMESPACE/CHART:VERSION for one "
                  "(VERSION may be 'latest').")],
         values: Annotated[bool, typer.Option("--values",
                                              help="Print the version's values.yaml.")] = False,
         json_out: JsonFlag = False) -> None:
    """Show a chart's versions, or one version's metadata (and its values.yaml)."""
    namespace, name, version = _split(chart)
    with connect() as api:
        found = api.get(f"{_base(namespace, name)}/{segment(version)}" if version
                        else _base(namespace, name))
    if json_out:
        print_json(found)
    elif version is None:
        table(["VERSION", "APP VERSION", "CREATED", "DIGEST", "PROV"],
              [(v["version"], v["app_version"] or "-", when(v["created"]), v["digest"],
                "yes" if v["provenance"] else "no") for v in found])
    elif values:
        say(found["values"].rstrip("\n") or "# (no values.yaml)")
    else:
        show_version(found)


@app.command("delete")
def delete(chart: Annotated[str, typer.Argument(help="NAMESPACE/CHART:VERSION")],
           yes: Annotated[bool, typer.Option("--yes", "-y",
                                             help="Do not ask for confirmation.")] = False,
           json_out: JsonFlag = False) -> None:
    """Delete one chart version (its OCI manifest and its .prov file)."""
    namespace, name, version = _split(chart)
    if version is None:
        raise typer.BadParameter("name the version to delete: NAMESPACE/CHART:VERSION")
    confirm(f"Delete chart {namespace}/{name} version {version}?", yes)
    with connect() as api:
        api.delete(f"{_base(namespace, name)}/{segment(version)}")
    if json_out:
        print_json({"deleted": True, "namespace": namespace, "chart": name, "version": version})
    else:
        say(f"deleted {namespace}/{name}:{version}")
