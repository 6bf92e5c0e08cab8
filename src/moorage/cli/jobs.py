"""`moorage jobs …` and `moorage gc`: background jobs, followed with a progress display."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import ApiClient, connect
from moorage.cli.output import CliError, JsonFlag, details, print_json, say, table, when

app = typer.Typer(help="Background jobs: garbage collection, retention runs, webhooks, …",
                  no_args_is_help=True)

FINISHED = ("succeeded", "failed")


def follow(api: ApiClient, job: dict[str, Any], quiet: bool, timeout: float = 6 * 3600) -> dict[str, Any]:
    """Poll a job until it ends, showing its progress and new log lines as they come."""
    from rich.progress import Progress, SpinnerColumn, TextColumn  # only when following

    shown = 0
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True,
                  disable=quiet) as bar:
        task = bar.add_task(f"job {job['id']} ({job['type']}) {job['status']}")
        while job["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.3)
            job = api.get(f"/jobs/{job['id']}")
            lines = (job.get("log") or "").splitlines()
            for line in lines[shown:]:
                if not quiet:
                    bar.console.print(line, highlight=False, markup=False)
            shown = len(lines)
            progress = job.get("progress") or {}
            done = f" {progress.get('message', '')} {progress.get('done', '')}" if progress else ""
            bar.update(task, description=f"job {job['id']} ({job['type']}) {job['status']}{done}")
    return job


def finish(job: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(job)
    else:
        result = job.get("result") or {}
        summary = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
        say(f"Job {job['id']} ({job['type']}) {job['status']}: "
            f"{json.dumps(summary) if summary else job.get('last_error') or ''}")
    if job["status"] == "failed":
        raise CliError(f"job {job['id']} failed: {job.get('last_error')}")


@app.command("list")
def list_(status: Annotated[Optional[str], typer.Option(help="queued, running, succeeded or failed")] = None,
          type_: Annotated[Optional[str], typer.Option("--type", help="e.g. gc, retention")] = None,
          limit: int = 50, json_out: JsonFlag = False) -> None:
    """List recent jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if type_:
        params["type"] = type_
    with connect() as api:
        found = api.get("/jobs", **params)
    if json_out:
        print_json(found)
        return
    table(["ID", "TYPE", "STATUS", "ATTEMPTS", "CREATED", "FINISHED", "ERROR"],
          [(j["id"], j["type"], j["status"], f"{j['attempts']}/{j['max_attempts']}",
            when(j["created_at"]), when(j["finished_at"]), j["last_error"] or "")
           for j in found], empty="no jobs")


@app.command("types")
def types(json_out: JsonFlag = False) -> None:
    """The job types this instance runs (what `jobs list --type` takes)."""
    with connect() as api:
        found = api.get("/jobs/types")
    if json_out:
        print_json(found)
        return
    table(["TYPE"], [(name,) for name in found], empty="no job types")


@app.command("show")
def show(job_id: Annotated[int, typer.Argument(metavar="ID")], json_out: JsonFlag = False) -> None:
    """One job: status, progress, result and log."""
    with connect() as api:
        job = api.get(f"/jobs/{job_id}")
    if json_out:
        print_json(job)
        return
    details([("id", job["id"]), ("type", job["type"]), ("status", job["status"]),
             ("attempts", f"{job['attempts']}/{job['max_attempts']}"),
             ("progress", json.dumps(job["progress"]) if job["progress"] else "-"),
             ("result", json.dumps(job["result"]) if job["result"] else "-"),
             ("error", job["last_error"] or "-"), ("created", when(job["created_at"])),
             ("finished", when(job["finished_at"]))])
    if job.get("log"):
        say(job["log"].rstrip())


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go, delete nothing.")] = False,
    grace: Annotated[Optional[str], typer.Option(help="Spare blobs younger than this, e.g. 1h.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    json_out: JsonFlag = False,
) -> None:
    """Collect garbage now: blobs and manifests nothing references any more."""
    body: dict[str, Any] = {"dry_run": dry_run}
    if grace:
        body["grace"] = grace
    with connect() as api:
        job = api.post("/gc", body)
        if wait:
            job = follow(api, job, quiet=json_out)
    if not wait:
        print_json(job) if json_out else say(f"Queued job {job['id']}.")
        return
    if not json_out and job["status"] == "succeeded":
        _gc_table(job.get("result") or {})
    finish(job, json_out)


def _gc_table(result: dict[str, Any]) -> None:
    """Each manifest, repository link and blob the run removed (or would remove)."""
    from moorage.units import human_size

    rows = [("manifest", "-", d, "-") for d in result.get("manifests", [])]
    rows += [("link", link["repository"], link["digest"], "-") for link in result.get("links", [])]
    rows += [("blob", "-", b["digest"], human_size(b["size"])) for b in result.get("blob_sizes", [])]
    verb = "WOULD DELETE" if result.get("dry_run") else "DELETED"
    table([verb, "REPOSITORY", "DIGEST", "SIZE"], rows, empty="nothing to collect")
    listed = len(result.get("blob_sizes", []))
    if listed < result.get("blobs_deleted", 0):
        say(f"(the first {listed} of {result['blobs_deleted']} blobs; --json for the result)")
    unnamed = int(result.get("unnamed_data_deleted") or 0)
    if unnamed:  # S3: bytes of uploads whose blob pointer was never written or was replaced
        say(f"{verb.capitalize()} {unnamed} data object(s) no blob names "
            f"({human_size(int(result.get('unnamed_bytes_freed') or 0))}).")
