"""The snapshot file: atomic writes, TinyDB's layout, and the start-up checks of the file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from bot.storage.tinydb.layout import LOG_TABLE, MISSING, TABLES, loads
from bot.storage.tinydb.lock import holder_of, in_use_message


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> int:
    """Replace `path` with `data` (bytes, or chunks written one after the other, so that a big
    file is never one more copy in memory) so that readers see the old or the new file, never
    a mix. Returns the size written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    size = 0
    try:
        with os.fdopen(fd, "wb", buffering=2**20) as fh:
            for chunk in [data] if isinstance(data, bytes) else data:
                size += fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return size


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
        data = _checked.take(self.path)
        if data is None:
            data = load_snapshot(self.path)
        self._data: dict[str, dict[str, Any]] | None = data or None

    def read(self) -> dict[str, dict[str, Any]] | None:
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data

    def flush(self, payload: bytes | Iterable[bytes]) -> int:
        """Write a snapshot the caller encoded (the tables keep their documents' JSON)."""
        return atomic_write(self.path, payload)

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
        data = loads(raw)
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
        ("created", (int, float)),
    ),
    "meta": (("seq", int),),
    "messages": (("digest", str), ("message", list)),
    "digests": (
        ("id", str), ("chat_id", int), ("feed_url", str), ("due", (int, float)),
        ("created", (int, float)),
    ),
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
                value = doc.get(field_name, MISSING)
                if type(value) is bool or not isinstance(value, kind):
                    return _document_problem(name, doc_id, doc)
            if name == "outbox" and not _has_message(doc):
                return f"document {doc_id!r} of table 'outbox' has no message"
    return None


def _has_message(doc: dict[str, Any]) -> bool:
    """A delivery holds its message, or (since messages are shared) names it."""
    return isinstance(doc.get("message"), list) or isinstance(doc.get("message_ref"), str)


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


class _CheckedSnapshot:
    """The snapshot `check_database` read, kept for the open that follows it in the same
    process (a 100k-feed file takes seconds to read: start-up would read it twice). Used only
    while the file is unchanged (same inode, size and mtime), and only once."""

    def __init__(self) -> None:
        self._kept: tuple[Path, tuple[int, int, int], dict[str, Any]] | None = None

    def keep(self, path: Path, data: dict[str, Any]) -> None:
        self._kept = (path.resolve(), _identity(path), data) if data else None

    def take(self, path: Path) -> dict[str, Any] | None:
        kept, self._kept = self._kept, None
        if kept is None or kept[0] != path.resolve() or kept[1] != _identity(path):
            return None
        return kept[2]


def _identity(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


_checked = _CheckedSnapshot()


def check_database(path: Path, *, force: bool = False) -> str | None:
    """Start-up check of the data folder and the database file: None when the bot may start,
    else one line naming the file, what is wrong and what to do. Nothing is changed, except
    that a missing data folder is created. Without `force` an empty file or one holding only
    another program's tables is refused rather than taken over; so is a file another running
    feedbot holds (bot.storage.tinydb.lock), `force` or not."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"{path}: its data folder {folder} cannot be created ({exc.strerror}): create it, "
            "or point FEEDBOT_DB at a file in a writable folder"
        )
    holder = holder_of(path)
    if holder is not None:
        return in_use_message(path, holder)
    try:
        data = load_snapshot(path)
    except UnusableDatabase as exc:
        return str(exc)
    _checked.keep(path, data)
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

