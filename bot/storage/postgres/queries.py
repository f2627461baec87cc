"""The SQL of the storage operations, on one connection inside one transaction (`Tx`).

Stamps. Every record row (feed, chat, subscription, a chat's set of subscriptions) has a
`version`, a fresh number from the `record_versions` sequence on every write, so a version never
repeats. `Tx.check` locks the stamped rows (`SELECT ... FOR UPDATE`, in one fixed order) and
compares; a row that was absent when read must still be absent, and when this transaction then
creates it, it does so with `ON CONFLICT DO NOTHING`: finding it created meanwhile (by a
transaction that was still open during the check) is a conflict too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from types import MappingProxyType
from typing import Any

import asyncpg

from bot.models import Chat, Delivery, DigestItem, Feed, Subscription
from bot.storage.base import (
    ChatRecord,
    ChatState,
    FeedState,
    Stamp,
    StorageConflict,
    StorageStats,
    StoredState,
    SubscriptionRow,
    chat_key,
    chat_subs_key,
    feed_key,
    remember_in_chat,
    sub_key,
)
from bot.storage.postgres.records import (
    CHAT_COLUMNS,
    DELIVERY_COLUMNS,
    DIGEST_COLUMNS,
    FEED_COLUMNS,
    FEED_STATE_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    chat_from,
    chat_values,
    delivery_from,
    delivery_values,
    digest_from,
    digest_values,
    feed_from,
    feed_state_values,
    feed_values,
    message_form,
    subscription_from,
    subscription_values,
)

NEXT_VERSION = "nextval('record_versions')"


def _insert(table: str, columns: Sequence[str], key: Sequence[str], *, upsert: bool) -> str:
    """INSERT of one row (a fresh version); on a key already there, update it or do nothing."""
    names = ", ".join((*columns, "version"))
    values = ", ".join([f"${i}" for i in range(1, len(columns) + 1)] + [NEXT_VERSION])
    sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({', '.join(key)}) "
    if not upsert:
        return sql + "DO NOTHING"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*columns, "version") if c not in key)
    return sql + f"DO UPDATE SET {updates}"


_FEED_UPSERT = _insert("feeds", FEED_COLUMNS, ["url"], upsert=True)
_FEED_CREATE = _insert("feeds", FEED_COLUMNS, ["url"], upsert=False)
#: a check that parsed nothing: one UPDATE of the feed's small columns that also ends the lease;
#: the seen-set and item records are not sent again (nor rewritten: PostgreSQL keeps an
#: unchanged large value where it is). The CTE reads the row as it was before the update.
_FEED_CHECKED = (
    "WITH before AS (SELECT url, failure_notified FROM feeds WHERE url = $1) UPDATE feeds f SET "
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(FEED_STATE_COLUMNS, start=2))
    + f", lease_until = 0, version = {NEXT_VERSION} FROM before WHERE f.url = before.url"
    " RETURNING before.failure_notified"
)
_CHAT_UPSERT = _insert("chats", CHAT_COLUMNS, ["id"], upsert=True)
_CHAT_CREATE = _insert("chats", CHAT_COLUMNS, ["id"], upsert=False)
_SUB_KEY = ["chat_id", "feed_url"]
# RETURNING (xmax = 0): true when the row is new (PostgreSQL's mark of an inserted row version)
_SUB_UPSERT = _insert("subscriptions", SUBSCRIPTION_COLUMNS, _SUB_KEY, upsert=True) + (
    " RETURNING (xmax = 0) AS created"
)
_SUB_CREATE = _insert("subscriptions", SUBSCRIPTION_COLUMNS, _SUB_KEY, upsert=False)
_DELIVERY_INSERT = (
    f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(DELIVERY_COLUMNS) + 1))})"
)
# a message row is locked (a no-op update) so that the clean-up of a message whose last
# delivery went cannot remove it under a delivery being queued
_MESSAGE_KEEP = (
    "INSERT INTO messages (digest, message) VALUES ($1, $2) "
    "ON CONFLICT (digest) DO UPDATE SET digest = messages.digest"
)
_DIGEST_INSERT = (
    f"INSERT INTO digest_items ({', '.join(DIGEST_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(DIGEST_COLUMNS) + 1))})"
)
_PENDING = (
    "SELECT d.*, m.message FROM deliveries d JOIN messages m ON m.digest = d.message_digest"
)


# ---------------------------------------------------------------- stamp keys
def _state(
    feed: asyncpg.Record, subs: Sequence[asyncpg.Record], chats: dict[int, asyncpg.Record]
) -> FeedState:
    """A feed's state from its row, its subscriptions' rows (by chat id) and the rows of
    their chats (those that exist), stamped."""
    url = feed["url"]
    versions = {feed_key(url): feed["version"]}
    for sub in subs:
        chat = chats.get(sub["chat_id"])
        versions[sub_key(sub["chat_id"], url)] = sub["version"]
        versions[chat_key(sub["chat_id"])] = chat["version"] if chat is not None else 0
    return FeedState(
        feed_from(feed), [subscription_from(s) for s in subs],
        {s["chat_id"]: chat_from(chats[s["chat_id"]]) for s in subs if s["chat_id"] in chats},
        stamp(versions),
    )


def stamp(versions: dict[str, int]) -> Stamp:
    return Stamp(MappingProxyType(versions))


class Tx:
    """One transaction's queries. `absent`: stamped records that did not exist at the check."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.absent: set[str] = set()

    # ----------------------------------------------------------------- stamps
    async def check(self, expected: Stamp) -> None:
        """Lock every stamped row and compare versions: StorageConflict on any difference."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for key in expected.versions:
            kind, _, rest = key.partition(":")
            wanted[kind].append(rest)
        found: dict[str, int] = {}
        if wanted["feed"]:
            rows = await self.conn.fetch(
                "SELECT url, version FROM feeds WHERE url = ANY($1::text[])"
                " ORDER BY url FOR UPDATE", wanted["feed"])
            found.update((feed_key(r["url"]), r["version"]) for r in rows)
        if wanted["sub"]:
            pairs = [rest.split(":", 1) for rest in wanted["sub"]]
            rows = await self.conn.fetch(
                "SELECT s.chat_id, s.feed_url, s.version FROM subscriptions s"
                " JOIN unnest($1::bigint[], $2::text[]) AS k (chat_id, feed_url)"
                " USING (chat_id, feed_url) ORDER BY s.chat_id, s.feed_url FOR UPDATE OF s",
                [int(c) for c, _ in pairs], [u for _, u in pairs])
            found.update((sub_key(r["chat_id"], r["feed_url"]), r["version"]) for r in rows)
        tables = (("chat", "chats", "id", chat_key),
                  ("subs-of", "subscription_sets", "chat_id", chat_subs_key))
        for kind, table, column, key_of in tables:
            if wanted[kind]:
                rows = await self.conn.fetch(
                    f"SELECT {column} AS id, version FROM {table}"
                    f" WHERE {column} = ANY($1::bigint[]) ORDER BY {column} FOR UPDATE",
                    [int(i) for i in wanted[kind]])
                found.update((key_of(r["id"]), r["version"]) for r in rows)
        for key, version in expected.versions.items():
            if found.get(key, 0) != version:
                raise StorageConflict(key)
            if version == 0:
                self.absent.add(key)

    def _created_or_conflict(self, key: str, status: str) -> None:
        if status.endswith(" 0"):  # "INSERT 0 0": it exists after all
            raise StorageConflict(key)

    # ------------------------------------------------------------------ feeds
    async def get_feed(self, url: str, *, lock: bool = False) -> Feed | None:
        sql = "SELECT * FROM feeds WHERE url = $1" + (" FOR UPDATE" if lock else "")
        row = await self.conn.fetchrow(sql, url)
        return feed_from(row) if row is not None else None

    async def save_feed(self, feed: Feed, *, release: bool = False) -> None:
        """`release`: a check's commit, which ends the checker's lease on the feed."""
        if feed_key(feed.url) in self.absent:
            status = await self.conn.execute(_FEED_CREATE, *feed_values(feed))
            self._created_or_conflict(feed_key(feed.url), status)
            self.absent.discard(feed_key(feed.url))
        else:
            await self.conn.execute(_FEED_UPSERT, *feed_values(feed))
        if release:
            await self.conn.execute("UPDATE feeds SET lease_until = 0 WHERE url = $1", feed.url)

    async def save_feed_checked(self, feed: Feed) -> bool | None:
        """A check that parsed nothing: the feed's small columns, its lease ended. Returns
        whether subscribers had been told it was failing (as stored before), None when the
        feed is not stored."""
        result: bool | None = await self.conn.fetchval(
            _FEED_CHECKED, feed.url, *feed_state_values(feed))
        return result

    async def announce(self, name: str) -> None:
        """NOTIFY `name` when the transaction commits (several in one are delivered once)."""
        await self.conn.execute("SELECT pg_notify($1, '')", name)

    async def lock_feed_or_create(self, feed: Feed) -> Feed:
        """The stored feed, locked; `feed` stored first when there is none."""
        stored = await self.get_feed(feed.url, lock=True)
        if stored is None:
            status = await self.conn.execute(_FEED_CREATE, *feed_values(feed))
            stored = await self.get_feed(feed.url, lock=True)
            if stored is None:  # removed (with its last subscription) while this one waited
                raise StorageConflict(feed_key(feed.url))
            if feed_key(feed.url) in self.absent:
                self._created_or_conflict(feed_key(feed.url), status)
        elif feed_key(feed.url) in self.absent:  # created since the check
            raise StorageConflict(feed_key(feed.url))
        self.absent.discard(feed_key(feed.url))
        return stored

    async def delete_feed(self, url: str) -> None:
        await self.conn.execute("DELETE FROM feeds WHERE url = $1", url)

    async def move_feed(self, old_url: str, new_url: str) -> None:
        """A feed moved permanently: its state, subscriptions and outbox follow; duplicates
        merge (the seen-sets as a union: the next check trims it to the feed's cap)."""
        feed = await self.get_feed(old_url, lock=True)
        if feed is None or old_url == new_url:
            return
        target = await self.get_feed(new_url, lock=True)
        if target is not None:
            target.seen = remember_in_chat(feed.seen, list(target.seen), 0)
            feed = target
        feed.url = new_url
        await self.delete_feed(old_url)
        await self.save_feed(feed)
        moved = await self._move_subscriptions("feed_url", old_url, new_url)
        await self.bump_sets(s.chat_id for s in moved)

    async def due_feeds(self, now: float) -> list[Feed]:
        """From the next-check index; an active subscriber is looked up per due feed (a
        subquery with LIMIT, not EXISTS: from a thousand due feeds on, the planner would hash
        every subscription instead, six times slower at 100k feeds)."""
        rows = await self.conn.fetch(
            "SELECT f.* FROM feeds f WHERE f.next_check <= $1 AND NOT f.retired AND ("
            " SELECT true FROM subscriptions s LEFT JOIN chats c ON c.id = s.chat_id"
            " WHERE s.feed_url = f.url AND NOT s.paused AND c.paused IS NOT TRUE LIMIT 1)"
            " ORDER BY f.next_check, f.url", now)
        return [feed_from(row) for row in rows]

    async def claim_due_feeds(self, now: float, limit: int, lease_s: float) -> list[FeedState]:
        rows = await self.conn.fetch(
            "UPDATE feeds SET lease_until = $2 WHERE url IN ("
            " SELECT f.url FROM feeds f"
            " WHERE f.next_check <= $1 AND NOT f.retired AND f.lease_until <= $1 AND ("
            "  SELECT true FROM subscriptions s LEFT JOIN chats c ON c.id = s.chat_id"
            "  WHERE s.feed_url = f.url AND NOT s.paused AND c.paused IS NOT TRUE LIMIT 1)"
            " ORDER BY f.next_check, f.url LIMIT $3 FOR UPDATE SKIP LOCKED)"
            " RETURNING *", now, now + lease_s, limit)
        rows = sorted(rows, key=lambda row: (row["next_check"], row["url"]))
        return await self._states_of(rows)

    async def _states_of(self, feeds: list[asyncpg.Record]) -> list[FeedState]:
        """The feed rows' states as `load_feed` reads them: two queries for all of them."""
        if not feeds:  # a tick with nothing due
            return []
        urls = [row["url"] for row in feeds]
        subs = await self.conn.fetch(
            "SELECT * FROM subscriptions WHERE feed_url = ANY($1::text[]) ORDER BY chat_id", urls)
        chats = await self.conn.fetch(
            "SELECT * FROM chats WHERE id = ANY($1::bigint[])",
            list({s["chat_id"] for s in subs}))
        chat_rows = {c["id"]: c for c in chats}
        subs_of: dict[str, list[asyncpg.Record]] = {url: [] for url in urls}
        for sub in subs:
            subs_of[sub["feed_url"]].append(sub)
        return [_state(row, subs_of[row["url"]], chat_rows) for row in feeds]

    # ------------------------------------------------------------------ chats
    async def get_chat(self, chat_id: int, *, lock: bool = False) -> Chat | None:
        sql = "SELECT * FROM chats WHERE id = $1" + (" FOR UPDATE" if lock else "")
        row = await self.conn.fetchrow(sql, chat_id)
        return chat_from(row) if row is not None else None

    async def save_chats(self, chats: Iterable[Chat]) -> None:
        known = []
        for chat in chats:
            key = chat_key(chat.id)
            if key in self.absent:
                status = await self.conn.execute(_CHAT_CREATE, *chat_values(chat))
                self._created_or_conflict(key, status)
                self.absent.discard(key)
            else:
                known.append(chat_values(chat))
        if known:
            await self.conn.executemany(_CHAT_UPSERT, known)

    async def lock_chat_or_create(self, chat: Chat) -> Chat:
        """The stored chat, locked; `chat` stored first when there is none."""
        stored = await self.get_chat(chat.id, lock=True)
        if stored is None:
            status = await self.conn.execute(_CHAT_CREATE, *chat_values(chat))
            stored = await self.get_chat(chat.id, lock=True)
            if stored is None:  # migrated away while this one waited
                raise StorageConflict(chat_key(chat.id))
            if chat_key(chat.id) in self.absent:
                self._created_or_conflict(chat_key(chat.id), status)
        elif chat_key(chat.id) in self.absent:
            raise StorageConflict(chat_key(chat.id))
        self.absent.discard(chat_key(chat.id))
        return stored

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        chat = await self.get_chat(old_id, lock=True) or Chat(id=old_id)
        await self.conn.execute("DELETE FROM chats WHERE id = $1", old_id)
        chat.id, chat.type = new_id, "supergroup"
        await self.save_chats([chat])
        moved = await self._move_subscriptions("chat_id", old_id, new_id)
        await self.bump_sets([old_id, new_id] if moved else [old_id])
        await self.conn.execute(
            "UPDATE digest_items SET chat_id = $2 WHERE chat_id = $1", old_id, new_id)

    async def _move_subscriptions(
        self, column: str, old: int | str, new: int | str
    ) -> list[Subscription]:
        """The subscriptions and deliveries whose `column` (chat_id or feed_url) is `old`
        now have `new` there; returns the subscriptions moved."""
        rows = await self.conn.fetch(
            f"DELETE FROM subscriptions WHERE {column} = $1 RETURNING *", old)
        moved = [subscription_from(row) for row in rows]
        for moving in moved:
            setattr(moving, column, new)
        await self.conn.executemany(_SUB_CREATE, [subscription_values(s) for s in moved])
        await self.conn.execute(
            f"UPDATE deliveries SET {column} = $2 WHERE {column} = $1", old, new)
        return moved

    # ---------------------------------------------------------- subscriptions
    async def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        rows = await self.conn.fetch(
            "SELECT * FROM subscriptions WHERE chat_id = $1 ORDER BY created, feed_url", chat_id)
        return [subscription_from(row) for row in rows]

    async def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        rows = await self.conn.fetch(
            "SELECT * FROM subscriptions WHERE feed_url = $1 ORDER BY chat_id", url)
        return [subscription_from(row) for row in rows]

    async def save_subscriptions(self, subs: Iterable[Subscription]) -> None:
        joined = []
        for sub in subs:
            key = sub_key(sub.chat_id, sub.feed_url)
            if key in self.absent:
                status = await self.conn.execute(_SUB_CREATE, *subscription_values(sub))
                self._created_or_conflict(key, status)
                self.absent.discard(key)
                joined.append(sub.chat_id)
            elif await self.conn.fetchval(_SUB_UPSERT, *subscription_values(sub)):
                joined.append(sub.chat_id)
        await self.bump_sets(joined)

    async def remove_subscription(self, chat_id: int, url: str) -> bool:
        """False when there was none; the feed goes with its last subscription. The feed row
        is locked first, as a new subscription's write does, so one of the two waits."""
        await self.conn.execute("SELECT 1 FROM feeds WHERE url = $1 FOR UPDATE", url)
        status = await self.conn.execute(
            "DELETE FROM subscriptions WHERE chat_id = $1 AND feed_url = $2", chat_id, url)
        if status == "DELETE 0":
            return False
        await self.bump_sets([chat_id])
        await self.conn.execute(
            "DELETE FROM feeds WHERE url = $1"
            " AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE feed_url = $1)", url)
        return True

    async def bump_sets(self, chat_ids: Iterable[int]) -> None:
        """The sets of these chats' subscriptions changed: a new version for each."""
        for chat_id in sorted(set(chat_ids)):
            key = chat_subs_key(chat_id)
            if key in self.absent:
                status = await self.conn.execute(
                    "INSERT INTO subscription_sets (chat_id, version)"
                    f" VALUES ($1, {NEXT_VERSION}) ON CONFLICT (chat_id) DO NOTHING", chat_id)
                self._created_or_conflict(key, status)
                self.absent.discard(key)
            else:
                await self.conn.execute(
                    "INSERT INTO subscription_sets (chat_id, version)"
                    f" VALUES ($1, {NEXT_VERSION})"
                    " ON CONFLICT (chat_id) DO UPDATE SET version = EXCLUDED.version", chat_id)

    # ----------------------------------------------------------------- outbox
    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Queue deliveries in order (numbered from `delivery_seq`, set on them); a message
        going to many chats is stored once."""
        if not deliveries:
            return
        seqs = sorted(await self.conn.fetchval(
            "SELECT array_agg(nextval('delivery_seq')) FROM generate_series(1, $1)",
            len(deliveries)))
        forms: dict[int, tuple[bytes, Any]] = {}  # by id(): one rendered message, encoded once
        for delivery in deliveries:
            if id(delivery.message) not in forms:
                forms[id(delivery.message)] = message_form(delivery.message)
        messages = dict(forms.values())
        await self.conn.executemany(_MESSAGE_KEEP, sorted(messages.items()))
        rows = []
        for delivery, seq in zip(deliveries, seqs, strict=True):
            delivery.seq = seq
            rows.append(delivery_values(delivery, forms[id(delivery.message)][0]))
        await self.conn.executemany(_DELIVERY_INSERT, rows)

    # ---------------------------------------------------------------- digests
    async def collect_digest(self, items: Sequence[DigestItem]) -> None:
        if items:
            await self.conn.executemany(_DIGEST_INSERT, [digest_values(i) for i in items])

    async def due_digests(self, now: float, chats: int) -> list[DigestItem]:
        rows = await self.conn.fetch(
            "SELECT * FROM digest_items WHERE due <= $1 AND chat_id IN (SELECT DISTINCT chat_id"
            " FROM digest_items WHERE due <= $1 ORDER BY chat_id LIMIT $2)"
            " ORDER BY chat_id, coalesce(thread_id, 0), created, id", now, chats)
        return [digest_from(row) for row in rows]

    async def digest_waiting(self, chat_id: int) -> list[DigestItem]:
        rows = await self.conn.fetch(
            "SELECT * FROM digest_items WHERE chat_id = $1"
            " ORDER BY coalesce(thread_id, 0), created, id", chat_id)
        return [digest_from(row) for row in rows]

    async def take_digest(self, taken: Sequence[str]) -> None:
        """Remove the taken items; StorageConflict when any is gone (another process took
        it): the caller's transaction is then rolled back."""
        status = await self.conn.execute(
            "DELETE FROM digest_items WHERE id = ANY($1::text[])", list(taken))
        if status != f"DELETE {len(set(taken))}":
            raise StorageConflict("digest taken")

    async def pending(self) -> list[Delivery]:
        rows = await self.conn.fetch(_PENDING + " ORDER BY d.chat_id, d.seq")
        return [delivery_from(row) for row in rows]

    async def remove_deliveries(self, where: str, *args: Any) -> int:
        """Remove deliveries (`where` on `deliveries`), then the messages no delivery names."""
        rows = await self.conn.fetch(
            f"DELETE FROM deliveries WHERE {where} RETURNING message_digest", *args)
        digests = sorted({row["message_digest"] for row in rows})
        if digests:
            # a delivery being queued meanwhile may name one again (it holds the message row's
            # lock, and this waits): then its foreign key refuses, and the message stays
            try:
                async with self.conn.transaction():
                    await self.conn.execute(
                        "DELETE FROM messages m WHERE m.digest = ANY($1::bytea[]) AND NOT EXISTS"
                        " (SELECT 1 FROM deliveries d WHERE d.message_digest = m.digest)",
                        digests)
            except asyncpg.ForeignKeyViolationError:
                pass
        return len(rows)

    # ------------------------------------------------------- stamped reads
    async def load_feed(self, url: str) -> FeedState | None:
        row = await self.conn.fetchrow("SELECT * FROM feeds WHERE url = $1", url)
        if row is None:
            return None
        subs = await self.conn.fetch(
            "SELECT * FROM subscriptions WHERE feed_url = $1 ORDER BY chat_id", url)
        chats = await self.conn.fetch(
            "SELECT * FROM chats WHERE id = ANY($1::bigint[])", [s["chat_id"] for s in subs])
        return _state(row, subs, {c["id"]: c for c in chats})

    async def load_chat(self, chat_id: int) -> ChatState:
        chat = await self.conn.fetchrow("SELECT * FROM chats WHERE id = $1", chat_id)
        subs_version = await self.conn.fetchval(
            "SELECT version FROM subscription_sets WHERE chat_id = $1", chat_id)
        subs = await self.conn.fetch(
            "SELECT * FROM subscriptions WHERE chat_id = $1 ORDER BY created, feed_url", chat_id)
        feeds = await self.conn.fetch(
            "SELECT * FROM feeds WHERE url = ANY($1::text[])", [s["feed_url"] for s in subs])
        versions = {chat_key(chat_id): chat["version"] if chat else 0,
                    chat_subs_key(chat_id): subs_version or 0}
        by_url = {f["url"]: f for f in feeds}
        rows = []
        for sub in subs:
            url = sub["feed_url"]
            versions[sub_key(chat_id, url)] = sub["version"]
            feed = by_url.get(url)
            versions[feed_key(url)] = feed["version"] if feed else 0
            rows.append(SubscriptionRow(subscription_from(sub),
                                        feed_from(feed) if feed else Feed(url)))
        return ChatState(chat_from(chat) if chat else None, rows, stamp(versions))

    async def read_chat(self, chat_id: int) -> ChatRecord:
        row = await self.conn.fetchrow("SELECT * FROM chats WHERE id = $1", chat_id)
        return ChatRecord(chat_from(row) if row else None,
                          stamp({chat_key(chat_id): row["version"] if row else 0}))

    async def stats(self) -> StorageStats:
        row = await self.conn.fetchrow(
            "SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM feeds) AS feeds,"
            " (SELECT count(*) FROM subscriptions) AS subscriptions,"
            " (SELECT count(*) FROM subscriptions WHERE paused) AS paused,"
            " (SELECT count(*) FROM deliveries) AS outbox,"
            " (SELECT count(*) FROM feeds WHERE errors > 0 AND NOT retired) AS failing,"
            " (SELECT count(*) FROM feeds WHERE retired) AS retired")
        return StorageStats(**dict(row))

    # ---------------------------------------------------------- the bot's own
    async def bot_value(self, name: str) -> str | None:
        value = await self.conn.fetchval("SELECT value FROM bot_values WHERE name = $1", name)
        return str(value) if value is not None else None

    async def keep_bot_value(self, name: str, value: str) -> str:
        """`value` under `name` unless one is there (the first writer's stays); the stored."""
        await self.conn.execute(
            "INSERT INTO bot_values (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name, value)
        return str(await self.conn.fetchval(
            "SELECT value FROM bot_values WHERE name = $1", name))

    # ------------------------------------------------------------- the whole
    async def export_all(self) -> StoredState:
        feeds = await self.conn.fetch("SELECT * FROM feeds ORDER BY url")
        chats = await self.conn.fetch("SELECT * FROM chats ORDER BY id")
        subs = await self.conn.fetch("SELECT * FROM subscriptions ORDER BY chat_id, feed_url")
        items = await self.conn.fetch(
            "SELECT * FROM digest_items ORDER BY chat_id, coalesce(thread_id, 0), created, id")
        return StoredState(
            [feed_from(r) for r in feeds], [chat_from(r) for r in chats],
            [subscription_from(r) for r in subs], await self.pending(),
            [digest_from(r) for r in items],
        )

    async def replace_all(self, state: StoredState) -> None:
        """Everything replaced by `state` as it is; every record gets a fresh version (a stamp
        read before never matches), deliveries keep their seq and later ones follow them."""
        for table in ("deliveries", "messages", "subscriptions", "subscription_sets", "chats",
                      "feeds", "digest_items"):
            await self.conn.execute(f"DELETE FROM {table}")
        await self.collect_digest(state.digest_items)
        await self.conn.executemany(_FEED_UPSERT, [feed_values(f) for f in state.feeds])
        await self.conn.executemany(_CHAT_UPSERT, [chat_values(c) for c in state.chats])
        await self.conn.executemany(
            _SUB_CREATE, [subscription_values(s) for s in state.subscriptions])
        await self.bump_sets(s.chat_id for s in state.subscriptions)
        forms = [message_form(d.message) for d in state.deliveries]
        await self.conn.executemany(_MESSAGE_KEEP, sorted(dict(forms).items()))
        await self.conn.executemany(_DELIVERY_INSERT, [
            delivery_values(d, digest) for d, (digest, _) in zip(state.deliveries, forms,
                                                                  strict=True)])
        await self.conn.execute(
            "SELECT setval('delivery_seq', greatest((SELECT max(seq) FROM deliveries),"
            " (SELECT last_value FROM delivery_seq)))")
