"""`moorage maintenance …`: read-only mode for upgrades and storage moves."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from moorage.cli.client import connect
from moorage.cli.output import JsonFlag, details, print_json, when

app = typer.Typer(help="Read-only mode: pulls are served, pushes, deletes and changes are "
                       "refused with 503 (administrators switch it).", no_args_is_help=True)


def _show(state: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(state)
        return
    details([("read-only", "on" if state["read_only"] else "off"),
             ("message", state["message"] or "-"),
             ("since", when(state["since"]) if state["since"] else "-"),
             ("by", state["by"] or "-")])


@app.command("status")
def status(json_out: JsonFlag = False) -> None:
    """Whether the registry is read-only now."""
    with connect() as api:
        _show(api.get("/maintenance"), json_out)


@app.command("on")
def on(message: Annotated[str, typer.Option(
        "--message", "-m", help="Told to every client whose write is refused.")] = "",
       json_out: JsonFlag = False) -> None:
    """Turn read-only mode on: every worker and replica refuses the next write."""
    with connect() as api:
        _show(api.put("/maintenance", {"read_only": True, "message": message}), json_out)


@app.command("off")
def off(json_out: JsonFlag = False) -> None:
    """Turn read-only mode off: writes are accepted again."""
    with connect() as api:
        _show(api.put("/maintenance", {"read_only": False}), json_out)
