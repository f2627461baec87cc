"""The queries: feeds, subscriptions, chats and the outbox, on top of the engine's tables."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Container, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.models import (
    Chat,
    Delivery,
    DigestItem,
    Feed,
    Prints,
    Subscription,
    SubscriptionOptions,
    pack_prints,
)
from bot.storage.base import (
    Stamp,
    StorageConflict,
    StoredState,
    chat_key,
    chat_subs_key,
    digest_order,
    feed_key,
    sub_key,
)
from bot.storage.tinydb.doctable import DocTable
from bot.storage.tinydb.engine import Engine
from bot.storage.tinydb.index import SubscriptionIndex
from bot.storage.tinydb.layout import dumps

#: stale next-check entries allowed beyond one per feed before the heap is rebuilt
HEAP_SLACK = 1024


class Database(Engine):
    """Synchronous database; call it only from the backend's worker thread.

    Every record (a feed by URL, a chat by id, a subscription, the set of a chat's
    subscriptions) has a version, bumped by each write to it: what `Stamp`s are made of. They
    live in memory only, since one process owns the file."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        self._versions: dict[str, int] = {}
        self._clock = 0
        super().__init__(path, **options)

    # --------------------------------------------------------------- versions
    def _bump(self, *keys: str) -> None:
        self._clock += 1
        for key in keys:
            self._versions[key] = self._clock

    def stamp(self, keys: list[str]) -> Stamp:
        return Stamp(MappingProxyType({key: self._versions.get(key, 0) for key in keys}))

    def check(self, expected: Stamp) -> None:
        """StorageConflict unless every stamped record is as it was read."""
        for key, version in expected.versions.items():
            if self._versions.get(key, 0) != version:
                raise StorageConflict(key)

    def _build_indexes(self) -> None:
        self._feed_ids = {d["url"]: i for i, d in self.feeds.docs.items()}
        self._chat_ids = {int(d["id"]): i for i, d in self.chats.docs.items()}
        self._sub_ids = SubscriptionIndex()
        for doc_id, doc in self.subs.docs.items():
            self._sub_ids[int(doc["chat_id"]), doc["feed_url"]] = doc_id
        self._outbox_ids = {d["id"]: i for i, d in self.outbox.docs.items()}
        self._message_ids = {d["digest"]: i for i, d in self.messages.docs.items()}
        self._message_refs = Counter(
            d["message_ref"] for _, d in self.outbox.docs.items() if "message_ref" in d
        )
        self._digest_ids = {d["id"]: i for i, d in self.digests.docs.items()}
        #: (due, doc id) of digest items not yet due, soonest first, and the doc ids of those
        #: that are (moved over by `due_digests`); a removed item's entry is dropped when met
        self._digest_heap = [(float(d["due"]), i) for i, d in self.digests.docs.items()]
        heapq.heapify(self._digest_heap)
        self._digest_due: set[str] = set()
        #: (next check, url) of every feed, soonest first; an entry whose time is no longer
        #: the feed's is stale and dropped when it comes up (see `due_feeds`)
        self._next_checks = [(float(d.get("next_check", 0.0)), d["url"]) for _, d in
                             self.feeds.docs.items()]
        heapq.heapify(self._next_checks)


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
        doc = _without_defaults({**feed.to_dict(), "seen": pack_prints(feed.seen)}, _FEED)
        self._bump(feed_key(feed.url))
        self._upsert(self.feeds, self._feed_ids, feed.url, doc)
        self._schedule(feed.url)

    def _schedule(self, url: str) -> None:
        doc = self.feeds.get(self._feed_ids.get(url))
        if doc is not None:
            heapq.heappush(self._next_checks, (float(doc.get("next_check", 0.0)), url))
        if len(self._next_checks) > 2 * len(self._feed_ids) + HEAP_SLACK:
            # stale entries leave only when they come up; feeds checked again and again before
            # then (or ticks that stop) would let them pile up: one entry per feed again
            self._next_checks = [(float(d.get("next_check", 0.0)), d["url"])
                                 for _, d in self.feeds.items()]
            heapq.heapify(self._next_checks)

    def due_feeds(
        self, now: float, limit: int | None = None, skip: Container[str] = ()
    ) -> list[Feed]:
        """Due feeds from the next-check heap: the cost is the number due (or the `limit`
        first, passing over those in `skip`), not of all feeds. Those due stay in the heap
        (until a check moves them on); stale entries, and feeds nobody follows actively, leave
        it (saving a subscription or chat puts them back)."""
        heap, found = self._next_checks, set()
        due: list[tuple[float, str, dict[str, Any]]] = []
        kept: list[tuple[float, str]] = []
        while heap and heap[0][0] <= now and (limit is None or len(due) < limit):
            when, url = heapq.heappop(heap)
            doc = self.feeds.get(self._feed_ids.get(url))
            if url in found or doc is None or float(doc.get("next_check", 0.0)) != when:
                continue
            if doc.get("retired") or not self._feed_active(url):
                continue
            found.add(url)
            if url in skip:
                kept.append((when, url))
                continue
            due.append((when, url, doc))
        for when, url in [*kept, *((w, u) for w, u, _ in due)]:
            heapq.heappush(heap, (when, url))
        return [_feed(doc) for _, _, doc in due]

    def _feed_active(self, url: str) -> bool:
        return any(
            self._sub_active(self._sub_ids.get((chat_id, url)))
            for chat_id in self._sub_ids.chats_of(url)
        )

    def _sub_active(self, doc_id: str | None) -> bool:
        doc = self.subs.get(doc_id)
        if doc is None or doc.get("paused"):
            return False
        chat = self.chats.get(self._chat_ids.get(int(doc["chat_id"])))
        return chat is None or not chat.get("paused")

    def delete_feed(self, url: str) -> None:
        doc_id = self._feed_ids.pop(url, None)
        if doc_id is not None:
            self._bump(feed_key(url))
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
    def move_subscription(self, chat_id: int, old_url: str, sub: Subscription, feed: Feed) -> None:
        """A subscription moves to another feed record (its fetch settings changed): the
        feed created unless stored, the old one gone with its last subscription, the chat's
        queued deliveries following."""
        if self.get_feed(feed.url) is None:
            self.save_feed(feed)
        self.remove_subscription(chat_id, old_url)
        self.save_subscription(sub)
        for doc_id, doc in self.outbox.items():
            if int(doc["chat_id"]) == chat_id and doc["feed_url"] == old_url:
                self.outbox.update(doc_id, {"feed_url": sub.feed_url})

    def save_subscription(self, sub: Subscription) -> None:
        self._bump(sub_key(sub.chat_id, sub.feed_url), chat_subs_key(sub.chat_id))
        doc = _without_defaults(sub.to_dict(), _SUBSCRIPTION)
        options = _without_defaults(sub.options.to_dict(), _OPTIONS)
        doc.pop("options", None)
        if options:
            doc["options"] = options
        self._upsert(self.subs, self._sub_ids, (sub.chat_id, sub.feed_url), doc)
        self._schedule(sub.feed_url)  # perhaps resumed

    def get_subscription(self, chat_id: int, url: str) -> Subscription | None:
        doc = self.subs.get(self._sub_ids.get((chat_id, url)))
        return Subscription.from_dict(doc) if doc is not None else None

    def remove_subscription(self, chat_id: int, url: str) -> bool:
        doc_id = self._sub_ids.pop((chat_id, url))
        if doc_id is None:
            return False
        self._bump(sub_key(chat_id, url), chat_subs_key(chat_id))
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
        doc = {**chat.to_dict(), "seen": pack_prints(chat.seen), "defaults": dict(chat.defaults)}
        doc = _without_defaults(doc, _CHAT)
        self._bump(chat_key(chat.id))
        old = self.chats.get(self._chat_ids.get(chat.id))
        self._upsert(self.chats, self._chat_ids, chat.id, doc)
        if old is not None and old.get("paused") and not chat.paused:  # its feeds are due again
            for url in self._sub_ids.feeds_of(chat.id):
                self._schedule(url)

    def all_chats(self) -> list[Chat]:
        return [_chat(d) for _, d in self.chats.items()]

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        chat = self.get_chat(old_id) or Chat(id=old_id)
        doc_id = self._chat_ids.pop(old_id, None)
        if doc_id is not None:
            self.chats.remove(doc_id)
        self._bump(chat_key(old_id), chat_subs_key(old_id))
        chat.id = new_id
        chat.type = "supergroup"
        self.save_chat(chat)
        for sub_id, doc in self.subs.items():
            if int(doc["chat_id"]) == old_id:
                self._sub_ids.pop((old_id, doc["feed_url"]))
                self._bump(sub_key(old_id, doc["feed_url"]))
                self.subs.remove(sub_id)
                sub = Subscription.from_dict(doc)
                sub.chat_id = new_id
                if (new_id, sub.feed_url) not in self._sub_ids:
                    self.save_subscription(sub)
        for out_id, doc in self.outbox.items():
            if int(doc["chat_id"]) == old_id:
                self.outbox.update(out_id, {"chat_id": new_id})
        for item_id, doc in self.digests.items():
            if int(doc["chat_id"]) == old_id:
                self.digests.update(item_id, {"chat_id": new_id})

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
        """Queue deliveries; a message going to many chats (one post, 1,000 subscribers) is
        stored once, in the messages table, and each delivery names it."""
        digests: dict[int, str] = {}  # by id(): the same rendered message, encoded once
        for delivery in deliveries:
            delivery.seq = self._next_seq()
            doc = delivery.to_dict()
            message = doc.pop("message")
            digest = digests.get(id(delivery.message))
            if digest is None:
                digest = digests[id(delivery.message)] = self._keep_message(message)
            self._message_refs[digest] += 1
            doc["message_ref"] = digest
            self._outbox_ids[delivery.id] = self.outbox.insert(doc)

    def _keep_message(self, message: list[Any]) -> str:
        encoded = dumps(message)
        digest = hashlib.blake2b(encoded, digest_size=16).hexdigest()
        if digest not in self._message_ids:
            self._message_ids[digest] = self.messages.insert(
                {"digest": digest, "message": message}
            )
        return digest

    def _remove_delivery(self, doc_id: str) -> None:
        doc = self.outbox.get(doc_id)
        self.outbox.remove(doc_id)
        digest = doc.get("message_ref") if doc is not None else None
        if digest is None:
            return
        self._message_refs[digest] -= 1
        if self._message_refs[digest] <= 0:
            del self._message_refs[digest]
            message_id = self._message_ids.pop(digest, None)
            if message_id is not None:
                self.messages.remove(message_id)

    def _delivery(self, doc: dict[str, Any]) -> Delivery:
        if "message_ref" in doc:
            message = self.messages.get(self._message_ids.get(doc["message_ref"]))
            doc = {**doc, "message": message["message"] if message else []}
        return Delivery.from_dict(doc)

    def pending(self) -> list[Delivery]:
        items = [self._delivery(d) for _, d in self.outbox.items()]
        return sorted(items, key=lambda d: (d.chat_id, d.seq))

    def outbox_depth(self, chat_id: int | None = None) -> int:
        if chat_id is None:
            return len(self._outbox_ids)
        return sum(1 for _, d in self.outbox.items() if int(d["chat_id"]) == chat_id)

    def complete(self, delivery_id: str) -> None:
        """A delivery went out: durable at once, as one small log line."""
        if delivery_id not in self._outbox_ids:
            return
        self.savepoint()
        self._remove_delivery(self._outbox_ids.pop(delivery_id))
        self.commit(durable=True)

    def record_attempt(self, delivery: Delivery) -> None:
        doc_id = self._outbox_ids.get(delivery.id)
        if doc_id is not None:
            self.outbox.update(doc_id, {"attempts": delivery.attempts})

    def _raise_seq(self, seq: int) -> None:
        """Number the deliveries queued from now on after `seq`."""
        doc = self.meta.get("1")
        if doc is None:
            self.meta.put("1", {"seq": seq})
            self.meta.next_id = max(self.meta.next_id, 2)
        elif int(doc["seq"]) < seq:
            self.meta.update("1", {"seq": seq})

    def drop_chat_deliveries(self, chat_id: int) -> int:
        ids = [(d["id"], i) for i, d in self.outbox.items() if int(d["chat_id"]) == chat_id]
        for delivery_id, doc_id in ids:
            self._outbox_ids.pop(delivery_id, None)
            self._remove_delivery(doc_id)
        for doc_id in [i for i, d in self.digests.items() if int(d["chat_id"]) == chat_id]:
            self._remove_digest_item(doc_id)
        return len(ids)

    # ------------------------------------------------------------------- digests
    def collect_digest(self, items: Sequence[DigestItem]) -> None:
        for item in items:
            doc_id = self.digests.insert(_without_defaults(item.to_dict(), _DIGEST_ITEM))
            self._digest_ids[item.id] = doc_id
            heapq.heappush(self._digest_heap, (item.due, doc_id))

    def _remove_digest_item(self, doc_id: str) -> None:
        doc = self.digests.get(doc_id)
        if doc is not None:
            self._digest_ids.pop(doc["id"], None)
        self._digest_due.discard(doc_id)
        self.digests.remove(doc_id)

    def digest_items(self) -> list[DigestItem]:
        items = [DigestItem.from_dict(d) for _, d in self.digests.items()]
        return sorted(items, key=digest_order)

    def due_digests(self, now: float, chats: int) -> list[DigestItem]:
        """Due items of the first `chats` chats (by id) that have any, each chat's all: those
        that fell due since the last call come off the heap, so a tick reads only due items."""
        while self._digest_heap and self._digest_heap[0][0] <= now:
            _, doc_id = heapq.heappop(self._digest_heap)
            if self.digests.get(doc_id) is not None:
                self._digest_due.add(doc_id)
        docs = (self.digests.get(doc_id) for doc_id in self._digest_due)
        # a caller may have asked for a later moment before: the pool can hold items not due now
        due = [DigestItem.from_dict(d) for d in docs if d is not None and d["due"] <= now]
        wanted = set(sorted({item.chat_id for item in due})[:chats])
        return sorted((i for i in due if i.chat_id in wanted), key=digest_order)

    def digest_waiting(self, chat_id: int) -> list[DigestItem]:
        mine = [DigestItem.from_dict(d) for _, d in self.digests.items()
                if int(d["chat_id"]) == chat_id]
        return sorted(mine, key=digest_order)

    def commit_digest(self, taken: Sequence[str], deliveries: list[Delivery]) -> None:
        """The taken items go and their digest is queued; StorageConflict, with nothing
        changed, when any of them is gone already."""
        if any(item_id not in self._digest_ids for item_id in taken):
            raise StorageConflict("digest taken")
        for item_id in taken:
            self._remove_digest_item(self._digest_ids[item_id])
        self.enqueue(deliveries)


    # ------------------------------------------------------------------ the whole
    # ------------------------------------------------------------- the bot's own
    # The bot's few values of its own (the Telegraph account's token) are fields of the meta
    # document, beside the outbox's sequence number: no table for two strings.
    def bot_value(self, name: str) -> str | None:
        doc = self.meta.get("1") or {}
        return str(doc[name]) if name in doc and name != "seq" else None

    def keep_bot_value(self, name: str, value: str) -> str:
        """Store `value` under `name` unless a value is stored there; returns the stored one."""
        stored = self.bot_value(name)
        if stored is not None:
            return stored
        if self.meta.get("1") is None:
            self.meta.put("1", {"seq": 0, name: value})
            self.meta.next_id = max(self.meta.next_id, 2)
        else:
            self.meta.update("1", {name: value})
        return value

    def export_all(self) -> StoredState:
        return StoredState(
            self.all_feeds(), self.all_chats(), self.all_subscriptions(), self.pending(),
            self.digest_items(),
        ).sorted()

    def import_all(self, state: StoredState) -> None:
        """Replace everything with `state` as it is (one change set: the caller commits)."""
        for _, doc in list(self.subs.items()):
            self.remove_subscription(int(doc["chat_id"]), doc["feed_url"])
        for url in list(self._feed_ids):
            self.delete_feed(url)
        for chat_id in list(self._chat_ids):
            self._bump(chat_key(chat_id))
            self.chats.remove(self._chat_ids.pop(chat_id))
        self.drop_deliveries()
        for doc_id in [i for i, _ in self.digests.items()]:
            self._remove_digest_item(doc_id)
        self.collect_digest(state.digest_items)
        for feed in state.feeds:
            self.save_feed(feed)
        for chat in state.chats:
            self.save_chat(chat)
        for sub in state.subscriptions:
            self.save_subscription(sub)
        for delivery in state.deliveries:
            doc = delivery.to_dict()
            digest = self._keep_message(doc.pop("message"))
            self._message_refs[digest] += 1
            doc["message_ref"] = digest
            self._outbox_ids[delivery.id] = self.outbox.insert(doc)
        self._raise_seq(max((d.seq for d in state.deliveries), default=0))

    def drop_deliveries(self) -> None:
        for delivery_id, doc_id in list(self._outbox_ids.items()):
            del self._outbox_ids[delivery_id]
            self._remove_delivery(doc_id)


def _without_defaults(doc: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A record as stored: fields at their default are left out (reading fills them in), which
    halves the size of a typical feed's record in memory and on disk."""
    return {k: v for k, v in doc.items() if k not in defaults or defaults[k] != v}


#: the stored defaults; fields without one (a feed's url, a chat's id) are always stored
_FEED = {k: v for k, v in Feed(url="").to_dict().items() if k != "url"} | {"seen": b""}
_CHAT = {k: v for k, v in Chat(id=0).to_dict().items() if k != "id"} | {"seen": b""}
_SUBSCRIPTION = {
    k: v
    for k, v in Subscription(0, "").to_dict().items()
    if k not in ("chat_id", "feed_url", "options")
}
_OPTIONS = SubscriptionOptions().to_dict()
_DIGEST_ITEM = {"thread_id": None, "entry_key": ""}



def _feed(doc: dict[str, Any]) -> Feed:
    feed = Feed.from_dict(doc)
    feed.seen = Prints(doc.get("seen") or b"")  # immutable: shared with the stored copy
    return feed


def _chat(doc: dict[str, Any]) -> Chat:
    chat = Chat.from_dict(doc)
    chat.seen, chat.defaults = Prints(doc.get("seen") or b""), dict(chat.defaults)
    return chat


def merge_recent(first: Sequence[str], second: Sequence[str], cap: int) -> list[str]:
    """Union of two recency lists (oldest first), keeping order and the newest `cap` items."""
    merged = list(dict.fromkeys([*first, *second]))
    return merged[-cap:] if cap > 0 else merged
