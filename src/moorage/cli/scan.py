"""`moorage scan`, `moorage vulns`, `moorage sbom`, `moorage fixes`, `moorage scan-on-push`:
vulnerability scans through the API (scan/service.py runs them on the server's workers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import ApiClient, connect, repo_path, segment
from moorage.cli.output import (CliError, JsonFlag, details, print_json, raw, say, table,
                                usage)
from moorage.scan.model import LEVELS
ImageArg = Annotated[str, typer.Argument(metavar="REPO:TAG|REPO@DIGEST",
                                         help="The image: team/app:1.0 or team/app@sha256:…")]


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag or digest); a name without either means its `latest` tag."""
    if "@" in image:
        name, _, digest = image.partition("@")
        if not name or not digest:
            raise usage(f"expected REPO@DIGEST, got {image!r}")
        return name, digest
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, "latest"
    if not name or not tag:
        raise usage(f"expected REPO:TAG, got {image!r}")
    return name, tag


def _manifest_path(name: str, reference: str) -> str:
    return f"/repositories/{repo_path(name)}/manifests/{segment(reference)}"


def scan(image: ImageArg,
         wait: Annotated[bool, typer.Option("--wait", help="Wait for the scan to finish, "
                                                           "with its progress")] = False,
         timeout: Annotated[float, typer.Option(min=1, help="Longest wait, in seconds")] = 3600,
         json_out: JsonFlag = False) -> None:
    """Scan an image for vulnerabilities (an index: each platform)."""
    from moorage.cli.jobs import follow

    name, reference = split_image(image)
    with connect() as api:
        queued = api.post(f"/repositories/{repo_path(name)}/scans", {"reference": reference})
        if not wait:
            if json_out:
                print_json(queued)
            else:
                say(f"Scan of {image} queued as job {queued['job_id']} "
                    f"(moorage jobs show {queued['job_id']}).")
            return
        job = follow(api, {"id": queued["job_id"], "type": "scan.image", "status": "queued"},
                     quiet=json_out or not sys.stderr.isatty(), timeout=timeout)
        if job["status"] not in ("succeeded", "failed"):
            raise CliError(f"the scan (job {job['id']}) has not finished after {timeout:g}s")
        if job["status"] == "failed":
            raise CliError(f"the scan (job {job['id']}) failed: {job.get('last_error')}")
        report = api.get(_manifest_path(name, reference) + "/vulnerabilities")
    if json_out:
        print_json(report)
        return
    _summary(image, report)


def _summary(image: str, report: dict[str, Any]) -> None:
    s = report["summary"]
    say(f"{image} ({report['digest']}): {report['status']}; " +
        ", ".join(f"{s[level]} {level}" for level in LEVELS))
    for img in report["images"]:
        for problem in img.get("problems") or []:
            say(f"problem{' (' + img['platform'] + ')' if img['platform'] else ''}: {problem}")


def vulns(image: ImageArg,
          severity: Annotated[Optional[str], typer.Option(
              help="Only this level and worse: critical, high, medium, low, unknown")] = None,
          fixable: Annotated[bool, typer.Option("--fixable", help="Only findings with a "
                                                                  "fix")] = False,
          csv_out: Annotated[bool, typer.Option("--csv", help="CSV, for spreadsheets")] = False,
          json_out: JsonFlag = False) -> None:
    """An image's last vulnerability report."""
    if severity is not None and severity not in LEVELS:
        raise usage(f"--severity must be one of {', '.join(LEVELS)}, not {severity!r}")
    if csv_out and json_out:
        raise usage("--csv and --json: choose one")
    name, reference = split_image(image)
    params: dict[str, Any] = {"severity": severity, "fixable": "true" if fixable else None}
    with connect() as api:
        if csv_out:
            raw(_text(api, _manifest_path(name, reference) + "/vulnerabilities",
                      {**params, "format": "csv"}).rstrip("\n"))
            return
        report = api.get(_manifest_path(name, reference) + "/vulnerabilities", **params)
    if json_out:
        print_json(report)
        return
    table(["ID", "SEVERITY", "SCORE", "PACKAGE", "INSTALLED", "FIXED IN", "PLATFORM"],
          [(f["id"], f["severity"]["level"] + (" (accepted)" if f.get("accepted") else ""),
            "-" if f["severity"].get("score") is None else f["severity"]["score"],
            f["package"]["name"], f["package"]["version"],
            ", ".join(f["fixed_versions"]) or "-", f.get("platform") or "-")
           for f in report["findings"]],
          empty="no vulnerabilities found" if report["status"] == "done"
          else f"no report yet ({report['status']})")
    _summary(image, report)


def _text(api: ApiClient, path: str, params: dict[str, Any]) -> str:
    """A non-JSON answer (CSV, an SBOM) as text; errors as the API words them."""
    resp = api.http.get(path, params={k: v for k, v in params.items() if v is not None})
    if not resp.is_success:
        api.request("GET", path, params={k: v for k, v in params.items() if v is not None})
        raise CliError(f"GET {path} failed: HTTP {resp.status_code}")
    return resp.text


def sbom(image: ImageArg,
         format: Annotated[str, typer.Option("--format", help="cyclonedx or spdx")] = "cyclonedx",
         platform: Annotated[Optional[str], typer.Option(help="An index's platform, e.g. "
                                                              "linux/amd64")] = None,
         output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                        help="Write it to this file")] = None
         ) -> None:
    """The SBOM of a scanned image (CycloneDX or SPDX JSON), from its stored inventory."""
    if format not in ("cyclonedx", "spdx"):
        raise usage(f"--format must be cyclonedx or spdx, not {format!r}")
    name, reference = split_image(image)
    with connect() as api:
        text = _text(api, _manifest_path(name, reference) + "/sbom",
                     {"format": format, "platform": platform})
    if output is None:
        raw(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    say(f"Wrote the {format} SBOM of {image} to {output}.")


def fixes(image: ImageArg, json_out: JsonFlag = False) -> None:
    """The fix plan of a scanned image: the least upgrades that clear its fixable findings,
    and the commands to run (an index: one plan per platform)."""
    name, reference = split_image(image)
    with connect() as api:
        if not json_out:
            raw(_text(api, _manifest_path(name, reference) + "/fixes",
                      {"format": "text"}).rstrip("\n"))
            return
        print_json(api.get(_manifest_path(name, reference) + "/fixes"))


def scan_on_push(namespace: Annotated[str, typer.Argument(help="The namespace")],
                 state: Annotated[Optional[str], typer.Argument(
                     metavar="[on|off]", help="Turn it on or off; without it, show it")] = None,
                 json_out: JsonFlag = False) -> None:
    """Whether pushes of tags to a namespace are scanned (on by default)."""
    if state not in (None, "on", "off"):
        raise usage(f"expected on or off, not {state!r}")
    path = f"/namespaces/{segment(namespace)}/scan-settings"
    with connect() as api:
        found = api.get(path) if state is None else api.put(path, {"scan_on_push":
                                                                   state == "on"})
    if json_out:
        print_json(found)
    else:
        details([("namespace", found["namespace"]),
                 ("scan on push", "on" if found["scan_on_push"] else "off")])


def install(app: typer.Typer) -> None:
    app.command("scan")(scan)
    app.command("vulns")(vulns)
    app.command("sbom")(sbom)
    app.command("fixes")(fixes)
    app.command("scan-on-push")(scan_on_push)
