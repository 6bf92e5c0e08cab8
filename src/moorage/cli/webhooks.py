"""`moorage webhook …`: event notifications to HTTP receivers, and what became of them."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect
from moorage.cli.output import CliError, JsonFlag, details, print_json, say, table, usage, when

app = typer.Typer(help="Webhooks: POST an HTTP receiver on pushes, deletions, pulls and quota "
                       "refusals.", no_args_is_help=True)

# The events something emits (events.payloads.EVENT_TYPES, which the server enforces); a copy
# because importing the feature would cost every CLI run seconds.
EVENTS = ("push", "delete", "pull", "quota", "scan", "vulnerability", "signature",
          "signing_key", "pull.blocked", "replication", "replication_rule", "subscription",
          "import")


class Format(str, Enum):
    moorage = "moorage"
    cloudevents = "cloudevents"
    distribution = "distribution"


def _events(value: str) -> list[str]:
    """`push,delete` → ["push", "delete"], refusing unknown names before the server does."""
    events = [e.strip().lower() for e in value.split(",") if e.strip()]
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise usage(f"--events takes a comma-separated list of {', '.join(EVENTS)}")
    return events


def _scope(hook: dict[str, Any]) -> str:
    return hook["namespace"] or "(instance)"


def _show(hook: dict[str, Any]) -> None:
    details([("id", hook["id"]), ("namespace", _scope(hook)), ("url", hook["url"]),
             ("events", ",".join(hook["events"])), ("format", hook["format"]),
             ("enabled", hook["enabled"]), ("signed", hook["has_secret"]),
             ("description", hook["description"]), ("created by", hook["created_by"]),
             ("created", when(hook["created_at"])), ("updated", when(hook["updated_at"]))])


@app.command("create")
def create(
    url: Annotated[str, typer.Option("--url", help="Where to POST events.")],
    events: Annotated[str, typer.Option("--events", "-e",
                                        help=f"Comma-separated: {','.join(EVENTS)}.")],
    namespace: Annotated[Optional[str], typer.Option(
        "--namespace", "-n", help="The namespace whose events to send [default: every "
                                  "namespace; administrators only].")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Payload format.")] = Format.moorage,
    secret: Annotated[Optional[str], typer.Option(
        help="Sign bodies with HMAC-SHA256 (X-Moorage-Signature); never shown again.",
        envvar="MOORAGE_WEBHOOK_SECRET")] = None,
    description: Annotated[str, typer.Option(help="What the webhook is for.")] = "",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create a webhook."""
    body = {"namespace": namespace, "url": url, "events": _events(events), "format": fmt.value,
            "secret": secret, "description": description, "enabled": not disabled}
    with connect() as api:
        hook = api.post("/webhooks", body)
    if json_out:
        print_json(hook)
        return
    say(f"Created webhook {hook['id']} for {_scope(hook)}: {','.join(hook['events'])} "
        f"→ {hook['url']} ({hook['format']}{', signed' if hook['has_secret'] else ''}).")


@app.command("list")
def list_(namespace: Annotated[Optional[str], typer.Option(
              "--namespace", "-n", help="Only this namespace's webhooks.")] = None,
          json_out: JsonFlag = False) -> None:
    """List the webhooks you may manage."""
    with connect() as api:
        found = api.get("/webhooks", namespace=namespace)
    if json_out:
        print_json(found)
        return
    table(["ID", "NAMESPACE", "EVENTS", "FORMAT", "ENABLED", "SIGNED", "URL"],
          [(h["id"], _scope(h), ",".join(h["events"]), h["format"], h["enabled"],
            h["has_secret"], h["url"]) for h in found], empty="no webhooks")


@app.command("show")
def show(webhook_id: Annotated[int, typer.Argument(metavar="ID")],
         json_out: JsonFlag = False) -> None:
    """Show one webhook (never its secret)."""
    with connect() as api:
        hook = api.get(f"/webhooks/{webhook_id}")
    if json_out:
        print_json(hook)
    else:
        _show(hook)


@app.command("update")
def update(
    webhook_id: Annotated[int, typer.Argument(metavar="ID")],
    url: Annotated[Optional[str], typer.Option("--url", help="A new receiver URL.")] = None,
    events: Annotated[Optional[str], typer.Option("--events", "-e", help="A new event list.")] = None,
    fmt: Annotated[Optional[Format], typer.Option("--format", help="A new format.")] = None,
    secret: Annotated[Optional[str], typer.Option(
        help="A new signing secret (\"\" removes it).", envvar="MOORAGE_WEBHOOK_SECRET")] = None,
    description: Annotated[Optional[str], typer.Option(help="A new description.")] = None,
    enabled: Annotated[Optional[bool], typer.Option("--enable/--disable",
                                                    help="Switch it on or off.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Change a webhook; what is not given stays as it is."""
    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if events is not None:
        body["events"] = _events(events)
    if fmt is not None:
        body["format"] = fmt.value
    if secret is not None:
        body["secret"] = secret
    if description is not None:
        body["description"] = description
    if enabled is not None:
        body["enabled"] = enabled
    if not body:
        raise usage("nothing to change: give --url, --events, --format, --secret, "
                    "--description, --enable or --disable")
    with connect() as api:
        hook = api.patch(f"/webhooks/{webhook_id}", body)
    if json_out:
        print_json(hook)
    else:
        _show(hook)


@app.command("delete")
def delete(webhook_id: Annotated[int, typer.Argument(metavar="ID")],
           json_out: JsonFlag = False) -> None:
    """Delete a webhook and its delivery history; queued deliveries are dropped."""
    with connect() as api:
        api.delete(f"/webhooks/{webhook_id}")
    if json_out:
        print_json({"deleted": webhook_id})
    else:
        say(f"Deleted webhook {webhook_id}.")


def _code(delivery: dict[str, Any]) -> str:
    codes = [str(a["response_code"]) if a["response_code"] is not None else "-"
             for a in delivery["history"]]
    return " ".join(codes) or "-"


@app.command("deliveries")
def deliveries(
    webhook_id: Annotated[int, typer.Argument(metavar="ID")],
    status: Annotated[Optional[str], typer.Option(
        help="Only pending, delivered or failed ones.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """The delivery history: each attempt's response code, newest first."""
    with connect() as api:
        found = api.get(f"/webhooks/{webhook_id}/deliveries", status=status, limit=limit)
    if json_out:
        print_json(found)
        return
    table(["DELIVERY", "EVENT", "STATUS", "ATTEMPTS", "CODES", "ERROR", "CREATED"],
          [(d["id"], d["event"], d["status"], d["attempts"], _code(d), d["error"],
            when(d["created_at"])) for d in found], empty="no deliveries")


@app.command("test")
def test(webhook_id: Annotated[int, typer.Argument(metavar="ID")],
         json_out: JsonFlag = False) -> None:
    """Send a ping event now and show the receiver's answer; exits 1 if it was not
    delivered, saying why (this is how one checks that a receiver works)."""
    with connect() as api:
        delivery = api.post(f"/webhooks/{webhook_id}/test", {})
    answer = (f"HTTP {delivery['response_code']}" if delivery["response_code"] is not None
              else delivery["error"] or "no answer")
    if json_out:
        print_json(delivery)
    else:
        attempt = delivery["history"][-1] if delivery["history"] else None
        took = f" in {attempt['duration_ms']} ms" if attempt else ""
        say(f"Ping {delivery['id']}: {delivery['status']} ({answer}{took}).")
    if delivery["status"] == "delivered":
        return
    excerpt = (delivery["response_excerpt"] or "").strip()[:300]
    said = f" (the receiver said: {excerpt})" if excerpt else ""
    raise CliError(f"the ping to webhook {webhook_id} was not delivered: {answer}{said}")


@app.command("redeliver")
def redeliver(webhook_id: Annotated[int, typer.Argument(metavar="ID")],
              delivery_id: Annotated[str, typer.Argument(metavar="DELIVERY_ID")],
              json_out: JsonFlag = False) -> None:
    """Send a delivered or failed delivery again: a new delivery of the same event and body,
    queued with the usual retries (see `moorage webhook deliveries ID` for its outcome)."""
    with connect() as api:
        delivery = api.post(f"/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", {})
    if json_out:
        print_json(delivery)
        return
    table(["DELIVERY", "EVENT", "STATUS", "REDELIVERY OF", "CREATED"],
          [(delivery["id"], delivery["event"], delivery["status"], delivery["redelivery_of"],
            when(delivery["created_at"]))])
