"""`TinyDBStorage`: the storage protocol on the file engine, for one process.

Every operation runs in one worker thread, in order, so each sees a consistent database.
Durable writes that queue up while the worker is busy (many checks finishing at once) are applied
in order and share one log line (group commit): nothing else runs between them and that line,
so no reader sees unwritten changes. Reads and writes that may wait (a 304's next check) share
trips too: those queued while one trip is under way all run in the next, which saves a thread
switch and a wake-up of the event loop per call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bot.models import Chat, Delivery, DigestItem, Feed, Subscription
from bot.storage.base import (
    TELEGRAPH_TOKEN,
    TOPIC_ANSWERS,
    TOPIC_CALLS,
    TOPIC_OUTBOX,
    CallAnswer,
    ChatRecord,
    ChatState,
    FeedCommit,
    FeedState,
    NewSubscription,
    RelayedCall,
    Stamp,
    StorageStats,
    StoredState,
    SubscriptionMove,
    SubscriptionRow,
    chat_key,
    chat_subs_key,
    feed_key,
    remember_in_chat,
    remember_in_feed,
    sub_key,
)
from bot.storage.local import LocalCoordination
from bot.storage.tinydb.database import Database
from bot.storage.tinydb.lock import DatabaseLock

T = TypeVar("T")
_Work = Callable[[Database], Any]
_Outcome = tuple[Any, BaseException | None]


class TinyDBStorage:
    def __init__(
        self, db: Database, executor: ThreadPoolExecutor, lock: DatabaseLock | None = None
    ) -> None:
        self._db = db
        self._lock = lock
        self._executor = executor
        #: durable change sets waiting for the worker, run together and written once
        self._batch: list[tuple[_Work, asyncio.Future[Any]]] = []
        self._batch_lock = threading.Lock()
        #: reads and lazy writes waiting for the next shared trip
        self._shared_queue: list[tuple[_Work, asyncio.Future[Any]]] = []
        self._shared_task: asyncio.Task[None] | None = None
        self._closed = False
        #: one process opens the file, so leases, seats and announcements stay in it
        self._local = LocalCoordination()

    @classmethod
    async def open(cls, path: str | Path, *, lazy_flush_s: float = 30.0) -> TinyDBStorage:
        """DatabaseInUse when another process has the file open (bot.storage.tinydb.lock)."""
        lock = DatabaseLock(path)
        lock.acquire()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedbot-store")
        loop = asyncio.get_running_loop()
        try:
            db = await loop.run_in_executor(
                executor, partial(Database, path, lazy_flush_s=lazy_flush_s)
            )
        except BaseException:
            executor.shutdown(wait=False)
            lock.release()
            raise
        return cls(db, executor, lock)

    @property
    def bytes_written(self) -> int:
        return self._db.bytes_written

    # ------------------------------------------------------------- the worker
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    async def _durable(self, fn: Callable[[Database], T]) -> T:
        """Run `fn(db)` as one change set; returns once it is on disk (group commit)."""
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

    async def _shared(self, fn: Callable[[Database], T]) -> T:
        """Run `fn(db)` in the next shared trip (a read, or a change that may wait: written
        with the next log line or after `lazy_flush_s`). Each call's exception is its own."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._shared_queue.append((fn, future))
        if self._shared_task is None:
            self._shared_task = asyncio.create_task(self._drain_shared(), name="store trip")
        return await future

    async def _drain_shared(self) -> None:
        try:
            while self._shared_queue:
                batch, self._shared_queue = self._shared_queue, []
                await self._shared_trip(batch)
        finally:
            self._shared_task = None

    async def _shared_trip(self, batch: list[tuple[_Work, asyncio.Future[Any]]]) -> None:
        fns = [fn for fn, _ in batch]

        def trip(db: Database) -> list[_Outcome]:
            outcomes = [_call(fn, db) for fn in fns]
            db.commit(durable=False)
            return outcomes

        try:
            outcomes = await self._run(trip, self._db)
        except Exception as exc:  # the whole trip failed (e.g. the store is closed)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), (value, error) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._shared_task is not None:
            await asyncio.gather(self._shared_task, return_exceptions=True)
        try:
            await self._run(self._db.close)
        finally:
            self._executor.shutdown(wait=True)
            if self._lock is not None:
                self._lock.release()

    async def flush_due(self) -> None:
        await self._run(self._db.flush_if_due)

    # ------------------------------------------------------------------ feeds
    async def due_feeds(self, now: float) -> list[Feed]:
        return await self._run(self._db.due_feeds, now)

    async def get_feed(self, url: str) -> Feed | None:
        return await self._run(self._db.get_feed, url)

    async def save_feed(self, feed: Feed) -> None:
        await self._durable(lambda db: db.save_feed(feed))

    async def load_feed(self, url: str) -> FeedState | None:
        return await self._shared(lambda db: _feed_state(db, url))

    async def commit_check(self, commit: FeedCommit) -> None:
        await self._durable(lambda db: _apply(db, commit))
        self._committed(commit)

    async def record_failure(self, commit: FeedCommit) -> None:
        await self._durable(lambda db: _apply(db, commit))
        self._committed(commit)

    async def resume_subscription(self, commit: FeedCommit) -> None:
        await self._durable(lambda db: _apply(db, commit))
        self._committed(commit)

    def _committed(self, commit: FeedCommit) -> None:
        self._local.release(commit.feed.url, commit.moved_to)
        if commit.deliveries:
            self._local.announce(TOPIC_OUTBOX)

    async def record_not_modified(self, commit: FeedCommit) -> None:
        # durable only when something a user sees changes: a notice, a move, a failure cleared
        # that subscribers were told of; a next-check time alone is harmless to lose
        def lazily(db: Database) -> bool:
            stored = db.get_feed(commit.feed.url)
            if commit.deliveries or commit.moved_to or (stored and stored.failure_notified):
                return False
            _apply(db, commit)
            return True

        if not await self._shared(lazily):
            await self._durable(lambda db: _apply(db, commit))
        self._committed(commit)

    async def postpone_check(self, url: str, next_check: float) -> None:
        def postpone(db: Database) -> None:
            feed = db.get_feed(url)
            if feed is not None:
                feed.next_check = next_check
                db.save_feed(feed)

        await self._shared(postpone)
        self._local.release(url)

    async def claim_due_feeds(self, now: float, limit: int, lease_s: float) -> list[FeedState]:
        leased = self._local.leased(now)

        def claim(db: Database) -> list[FeedState]:
            return [_state_of(db, feed) for feed in db.due_feeds(now, limit, leased)]

        states = await self._run(claim, self._db)
        self._local.lease((state.feed.url for state in states), now, lease_s)
        return states

    # ---------------------------------------------------------- subscriptions
    async def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        return await self._run(self._db.subscriptions_for_chat, chat_id)

    async def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        return await self._run(self._db.subscriptions_for_feed, url)

    async def save_subscription(self, sub: Subscription) -> None:
        await self._durable(lambda db: db.save_subscription(sub))

    async def remove_subscription(self, chat_id: int, url: str) -> bool:
        return await self._durable(lambda db: db.remove_subscription(chat_id, url))

    async def remove_subscriptions(self, chat_id: int, urls: Sequence[str]) -> None:
        def remove(db: Database) -> None:
            for url in urls:
                db.remove_subscription(chat_id, url)

        await self._durable(remove)

    async def add_subscriptions(self, new: Sequence[NewSubscription], expected: Stamp) -> None:
        def add(db: Database) -> None:
            db.check(expected)
            for item in new:
                feed = db.get_feed(item.feed.url) or item.feed
                feed.retired = False  # it answered just now: a feed once gone (410) is back
                feed.seen = remember_in_feed(feed.seen, item.prints, item.feed_cap)
                db.save_feed(feed)
                chat = db.get_chat(item.chat.id) or item.chat
                chat.seen = remember_in_chat(chat.seen, item.prints, item.chat_cap)
                db.save_chat(chat)
                db.save_subscription(item.subscription)

        await self._durable(add)

    async def update_subscriptions(
        self, subs: Sequence[Subscription], feeds: Sequence[Feed], expected: Stamp
    ) -> None:
        def update(db: Database) -> None:
            db.check(expected)
            for sub in subs:
                db.save_subscription(sub)
            for feed in feeds:
                db.save_feed(feed)

        await self._durable(update)

    async def move_subscription(self, move: SubscriptionMove, expected: Stamp) -> None:
        def moving(db: Database) -> None:
            db.check(expected)
            db.move_subscription(move.chat_id, move.old_url, move.subscription, move.feed)

        await self._durable(moving)

    # ------------------------------------------------------------------ chats
    async def get_chat(self, chat_id: int) -> Chat | None:
        return await self._run(self._db.get_chat, chat_id)

    async def read_chat(self, chat_id: int) -> ChatRecord:
        def read(db: Database) -> ChatRecord:
            return ChatRecord(db.get_chat(chat_id), db.stamp([chat_key(chat_id)]))

        return await self._run(read, self._db)

    async def load_chat(self, chat_id: int) -> ChatState:
        return await self._run(_chat_state, self._db, chat_id)

    async def save_chat(self, chat: Chat, expected: Stamp | None = None) -> None:
        def save(db: Database) -> None:
            if expected is not None:
                db.check(expected)
            db.save_chat(chat)

        await self._durable(save)

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        await self._durable(lambda db: db.migrate_chat(old_id, new_id))

    # ----------------------------------------------------------------- outbox
    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        await self._durable(lambda db: db.enqueue(list(deliveries)))
        self._local.announce(TOPIC_OUTBOX)

    async def pending(self) -> list[Delivery]:
        return await self._run(self._db.pending)

    async def outbox_depth(self, chat_id: int | None = None) -> int:
        return await self._run(self._db.outbox_depth, chat_id)

    async def complete(self, delivery_id: str) -> None:
        await self._run(self._db.complete, delivery_id)

    async def record_attempt(self, delivery: Delivery) -> None:
        await self._shared(lambda db: db.record_attempt(delivery))

    async def drop_chat_deliveries(self, chat_id: int) -> int:
        return await self._durable(lambda db: db.drop_chat_deliveries(chat_id))

    # ---------------------------------------------------------------- digests
    async def due_digests(self, now: float, chats: int) -> list[DigestItem]:
        return await self._run(self._db.due_digests, now, chats)

    async def digest_waiting(self, chat_id: int) -> list[DigestItem]:
        return await self._run(self._db.digest_waiting, chat_id)

    async def commit_digest(self, taken: Sequence[str], deliveries: Sequence[Delivery]) -> None:
        await self._durable(lambda db: db.commit_digest(taken, list(deliveries)))
        if deliveries:
            self._local.announce(TOPIC_OUTBOX)

    # ------------------------------------------- several processes, one bot
    async def try_lead(self, seat: str) -> bool:
        return not self._closed  # the file's lock makes this process the only one

    async def step_down(self, seat: str) -> None:
        pass

    async def watch(self, topic: str) -> asyncio.Event:
        return self._local.watch(topic)

    async def record_sends(self, chat_ids: Sequence[int]) -> None:
        pass  # no other process can take over this one's sending

    async def recent_sends(self, within_s: float) -> list[tuple[int, float]]:
        return []

    async def relay_call(self, call: RelayedCall) -> None:
        self._local.relay(call)
        self._local.announce(TOPIC_CALLS)

    async def take_calls(self, limit: int, lease_s: float) -> list[RelayedCall]:
        return self._local.take(limit, lease_s)

    async def answer_call(self, call_id: str, answer: CallAnswer) -> None:
        self._local.answer(call_id, answer)
        self._local.announce(TOPIC_ANSWERS)

    async def collect_answer(self, call_id: str) -> CallAnswer | None:
        return self._local.collect(call_id)

    # ---------------------------------------------------------- the bot's own
    async def telegraph_token(self) -> str | None:
        return await self._run(self._db.bot_value, TELEGRAPH_TOKEN)

    async def keep_telegraph_token(self, token: str) -> str:
        return await self._durable(lambda db: db.keep_bot_value(TELEGRAPH_TOKEN, token))

    # ------------------------------------------------------------- the whole
    async def stats(self) -> StorageStats:
        return await self._run(_stats, self._db)

    async def export_all(self) -> StoredState:
        return await self._run(self._db.export_all)

    async def import_all(self, state: StoredState) -> None:
        await self._durable(lambda db: db.import_all(state))


def _feed_state(db: Database, url: str) -> FeedState | None:
    feed = db.get_feed(url)
    return None if feed is None else _state_of(db, feed)


def _state_of(db: Database, feed: Feed) -> FeedState:
    url = feed.url
    subs = db.subscriptions_for_feed(url)
    chats = {}
    for sub in subs:
        chat = db.get_chat(sub.chat_id)
        if chat is not None:
            chats[sub.chat_id] = chat
    keys = [feed_key(url)]
    keys += [sub_key(s.chat_id, url) for s in subs] + [chat_key(s.chat_id) for s in subs]
    return FeedState(feed, subs, chats, db.stamp(keys))


def _chat_state(db: Database, chat_id: int) -> ChatState:
    rows = [
        SubscriptionRow(sub, db.get_feed(sub.feed_url) or Feed(sub.feed_url))
        for sub in db.subscriptions_for_chat(chat_id)
    ]
    keys = [chat_key(chat_id), chat_subs_key(chat_id)]
    keys += [sub_key(chat_id, row.subscription.feed_url) for row in rows]
    keys += [feed_key(row.subscription.feed_url) for row in rows]
    return ChatState(db.get_chat(chat_id), rows, db.stamp(keys))


def _apply(db: Database, commit: FeedCommit) -> None:
    db.check(commit.expected)
    db.enqueue(commit.deliveries)
    db.collect_digest(commit.digest_items)
    for chat in commit.chats:
        db.save_chat(chat)
    for sub in commit.subscriptions:
        db.save_subscription(sub)
    db.save_feed(commit.feed)
    if commit.moved_to and commit.moved_to != commit.feed.url:
        db.move_feed(commit.feed.url, commit.moved_to)


def _stats(db: Database) -> StorageStats:
    feeds, subs = db.all_feeds(), db.all_subscriptions()
    return StorageStats(
        chats=len(db.all_chats()),
        feeds=len(feeds),
        subscriptions=len(subs),
        paused=sum(1 for s in subs if s.paused),
        outbox=db.outbox_depth(),
        failing=sum(1 for f in feeds if f.errors and not f.retired),
        retired=sum(1 for f in feeds if f.retired),
    )


def _call(fn: _Work, db: Database) -> _Outcome:
    try:
        return fn(db), None
    except Exception as exc:
        return None, exc


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
