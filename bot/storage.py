"""Persistence: the only module that knows TinyDB.

Durability model
- The whole database lives in memory (TinyDB's layout, {table: {doc_id: document}}; tables are
  `DocTable`s). On disk it is a snapshot file in that layout plus an append-only change log.
- A durable commit appends one line to the log: every document changed since the previous line,
  in full (or null for a removal), then fsync. A commit costs the size of what changed, not of the
  database; change sets that arrive while the worker is busy share one line (group commit).
- A crash can cut only the last line short; it was never acknowledged, so reopening ignores it.
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
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from tinydb.storages import Storage

from .models import Chat, Delivery, Feed, Subscription

log = logging.getLogger(__name__)
T = TypeVar("T")

#: the log is folded into the snapshot once it is larger than this and than the snapshot
LOG_FLOOR_BYTES = 8 * 2**20


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
        self._data: dict[str, dict[str, Any]] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            self._data = json.loads(self.path.read_bytes())

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

    def get(self, doc_id: str | None) -> dict[str, Any] | None:
        return self.docs.get(doc_id) if doc_id is not None else None

    def insert(self, doc: dict[str, Any]) -> str:
        doc_id = str(self.next_id)
        self.put(doc_id, doc)
        return doc_id

    def put(self, doc_id: str, doc: dict[str, Any]) -> None:
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
        self._changed.clear()
        return records

    def apply(self, doc_id: str, doc: dict[str, Any] | None, patch: int = 0) -> None:
        """Replay one log record (already on disk, so not marked changed)."""
        self._json.pop(doc_id, None)
        if doc is None:
            self.docs.pop(doc_id, None)
            return
        if patch:
            doc = {**self.docs.get(doc_id, {}), **doc}
        self.docs[doc_id] = doc
        self.next_id = max(self.next_id, int(doc_id) + 1)

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


class ChangeLog:
    """The append-only log files `<db>.log.<generation>` next to the snapshot."""

    def __init__(self, snapshot: Path) -> None:
        self.folder = snapshot.parent
        self.prefix = snapshot.name + ".log."
        self.generation = 0
        self.size = 0
        self._fh: BinaryIO | None = None

    def generations(self) -> list[int]:
        found = []
        for path in self.folder.glob(self.prefix + "*"):
            suffix = path.name[len(self.prefix):]
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def path(self, generation: int) -> Path:
        return self.folder / f"{self.prefix}{generation}"

    def read(self, generation: int) -> list[list[Any]]:
        """Every complete line of one log; a torn last line (a crash mid-append) is ignored."""
        lines = self.path(generation).read_bytes().split(b"\n")
        records: list[list[Any]] = []
        for number, line in enumerate(lines[:-1], 1):  # the part after the last newline is torn
            try:
                records.extend(json.loads(line))
            except ValueError:
                log.error("change log %s: line %d is damaged; later lines are ignored",
                          self.path(generation), number)
                break
        return records

    def append(self, line: bytes) -> int:
        if self._fh is None:
            self._fh = open(self.path(self.generation), "ab")
            fsync_dir(self.folder)
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.size += len(line)
        return len(line)

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
        if self._fh is not None:
            self._fh.close()
            self._fh = None


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
            for table, doc_id, *change in self.log.read(generation):
                self._tables[table].apply(doc_id, *change)
        self.log.generation = max([first, *generations])
        if generations or not self.path.exists():
            self.snapshot(wait=True)  # one self-contained file again; the logs go
        else:
            self.log.delete_before(first)

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
        parts.append(b"}")
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
        self.snapshot_bytes = job.result()  # a failed write raises here, on the worker thread
        self.bytes_written += self.snapshot_bytes
        return True

    def _append_changes(self) -> None:
        records = [record for table in self._tables.values() for record in table.take_changes()]
        if records:
            self.bytes_written += self.log.append(b"[" + b",".join(records) + b"]\n")
        self._last_flush = time.monotonic()

    def _snapshot_if_due(self) -> None:
        if self.log.size > max(self.log_floor, self.snapshot_bytes) and self._settle_snapshot(
            wait=False
        ):
            self.snapshot()

    def commit(self, *, durable: bool = True) -> None:
        """End a change set: on disk now, or (for harmless-to-lose changes) soon."""
        if durable:
            self._append_changes()
            self._snapshot_if_due()
            return
        self.flush_if_due()

    def has_unwritten_changes(self) -> bool:
        return any(table.has_changes for table in self._tables.values())

    def flush_if_due(self) -> None:
        """Write lazily-committed changes once they are `lazy_flush_s` old."""
        due = time.monotonic() - self._last_flush >= self.lazy_flush_s
        if due and self.has_unwritten_changes():
            self.commit(durable=True)

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
        doc_id = self._outbox_ids.pop(delivery_id, None)
        if doc_id is None:
            return
        self.outbox.remove(doc_id)
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
            if self.log.size or self.log.generations():
                self.snapshot(wait=True)
            else:
                self._settle_snapshot(wait=True)
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
