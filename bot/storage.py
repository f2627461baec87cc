"""Persistence: the only module that knows TinyDB.

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
- When the log outgrows the snapshot (and a floor of a few MB), it is folded in: appends move to a
  fresh log and a background thread writes the new snapshot atomically (temp file, fsync,
  `os.replace`, fsync of the folder), then deletes the older logs. The snapshot names the first
  log it does not contain, so a crash anywhere in between replays exactly the missing lines.
- Opening replays the logs and writes a fresh snapshot; closing folds everything in, so a cleanly
  stopped bot leaves one self-contained file that `TinyDB(path)` can read.
- Changes whose loss is harmless (next-check times, ETags) are committed lazily: they ride along
  with the next log line, or are written on their own after `lazy_flush_s`.

All I/O runs in one dedicated worker thread (plus the snapshot writer), so the event loop never
blocks on disk and every operation sees a consistent database. `Store` is the async face used by
the rest of the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from tinydb.storages import Storage

from bot.errors import StorageWriteError
from bot.models import Chat, Delivery, Feed, Subscription

log = logging.getLogger(__name__)
T = TypeVar("T")

#: the log is folded into the snapshot once it is larger than this and than the snapshot
LOG_FLOOR_BYTES = 8 * 2**20
#: after a snapshot could not be written (disk full), the next try waits this long
SNAPSHOT_RETRY_S = 60.0


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class AtomicJSONStorage(Storage):
    """TinyDB storage kept in memory; the file is a snapshot written atomically on demand.

    Stock `JSONStorage` re-reads the file on every query and rewrites it in place (truncate, then
    write), so a crash mid-write leaves an unreadable database. Here reads come from memory and
    `write()` only records the new state; `flush()` persists it. The file keeps TinyDB's layout,
    so `TinyDB(path)` can still open it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict[str, dict[str, Any]] | None = load_snapshot(self.path) or None

    def read(self) -> dict[str, dict[str, Any]] | None:
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data

    def flush(self, payload: bytes) -> int:
        """Write a snapshot the caller encoded (the tables cache their documents' JSON)."""
        atomic_write(self.path, payload)
        return len(payload)

    def close(self) -> None:
        pass


class UnusableDatabase(Exception):
    """The database file cannot be used as it is; str() is one line: the file, what is wrong
    and what to do. `forceable`: `feedbot run --force` may start a database there anyway."""

    def __init__(self, message: str, *, forceable: bool = False) -> None:
        super().__init__(message)
        self.forceable = forceable


_RESTORE = "move it aside and restore a backup, or move it aside to start a new database"


def load_snapshot(path: Path) -> dict[str, Any]:
    """The snapshot's tables ({} when there is no file or it is empty). UnusableDatabase when
    it cannot be read or is not a feedbot database in a usable shape; the file is not touched."""
    if path.is_dir():
        raise UnusableDatabase(
            f"{path} is a directory, not a database file: move it aside, or point FEEDBOT_DB "
            "at a file"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UnusableDatabase(
            f"{path} cannot be read ({exc.strerror}): fix its permissions, or {_RESTORE}"
        ) from exc
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UnusableDatabase(f"{path} is damaged ({_json_problem(exc)}): {_RESTORE}") from exc
    problem = shape_problem(data)
    if problem is not None:
        raise UnusableDatabase(f"{path} is not a usable feedbot database ({problem}): {_RESTORE}")
    return dict(data)


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at byte {exc.pos}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text at byte {exc.start}"
    return f"not JSON: {exc}"


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


#: the fields each of our tables' documents must hold, and their JSON types (what reading them
#: relies on; other fields have defaults)
_REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "feeds": (("url", str),),
    "subscriptions": (("chat_id", int), ("feed_url", str)),
    "chats": (("id", int),),
    "outbox": (
        ("id", str), ("chat_id", int), ("feed_url", str), ("entry_key", str),
        ("message", list), ("created", (int, float)),
    ),
    "meta": (("seq", int),),
    "log": (("next", int),),
}


def shape_problem(data: Any) -> str | None:
    """What keeps `data` (a decoded snapshot) from being read as feedbot's tables, or None.
    Tables of other names are not looked at: they belong to someone else and are kept."""
    if not isinstance(data, dict):
        return f"it holds a JSON {_json_kind(data)}, not an object of tables"
    for name, required in _REQUIRED.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            return f"table {name!r} is a JSON {_json_kind(table)}, not a table"
        for doc_id, doc in table.items():
            if not doc_id.isdigit() or not isinstance(doc, dict):
                return _document_problem(name, doc_id, doc)
            for field_name, kind in required:
                value = doc.get(field_name, _MISSING)
                if type(value) is bool or not isinstance(value, kind):
                    return _document_problem(name, doc_id, doc)
    return None


def _document_problem(table: str, doc_id: str, doc: Any) -> str:
    where = f"document {doc_id!r} of table {table!r}"
    if not doc_id.isdigit():
        return f"{where}: its id is not a number"
    if not isinstance(doc, dict):
        return f"{where} is a JSON {_json_kind(doc)}, not a document"
    for field_name, kind in _REQUIRED[table]:
        if field_name not in doc:
            return f"{where} has no {field_name!r}"
        value = doc[field_name]
        if type(value) is bool or not isinstance(value, kind):
            return f"{where}: {field_name!r} is a JSON {_json_kind(value)}"
    return f"{where} cannot be read"


def check_database(path: Path, *, force: bool = False) -> str | None:
    """Start-up check of the data folder and the database file: None when the bot may start,
    else one line naming the file, what is wrong and what to do. Nothing is changed, except
    that a missing data folder is created. Without `force` an empty file or one holding only
    another program's tables is refused rather than taken over."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"{path}: its data folder {folder} cannot be created ({exc.strerror}): create it, "
            "or point FEEDBOT_DB at a file in a writable folder"
        )
    try:
        data = load_snapshot(path)
    except UnusableDatabase as exc:
        return str(exc)
    problem = _folder_problem(path)
    if problem is not None:
        return problem
    if force:
        return None
    if path.exists() and not data:
        if path.stat().st_size == 0 or not path.read_bytes().strip():
            return (
                f"{path} is an empty file: feedbot never leaves one, so it is not feedbot's; "
                "move it aside or restore a backup, or run `feedbot run --force` to start a "
                "new database in it"
            )
    ours = [name for name in data if name in (*TABLES, LOG_TABLE)]
    if data and not ours:
        return (
            f"{path} is not a feedbot database: it holds another program's tables "
            f"({', '.join(sorted(data))}); point FEEDBOT_DB at another file, or run "
            "`feedbot run --force` to add feedbot's tables beside them (theirs are kept)"
        )
    return None


def _folder_problem(path: Path) -> str | None:
    """Can the bot create, write and remove files beside `path` (snapshots, logs)?"""
    try:
        fd, probe = tempfile.mkstemp(prefix=".feedbot-probe.", dir=path.parent)
    except OSError as exc:
        return (
            f"{path}: its data folder {path.parent} is not writable ({exc.strerror}): make it "
            "writable, free some space, or point FEEDBOT_DB at a file in a writable folder"
        )
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class DocTable:
    """One table as TinyDB lays it out ({doc_id: document}), with each document's JSON cached.

    TinyDB's own Table rebuilds the whole table on every update (O(table size) per write) and
    copies documents on every read; at thousands of feeds that dominated a poll cycle. Here a
    write replaces one document, drops its cached JSON and marks it changed for the next log line.
    """

    def __init__(self, name: str, docs: dict[str, Any]) -> None:
        self.name = name
        self.docs: dict[str, dict[str, Any]] = docs
        self.next_id = max((int(k) for k in docs), default=0) + 1
        self._json: dict[str, bytes] = {}
        #: changed since the last log line: doc id -> changed fields, or None for all of it
        self._changed: dict[str, set[str] | None] = {}
        #: while a savepoint is open: each document changed since, as it was then (None: absent)
        self._undo: dict[str, dict[str, Any] | None] | None = None
        self._changed_at_savepoint: dict[str, set[str] | None] = {}

    def get(self, doc_id: str | None) -> dict[str, Any] | None:
        return self.docs.get(doc_id) if doc_id is not None else None

    def insert(self, doc: dict[str, Any]) -> str:
        doc_id = str(self.next_id)
        self.put(doc_id, doc)
        return doc_id

    def put(self, doc_id: str, doc: dict[str, Any]) -> None:
        self._remember(doc_id)
        old = self.docs.get(doc_id)
        self.docs[doc_id] = doc
        self._json.pop(doc_id, None)
        self.next_id = max(self.next_id, int(doc_id) + 1)
        if old is None or (doc_id in self._changed and self._changed[doc_id] is None):
            self._changed[doc_id] = None
        elif old.keys() - doc.keys():
            self._changed[doc_id] = None  # a field went away: log the whole document
        else:
            # only the fields that differ: a feed's next-check time without its seen-set
            fields = {key for key, value in doc.items() if old.get(key, _MISSING) != value}
            self._changed[doc_id] = fields | (self._changed.get(doc_id) or set())

    def update(self, doc_id: str, fields: dict[str, Any]) -> None:
        doc = self.docs.get(doc_id)
        if doc is not None:
            self.put(doc_id, {**doc, **fields})

    def remove(self, doc_id: str) -> None:
        self._remember(doc_id)
        if self.docs.pop(doc_id, None) is not None:
            self._json.pop(doc_id, None)
            self._changed[doc_id] = None

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.docs.items())

    @property
    def has_changes(self) -> bool:
        return bool(self._changed)

    def _encoded(self, doc_id: str, doc: dict[str, Any]) -> bytes:
        encoded = self._json.get(doc_id)
        if encoded is None:
            encoded = self._json[doc_id] = _dumps(doc)
        return encoded

    def take_changes(self) -> list[bytes]:
        """Log records for what changed since the last call.

        [table, doc_id, document] replaces a document, [table, doc_id, null] removes it and
        [table, doc_id, fields, 1] updates some of its fields.
        """
        prefix = _dumps(self.name) + b',"'
        records = []
        for doc_id, fields in self._changed.items():
            doc = self.docs.get(doc_id)
            if doc is None:
                body = b"null"
            elif fields is None:
                body = self._encoded(doc_id, doc)
            else:
                body = _dumps({key: doc[key] for key in fields}) + b",1"
            records.append(b"[" + prefix + doc_id.encode() + b'",' + body + b"]")
        return records

    def changes_written(self) -> None:
        """The records `take_changes` gave are on disk."""
        self._changed.clear()

    # savepoints: a durable change set that could not be written is undone
    def _remember(self, doc_id: str) -> None:
        if self._undo is not None and doc_id not in self._undo:
            self._undo[doc_id] = self.docs.get(doc_id)

    def savepoint(self) -> None:
        self._undo = {}
        self._changed_at_savepoint = dict(self._changed)  # its field sets are never mutated

    def release(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        """Every document back as it was at the savepoint, and so is what waits for the log."""
        if self._undo is None:
            return
        for doc_id, doc in self._undo.items():
            self._json.pop(doc_id, None)
            if doc is None:
                self.docs.pop(doc_id, None)
            else:
                self.docs[doc_id] = doc
        self._changed = self._changed_at_savepoint
        self._undo = None

    def apply(self, doc_id: str, doc: dict[str, Any] | None, patch: int = 0) -> bool:
        """Replay one log record (already on disk, so not marked changed). False for a patch of
        a document that is not there (the line creating it was damaged): it is skipped."""
        self._json.pop(doc_id, None)
        if doc is None:
            self.docs.pop(doc_id, None)
            return True
        if patch:
            base = self.docs.get(doc_id)
            if base is None:
                return False
            doc = {**base, **doc}
        self.docs[doc_id] = doc
        self.next_id = max(self.next_id, int(doc_id) + 1)
        return True

    def snapshot_parts(self) -> list[bytes | dict[str, Any]]:
        """The table's JSON as chunks to join in the snapshot thread.

        Documents not encoded yet are passed as they are: stored documents are replaced, never
        changed in place, so encoding them later in another thread is safe.
        """
        parts: list[bytes | dict[str, Any]] = [b"{"]
        for doc_id, doc in self.docs.items():
            if len(parts) > 1:
                parts.append(b",")
            parts.append(b'"' + doc_id.encode() + b'":')
            parts.append(self._json.get(doc_id) or doc)
        parts.append(b"}")
        return parts


_MISSING = object()
TABLES = ("feeds", "subscriptions", "chats", "outbox", "meta")
#: table holding the number of the first log a snapshot does not contain
LOG_TABLE = "log"


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
        records = json.loads(body)
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
                parsed = json.loads(line)
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


class SubscriptionIndex:
    """(chat id, feed URL) -> document id, also findable by feed and by chat in O(1).

    A poll cycle asks for each feed's subscriptions; scanning every subscription each time made
    a cycle O(N²) in the number of feeds."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, str], str] = {}
        self._by_feed: dict[str, dict[int, None]] = {}
        self._by_chat: dict[int, dict[str, None]] = {}

    def get(self, key: tuple[int, str]) -> str | None:
        return self._ids.get(key)

    def __contains__(self, key: tuple[int, str]) -> bool:
        return key in self._ids

    def __setitem__(self, key: tuple[int, str], doc_id: str) -> None:
        chat_id, url = key
        self._ids[key] = doc_id
        self._by_feed.setdefault(url, {})[chat_id] = None
        self._by_chat.setdefault(chat_id, {})[url] = None

    def pop(self, key: tuple[int, str]) -> str | None:
        doc_id = self._ids.pop(key, None)
        if doc_id is not None:
            chat_id, url = key
            _discard(self._by_feed, url, chat_id)
            _discard(self._by_chat, chat_id, url)
        return doc_id

    def chats_of(self, url: str) -> list[int]:
        return list(self._by_feed.get(url, ()))

    def feeds_of(self, chat_id: int) -> list[str]:
        return list(self._by_chat.get(chat_id, ()))

    def items(self) -> list[tuple[tuple[int, str], str]]:
        return list(self._ids.items())


def _discard(index: dict[Any, dict[Any, None]], key: Any, member: Any) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(member, None)
        if not members:
            del index[key]


class Database:
    """Synchronous database; call it only from the Store's worker thread."""

    def __init__(
        self, path: str | Path, *, lazy_flush_s: float = 30.0, log_floor: int = LOG_FLOOR_BYTES
    ) -> None:
        self.path = Path(path)
        self.storage = AtomicJSONStorage(self.path)
        data = self.storage.read() or {}
        self._tables = {name: DocTable(name, data.setdefault(name, {})) for name in TABLES}
        #: another program's tables in the same file: kept, written back as they were
        self._foreign = b"".join(
            b"," + _dumps(name) + b":" + _dumps(docs)
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
        self.lazy_flush_s = lazy_flush_s
        self.log_floor = log_floor
        self._last_flush = time.monotonic()
        self.bytes_written = 0
        self.snapshot_bytes = self.path.stat().st_size if self.path.exists() else 0
        #: one thread writes snapshots so that appends never wait for a full write
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix="feedbot-snapshot")
        self._snapshot_job: Future[int] | None = None
        self.log = ChangeLog(self.path)
        self._replay(data)
        self._build_indexes()

    # ----------------------------------------------------------------- internals
    def _build_indexes(self) -> None:
        self._feed_ids = {d["url"]: i for i, d in self.feeds.items()}
        self._chat_ids = {int(d["id"]): i for i, d in self.chats.items()}
        self._sub_ids = SubscriptionIndex()
        for doc_id, doc in self.subs.items():
            self._sub_ids[int(doc["chat_id"]), doc["feed_url"]] = doc_id
        self._outbox_ids = {d["id"]: i for i, d in self.outbox.items()}

    def _replay(self, data: dict[str, dict[str, Any]]) -> None:
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
        if generations or not self.path.exists():
            self.snapshot(wait=True)  # one self-contained file again; the logs go
        else:
            self.log.delete_before(first)

    def _apply(self, record: Any) -> bool:
        """Replay one log record; False when it cannot be used (and is skipped)."""
        if not isinstance(record, list) or not 3 <= len(record) <= 4:
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
            parts.append(b"," + _dumps(name) + b":")
            parts.extend(table.snapshot_parts())
        parts.append(self._foreign + b"}")
        self._snapshot_job = self._snapshotter.submit(self._write_snapshot, parts, generation)
        if wait:
            self._settle_snapshot(wait=True)

    def _write_snapshot(self, parts: list[bytes | dict[str, Any]], generation: int) -> int:
        payload = b"".join(p if isinstance(p, bytes) else _dumps(p) for p in parts)
        self.storage.flush(payload)
        self.log.delete_before(generation)
        return len(payload)

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
            self.bytes_written += self.log.append(b"[" + b",".join(records) + b"]")
        for table in self._tables.values():
            table.changes_written()

    def _snapshot_if_due(self) -> None:
        if (
            self.log.size > max(self.log_floor, self.snapshot_bytes)
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

    def _upsert(
        self,
        table: DocTable,
        index: dict[Any, str] | SubscriptionIndex,
        key: Any,
        data: dict[str, Any],
    ) -> None:
        doc_id = index.get(key)
        if doc_id is None:
            index[key] = table.insert(data)
        else:
            table.put(doc_id, data)

    # --------------------------------------------------------------------- feeds
    def get_feed(self, url: str) -> Feed | None:
        doc = self.feeds.get(self._feed_ids.get(url))
        return _feed(doc) if doc is not None else None

    def all_feeds(self) -> list[Feed]:
        return [_feed(d) for _, d in self.feeds.items()]

    def save_feed(self, feed: Feed) -> None:
        doc = feed.to_dict()
        doc["seen"] = list(feed.seen)  # stored documents are never changed in place
        self._upsert(self.feeds, self._feed_ids, feed.url, doc)

    def due_feeds(self, now: float) -> list[Feed]:
        active = {url for (_, url), doc_id in self._sub_ids.items() if self._sub_active(doc_id)}
        due = [
            _feed(d)
            for _, d in self.feeds.items()
            if d["url"] in active and not d.get("retired") and d.get("next_check", 0.0) <= now
        ]
        return sorted(due, key=lambda f: f.next_check)

    def _sub_active(self, doc_id: str) -> bool:
        doc = self.subs.get(doc_id)
        if doc is None or doc.get("paused"):
            return False
        chat = self.chats.get(self._chat_ids.get(int(doc["chat_id"])))
        return chat is None or not chat.get("paused")

    def delete_feed(self, url: str) -> None:
        doc_id = self._feed_ids.pop(url, None)
        if doc_id is not None:
            self.feeds.remove(doc_id)

    def move_feed(self, old_url: str, new_url: str) -> None:
        """A feed moved permanently: its state and subscriptions follow; duplicates merge."""
        feed = self.get_feed(old_url)
        if feed is None or old_url == new_url:
            return
        target = self.get_feed(new_url)
        if target is not None:
            # the next successful check trims this back to the feed's cap
            target.seen = merge_recent(feed.seen, target.seen, len(target.seen) + len(feed.seen))
            feed = target
        feed.url = new_url
        self.delete_feed(old_url)
        self.save_feed(feed)
        for sub in self.subscriptions_for_feed(old_url):
            self.remove_subscription(sub.chat_id, old_url)
            if (sub.chat_id, new_url) not in self._sub_ids:
                sub.feed_url = new_url
                self.save_subscription(sub)
        for doc_id, doc in self.outbox.items():
            if doc["feed_url"] == old_url:
                self.outbox.update(doc_id, {"feed_url": new_url})

    # ------------------------------------------------------------- subscriptions
    def save_subscription(self, sub: Subscription) -> None:
        self._upsert(self.subs, self._sub_ids, (sub.chat_id, sub.feed_url), sub.to_dict())

    def get_subscription(self, chat_id: int, url: str) -> Subscription | None:
        doc = self.subs.get(self._sub_ids.get((chat_id, url)))
        return Subscription.from_dict(doc) if doc is not None else None

    def remove_subscription(self, chat_id: int, url: str) -> bool:
        doc_id = self._sub_ids.pop((chat_id, url))
        if doc_id is None:
            return False
        self.subs.remove(doc_id)
        if not self._sub_ids.chats_of(url):
            self.delete_feed(url)
        return True

    def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        subs = [self.get_subscription(chat_id, u) for u in self._sub_ids.feeds_of(chat_id)]
        return sorted((s for s in subs if s), key=lambda s: (s.created, s.feed_url))

    def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        subs = [self.get_subscription(c, url) for c in self._sub_ids.chats_of(url)]
        return sorted((s for s in subs if s), key=lambda s: s.chat_id)

    def all_subscriptions(self) -> list[Subscription]:
        return [Subscription.from_dict(d) for _, d in self.subs.items()]

    # --------------------------------------------------------------------- chats
    def get_chat(self, chat_id: int) -> Chat | None:
        doc = self.chats.get(self._chat_ids.get(chat_id))
        return _chat(doc) if doc is not None else None

    def save_chat(self, chat: Chat) -> None:
        doc = chat.to_dict()
        doc["seen"], doc["defaults"] = list(chat.seen), dict(chat.defaults)  # never shared
        self._upsert(self.chats, self._chat_ids, chat.id, doc)

    def all_chats(self) -> list[Chat]:
        return [_chat(d) for _, d in self.chats.items()]

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        chat = self.get_chat(old_id) or Chat(id=old_id)
        doc_id = self._chat_ids.pop(old_id, None)
        if doc_id is not None:
            self.chats.remove(doc_id)
        chat.id = new_id
        chat.type = "supergroup"
        self.save_chat(chat)
        for sub_id, doc in self.subs.items():
            if int(doc["chat_id"]) == old_id:
                self._sub_ids.pop((old_id, doc["feed_url"]))
                self.subs.remove(sub_id)
                sub = Subscription.from_dict(doc)
                sub.chat_id = new_id
                if (new_id, sub.feed_url) not in self._sub_ids:
                    self.save_subscription(sub)
        for out_id, doc in self.outbox.items():
            if int(doc["chat_id"]) == old_id:
                self.outbox.update(out_id, {"chat_id": new_id})

    # -------------------------------------------------------------------- outbox
    def _next_seq(self) -> int:
        doc = self.meta.get("1")
        seq = int(doc["seq"]) + 1 if doc is not None else 1
        if doc is not None:
            self.meta.update("1", {"seq": seq})
        else:
            self.meta.put("1", {"seq": seq})
            self.meta.next_id = max(self.meta.next_id, 2)
        return seq

    def enqueue(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            delivery.seq = self._next_seq()
            self._outbox_ids[delivery.id] = self.outbox.insert(delivery.to_dict())

    def pending(self) -> list[Delivery]:
        items = [Delivery.from_dict(d) for _, d in self.outbox.items()]
        return sorted(items, key=lambda d: (d.chat_id, d.seq))

    def outbox_depth(self) -> int:
        return len(self._outbox_ids)

    def complete(self, delivery_id: str) -> None:
        """A delivery went out: durable at once, as one small log line."""
        if delivery_id not in self._outbox_ids:
            return
        self.savepoint()
        self.outbox.remove(self._outbox_ids.pop(delivery_id))
        self.commit(durable=True)

    def record_attempt(self, delivery: Delivery) -> None:
        doc_id = self._outbox_ids.get(delivery.id)
        if doc_id is not None:
            self.outbox.update(doc_id, {"attempts": delivery.attempts})

    def drop_chat_deliveries(self, chat_id: int) -> int:
        ids = [(d["id"], i) for i, d in self.outbox.items() if int(d["chat_id"]) == chat_id]
        for delivery_id, doc_id in ids:
            self._outbox_ids.pop(delivery_id, None)
            self.outbox.remove(doc_id)
        return len(ids)

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


def _feed(doc: dict[str, Any]) -> Feed:
    feed = Feed.from_dict(doc)
    feed.seen = list(feed.seen)  # the caller may change it in place; the stored copy must not
    return feed


def _chat(doc: dict[str, Any]) -> Chat:
    chat = Chat.from_dict(doc)
    chat.seen, chat.defaults = list(chat.seen), dict(chat.defaults)
    return chat


def merge_recent(first: list[str], second: list[str], cap: int) -> list[str]:
    """Union of two recency lists (oldest first), keeping order and the newest `cap` items."""
    merged = list(dict.fromkeys([*first, *second]))
    return merged[-cap:] if cap > 0 else merged


class Store:
    """Async face of `Database`: every call runs in one worker thread, in order."""

    def __init__(self, db: Database, executor: ThreadPoolExecutor) -> None:
        self._db = db
        self._executor = executor
        #: durable change sets waiting for the worker, run together and written once
        self._batch: list[tuple[Callable[[Database], Any], asyncio.Future[Any]]] = []
        self._batch_lock = threading.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, lazy_flush_s: float = 30.0) -> Store:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedbot-store")
        loop = asyncio.get_running_loop()
        db = await loop.run_in_executor(
            executor, partial(Database, path, lazy_flush_s=lazy_flush_s)
        )
        return cls(db, executor)

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def bytes_written(self) -> int:
        return self._db.bytes_written

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def transaction(self, fn: Callable[[Database], T], *, durable: bool = True) -> T:
        """Run `fn(db)` as one change set and commit it with a single write.

        A durable change set returns once it is on disk. Several that queue up while the worker
        is busy (many feed checks finishing at once) are applied in order and share one write:
        nothing else runs between them and that write, so no reader sees unwritten changes.
        """
        if not durable:

            def run() -> T:
                result = fn(self._db)
                self._db.commit(durable=False)
                return result

            return await self._run(run)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._batch_lock:
            self._batch.append((fn, future))
        try:
            loop.run_in_executor(self._executor, self._commit_batch, loop)
        except RuntimeError:  # the store is closed
            with self._batch_lock:
                self._batch = [item for item in self._batch if item[1] is not future]
            raise
        return await future

    def _commit_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: run every queued durable change set, then write once."""
        with self._batch_lock:
            batch, self._batch = self._batch, []
        if not batch:
            return  # an earlier call already committed this one
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._db.savepoint()  # a write that fails undoes the whole batch
        for fn, future in batch:
            try:
                outcomes.append((future, fn(self._db), None))
            except Exception as exc:
                outcomes.append((future, None, exc))
        try:
            self._db.commit(durable=True)
        except Exception as exc:
            outcomes = [(future, None, error or exc) for future, _, error in outcomes]
        for future, value, error in outcomes:
            loop.call_soon_threadsafe(_settle, future, value, error)

    async def read(self, fn: Callable[[Database], T]) -> T:
        return await self._run(fn, self._db)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)

    async def flush_due(self) -> None:
        await self._run(self._db.flush_if_due)

    # feeds, subscriptions, chats
    async def get_feed(self, url: str) -> Feed | None:
        return await self._run(self._db.get_feed, url)

    async def all_feeds(self) -> list[Feed]:
        return await self._run(self._db.all_feeds)

    async def due_feeds(self, now: float) -> list[Feed]:
        return await self._run(self._db.due_feeds, now)

    async def save_feed(self, feed: Feed, *, durable: bool = True) -> None:
        await self.transaction(lambda db: db.save_feed(feed), durable=durable)

    async def get_chat(self, chat_id: int) -> Chat | None:
        return await self._run(self._db.get_chat, chat_id)

    async def save_chat(self, chat: Chat) -> None:
        await self.transaction(lambda db: db.save_chat(chat))

    async def all_chats(self) -> list[Chat]:
        return await self._run(self._db.all_chats)

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        await self.transaction(lambda db: db.migrate_chat(old_id, new_id))

    async def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        return await self._run(self._db.subscriptions_for_chat, chat_id)

    async def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        return await self._run(self._db.subscriptions_for_feed, url)

    async def all_subscriptions(self) -> list[Subscription]:
        return await self._run(self._db.all_subscriptions)

    async def save_subscription(self, sub: Subscription) -> None:
        await self.transaction(lambda db: db.save_subscription(sub))

    async def remove_subscription(self, chat_id: int, url: str) -> bool:
        return await self.transaction(lambda db: db.remove_subscription(chat_id, url))

    # outbox
    async def enqueue(self, deliveries: list[Delivery]) -> None:
        await self.transaction(lambda db: db.enqueue(deliveries))

    async def pending(self) -> list[Delivery]:
        return await self._run(self._db.pending)

    async def outbox_depth(self) -> int:
        return await self._run(self._db.outbox_depth)

    async def complete(self, delivery_id: str) -> None:
        await self._run(self._db.complete, delivery_id)

    async def record_attempt(self, delivery: Delivery) -> None:
        await self.transaction(lambda db: db.record_attempt(delivery), durable=False)

    async def drop_chat_deliveries(self, chat_id: int) -> int:
        return await self.transaction(lambda db: db.drop_chat_deliveries(chat_id))


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
