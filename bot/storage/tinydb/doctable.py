"""`DocTable`: one table in memory, with savepoints and the changes for the next log line."""

from __future__ import annotations

import base64
from typing import Any

from bot.models import PRINT_BYTES
from bot.storage.tinydb.layout import MISSING, decode_binary, dumps

#: binary fields whose changes are usually "a few prints appended, as many dropped from the
#: front" (a chat's seen-set): logged as that, not whole (2,000 prints are 16 KB)
APPENDABLE = ("seen",)


class DocTable:
    """One table as TinyDB lays it out ({doc_id: document}).

    TinyDB's own Table rebuilds the whole table on every update (O(table size) per write) and
    copies documents on every read; at thousands of feeds that dominated a poll cycle. Here a
    write replaces one document and marks what changed in it for the next log line: the fields
    that differ, and for an appendable field only the prints appended to it.
    """

    def __init__(self, name: str, docs: dict[str, Any], *, binary: bool = False) -> None:
        self.name = name
        #: whether documents have binary fields (bot.storage.tinydb.layout.BINARY_FIELDS)
        self.binary = binary
        if binary:
            for doc in docs.values():
                decode_binary(doc)
        self.docs: dict[str, dict[str, Any]] = docs
        self.next_id = max((int(k) for k in docs), default=0) + 1
        #: changed since the last log line: doc id -> changed fields, or None for all of it
        self._changed: dict[str, set[str] | None] = {}
        #: appendable fields of documents changed since the last log line, as written in it
        self._base: dict[str, dict[str, bytes]] = {}
        #: while a savepoint is open: each document changed since, as it was then (None: absent)
        self._undo: dict[str, dict[str, Any] | None] | None = None
        self._changed_at_savepoint: dict[str, set[str] | None] = {}
        self._base_at_savepoint: dict[str, dict[str, bytes]] = {}

    def get(self, doc_id: str | None) -> dict[str, Any] | None:
        return self.docs.get(doc_id) if doc_id is not None else None

    def insert(self, doc: dict[str, Any]) -> str:
        doc_id = str(self.next_id)
        self.put(doc_id, doc)
        return doc_id

    def put(self, doc_id: str, doc: dict[str, Any]) -> None:
        self._remember(doc_id)
        old = self.docs.get(doc_id)
        if old is not None and doc_id not in self._base:
            self._base[doc_id] = {
                name: old[name] for name in APPENDABLE if isinstance(old.get(name), bytes)
            }
        self.docs[doc_id] = doc
        self.next_id = max(self.next_id, int(doc_id) + 1)
        if old is None or (doc_id in self._changed and self._changed[doc_id] is None):
            self._changed[doc_id] = None
        elif old.keys() - doc.keys():
            self._changed[doc_id] = None  # a field went away: log the whole document
        else:
            # only the fields that differ: a feed's next-check time without its seen-set
            fields = {key for key, value in doc.items() if old.get(key, MISSING) != value}
            self._changed[doc_id] = fields | (self._changed.get(doc_id) or set())

    def update(self, doc_id: str, fields: dict[str, Any]) -> None:
        doc = self.docs.get(doc_id)
        if doc is not None:
            self.put(doc_id, {**doc, **fields})

    def remove(self, doc_id: str) -> None:
        self._remember(doc_id)
        if self.docs.pop(doc_id, None) is not None:
            self._changed[doc_id] = None

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.docs.items())

    @property
    def has_changes(self) -> bool:
        return bool(self._changed)

    def take_changes(self) -> list[bytes]:
        """Log records for what changed since the last call.

        [table, doc_id, document] replaces a document, [table, doc_id, null] removes it,
        [table, doc_id, fields, 1] updates some of its fields, and [table, doc_id, fields, 2,
        appended] also, for each field of `appended` ({name: [bytes dropped from its front,
        base64 of the bytes appended]}), cuts and extends it.
        """
        prefix = dumps(self.name) + b',"'
        records = []
        for doc_id, fields in self._changed.items():
            doc = self.docs.get(doc_id)
            if doc is None:
                body = b"null"
            elif fields is None:
                body = dumps(doc)
            else:
                body = self._patch(doc_id, doc, fields)
            records.append(b"[" + prefix + doc_id.encode() + b'",' + body + b"]")
        return records

    def _patch(self, doc_id: str, doc: dict[str, Any], fields: set[str]) -> bytes:
        base = self._base.get(doc_id, {})
        plain: dict[str, Any] = {}
        appended: dict[str, list[Any]] = {}
        for key in fields:
            grown = appended_to(base[key], doc[key]) if key in base else None
            if grown is None:
                plain[key] = doc[key]
            else:
                appended[key] = [grown[0], base64.b64encode(grown[1]).decode("ascii")]
        if not appended:
            return dumps(plain) + b",1"
        return dumps(plain) + b",2," + dumps(appended)

    def changes_written(self) -> None:
        """The records `take_changes` gave are on disk."""
        self._changed.clear()
        self._base.clear()

    # savepoints: a durable change set that could not be written is undone
    def _remember(self, doc_id: str) -> None:
        if self._undo is not None and doc_id not in self._undo:
            self._undo[doc_id] = self.docs.get(doc_id)

    def savepoint(self) -> None:
        self._undo = {}
        self._changed_at_savepoint = dict(self._changed)  # its field sets are never mutated
        self._base_at_savepoint = dict(self._base)  # nor are these

    def release(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        """Every document back as it was at the savepoint, and so is what waits for the log."""
        if self._undo is None:
            return
        for doc_id, doc in self._undo.items():
            if doc is None:
                self.docs.pop(doc_id, None)
            else:
                self.docs[doc_id] = doc
        self._changed = self._changed_at_savepoint
        self._base = self._base_at_savepoint
        self._undo = None

    def apply(
        self,
        doc_id: str,
        doc: dict[str, Any] | None,
        patch: int = 0,
        appended: dict[str, Any] | None = None,
    ) -> bool:
        """Replay one log record (already on disk, so not marked changed). False for a patch of
        a document that is not there (the line creating it was damaged): it is skipped."""
        if doc is None:
            self.docs.pop(doc_id, None)
            return True
        if self.binary:
            decode_binary(doc)
        if patch:
            base = self.docs.get(doc_id)
            if base is None:
                return False
            doc = {**base, **doc}
            if patch == 2 and not _extend(doc, appended):
                return False
        self.docs[doc_id] = doc
        self.next_id = max(self.next_id, int(doc_id) + 1)
        return True

    def snapshot_parts(self) -> list[bytes | dict[str, Any]]:
        """The table's JSON as chunks to join in the snapshot thread.

        Documents are passed as they are: stored documents are replaced, never changed in
        place, so encoding them later in another thread is safe.
        """
        parts: list[bytes | dict[str, Any]] = [b"{"]
        for doc_id, doc in self.docs.items():
            if len(parts) > 1:
                parts.append(b",")
            parts.append(b'"' + doc_id.encode() + b'":')
            parts.append(doc)
        parts.append(b"}")
        return parts


def appended_to(base: bytes, value: Any) -> tuple[int, bytes] | None:
    """(bytes dropped from the front of `base`, bytes appended) when `value` is `base` cut
    and extended so, in whole prints; None when it is not (or that says no less)."""
    if not isinstance(value, bytes) or not base or not value:
        return None
    first = value[:PRINT_BYTES]
    at = base.find(first)
    while at > 0 and at % PRINT_BYTES:
        at = base.find(first, at + 1)
    if at < 0:
        return None
    kept = len(base) - at
    if kept > len(value) or value[:kept] != base[at:]:
        return None
    return at, value[kept:]


def _extend(doc: dict[str, Any], appended: Any) -> bool:
    """Apply the appends of a replayed record to `doc` (a copy); False when they do not fit."""
    if not isinstance(appended, dict):
        return False
    for name, change in appended.items():
        current = doc.get(name)
        if not (isinstance(current, bytes) and isinstance(change, list) and len(change) == 2):
            return False
        drop, tail = change
        if not isinstance(drop, int) or not isinstance(tail, str) or drop > len(current):
            return False
        try:
            doc[name] = current[drop:] + base64.b64decode(tail, validate=True)
        except ValueError:
            return False
    return True


