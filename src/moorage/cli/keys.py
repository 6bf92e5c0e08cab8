"""`moorage keys …`: encryption-at-rest master keys: status, rotation, rewrapping.

These work on the instance's settings and stores directly (like `moorage worker`), because
they need the key file or the key environment, which the API never exposes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from moorage.cli.datafolder import announce, existing_instance
from moorage.cli.output import CliError, JsonFlag, print_json, say, table

if TYPE_CHECKING:
    from moorage.settings import Settings
    from moorage.store.encrypted import EncryptedBlobStore

app = typer.Typer(help="Encryption at rest: master keys, rotation without downtime, rewrap.",
                  no_args_is_help=True)

DataDir = Annotated[Optional[Path], typer.Option(help="The instance's data folder "
                                                       "[default: ./moorage-data]")]
Config = Annotated[Optional[Path], typer.Option(help="TOML settings file")]


def _instance(data_dir: Path | None, config: Path | None) -> tuple[Settings, Path]:
    """The settings and the data folder of an instance that exists and encrypts: nothing is
    created (see cli/datafolder.py)."""
    from moorage.settings import SettingsError, load_settings

    try:
        settings = load_settings(config, overrides={"data_dir": data_dir})
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    folder = existing_instance(settings)
    if not settings.encryption:
        raise CliError(f"encryption is off on the instance in {folder} (set encryption = true)")
    return settings, folder


def _read_only_store(settings: Settings, folder: Path) -> EncryptedBlobStore:
    """The encrypted blob store, opened without creating anything: no instance assembly, and
    a missing master key file is an error rather than a new key."""
    from moorage.settings import SettingsError
    from moorage.store.encrypted import EncryptedBlobStore
    from moorage.store.factory import open_blob_store
    from moorage.store.keys import EncryptionError, load_keyring

    try:
        keyring = load_keyring(settings.master_key_file, folder, create=False)
        inner = open_blob_store(settings, folder)  # an unreachable bucket: SettingsError
    except (EncryptionError, SettingsError) as exc:
        raise CliError(str(exc)) from None
    return EncryptedBlobStore(inner, keyring, allow_plaintext=settings.encryption_allow_plaintext)


def _built(settings: Settings) -> tuple[Any, EncryptedBlobStore]:
    """The assembled instance, for the commands that change keys and blobs (they need the
    registry's locks); only ever called on an instance `_instance` found."""
    from moorage.app import build_instance
    from moorage.store.encrypted import EncryptedBlobStore

    instance = build_instance(settings)
    store = instance.registry.store
    if not isinstance(store, EncryptedBlobStore):  # pragma: no cover - encryption checked
        raise CliError("encryption is off on this instance (set encryption = true)")
    return instance, store


@app.command("status")
def status(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """The master keys and how many blobs each one wraps (reads only; changes nothing)."""
    from moorage.store.encrypted import key_usage

    settings, folder = _instance(data_dir, config)
    store = _read_only_store(settings, folder)
    announce(folder, json_out)
    active = store.keyring.active.hex_id
    usage = key_usage(store)
    rows = [{"key": k.hex_id, "active": k.hex_id == active, "blobs": usage.get(k.hex_id, 0)}
            for k in store.keyring.keys()]
    if json_out:
        print_json({"data_dir": str(folder), "keys": rows,
                    "plaintext_blobs": usage.get("plaintext", 0)})
        return
    table(["KEY", "ACTIVE", "BLOBS"], [(r["key"], "yes" if r["active"] else "", r["blobs"])
                                       for r in rows])
    if usage.get("plaintext"):
        say(f"{usage['plaintext']} blobs are not encrypted yet: run `moorage keys rewrap`.")


@app.command("rotate")
def rotate(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """Add a new active master key; old keys keep reading what they wrap."""
    settings, folder = _instance(data_dir, config)
    announce(folder, json_out)
    _, store = _built(settings)
    key = store.keyring.rotate()
    if json_out:
        print_json({"data_dir": str(folder), "active": key.hex_id})
    else:
        say(f"New active key {key.hex_id}. Run `moorage keys rewrap` to move existing blobs "
            f"to it, then the old keys can be retired.")


@app.command("rewrap")
def rewrap_cmd(data_dir: DataDir = None, config: Config = None, json_out: JsonFlag = False) -> None:
    """Re-wrap every blob's data key under the active master key, while the registry serves."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from moorage.store.encrypted import rewrap

    settings, folder = _instance(data_dir, config)
    announce(folder, json_out)
    instance, store = _built(settings)
    guard = getattr(instance.registry.lock, "shared", None)
    # The bar goes to stderr, and only to a terminal: stdout keeps the result alone.
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True,
                  disable=json_out or not sys.stderr.isatty()) as bar:
        task = bar.add_task("rewrapping", total=None)
        result = rewrap(store, progress=lambda done, total, _: bar.update(task, completed=done,
                                                                           total=total),
                        guard=guard)
    if json_out:
        print_json({"data_dir": str(folder), **result.as_dict()})
    else:
        table(["RESULT", "BLOBS"], [
            ("examined", result.examined), ("rewrapped", result.rewrapped),
            ("current", result.current), ("encrypted", result.encrypted),
            ("missing", result.missing), ("failed", len(result.failed))])
        say(f"Took {result.seconds:.1f} s. rewrapped: moved to the active key; current: "
            f"already under it; encrypted: plaintext blobs encrypted; missing: deleted "
            f"meanwhile.")
        if result.failed:
            table(["DIGEST", "ERROR"], result.failed[:50])
    if result.failed:
        raise CliError(f"{len(result.failed)} blobs could not be rewrapped")
