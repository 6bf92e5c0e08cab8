"""`moorage policy pull …`: the pull policy of a namespace (threat blocking): which images a
pull may not fetch, and which robot accounts are exempted."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from moorage.cli.client import connect, segment
from moorage.cli.output import JsonFlag, details, print_json, say, usage, when

SEVERITIES = ("critical", "high", "medium", "low")

app = typer.Typer(help="Policies a namespace applies to what it serves.", no_args_is_help=True)
pull = typer.Typer(help="Pull policies (threat blocking): refuse pulls of vulnerable, "
                        "unscanned or unsigned images.", no_args_is_help=True)
app.add_typer(pull, name="pull")

Namespace = Annotated[str, typer.Argument(help="The namespace")]


def _show(policy: dict[str, Any]) -> None:
    details([
        ("namespace", policy["namespace"]),
        ("state", "on" if policy["active"] else "off (nothing is blocked)"),
        ("severity", f"block {policy['severity']} and worse" if policy["severity"] else "off"),
        ("unscanned", "block" if policy["block_unscanned"] else "off"),
        ("unsigned", "block" if policy["block_unsigned"] else
         "off" + ("" if policy["signing_available"] else " (no signing service)")),
        ("exempt robots", ", ".join(policy["exempt_robots"]) or "none"),
        ("updated", f"{when(policy['updated_at'])} by {policy['updated_by'] or '?'}"
         if policy["updated_at"] else "never"),
    ])
    if policy.get("backfill_job"):
        say(f"Older images' scan and signature facts are being brought up to date by job "
            f"{policy['backfill_job']} (`moorage jobs show {policy['backfill_job']}`).")


@pull.command("show")
def show(namespace: Namespace, json_out: JsonFlag = False) -> None:
    """Show NAMESPACE's pull policy (owners and administrators)."""
    with connect() as api:
        policy = api.get(f"/namespaces/{segment(namespace)}/pull-policy")
    if json_out:
        print_json(policy)
    else:
        _show(policy)


@pull.command("set")
def set_(
    namespace: Namespace,
    severity: Annotated[Optional[str], typer.Option(
        "--severity", help="Block images with an unaccepted finding at or above this level: "
                           "critical, high, medium, low; 'off' turns the rule off")] = None,
    unscanned: Annotated[Optional[bool], typer.Option(
        "--unscanned/--allow-unscanned", help="Block images not scanned yet")] = None,
    unsigned: Annotated[Optional[bool], typer.Option(
        "--unsigned/--allow-unsigned",
        help="Block images without a valid signature from a trusted key")] = None,
    exempt: Annotated[Optional[list[str]], typer.Option(
        "--exempt", help="A robot account of the namespace no rule applies to (repeat; "
                         "replaces the list)")] = None,
    no_exempt: Annotated[bool, typer.Option("--no-exempt",
                                            help="Exempt no robot account")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Change NAMESPACE's pull policy; options not given keep their value."""
    if severity is not None and severity.lower() not in (*SEVERITIES, "off"):
        raise usage(f"--severity takes one of {', '.join(SEVERITIES)} or off")
    if exempt and no_exempt:
        raise usage("--exempt and --no-exempt exclude each other")
    path = f"/namespaces/{segment(namespace)}/pull-policy"
    with connect() as api:
        current = api.get(path)
        body = {
            "severity": current["severity"] if severity is None
            else (None if severity.lower() == "off" else severity.lower()),
            "block_unscanned": current["block_unscanned"] if unscanned is None else unscanned,
            "block_unsigned": current["block_unsigned"] if unsigned is None else unsigned,
            "exempt_robots": [] if no_exempt else
            (list(exempt) if exempt else current["exempt_robots"]),
        }
        policy = api.put(path, body)
    if json_out:
        print_json(policy)
        return
    say(f"Pull policy of {namespace} saved.")
    _show(policy)
