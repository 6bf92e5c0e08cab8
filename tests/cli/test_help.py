"""`--help` shows every flag whole on an 80-column terminal.

Rich's option panels once cut `--no-credential-free-pull` to `--no-credential-fr…`: a flag
that cannot be read cannot be typed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from moorage.cli.main import app

CUT = re.compile(r"-[\w-]*…")  # a flag name cut short


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the CLI with its path (`("namespace", "update")`)."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from commands(sub, (*path, name))
    else:
        yield path, command


def long_flags(command: Any) -> list[str]:
    return [opt for param in command.params
            for opt in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
            if opt.startswith("--")]


def test_the_longest_flag_is_whole_in_help_at_80_columns() -> None:
    everything = list(commands(typer.main.get_command(app)))
    path, command = max(everything, key=lambda pc: max(map(len, long_flags(pc[1])), default=0))
    longest = max(long_flags(command), key=len)
    assert len(longest) >= 20, longest  # the case that was cut
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update({"COLUMNS": "80", "NO_COLOR": "1"})
    shown = subprocess.run([sys.executable, "-m", "moorage", *path, "--help"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown
    assert longest in shown.stdout, shown.stdout
    assert not CUT.search(shown.stdout), shown.stdout
    assert max(map(len, shown.stdout.splitlines())) <= 80


def test_every_flag_of_every_command_is_whole_at_80_columns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    cli = typer.main.get_command(app)
    # typer's CliRunner builds the whole click command tree from `app` on every invoke
    # (0.1 s of CPU, 143 times): each help is asked of the tree built once, the same one
    monkeypatch.setattr(typer.testing, "_get_command", lambda typer_app: cli)
    for path, command in commands(cli):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"},
                               terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        for flag in long_flags(command):
            assert flag in result.output, (path, flag, result.output)
        assert not CUT.search(result.output), (path, result.output)
