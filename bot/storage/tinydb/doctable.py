"""`DocTable`: one table in memory, with savepoints and the changes for the next log line."""

from __future__ import annotations

from typing import Any

from bot.storage.tinydb.layout import MISSING, dumps


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
            fields = {key for key, value in doc.items() if old.get(key, MISSING) != value}
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
            encoded = self._json[doc_id] = dumps(doc)
        return encoded

    def take_changes(self) -> list[bytes]:
        """Log records for what changed since the last call.

        [table, doc_id, document] replaces a document, [table, doc_id, null] removes it and
        [table, doc_id, fields, 1] updates some of its fields.
        """
        prefix = dumps(self.name) + b',"'
        records = []
        for doc_id, fields in self._changed.items():
            doc = self.docs.get(doc_id)
            if doc is None:
                body = b"null"
            elif fields is None:
                body = self._encoded(doc_id, doc)
            else:
                body = dumps({key: doc[key] for key in fields}) + b",1"
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


