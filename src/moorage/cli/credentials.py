"""Where `moorage login` keeps the server and the access token it created.

One file, `$XDG_CONFIG_HOME/moorage/credentials.json` (else `~/.config/…`), readable by its
owner only: it holds a personal access token, never the password.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from moorage.cli.output import CliError


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    token: str
    token_id: str = ""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "moorage"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load() -> Credentials | None:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
        return Credentials(url=data["url"], username=data["username"], token=data["token"],
                           token_id=data.get("token_id", ""))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read {path}: {exc}; run `moorage login` again") from None


def save(credentials: Credentials) -> Path:
    """Written through a 0600 descriptor, then renamed over the old file, so the token is
    never readable by others, not even for a moment, and never half-written."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(credentials), handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def remove() -> bool:
    try:
        credentials_path().unlink()
        return True
    except FileNotFoundError:
        return False
