"""Master keys for encryption at rest: where they come from, which one is active, rotation.

Blob bytes are encrypted with random per-blob data keys; a master key only wraps those 32-byte
data keys (see `encrypted.py`). So a master key can be rotated without re-encrypting a single
blob: `Keyring.rotate()` adds a new active key, old keys stay in the ring so that what they
wrapped stays readable, and `encrypted.rewrap()` moves existing blobs to the active key by
rewriting their headers only. Once that has run, `Keyring.retire()` drops an old key.

Two sources, chosen by `load_keyring`:

- the environment, `MOORAGE_MASTER_KEY`: one or more base64 32-byte keys separated by commas,
  the FIRST being active ("NEW,OLD"). Suits replicas that get secrets from an orchestrator;
  rotation means changing the variable (see `Keyring.rotate` for the order that avoids
  downtime).
- a key file, by default `<data_dir>/keys/master.keys`, created (mode 0600) on first start with
  encryption on. One key per line, the LAST (newest) being active. Several processes may share
  it: a process reloads the file when it meets a key id it does not know, and re-checks which
  key is active every few seconds, so `rotate()` in one process reaches the others without a
  restart.

A key's id is derived from the key itself (a truncated, domain-separated SHA-256), never
chosen: a wrong key therefore shows up as "unknown key id" instead of as a decryption failure
somewhere deep in a blob, and a corrupted key file line is caught when the file is read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from moorage.store.datadir import private_dirs

log = logging.getLogger("moorage.store")

KEY_BYTES = 32
ID_BYTES = 8
ENV_VAR = "MOORAGE_MASTER_KEY"
DEFAULT_KEY_FILE = Path("keys") / "master.keys"
# How often a process re-reads the key file to notice a rotation made by another process.
REFRESH_SECONDS = 2.0

_FILE_HEADER = (
    "# Moorage master keys for encryption at rest. KEEP SECRET, BACK UP with the data.\n"
    "# Losing a key listed here makes every blob it wraps unreadable.\n"
    "# One key per line: <id> <base64 key> <created>; the last line is the active key.\n"
)


class EncryptionError(Exception):
    """Encrypted data cannot be read or written; the base of every encryption error."""


class KeyringError(EncryptionError):
    """The keys cannot be loaded, created or changed; the message says what to fix."""


class UnknownKeyError(KeyringError):
    """Data was wrapped by a master key this keyring does not hold (wrong or missing key)."""


def derive_key_id(secret: bytes) -> bytes:
    """The key's id: public, stable, and a check value that catches a wrong or corrupted key."""
    return hashlib.sha256(b"moorage master key id\0" + secret).digest()[:ID_BYTES]


def generate_key() -> str:
    """A new random master key in the base64 form `MOORAGE_MASTER_KEY` takes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class MasterKey:
    secret: bytes = field(repr=False)
    created: float = 0.0

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise KeyringError(f"a master key must be {KEY_BYTES} bytes, not {len(self.secret)}")

    @cached_property
    def id(self) -> bytes:
        return derive_key_id(self.secret)

    @property
    def hex_id(self) -> str:
        return self.id.hex()

    @cached_property
    def aead(self) -> AESGCM:
        return AESGCM(self.secret)


def _decode_key(text: str, where: str) -> bytes:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}: not valid base64") from None
    if len(secret) != KEY_BYTES:
        raise KeyringError(f"{where}: a master key must be {KEY_BYTES} bytes "
                           f"(base64 of 32 random bytes), got {len(secret)}")
    return secret


class Keyring:
    """The master keys a process may unwrap with, and the one it wraps new data keys with.

    Thread-safe: stores call `active` and `get` from worker threads.
    """

    def __init__(self, keys: Sequence[MasterKey], path: Path | None = None,
                 active_first: bool = False) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one master key")
        self.path = path
        self._active_first = active_first
        self._lock = threading.Lock()
        self._set(keys)
        self._file_state = self._stat() if path else None
        self._checked = time.monotonic()

    def _set(self, keys: Sequence[MasterKey]) -> None:
        self._keys = list(keys)
        self._by_id = {k.id: k for k in self._keys}
        self._active = self._keys[0] if self._active_first else self._keys[-1]

    # -- sources ------------------------------------------------------------------------
    @classmethod
    def from_environment(cls, value: str) -> Keyring:
        """`NEW,OLD,...` base64 keys; the first wraps new data keys, all of them unwrap."""
        parts = [p for p in (s.strip() for s in value.split(",")) if p]
        if not parts:
            raise KeyringError(f"{ENV_VAR} is set but empty")
        keys = [MasterKey(_decode_key(p, f"{ENV_VAR} key #{i + 1}"))
                for i, p in enumerate(parts)]
        return cls(keys, active_first=True)

    @classmethod
    def open(cls, path: Path, create: bool = False) -> Keyring:
        """The key file at `path`; with `create`, a new file with one key if there is none.

        Creation takes a file lock, so that worker processes starting together agree on one
        key instead of each writing its own.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise KeyringError(f"no master key file at {path}")
            private_dirs(path.parent)
            with _file_lock(path):
                if not path.exists():
                    _write_key_file(path, [MasterKey(os.urandom(KEY_BYTES), time.time())])
                    log.warning("created master key file %s: back it up; without it the "
                                "encrypted blobs cannot be read", path)
        return cls(_read_key_file(path), path=path)

    # -- lookups ------------------------------------------------------------------------
    @property
    def active(self) -> MasterKey:
        """The key that wraps new data keys (re-checked against the file every few seconds)."""
        if self.path is not None and time.monotonic() - self._checked > REFRESH_SECONDS:
            self._reload_if_changed()
        return self._active

    def get(self, key_id: bytes) -> MasterKey:
        """The key with this id; the file is re-read once before giving up (a new rotation)."""
        key = self._by_id.get(key_id)
        if key is None and self.path is not None:
            self._reload_if_changed()
            key = self._by_id.get(key_id)
        if key is None:
            raise UnknownKeyError(
                f"data is wrapped with master key {key_id.hex()}, which is not in the keyring "
                f"(holding {', '.join(k.hex_id for k in self._keys)}): wrong {ENV_VAR} or key "
                f"file, or the key was retired before its blobs were rewrapped")
        return key

    def keys(self) -> list[MasterKey]:
        """All keys, oldest first in a key file; as listed in the environment variable."""
        return list(self._keys)

    def _stat(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload_if_changed(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            state = self._stat()
            if state is None or state == self._file_state:
                return
            self._set(_read_key_file(self.path))  # type: ignore[arg-type]
            self._file_state = state

    # -- changes ------------------------------------------------------------------------
    def rotate(self) -> MasterKey:
        """Add a new random key and make it active; returns it.

        Blobs wrapped by older keys stay readable (the keys stay in the file); run `rewrap`
        to move them to the new key, then `retire` the old one. Other processes sharing the
        file pick the new key up within REFRESH_SECONDS, and read blobs it wraps at once.

        Keys from the environment cannot be rotated from here. The order without downtime,
        so that no replica ever meets a key it does not hold: 1. `OLD,NEW` on every replica
        (NEW readable, OLD still active); 2. `NEW,OLD` (NEW active); 3. rewrap; 4. `NEW`
        alone once the upload TTL has passed.
        """
        if self.path is None:
            raise KeyringError(f"keys from {ENV_VAR} are rotated by changing the variable: set "
                               f"'OLD,NEW' on every replica, then 'NEW,OLD', rewrap, then 'NEW' "
                               f"(generate NEW with: python -c 'import base64,os; "
                               f"print(base64.b64encode(os.urandom(32)).decode())')")
        new = MasterKey(os.urandom(KEY_BYTES), time.time())
        with _file_lock(self.path):
            keys = _read_key_file(self.path) + [new]
            _write_key_file(self.path, keys)
        with self._lock:
            self._set(keys)
            self._file_state = self._stat()
        log.info("master key rotated: %s is active", new.hex_id)
        return new

    def retire(self, hex_id: str) -> None:
        """Remove a key that nothing is wrapped with any more (after `rewrap`); not the active.

        Staged uploads started before the rewrap may still use it: wait for the upload TTL
        before retiring.
        """
        if self.path is None:
            raise KeyringError(f"keys from {ENV_VAR} are retired by removing them from it")
        with _file_lock(self.path):
            keys = _read_key_file(self.path)
            if keys[-1].hex_id == hex_id:
                raise KeyringError(f"key {hex_id} is the active key; rotate first")
            remaining = [k for k in keys if k.hex_id != hex_id]
            if len(remaining) == len(keys):
                raise KeyringError(f"no key {hex_id} in {self.path}")
            _write_key_file(self.path, remaining)
        with self._lock:
            self._set(remaining)
            self._file_state = self._stat()


# -- the key file -------------------------------------------------------------------------
@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serializes creation and rotation across processes sharing the key file."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_key_file(path: Path) -> list[MasterKey]:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise KeyringError(f"cannot read master key file {path}: {exc}") from None
    if mode & 0o077:
        log.warning("master key file %s is readable by other users (mode %o); chmod 600 it",
                    path, mode & 0o777)
    keys: list[MasterKey] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{path}:{number}"
        if len(fields) < 2:
            raise KeyringError(f"{where}: expected '<id> <base64 key> [created]'")
        key = MasterKey(_decode_key(fields[1], where), _parse_time(fields[2:]))
        if key.hex_id != fields[0].lower():
            raise KeyringError(f"{where}: key id {fields[0]} does not match the key (its id "
                               f"is {key.hex_id}); the line is corrupted or was edited")
        keys.append(key)
    if not keys:
        raise KeyringError(f"master key file {path} holds no keys")
    return keys


def _parse_time(fields: list[str]) -> float:
    if not fields:
        return 0.0
    try:
        return datetime.fromisoformat(fields[0].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _write_key_file(path: Path, keys: Sequence[MasterKey]) -> None:
    """Write-then-rename with mode 0600 from the start: never a half-written or open file."""
    lines = [_FILE_HEADER]
    for key in keys:
        created = datetime.fromtimestamp(key.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{key.hex_id} {base64.b64encode(key.secret).decode()} {created}\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(lines).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def key_file_path(master_key_file: str, data_dir: Path) -> Path:
    """The configured key file, or `<data_dir>/keys/master.keys`."""
    return Path(master_key_file) if master_key_file else Path(data_dir) / DEFAULT_KEY_FILE


def load_keyring(master_key_file: str, data_dir: Path,
                 environ: Mapping[str, str] | None = None, create: bool = True) -> Keyring:
    """`MOORAGE_MASTER_KEY` if set, else the key file (created on first start with `create`)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_VAR)
    if value is not None:
        if master_key_file:
            log.warning("%s is set; the master_key_file setting (%s) is ignored",
                        ENV_VAR, master_key_file)
        return Keyring.from_environment(value)
    return Keyring.open(key_file_path(master_key_file, data_dir), create=create)
