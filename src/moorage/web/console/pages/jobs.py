"""Jobs: the list of background jobs (filtered by type and status, paged), a job's page with
its progress, result and log updating live, and garbage collection (a dry run first, then
the real run from the dry run's page).

The job API is for administrators (a retention run is also readable by whoever manages the
rule's namespace: the rules pages show those), so the "Jobs" entry is an administrator's.
Starting GC is the API's decision too: a forged post from anyone else is refused there.

Live updates: the job page holds a fragment that asks for itself every second (htmx
`hx-trigger="every 1s"`, swapped as a whole); once the job has finished, the fragment comes
back without the trigger and the polling stops. No page reload, no script of our own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from moorage.web.console.pages.rules import retention_decisions
from moorage.web.console.site import ConsoleSite, Visit

PAGE = 50
FINISHED = ("succeeded", "failed")
STATUSES = ("queued", "running", "succeeded", "failed")


def is_fragment(visit: Visit) -> bool:
    return visit.request.headers.get("hx-request") == "true"


def progress_of(job: dict[str, Any]) -> dict[str, Any] | None:
    """A job's progress as the templates draw it: done, total, a percentage when the total
    is known, and the handler's words."""
    progress = job.get("progress")
    if not isinstance(progress, dict):
        return None
    done, total = progress.get("done"), progress.get("total")
    percent = None
    if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
        percent = max(0, min(100, round(100 * done / total)))
    elif job.get("status") == "succeeded":
        percent = 100
    return {"done": done, "total": total, "percent": percent,
            "message": str(progress.get("message") or "")}


def job_context(job: dict[str, Any]) -> dict[str, Any]:
    """What a job's page and fragment show beside the job itself."""
    result = job.get("result") if isinstance(job.get("result"), dict) else None
    context: dict[str, Any] = {"job": job, "finished": job["status"] in FINISHED,
                               "progress": progress_of(job), "result": result,
                               "gc": None, "retention": None}
    if result and job["type"] == "gc":
        context["gc"] = result
    elif result and job["type"] == "retention" and "repositories" in result:
        context["retention"] = retention_decisions(result)
    return context


async def job_list(visit: Visit) -> Response:
    query = visit.query
    chosen = {"type": query.get("type", "").strip(), "status": query.get("status", "").strip()}
    before = query.get("before", "").strip()
    answer = await visit.get("/api/v1/jobs", limit=PAGE, before_id=before, **chosen)
    if not answer.ok:
        return visit.refused(answer)
    jobs = answer.data
    types = await visit.get("/api/v1/jobs/types")
    filters = {k: v for k, v in chosen.items() if v}
    older = newest = None
    if len(jobs) == PAGE:
        older = "/jobs?" + urlencode({**filters, "before": jobs[-1]["id"]})
    if before:
        newest = "/jobs" + ("?" + urlencode(filters) if filters else "")
    rows = [{**job, "progress_view": progress_of(job)} for job in jobs]
    return visit.render("jobs.html", title="Jobs", jobs=rows, chosen=chosen,
                        types=types.data if types.ok else [], statuses=STATUSES,
                        older_url=older, newest_url=newest,
                        can_gc=visit.principal.is_admin)


async def job_page(visit: Visit) -> Response:
    job_id = visit.params["job_id"]
    fragment = is_fragment(visit)
    if not job_id.isdigit():
        return visit.render("error.html", status=404, title="Not found",
                            message=f"There is no job {job_id[:40]!r}.")
    answer = await visit.get(f"/api/v1/jobs/{job_id}")
    if not answer.ok:
        if fragment:  # the fragment says so in place; polling stops (no trigger)
            return visit.render("jobs_live.html", status=answer.status, error=answer.message,
                                job=None, finished=True)
        return visit.refused(answer)
    context = job_context(answer.data)
    context["can_gc"] = visit.principal.is_admin
    if fragment:
        return visit.render("jobs_live.html", **context)
    return visit.render("jobs_job.html", title=f"Job {job_id}", **context)


async def start_gc(visit: Visit) -> Response:
    """Queue a collection (a dry run unless the form says otherwise) and show its job."""
    form = visit.form
    dry_run = form.get("dry_run", "true") != "false"
    body: dict[str, Any] = {"dry_run": dry_run}
    grace = form.get("grace", "").strip()
    if grace:
        body["grace"] = int(grace) if grace.isdigit() else grace
    answer = await visit.api("POST", "/api/v1/gc", body=body)
    if not answer.ok:
        return visit.refused(answer)
    job = answer.data
    what = "A garbage collection dry run" if dry_run else "A garbage collection"
    return visit.redirect(f"/jobs/{job['id']}", flash=f"{what} is queued as job {job['id']}.")


def install(site: ConsoleSite) -> None:
    site.add_nav("Jobs", "/jobs", 50, admin_only=True)
    site.get("/jobs", job_list)
    site.post("/jobs/gc", start_gc)
    site.get("/jobs/{job_id}", job_page)
