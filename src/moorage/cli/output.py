"""How the CLI speaks: Rich tables for people, `--json` for scripts, one line for errors.

Everything a script may parse goes to stdout; errors go to stderr as a single line (the API's
own message) so that `moorage … || handle` scripts and people both get something usable.
Values from the server are shown as plain text, never as Rich markup, so a description with
`[brackets]` prints as written.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# Rich is imported by the functions that print through it, not here: every command imports
# this module, and `moorage --help` or a `--json` command never draws a table (rich is
# ~25 ms of a CLI start; tests/cli/test_lazy_imports.py keeps it out of `--help`).

# Exit codes: 1 the server (or the network) refused, 2 the command line was wrong.
REFUSED, USAGE = 1, 2

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


class CliError(Exception):
    """A failure to report in one line on stderr, with the exit code it deserves."""

    def __init__(self, message: str, exit_code: int = REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def usage(message: str) -> CliError:
    return CliError(message, USAGE)


@lru_cache(maxsize=1)
def console() -> Console:
    from rich.console import Console

    # Piped output gets a wide page rather than Rich's 80 columns, so that digests and
    # descriptions stay on one line for grep and awk.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if wide else None, highlight=False, soft_wrap=False)


def print_error(message: str) -> None:
    """A warning or an error for people: one line on stderr."""
    sys.stderr.write(f"moorage: {message}\n")
    sys.stderr.flush()


def json_requested(argv: Sequence[str]) -> bool:
    """Was `--json` given (before a `--` that ends the options)? Decided from the command line
    itself, so that even a usage error, found before any command runs, is answered in JSON."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def print_failure(message: str, exit_code: int, as_json: bool, **extra: Any) -> None:
    """The one way a command reports its failure: one line on stderr, as `moorage: MESSAGE`
    for people or, under --json, as `{"error": MESSAGE, "exit_code": N, …}` for scripts.
    stderr in both cases: stdout holds only results, so it never carries two JSON documents
    (a command may have printed its result before failing)."""
    if not as_json:
        print_error(message)
        return
    body = {"error": message, "exit_code": exit_code,
            **{k: v for k, v in extra.items() if v not in (None, "")}}
    sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")
    sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    """A sentence for people (plain text, no markup interpretation)."""
    from rich.text import Text

    console().print(Text(message), soft_wrap=True)


def raw(value: str) -> None:
    """A value on its own line, unwrapped (secrets must copy-paste whole)."""
    sys.stdout.write(value + "\n")
    sys.stdout.flush()


def when(value: str | None) -> str:
    """ISO 8601 from the API as local time to the minute; "-" for none."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def cell(value: Any) -> Text:
    from rich.text import Text

    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    return Text(str(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none") -> None:
    rows = list(rows)
    if not rows:
        say(empty)
        return
    from rich.table import Table

    grid = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for name in columns:
        grid.add_column(name, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(v) for v in row))
    console().print(grid)


def details(pairs: Iterable[tuple[str, Any]]) -> None:
    """One object as aligned `key  value` lines."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(Text(key), cell(value))
    console().print(grid)


def confirm(question: str, yes: bool) -> None:
    """Destructive commands ask first; without a terminal, only --yes will do."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise usage(f"{question.rstrip('?')}: add --yes to confirm (no terminal to ask on)")
    if not typer.confirm(question, default=False):
        raise CliError("cancelled")
