"""`moorage keys …`: encryption-at-rest master keys: status, rotation, rewrapping.

These work on the instance's settings and stores directly (like `moorage worker`), because
they need the key file or the key environment, which the API never exposes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from moorage.cli.output import CliError, JsonFlag, print_json, say, table

app = typer.Typer(help="Encryption at rest: master keys, rotation without downtime, rewrap.",
                  no_args_is_help=True)

DataDir = Annotated[Optional[Path], typer.Option(help="The instance's data folder")]
Config = Annotated[Optional[Path], typer.Option(help="TOML settings file")]


def _store(data_dir: Path | None, config: Path | None) -> Any:
    from moorage.app import build_instance
    from moorage.settings import SettingsError, load_settings
    from moorage.store.encrypted import EncryptedBlobStore

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir})
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    instance = build_instance(settings)
    store = instance.registry.store
    if not isinstance(store, EncryptedBlobStore):
        raise CliError("encryption is off on this instance (set encryption = true)")
    return instance, store


@app.command("status")
def status(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """The master keys and how many blobs each one wraps."""
    from moorage.store.encrypted import key_usage

    _, store = _store(data_dir, config)
    active = store.keyring.active.hex_id
    usage = key_usage(store)
    rows = [{"key": k.hex_id, "active": k.hex_id == active, "blobs": usage.get(k.hex_id, 0)}
            for k in store.keyring.keys()]
    if json_out:
        print_json({"keys": rows, "plaintext_blobs": usage.get("plaintext", 0)})
        return
    table(["KEY", "ACTIVE", "BLOBS"], [(r["key"], "yes" if r["active"] else "", r["blobs"])
                                       for r in rows])
    if usage.get("plaintext"):
        say(f"{usage['plaintext']} blobs are not encrypted yet: run `moorage keys rewrap`.")


@app.command("rotate")
def rotate(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """Add a new active master key; old keys keep reading what they wrap."""
    _, store = _store(data_dir, config)
    key = store.keyring.rotate()
    if json_out:
        print_json({"active": key.hex_id})
    else:
        say(f"New active key {key.hex_id}. Run `moorage keys rewrap` to move existing blobs "
            f"to it, then the old keys can be retired.")


@app.command("rewrap")
def rewrap_cmd(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """Re-wrap every blob's data key under the active master key, while the registry serves."""
    from moorage.store.encrypted import rewrap

    instance, store = _store(data_dir, config)
    guard = getattr(instance.registry.lock, "shared", None)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  disable=json_out, transient=True) as bar:
        task = bar.add_task("rewrapping", total=None)
        result = rewrap(store, progress=lambda done, total, _: bar.update(task, completed=done,
                                                                           total=total),
                        guard=guard)
    if json_out:
        print_json(result.as_dict())
    else:
        say(f"Examined {result.examined} blobs: {result.as_dict()}")
    if result.failed:
        raise CliError(f"{len(result.failed)} blobs could not be rewrapped")
