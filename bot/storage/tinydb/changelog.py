"""The append-only change log: framed, checksummed lines, fsynced; replay of what is on disk."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.errors import StorageWriteError
from bot.storage.tinydb.files import fsync_dir
from bot.storage.tinydb.layout import loads

log = logging.getLogger(__name__)


#: starts every framed log line (ASCII record separator: JSON text never contains it raw)
RS = b"\x1e"


def frame(body: bytes) -> bytes:
    """One log line: RS, the crc32 of `body` in 8 hex digits, a space, `body`, a newline."""
    return RS + b"%08x " % zlib.crc32(body) + body + b"\n"


def _unframe(piece: bytes) -> list[Any] | None:
    """The records of one framed line (without its RS), or None when it is damaged."""
    if len(piece) < 10 or piece[8:9] != b" ":
        return None
    body = piece[9:]
    try:
        if int(piece[:8], 16) != zlib.crc32(body):
            return None
        records = loads(body)
    except ValueError:
        return None
    return records if isinstance(records, list) else None


def parse_log(data: bytes) -> tuple[list[Any], int]:
    """The records of every complete line of a log, and how many lines were damaged.

    The part after the last newline is a torn last line (a crash mid-append): never
    acknowledged, so ignored. A framed line is recognised by its checksum wherever it starts,
    even glued to a torn one; a bare-JSON line (written before frames) must parse whole."""
    records: list[Any] = []
    damaged = 0
    for line in data.split(b"\n")[:-1]:
        if not line.strip():
            continue
        if RS not in line:
            try:
                parsed = loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                records.extend(parsed)
            else:
                damaged += 1
            continue
        head, *pieces = line.split(RS)
        damaged += bool(head.strip())
        for piece in pieces:
            found = _unframe(piece)
            if found is None:
                damaged += 1
            else:
                records.extend(found)
    return records, damaged


class ChangeLog:
    """The append-only log files `<db>.log.<generation>` next to the snapshot."""

    def __init__(self, snapshot: Path) -> None:
        self.folder = snapshot.parent
        self.prefix = snapshot.name + ".log."
        self.generation = 0
        self.size = 0
        self._fd: int | None = None
        #: length of the open file up to its last complete line
        self._good = 0
        #: the system calls appends go through (tests put fault injectors here)
        self.write: Callable[[int, memoryview], int] = os.write
        self.sync: Callable[[int], None] = os.fsync
        self.truncate: Callable[[int, int], None] = os.ftruncate

    def generations(self) -> list[int]:
        found = []
        for path in self.folder.glob(self.prefix + "*"):
            suffix = path.name[len(self.prefix):]
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def path(self, generation: int) -> Path:
        return self.folder / f"{self.prefix}{generation}"

    def read(self, generation: int) -> tuple[list[Any], int]:
        """Every complete line's records, and the number of damaged lines (see `parse_log`)."""
        return parse_log(self.path(generation).read_bytes())

    def keep_aside(self, generation: int) -> Path:
        """Keep a damaged log under another name, which no fold deletes."""
        path = self.path(generation)
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        try:
            os.link(path, aside)  # no data to copy: works on a full disk too
        except OSError:
            shutil.copyfile(path, aside)
        fsync_dir(self.folder)
        return aside

    def _open(self) -> int:
        if self._fd is None:
            path = self.path(self.generation)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                if not torn:
                    fsync_dir(self.folder)
            except BaseException:
                os.close(fd)
                raise
            if torn:  # never glue a line onto a torn one: start the next log instead
                os.close(fd)
                self.rotate()
                return self._open()
            self._fd, self._good = fd, size
        return self._fd

    def append(self, body: bytes) -> int:
        """Append one framed line and fsync it; on failure cut the file back to its last
        complete line and raise StorageWriteError."""
        line = frame(body)
        try:
            fd = self._open()
            view = memoryview(line)
            while view:
                view = view[self.write(fd, view):]
            self.sync(fd)
        except OSError as exc:
            self._take_back()
            raise StorageWriteError.from_os_error(self.path(self.generation), exc) from exc
        self._good += len(line)
        self.size += len(line)
        return len(line)

    def _take_back(self) -> None:
        if self._fd is None:
            return
        try:
            self.truncate(self._fd, self._good)
            self.sync(self._fd)
        except OSError:
            log.exception("could not cut %s back; appends move to the next log",
                          self.path(self.generation))
            self.rotate()

    def rotate(self) -> int:
        """Start the next log; returns its generation."""
        self.close()
        self.generation += 1
        self.size = 0
        return self.generation

    def delete_before(self, generation: int) -> None:
        for old in self.generations():
            if old < generation:
                with contextlib.suppress(FileNotFoundError):
                    self.path(old).unlink()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

