"""The TinyDB engine: the durable part of the TinyDB backend.

Durability model
- The whole database lives in memory (TinyDB's layout, {table: {doc_id: document}}; tables are
  `DocTable`s). On disk it is a snapshot file in that layout plus an append-only change log.
- A durable commit appends one line to the log: every document changed since the previous line,
  in full (or null for a removal), then fsync. A commit costs the size of what changed, not of the
  database; change sets that arrive while the worker is busy share one line (group commit).
- Each line is framed and checksummed (RS, crc32 in hex, space, JSON, newline; see `frame`), so
  replay recognises every complete line: one damaged in the middle (a bad disk) is skipped and
  the file kept aside as `<log>.damaged-<time>`; the lines after it are applied. Lines written
  before the frame existed (bare JSON) are still read.
- A crash can cut only the last line short; it was never acknowledged, so reopening ignores it.
- A failed append (disk full, I/O error) is cut back to the last complete line, the change sets
  in it are undone in memory, and the callers get `StorageWriteError`: nothing they were told
  about is lost, and nothing they were not told about appears later. If the file cannot be cut
  back, appends move on to the next log file, so the torn bytes stay a torn last line.
- A snapshot that cannot be written (disk full) is logged and tried again later; the logs it
  would have replaced stay until one is written.
- Tables of another program found in the file are kept as they are.
- When the log outgrows an eighth of the snapshot (and a floor of a few MB), it is folded in:
  appends move to a fresh log and a background thread writes the new snapshot atomically (temp
  file written piece by piece, fsync, `os.replace`, fsync of the folder), then deletes the older
  logs. The snapshot names the first log it does not contain, so a crash anywhere in between
  replays exactly the missing lines. Folding that early keeps a start after a crash short (it
  replays at most about an eighth of the snapshot), for one more snapshot write per 8 × its size
  logged.
- Opening replays the logs and folds them into a fresh snapshot in the background (the open does
  not wait for it); closing folds everything in, so a cleanly stopped bot leaves one
  self-contained file that `TinyDB(path)` can read.
- Changes whose loss is harmless (next-check times, ETags) are committed lazily: they ride along
  with the next log line, or are written on their own after `lazy_flush_s`.

`Engine` is the durable part: the tables in memory, replay, savepoints, commits and folds.
Call it only from the backend's worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.errors import StorageWriteError
from bot.storage.tinydb.changelog import ChangeLog
from bot.storage.tinydb.doctable import DocTable
from bot.storage.tinydb.files import AtomicJSONStorage
from bot.storage.tinydb.layout import LOG_TABLE, TABLES, dumps

log = logging.getLogger(__name__)

#: the log is folded into the snapshot once it is larger than this and than
#: `FOLD_FRACTION` of the snapshot: a start after a crash replays at most about that much
LOG_FLOOR_BYTES = 8 * 2**20
FOLD_FRACTION = 1 / 8
#: a fold of a snapshot this big hands the memory freed since the last one back to the system
TRIM_AFTER_BYTES = 32 * 2**20
#: and so does a log line this big
TRIM_AFTER_LINE_BYTES = 4 * 2**20
#: after a snapshot could not be written (disk full), the next try waits this long
SNAPSHOT_RETRY_S = 60.0


def release_freed_memory() -> None:
    """Hand the memory freed after reading the file back to the system.

    Reading a large snapshot leaves hundreds of MB of freed parse buffers and base64 text in
    glibc's heap, which it keeps (RSS 690 MB instead of 600 MB at 100k feeds). glibc only;
    elsewhere nothing happens."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Engine:
    def __init__(
        self, path: str | Path, *, lazy_flush_s: float = 30.0, log_floor: int = LOG_FLOOR_BYTES
    ) -> None:
        self.path = Path(path)
        self.storage = AtomicJSONStorage(self.path)
        data = self.storage.read() or {}
        self._tables = {
            name: DocTable(name, data.setdefault(name, {}), binary=name in ("feeds", "chats"))
            for name in TABLES
        }
        #: another program's tables in the same file: kept, written back as they were
        self._foreign = b"".join(
            b"," + dumps(name) + b":" + dumps(docs)
            for name, docs in data.items()
            if name not in (*TABLES, LOG_TABLE)
        )
        self._snapshot_retry_at = 0.0
        self._in_savepoint = False
        self.feeds = self._tables["feeds"]
        self.subs = self._tables["subscriptions"]
        self.chats = self._tables["chats"]
        self.outbox = self._tables["outbox"]
        self.meta = self._tables["meta"]
        self.messages = self._tables["messages"]
        self.digests = self._tables["digests"]
        self.lazy_flush_s = lazy_flush_s
        self.log_floor = log_floor
        self._last_flush = time.monotonic()
        self.bytes_written = 0
        self.snapshot_bytes = self.path.stat().st_size if self.path.exists() else 0
        #: one thread writes snapshots so that appends never wait for a full write
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix="feedbot-snapshot")
        self._snapshot_job: Future[int] | None = None
        self.log = ChangeLog(self.path)
        replayed = self._replay(data)
        self._build_indexes()
        del data
        if replayed or not self.path.exists():
            # one self-contained file again, the logs gone: written in the background (replay
            # named the next log, so a crash before it is done replays them again), except for
            # a new database, which gets its file before the first commit
            self.snapshot(wait=not self.path.exists())
        release_freed_memory()

    # ----------------------------------------------------------------- internals
    def _build_indexes(self) -> None:
        """Rebuild what the queries keep beside the tables (after replay and after a rollback)."""

    def _replay(self, data: dict[str, dict[str, Any]]) -> bool:
        """Apply the logs the snapshot does not contain; whether there were any."""
        first = int(data.get(LOG_TABLE, {}).get("1", {}).get("next", 0))
        generations = [g for g in self.log.generations() if g >= first]
        for generation in generations:
            records, damaged = self.log.read(generation)
            skipped = sum(not self._apply(record) for record in records)
            if damaged or skipped:
                aside = self.log.keep_aside(generation)
                log.error(
                    "change log %s: %d damaged line(s) and %d unusable change(s) skipped, every "
                    "complete line applied; the file is kept as %s",
                    self.log.path(generation), damaged, skipped, aside,
                )
        self.log.generation = max([first, *generations])
        self.log.delete_before(first)  # folded into the snapshot already
        return bool(generations)

    def _apply(self, record: Any) -> bool:
        """Replay one log record; False when it cannot be used (and is skipped)."""
        if not isinstance(record, list) or not 3 <= len(record) <= 5:
            return False
        table, doc_id, *change = record
        target = self._tables.get(table) if isinstance(table, str) else None
        if target is None or not isinstance(doc_id, str) or not doc_id.isdigit():
            return False
        if change[0] is not None and not isinstance(change[0], dict):
            return False
        return target.apply(doc_id, *change)

    def snapshot(self, *, wait: bool = False) -> None:
        """Fold the log into a new snapshot, written by the background thread."""
        self._settle_snapshot(wait=True)  # one at a time
        self._append_changes()
        generation = self.log.rotate()
        parts: list[bytes | dict[str, Any]] = [
            b'{"' + LOG_TABLE.encode() + b'":{"1":{"next":%d}}' % generation
        ]
        for name, table in self._tables.items():
            parts.append(b"," + dumps(name) + b":")
            parts.extend(table.snapshot_parts())
        parts.append(self._foreign + b"}")
        self._snapshot_job = self._snapshotter.submit(self._write_snapshot, parts, generation)
        if wait:
            self._settle_snapshot(wait=True)

    def _write_snapshot(self, parts: list[bytes | dict[str, Any]], generation: int) -> int:
        size = self.storage.flush(p if isinstance(p, bytes) else dumps(p) for p in parts)
        self.log.delete_before(generation)
        if size >= TRIM_AFTER_BYTES:
            release_freed_memory()  # what the commits since the last fold freed
        return size

    def _settle_snapshot(self, *, wait: bool) -> bool:
        """Account for the snapshot in flight once it is written; False while it still runs."""
        job = self._snapshot_job
        if job is None:
            return True
        if not wait and not job.done():
            return False
        self._snapshot_job = None
        try:
            self.snapshot_bytes = job.result()
        except OSError:
            # the logs it would have replaced stay, so nothing is lost: try again later
            log.exception("could not write the snapshot %s; the change log keeps everything",
                          self.path)
            self._snapshot_retry_at = time.monotonic() + SNAPSHOT_RETRY_S
            return True
        self.bytes_written += self.snapshot_bytes
        return True

    def _append_changes(self) -> None:
        """One log line with every change not yet written; they stay pending if it fails."""
        records = [record for table in self._tables.values() for record in table.take_changes()]
        self._last_flush = time.monotonic()
        if records:
            written = self.log.append(b"[" + b",".join(records) + b"]")
            self.bytes_written += written
            if written >= TRIM_AFTER_LINE_BYTES:  # a big group commit freed as much
                release_freed_memory()
        for table in self._tables.values():
            table.changes_written()

    def _snapshot_if_due(self) -> None:
        if (
            self.log.size > max(self.log_floor, self.snapshot_bytes * FOLD_FRACTION)
            and time.monotonic() >= self._snapshot_retry_at
            and self._settle_snapshot(wait=False)
        ):
            self.snapshot()

    def savepoint(self) -> None:
        """Start a durable change set: if its commit cannot be written, it is undone."""
        self._in_savepoint = True
        for table in self._tables.values():
            table.savepoint()

    def commit(self, *, durable: bool = True) -> None:
        """End a change set: on disk now, or (for harmless-to-lose changes) soon.

        A durable commit that cannot be written raises StorageWriteError; the change set since
        `savepoint()` is undone (without one, its changes wait for the next line)."""
        if not durable:
            self.flush_if_due()
            return
        try:
            self._append_changes()
        except StorageWriteError:
            if self._in_savepoint:
                for table in self._tables.values():
                    table.rollback()
                self._build_indexes()
            raise
        finally:
            self._in_savepoint = False
            for table in self._tables.values():
                table.release()
        self._snapshot_if_due()

    def has_unwritten_changes(self) -> bool:
        return any(table.has_changes for table in self._tables.values())

    def flush_if_due(self) -> None:
        """Write lazily-committed changes once they are `lazy_flush_s` old."""
        due = time.monotonic() - self._last_flush >= self.lazy_flush_s
        if due and self.has_unwritten_changes():
            try:
                self.commit(durable=True)
            except StorageWriteError as exc:  # harmless to lose, and kept for the next line
                log.warning("lazy changes not written yet: %s", exc)

    def close(self) -> None:
        """Fold everything into the snapshot: a cleanly stopped bot leaves one file."""
        try:
            if self.log.size or self.log.generations() or self.has_unwritten_changes():
                self.snapshot(wait=True)
            else:
                self._settle_snapshot(wait=True)
        except StorageWriteError as exc:  # what is in the logs is replayed at the next start
            log.error("the last lazy changes could not be written: %s", exc)
        finally:
            self.log.close()
            self._snapshotter.shutdown(wait=True)

