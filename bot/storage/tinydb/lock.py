"""One process at a time on a database file: an flock on a lock file beside it.

`TinyDBStorage` takes the lock when it opens the database and holds it until it closes, so a
second bot (or `feedbot migrate`) on the same file is refused instead of both writing it. The
kernel drops an flock when its holder dies, even by SIGKILL: a stale lock file is never in the
way. The file holds the holder's PID, for the refusal's message; it stays after a close (taking
it away would race with a process opening it just then)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from bot.errors import FeedbotError

log = logging.getLogger(__name__)


class DatabaseInUse(FeedbotError):
    """Another process holds the database file."""

    kind = "storage"


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def in_use_message(db_path: Path, holder: str) -> str:
    return (
        f"{db_path} is in use by another feedbot process ({holder}, holding {lock_path(db_path)}):"
        " stop it first, or point FEEDBOT_DB at another file"
    )


class DatabaseLock:
    """The lock of one database file, held from `acquire` to `release`."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; DatabaseInUse when another process holds it. A folder where no lock
        file can be made (read-only) is logged and left unlocked: nobody can write there."""
        path = lock_path(self.db_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            log.warning("%s: no lock file (%s); not locked", path, exc.strerror)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DatabaseInUse(in_use_message(self.db_path, holder)) from None
        with contextlib.suppress(OSError):  # the PID is for messages only (a full disk: none)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def holder_of(db_path: Path) -> str | None:
    """Who holds the database's lock now ("process 123"), or None when nobody does. Creates
    nothing: no lock file means no holder."""
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)
    return None


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f"process {int(os.pread(fd, 32, 0).decode().strip())}"
    return "a process"
