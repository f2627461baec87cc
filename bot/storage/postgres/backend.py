"""`PostgresStorage`: the storage protocol on a PostgreSQL server, for any number of processes.

Each write operation is one transaction on a pooled connection (queries.Tx): stamped ones lock
and compare the stamped rows first. A deadlock or serialization failure between two writers is
a `StorageConflict` for a stamped write (its use case reads and decides again); an unstamped
write, which decided nothing, is simply run again. Writes the protocol allows to lose (a 304's
next check, a delivery's attempt count) commit with `synchronous_commit = off`: PostgreSQL
applies them whole or not at all, it only does not wait for their WAL flush.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from bot.errors import FeedbotError
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
    StorageConflict,
    StorageStats,
    StoredState,
    SubscriptionMove,
    remember_in_chat,
    remember_in_feed,
)
from bot.storage.postgres.queries import Tx
from bot.storage.postgres.records import set_codecs
from bot.storage.postgres.schema import migrate

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how long start-up waits for an unreachable server before giving up
CONNECT_WAIT_S = 30.0
#: how often an unstamped write runs again after a deadlock with another writer
_RERUNS = 5
_CONTENTION = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
#: failures that may pass (the server is starting, restarting, or the network is back soon)
_TRANSIENT = (OSError, TimeoutError, asyncpg.CannotConnectNowError,
              asyncpg.TooManyConnectionsError, asyncpg.ConnectionDoesNotExistError)


class StorageUnavailable(FeedbotError):
    """The database cannot be used: unreachable at start, refused the login, or no such one."""

    kind = "storage"


def describe_url(url: str) -> str:
    """Where a database URL points, for logs and errors: no user name, no password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


#: the server's clock in epoch seconds (every process compares against one clock)
_NOW = "extract(epoch from clock_timestamp())"
#: how often housekeeping prunes old sends and answered calls (seconds)
_PRUNE_EVERY = 30.0
#: how long an answered call waits for the process that relayed it (seconds)
_ANSWER_KEPT = 600


def channel(topic: str) -> str:
    """The NOTIFY channel of a `Storage.watch` topic."""
    return f"feedbot_{topic}"


def seat_key(seat: str) -> int:
    """pg_advisory_lock's bigint key for a seat name (a hash: any process computes the same)."""
    return int.from_bytes(hashlib.sha256(seat.encode()).digest()[:8], "big", signed=True)


class PostgresStorage:
    def __init__(self, pool: asyncpg.Pool, url: str = "") -> None:
        self._pool = pool
        self._url = url
        #: the one connection that holds this process's seats and listens for announcements:
        #: its end (the process died, the network is gone) frees every seat it held at once
        self._control: asyncpg.Connection | None = None
        self._control_lock = asyncio.Lock()
        self._seats: set[str] = set()
        self._events: dict[str, asyncio.Event] = {}
        self._pruned_at = 0.0

    @classmethod
    async def open(
        cls, url: str, *, connect_wait_s: float = CONNECT_WAIT_S, max_connections: int = 10
    ) -> PostgresStorage:
        """Connect (retrying an unreachable server for `connect_wait_s`), create or migrate
        the schema, and return the storage. StorageUnavailable when it cannot be used."""
        if urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise StorageUnavailable(
                f"FEEDBOT_DATABASE_URL must start with postgresql:// or postgres:// "
                f"(got {urlsplit(url).scheme or 'no scheme'})"
            )
        pool = await _connect(url, connect_wait_s, max_connections)
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        if applied:
            log.info("PostgreSQL at %s: schema steps applied: %d", describe_url(url), applied)
        return cls(pool, url)

    async def close(self) -> None:
        if self._control is not None and not self._control.is_closed():
            await self._control.close()  # frees the seats at once
        self._seats.clear()
        await self._pool.close()

    async def flush_due(self) -> None:
        """Every write is committed when its call returns; now and then the sends older than
        a group's minute and the answered calls nobody collected are pruned."""
        now = time.monotonic()
        if now - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = now
        await self._write(lambda tx: tx.conn.execute(
            f"DELETE FROM recent_sends WHERE sent_at < {_NOW} - 120;"
            f" DELETE FROM relayed_calls WHERE answer IS NOT NULL AND created < {_NOW} - "
            f"{_ANSWER_KEPT}"), durable=False)

    # ---------------------------------------------------------- transactions
    @asynccontextmanager
    async def _tx(self, *, durable: bool = True, snapshot: bool = False) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn:
            isolation = "repeatable_read" if snapshot else "read_committed"
            async with conn.transaction(isolation=isolation, readonly=snapshot):
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                yield Tx(conn)

    async def _stamped(self, work: Callable[[Tx], Awaitable[T]], *, durable: bool = True) -> T:
        """A write decided on stamped reads: contention with another writer is a conflict."""
        try:
            async with self._tx(durable=durable) as tx:
                return await work(tx)
        except _CONTENTION as exc:
            raise StorageConflict(type(exc).__name__) from exc

    async def _write(self, work: Callable[[Tx], Awaitable[T]], *, durable: bool = True) -> T:
        """A write that decided nothing: run again after contention with another writer."""
        for _ in range(_RERUNS):
            try:
                async with self._tx(durable=durable) as tx:
                    return await work(tx)
            except _CONTENTION:
                await asyncio.sleep(0.01)
        async with self._tx(durable=durable) as tx:
            return await work(tx)

    async def _read(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn:
            return await work(Tx(conn))

    async def _snapshot(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Reads a decision is made on: one consistent snapshot."""
        async with self._tx(snapshot=True) as tx:
            return await work(tx)

    # ------------------------------------------------------------------ feeds
    async def due_feeds(self, now: float) -> list[Feed]:
        return await self._read(lambda tx: tx.due_feeds(now))

    async def get_feed(self, url: str) -> Feed | None:
        return await self._read(lambda tx: tx.get_feed(url))

    async def save_feed(self, feed: Feed) -> None:
        await self._write(lambda tx: tx.save_feed(feed))

    async def load_feed(self, url: str) -> FeedState | None:
        return await self._snapshot(lambda tx: tx.load_feed(url))

    async def commit_check(self, commit: FeedCommit) -> None:
        await self._stamped(lambda tx: _apply(tx, commit))

    async def record_failure(self, commit: FeedCommit) -> None:
        if not _parsed_nothing(commit):
            await self._stamped(lambda tx: _apply(tx, commit))
            return

        async def failed(tx: Tx) -> None:
            await tx.check(commit.expected)
            await _apply_checked(tx, commit)

        await self._stamped(failed)

    async def resume_subscription(self, commit: FeedCommit) -> None:
        await self._stamped(lambda tx: _apply(tx, commit))

    async def record_not_modified(self, commit: FeedCommit) -> None:
        # durable only when something a user sees changes: a notice, a move, a failure cleared
        # that subscribers were told of; a next-check time alone is harmless to lose
        async def not_modified(tx: Tx) -> None:
            await tx.check(commit.expected)
            if not _parsed_nothing(commit):
                durable = bool(commit.deliveries or commit.moved_to) or await tx.conn.fetchval(
                    "SELECT failure_notified FROM feeds WHERE url = $1", commit.feed.url)
                if durable:
                    await tx.conn.execute("SET LOCAL synchronous_commit = on")
                await _apply(tx, commit, checked=True)
                return
            told_failing = await _apply_checked(tx, commit)
            if commit.deliveries or told_failing:
                await tx.conn.execute("SET LOCAL synchronous_commit = on")  # before the commit

        await self._stamped(not_modified, durable=False)

    async def postpone_check(self, url: str, next_check: float) -> None:
        await self._write(lambda tx: tx.conn.execute(
            "UPDATE feeds SET next_check = $2, lease_until = 0,"
            " version = nextval('record_versions') WHERE url = $1", url, next_check),
            durable=False)

    async def claim_due_feeds(self, now: float, limit: int, lease_s: float) -> list[FeedState]:
        """The feeds table is the work queue: due rows another checker is claiming right now
        are skipped (SKIP LOCKED), and a claimed row carries its lease's end, so no other
        checker claims it until the check commits or the lease runs out. The lease is not a
        change of the feed: its version (what stamps compare) stays."""
        if limit <= 0:
            return []
        return await self._write(lambda tx: tx.claim_due_feeds(now, limit, lease_s))

    # ---------------------------------------------------------- subscriptions
    async def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        return await self._read(lambda tx: tx.subscriptions_for_chat(chat_id))

    async def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        return await self._read(lambda tx: tx.subscriptions_for_feed(url))

    async def save_subscription(self, sub: Subscription) -> None:
        await self._write(lambda tx: tx.save_subscriptions([sub]))

    async def remove_subscription(self, chat_id: int, url: str) -> bool:
        return await self._write(lambda tx: tx.remove_subscription(chat_id, url))

    async def remove_subscriptions(self, chat_id: int, urls: Sequence[str]) -> None:
        async def remove(tx: Tx) -> None:
            for url in sorted(set(urls)):
                await tx.remove_subscription(chat_id, url)

        await self._write(remove)

    async def add_subscriptions(self, new: Sequence[NewSubscription], expected: Stamp) -> None:
        async def add(tx: Tx) -> None:
            await tx.check(expected)
            for item in new:
                feed = await tx.lock_feed_or_create(item.feed)
                feed.retired = False  # it answered just now: a feed once gone (410) is back
                feed.seen = remember_in_feed(feed.seen, item.prints, item.feed_cap)
                await tx.save_feed(feed)
                chat = await tx.lock_chat_or_create(item.chat)
                chat.seen = remember_in_chat(chat.seen, item.prints, item.chat_cap)
                await tx.save_chats([chat])
                await tx.save_subscriptions([item.subscription])

        await self._stamped(add)

    async def update_subscriptions(
        self, subs: Sequence[Subscription], feeds: Sequence[Feed], expected: Stamp
    ) -> None:
        async def update(tx: Tx) -> None:
            await tx.check(expected)
            await tx.save_subscriptions(subs)
            for feed in feeds:
                await tx.save_feed(feed)

        await self._stamped(update)

    async def move_subscription(self, move: SubscriptionMove, expected: Stamp) -> None:
        async def moving(tx: Tx) -> None:
            await tx.check(expected)
            await tx.lock_feed_or_create(move.feed)
            await tx.remove_subscription(move.chat_id, move.old_url)
            await tx.save_subscriptions([move.subscription])
            await tx.conn.execute(
                "UPDATE deliveries SET feed_url = $3 WHERE chat_id = $1 AND feed_url = $2",
                move.chat_id, move.old_url, move.subscription.feed_url)

        await self._stamped(moving)

    # ------------------------------------------------------------------ chats
    async def get_chat(self, chat_id: int) -> Chat | None:
        return await self._read(lambda tx: tx.get_chat(chat_id))

    async def read_chat(self, chat_id: int) -> ChatRecord:
        return await self._read(lambda tx: tx.read_chat(chat_id))

    async def load_chat(self, chat_id: int) -> ChatState:
        return await self._snapshot(lambda tx: tx.load_chat(chat_id))

    async def save_chat(self, chat: Chat, expected: Stamp | None = None) -> None:
        async def save(tx: Tx) -> None:
            if expected is not None:
                await tx.check(expected)
            await tx.save_chats([chat])

        if expected is None:
            await self._write(save)
        else:
            await self._stamped(save)

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        await self._write(lambda tx: tx.migrate_chat(old_id, new_id))

    # ----------------------------------------------------------------- outbox
    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        async def enqueue(tx: Tx) -> None:
            await tx.enqueue(deliveries)
            await tx.announce(channel(TOPIC_OUTBOX))

        await self._write(enqueue)

    async def pending(self) -> list[Delivery]:
        return await self._read(lambda tx: tx.pending())

    async def outbox_depth(self, chat_id: int | None = None) -> int:
        if chat_id is None:
            return await self._read(lambda tx: tx.conn.fetchval(
                "SELECT count(*) FROM deliveries"))
        return await self._read(lambda tx: tx.conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE chat_id = $1", chat_id))

    async def complete(self, delivery_id: str) -> None:
        async def complete(tx: Tx) -> None:
            await tx.conn.execute(
                f"INSERT INTO recent_sends SELECT chat_id, {_NOW} FROM deliveries WHERE id = $1",
                delivery_id)
            await tx.remove_deliveries("id = $1", delivery_id)

        await self._write(complete)

    async def record_attempt(self, delivery: Delivery) -> None:
        await self._write(lambda tx: tx.conn.execute(
            "UPDATE deliveries SET attempts = $2 WHERE id = $1", delivery.id, delivery.attempts,
        ), durable=False)

    async def drop_chat_deliveries(self, chat_id: int) -> int:
        async def drop(tx: Tx) -> int:
            await tx.conn.execute("DELETE FROM digest_items WHERE chat_id = $1", chat_id)
            return await tx.remove_deliveries("chat_id = $1", chat_id)

        return await self._write(drop)

    # ---------------------------------------------------------------- digests
    async def due_digests(self, now: float, chats: int) -> list[DigestItem]:
        return await self._read(lambda tx: tx.due_digests(now, chats))

    async def digest_waiting(self, chat_id: int) -> list[DigestItem]:
        return await self._read(lambda tx: tx.digest_waiting(chat_id))

    async def commit_digest(self, taken: Sequence[str], deliveries: Sequence[Delivery]) -> None:
        async def commit(tx: Tx) -> None:
            await tx.take_digest(taken)
            await tx.enqueue(deliveries)
            if deliveries:
                await tx.announce(channel(TOPIC_OUTBOX))

        await self._write(commit)

    # ------------------------------------------- several processes, one bot
    async def _control_connection(self) -> asyncpg.Connection:
        """The control connection, opened again (seats lost, listeners set up again) when
        it is gone."""
        conn = self._control
        if conn is not None and not conn.is_closed():
            return conn
        if self._seats:
            log.warning("PostgreSQL control connection lost: seats %s given up",
                        ", ".join(sorted(self._seats)))
        self._seats.clear()
        conn = await asyncpg.connect(self._url, timeout=10)
        for topic in self._events:
            await conn.add_listener(channel(topic), self._announced)
        self._control = conn
        for event in self._events.values():
            event.set()  # announcements may have been missed meanwhile: look
        return conn

    def _announced(self, _conn: object, _pid: int, name: str, _payload: str) -> None:
        event = self._events.get(name.removeprefix("feedbot_"))
        if event is not None:
            event.set()

    async def try_lead(self, seat: str) -> bool:
        async with self._control_lock:
            try:
                conn = await self._control_connection()
                if seat in self._seats:
                    await conn.fetchval("SELECT 1", timeout=5)  # still connected: still held
                    return True
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", seat_key(seat)):
                    self._seats.add(seat)
                    return True
                return False
            except (*_TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("PostgreSQL control connection failed (%s): seats given up",
                            _reason(exc))
                if self._control is not None:
                    self._control.terminate()
                self._control = None
                self._seats.clear()
                return False

    async def step_down(self, seat: str) -> None:
        async with self._control_lock:
            if seat not in self._seats:
                return
            self._seats.discard(seat)
            conn = self._control
            if conn is not None and not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", seat_key(seat))

    async def watch(self, topic: str) -> asyncio.Event:
        async with self._control_lock:
            event = self._events.get(topic)
            if event is None:
                event = self._events[topic] = asyncio.Event()
                conn = self._control
                if conn is not None and not conn.is_closed():
                    await conn.add_listener(channel(topic), self._announced)
                else:
                    await self._control_connection()
            return event

    async def record_sends(self, chat_ids: Sequence[int]) -> None:
        if chat_ids:
            await self._write(lambda tx: tx.conn.execute(
                f"INSERT INTO recent_sends SELECT unnest($1::bigint[]), {_NOW}",
                list(chat_ids)), durable=False)

    async def recent_sends(self, within_s: float) -> list[tuple[int, float]]:
        rows = await self._read(lambda tx: tx.conn.fetch(
            f"SELECT chat_id, {_NOW} - sent_at AS age FROM recent_sends"
            f" WHERE sent_at > {_NOW} - $1 ORDER BY sent_at", within_s))
        return [(row["chat_id"], max(0.0, row["age"])) for row in rows]

    async def relay_call(self, call: RelayedCall) -> None:
        async def relay(tx: Tx) -> None:
            await tx.conn.execute(
                "INSERT INTO relayed_calls (id, endpoint, params, priority, created)"
                f" VALUES ($1, $2, $3, $4, {_NOW})",
                call.id, call.endpoint, call.params, call.priority)
            await tx.announce(channel(TOPIC_CALLS))

        await self._write(relay)

    async def take_calls(self, limit: int, lease_s: float) -> list[RelayedCall]:
        rows = await self._write(lambda tx: tx.conn.fetch(
            f"UPDATE relayed_calls SET taken_until = {_NOW} + $2 WHERE id IN ("
            " SELECT id FROM relayed_calls"
            f" WHERE answer IS NULL AND taken_until <= {_NOW}"
            " ORDER BY priority, created LIMIT $1 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, endpoint, params, priority, created", limit, lease_s))
        calls = [RelayedCall(r["id"], r["endpoint"], r["params"], r["priority"], r["created"])
                 for r in rows]
        return sorted(calls, key=lambda c: (c.priority, c.created))

    async def answer_call(self, call_id: str, answer: CallAnswer) -> None:
        async def store(tx: Tx) -> None:
            await tx.conn.execute(
                "UPDATE relayed_calls SET answer = $2 WHERE id = $1", call_id,
                {"ok": answer.ok, "result": answer.result, "error": answer.error,
                 "message": answer.message})
            await tx.announce(channel(TOPIC_ANSWERS))

        await self._write(store)

    async def collect_answer(self, call_id: str) -> CallAnswer | None:
        raw = await self._write(lambda tx: tx.conn.fetchval(
            "DELETE FROM relayed_calls WHERE id = $1 AND answer IS NOT NULL RETURNING answer",
            call_id))
        if raw is None:
            return None
        return CallAnswer(bool(raw["ok"]), raw.get("result"), raw.get("error", ""),
                          raw.get("message", ""))

    # ---------------------------------------------------------- the bot's own
    async def telegraph_token(self) -> str | None:
        return await self._read(lambda tx: tx.bot_value(TELEGRAPH_TOKEN))

    async def keep_telegraph_token(self, token: str) -> str:
        return await self._write(lambda tx: tx.keep_bot_value(TELEGRAPH_TOKEN, token))

    # ------------------------------------------------------------- the whole
    async def stats(self) -> StorageStats:
        return await self._read(lambda tx: tx.stats())

    async def export_all(self) -> StoredState:
        return await self._snapshot(lambda tx: tx.export_all())

    async def import_all(self, state: StoredState) -> None:
        await self._write(lambda tx: tx.replace_all(state))


def _parsed_nothing(commit: FeedCommit) -> bool:
    """A 304 or a failure that changes only the feed's small state (and may queue notices):
    written as one small UPDATE (`Tx.save_feed_checked`)."""
    return not (commit.chats or commit.subscriptions or commit.moved_to)


async def _apply_checked(tx: Tx, commit: FeedCommit) -> bool:
    """The write of a check that parsed nothing, after its stamps were checked; True when the
    feed's subscribers had been told it was failing."""
    await tx.enqueue(commit.deliveries)
    told_failing = await tx.save_feed_checked(commit.feed)
    if told_failing is None:  # not stored (the stamp said so): stored whole
        await tx.save_feed(commit.feed, release=True)
        told_failing = False
    if commit.deliveries:
        await tx.announce(channel(TOPIC_OUTBOX))
    return told_failing


async def _apply(tx: Tx, commit: FeedCommit, *, checked: bool = False) -> None:
    if not checked:
        await tx.check(commit.expected)
    await tx.enqueue(commit.deliveries)
    await tx.collect_digest(commit.digest_items)
    await tx.save_chats(commit.chats)
    await tx.save_subscriptions(commit.subscriptions)
    await tx.save_feed(commit.feed, release=True)
    if commit.deliveries:
        await tx.announce(channel(TOPIC_OUTBOX))
    if commit.moved_to and commit.moved_to != commit.feed.url:
        await tx.move_feed(commit.feed.url, commit.moved_to)


async def _connect(url: str, wait_s: float, max_connections: int) -> asyncpg.Pool:
    """A connection pool; an unreachable server is tried again until `wait_s` has passed."""
    loop = asyncio.get_running_loop()
    where = describe_url(url)
    deadline = loop.time() + wait_s
    delay = 0.5
    while True:
        left = deadline - loop.time()
        try:
            return await asyncpg.create_pool(
                url, min_size=1, max_size=max_connections, init=set_codecs,
                timeout=max(1.0, min(10.0, left)),
            )
        except _TRANSIENT as exc:
            left = deadline - loop.time()
            if left <= 0:
                raise StorageUnavailable(
                    f"PostgreSQL at {where} could not be reached for {wait_s:g} s "
                    f"({_reason(exc)}): is the server running, and FEEDBOT_DATABASE_URL right?"
                ) from exc
            log.warning("PostgreSQL at %s cannot be reached (%s); trying again for %.0f s",
                        where, _reason(exc), left)
            await asyncio.sleep(min(delay, left))
            delay = min(2 * delay, 5.0)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StorageUnavailable(f"PostgreSQL at {where}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["PostgresStorage", "StorageUnavailable", "describe_url"]
