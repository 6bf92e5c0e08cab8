"""`moorage audit …`: read, export and verify the tamper-evident audit log (administrators)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import ApiClient, ApiError, connect
from moorage.cli.output import (CliError, JsonFlag, details, print_error, print_json, say,
                                table)

app = typer.Typer(help="The tamper-evident audit log: who pushed, pulled, deleted, logged in "
                       "or changed what, from where (administrators).", no_args_is_help=True)

Actor = Annotated[Optional[str], typer.Option(help="Only this user or robot.")]
Action = Annotated[Optional[str], typer.Option(
    help="Only this action (push, pull, delete, login, namespace.create …); a trailing * "
         "matches a prefix (namespace.*).")]
Repository = Annotated[Optional[str], typer.Option("--repository", "-r",
                                                   help="Only this repository.")]
Result = Annotated[Optional[str], typer.Option(help="success or failure.")]
Since = Annotated[Optional[str], typer.Option(
    help="From this time: ISO 8601, epoch seconds, or a duration back from now (15m, 2h, 7d).")]
Until = Annotated[Optional[str], typer.Option(help="Before this time; same forms as --since.")]


def _filters(actor: str | None, action: str | None, repository: str | None,
             result: str | None, since: str | None, until: str | None) -> dict[str, str]:
    found = {"actor": actor, "action": action, "repository": repository, "result": result,
             "since": since, "until": until}
    return {k: v for k, v in found.items() if v is not None}


def _time(value: str) -> str:
    """Audit times to the second, in local time: minutes are too coarse to order events."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone() \
            .strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


@app.command("list")
def list_(actor: Actor = None, action: Action = None, repository: Repository = None,
          result: Result = None, since: Since = None, until: Until = None,
          limit: Annotated[int, typer.Option(help="Entries per page (at most 1000).")] = 50,
          before: Annotated[Optional[int], typer.Option(
              help="Only entries older than this id (the next page).")] = None,
          json_out: JsonFlag = False) -> None:
    """List audit entries, newest first."""
    params: dict[str, Any] = {**_filters(actor, action, repository, result, since, until),
                              "limit": limit, "before_id": before}
    with connect() as api:
        page = api.get("/audit", **params)
    if json_out:
        print_json(page)
        return
    table(["ID", "TIME", "ACTOR", "ADDRESS", "ACTION", "TARGET", "RESULT"],
          [(e["id"], _time(e["at"]), e["actor"], e["address"], e["action"], e["target"],
            e["result"]) for e in page["entries"]], empty="no audit entries")
    for e in page["entries"]:  # the log's reports on itself (audit.*): say what went wrong
        if e["action"].startswith("audit."):
            say(f"Entry {e['id']} ({e['action']}): {_report(e['detail'])}")
    if page.get("next"):
        say(f"More: add --before {page['next']}")


def _events(count: int, verb: str | None = "lost") -> str:
    """"1 event was lost", "3 events were lost"; without a verb, "1 event", "3 events"."""
    noun = "1 event" if count == 1 else f"{count} events"
    return noun if verb is None else f"{noun} {'was' if count == 1 else 'were'} {verb}"


def _report(detail: dict[str, Any]) -> str:
    """One of the log's reports on itself, in a sentence."""
    what = []
    if "dropped" in detail:
        what.append(_events(detail["dropped"]))
    if "attempts" in detail:
        what.append(f"{detail['attempts']} failed attempts")
    if "action" in detail:
        what.append(f"a {detail['action']} by {detail.get('actor') or 'nobody'} could not be "
                    f"written")
    return "; ".join([*what, str(detail.get("error") or "no error recorded")])


def _stream(api: ApiClient, params: dict[str, Any], out: Any) -> int:
    """Copy the export to `out` as it arrives; a log of millions of lines never sits in
    memory. Returns the number of lines."""
    import httpx  # the client made by `connect` has imported it already

    lines = 0
    try:
        with api.http.stream("GET", "/audit/export", params=params) as resp:
            if not resp.is_success:
                resp.read()
                try:
                    error = resp.json().get("error") or {}
                except ValueError:
                    error = {}
                message = error.get("message") or f"export failed: HTTP {resp.status_code}"
                if resp.status_code == 401:
                    message += f" (run `moorage login {api.url}`)"
                raise ApiError(resp.status_code, str(error.get("code", "")), str(message))
            for line in resp.iter_lines():
                if line:
                    out.write(line + "\n")
                    lines += 1
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {api.url}: {exc}") from None
    return lines


@app.command("export")
def export(actor: Actor = None, action: Action = None, repository: Repository = None,
           result: Result = None, since: Since = None, until: Until = None,
           after_id: Annotated[int, typer.Option(
               help="Only entries after this id (what a previous export ended with).")] = 0,
           output: Annotated[Optional[Path], typer.Option(
               "--output", "-o", help="Write to this file instead of standard output.")] = None,
           json_out: JsonFlag = False) -> None:
    """Export entries as JSON lines, oldest first (for a SIEM or an archive). The output is
    JSON lines with or without --json."""
    params: dict[str, Any] = {**_filters(actor, action, repository, result, since, until),
                              "after_id": after_id}
    with connect() as api:
        if output is None:
            _stream(api, params, sys.stdout)
            sys.stdout.flush()
            return
        partial = output.with_name(output.name + ".partial")
        with partial.open("w", encoding="utf-8") as out:
            count = _stream(api, params, out)
        partial.replace(output)  # a failed export never leaves a truncated file behind
    # on stderr, like every progress note: stdout is for data only
    sys.stderr.write(f"Exported {count} entr{'y' if count == 1 else 'ies'} to {output}.\n")


def _losses(found: dict[str, Any]) -> list[str]:
    """What the writers reported about themselves, as sentences; none when all went well."""
    lines = []
    if found.get("dropped"):
        lines.append(f"{_events(found['dropped'])}: the database refused writes until "
                     f"a worker's buffer was full (audit.dropped entries)")
    if found.get("unwritable"):
        lines.append(f"{_events(found['unwritable'], None)} could not be written "
                     f"unchanged; an audit.unwritable entry stands for each")
    if found.get("write_failures"):
        lines.append(f"writes failed for a while {found['write_failures']} time(s) and entries "
                     f"were written late (audit.write_failed entries)")
    last = found.get("last_report")
    if lines and last:
        lines.append(f"newest report: entry {last['id']} ({last['action']}, "
                     f"{_time(last['at'])}): {last['error'] or 'no error recorded'}")
    return lines


@app.command("verify")
def verify(json_out: JsonFlag = False) -> None:
    """Check the hash chain; exits 1 and names the first broken link if it is broken. Also
    says whether events were lost or could not be written (the chain is intact all the same;
    the exit code is 0)."""
    with connect() as api:
        found = api.get("/audit/verify")
    if json_out:
        print_json(found)
    elif found["ok"]:
        last = f" (newest entry {found['last_id']}, hash {found['last_hash']})" \
            if found.get("last_id") else ""
        say(f"The audit log is intact: {found['checked']} entries checked{last}.")
        for line in _losses(found):
            print_error(f"warning: {line}")
    else:
        print_error(f"the audit log is broken at entry {found['first_broken_id']}: "
                    f"{found['reason']}")
    if not found["ok"]:
        raise typer.Exit(1)


@app.command("status")
def status(json_out: JsonFlag = False) -> None:
    """Whether the log is complete: the newest entry, and what the writers of every worker
    and replica reported (events lost, entries not written as they were, write failures)."""
    with connect() as api:
        found = api.get("/audit/status")
    if json_out:
        print_json(found)
        return
    last = found.get("last_report") or {}
    details([("newest entry", found.get("last_id")),
             ("time", _time(found["last_at"]) if found.get("last_at") else None),
             ("complete", found["complete"]),
             ("dropped", found["dropped"]), ("unwritable", found["unwritable"]),
             ("write failures", found["write_failures"]),
             ("last report", f"entry {last['id']} ({last['action']}, {_time(last['at'])})"
              if last else None),
             ("last error", last.get("error"))])


@app.command("activity")
def activity(days: Annotated[int, typer.Option(help="How many days back (1-90).")] = 14,
             json_out: JsonFlag = False) -> None:
    """Manifest pushes and pulls per UTC day (what the console's overview draws)."""
    with connect() as api:
        found = api.get("/audit/activity", days=days)
    if json_out:
        print_json(found)
        return
    table(["DAY", "PUSHES", "PULLS"],
          [(d["date"], d["pushes"], d["pulls"]) for d in found["days"]], empty="no days")
