"""The data folder belongs to the user Moorage runs as, and to one `moorage serve` at a time.

Modes. `moorage.db` holds password hashes, webhook secrets and the audit log, and `keys/` the
token signing key and the encryption master keys, so nothing in the data folder is for other
local users: folders are 0700, files 0600. Three layers make that hold whatever umask the
service manager started us with:

1. Every entry point that writes the data folder sets umask 077 first (`private_umask`), so
   files other code creates (SQLite's `-wal` and `-shm`, the lock files, tar extraction)
   come out private too.
2. The files and folders Moorage creates itself get their mode explicitly
   (`private_dirs`, `create_private_file`), so the modes do not depend on layer 1.
3. A data folder left open by an earlier version is tightened when the server starts
   (`tighten`): the folder itself, its top-level entries and `keys/`. The blob tree is not
   walked (it may hold millions of files): behind a 0700 folder nobody else can reach it.

One server per folder. `ServeLock` is an exclusive `flock` on `serve.lock`, taken by the main
process of `moorage serve` and inherited by its workers (they are forked), and it records the
main process's PID. A new `serve` on the same folder therefore sees any process of a generation
still alive, even one whose main process is gone, and refuses instead of running beside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # group and other bits
LOCK_NAME = "serve.lock"
# How long a new server waits for the processes of an earlier generation whose main process
# is gone (killed with SIGKILL, their workers finishing requests in flight) before refusing.
STALE_GRACE_SECONDS = 10.0


def private_umask() -> None:
    """Files and folders this process creates are for its own user only (umask 077)."""
    os.umask(_OTHERS)


def private_dirs(path: Path) -> None:
    """`mkdir -p` that makes every folder it creates 0700 (`Path.mkdir(parents=True)` applies
    its mode to the last one only)."""
    if path.is_dir():
        return
    if not path.parent.is_dir():
        private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR)


def create_private_file(path: Path, exclusive: bool = False) -> int:
    """Open `path` to read and write, created 0600 if it does not exist (with `exclusive`,
    it must not exist); the descriptor, closed on exec."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)


def make_private(path: Path) -> bool:
    """Take group and other bits off `path` (never following a link); True if it changed."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode) or not mode & _OTHERS:
        return False
    os.chmod(path, stat.S_IMODE(mode) & ~_OTHERS)
    return True


def make_tree_private(root: Path) -> None:
    """`make_private` on `root` and everything below it: for a tree this process has just
    written from elsewhere, such as a restore's staging folder unpacked from an archive."""
    make_private(root)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            make_private(Path(folder) / name)


def tighten(data_dir: Path) -> list[str]:
    """Create the data folder 0700, or tighten an existing one; the paths it had to change.

    Only the folder, its top-level entries and the key folder are looked at: see the module's
    docstring. A path this user may not chmod is left as it is (and reported by the caller's
    own checks, such as the master key file's warning).
    """
    private_dirs(data_dir)
    candidates = [data_dir, *data_dir.iterdir()]
    keys = data_dir / "keys"
    if keys.is_dir() and not keys.is_symlink():
        candidates += sorted(keys.rglob("*"))
    changed = []
    for path in candidates:
        try:
            if make_private(path):
                changed.append(str(path))
        except PermissionError:
            continue
    return changed


class DataDirBusy(Exception):
    """Another generation holds the data folder; the message says which, and what to do."""


@dataclass(frozen=True)
class Owner:
    """What the holder of `serve.lock` wrote into it."""

    pid: int
    role: str
    listen: str


def _parse_owner(text: str) -> Owner | None:
    fields = text.split()
    if len(fields) != 3 or not fields[0].isdigit():
        return None
    return Owner(int(fields[0]), fields[1], fields[2])


def process_running(pid: int) -> bool:
    """True while `pid` exists and has not exited (a zombie has exited: it holds nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: existing is all we can tell
    return text[text.rindex(")") + 2:][:1] not in ("Z", "X")


def holders(path: Path) -> list[int]:
    """PIDs of the processes with `path` open (Linux; empty where /proc cannot tell)."""
    try:
        target = path.stat()
    except OSError:
        return []
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    st = fd.stat()
                    if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                        found.append(int(entry.name))
                        break
    return sorted(p for p in found if p != os.getpid())


class ServeLock:
    """The exclusive lock on `<data_dir>/serve.lock` (see the module's docstring).

    The descriptor stays open for the life of the process and is deliberately not closed on
    fork: granian's workers inherit it, so the lock lasts as long as any process of this
    generation. It is released by the kernel when the last of them exits, however it exits.
    """

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._clock, self._sleep = clock, sleep
        self._fd: int | None = None

    def acquire(self, role: str, listen: str = "-", grace: float = STALE_GRACE_SECONDS,
                notice: Callable[[str], None] = lambda _message: None) -> None:
        """Take the lock, or raise DataDirBusy.

        A holder whose recorded main process is running is a live generation: refused at
        once. Otherwise the holders are what is left of a generation whose main process died
        (workers being killed, or finishing requests in flight): they get `grace` seconds to
        exit, then they are named in the refusal.
        """
        fd = create_private_file(self.path)
        deadline = self._clock() + grace
        waiting = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                owner = _parse_owner(os.pread(fd, 256, 0).decode(errors="replace"))
                if owner is not None and process_running(owner.pid):
                    raise DataDirBusy(self._live_message(owner))
                if self._clock() >= deadline:
                    raise DataDirBusy(self._stale_message(owner, grace))
                if not waiting:
                    waiting = True
                    notice(f"processes of an earlier server still hold {self.data_dir}; "
                           f"waiting up to {grace:g} s for them to exit")
                self._sleep(0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {role} {listen}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # close-on-exec (child commands do not get it); forked workers do

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _live_message(self, owner: Owner) -> str:
        if owner.role != "serve":
            return (f"`moorage {owner.role}` (PID {owner.pid}) is writing the data folder "
                    f"{self.data_dir}; wait until it has finished")
        return (f"another `moorage serve` (PID {owner.pid}, on {owner.listen}) is already "
                f"serving the data folder {self.data_dir}; stop it first, or use a "
                f"--data-dir of its own")

    def _stale_message(self, owner: Owner | None, grace: float) -> str:
        pids = " ".join(map(str, holders(self.path)))
        earlier = (f" of an earlier `moorage {owner.role}` (PID {owner.pid}, gone)"
                   if owner is not None else "")
        named = f": PIDs {pids}; stop them (kill {pids})" if pids else "; stop them"
        return (f"processes{earlier} still hold the data folder {self.data_dir} after "
                f"{grace:g} s{named}, then start again")
