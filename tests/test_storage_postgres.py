"""What the PostgreSQL backend adds to the contract: start-up (an unreachable server, several
processes creating the schema at once, a newer schema) and writers on separate connections at
the same time. Cases needing a server skip without FEEDBOT_TEST_DATABASE_URL (see
tests/test_storage_contract.py); the unreachable-server ones need none."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from bot.errors import FeedbotError
from bot.feeds.identity import fingerprint as P
from bot.models import Chat, Feed, Subscription
from bot.storage import open_storage
from bot.storage.base import FeedCommit, NewSubscription, StorageConflict, retry_on_conflict
from bot.storage.postgres import PostgresStorage, StorageUnavailable
from bot.storage.postgres.schema import MIGRATIONS
from tests.test_storage_contract import postgres_schema

A = "https://a.test/feed"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_server_is_retried_then_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://bot:secret@127.0.0.1:{closed_port()}/feedbot"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING), pytest.raises(StorageUnavailable) as raised:
        await PostgresStorage.open(url, connect_wait_s=1.5)
    assert 1.5 <= loop.time() - started < 5
    message = str(raised.value)
    assert isinstance(raised.value, FeedbotError) and "\n" not in message
    assert "could not be reached for 1.5 s" in message and "127.0.0.1" in message
    assert "secret" not in message and "secret" not in caplog.text
    assert "trying again" in caplog.text  # the retries are logged


async def test_a_url_that_is_not_postgresql_is_refused_at_once() -> None:
    with pytest.raises(StorageUnavailable, match="must start with postgresql://"):
        await PostgresStorage.open("mysql://127.0.0.1/feedbot")


async def test_open_storage_with_a_url_uses_postgresql_and_leaves_the_file_alone(
    tmp_path: Path,
) -> None:
    async with postgres_schema() as url:
        store = await open_storage(tmp_path / "db.json", database_url=url)
        try:
            assert isinstance(store, PostgresStorage)
            await store.save_feed(Feed(url=A))
        finally:
            await store.close()
    assert list(tmp_path.iterdir()) == []


async def test_processes_starting_at_once_create_the_schema_once() -> None:
    async with postgres_schema() as url:
        stores = await asyncio.gather(*(PostgresStorage.open(url) for _ in range(4)))
        try:
            conn = stores[0]._pool
            assert await conn.fetchval("SELECT count(*) FROM feedbot_schema") == len(MIGRATIONS)
        finally:
            await asyncio.gather(*(s.close() for s in stores))


async def test_a_schema_newer_than_the_code_is_refused() -> None:
    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        await store._pool.execute("INSERT INTO feedbot_schema (version) VALUES (999)")
        await store.close()
        with pytest.raises(FeedbotError, match="newer than this feedbot"):
            await PostgresStorage.open(url)


async def test_a_record_created_by_a_transaction_still_open_at_the_check_is_a_conflict() -> None:
    """The stamp says "no chat 5"; another writer creates it and commits only after this
    write's check: the write must not take it over."""
    import asyncpg

    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        try:
            state = await store.load_chat(5)
            other = await asyncpg.connect(url)
            try:
                tx = other.transaction()
                await tx.start()
                await other.execute(
                    "INSERT INTO chats (id, version, title)"
                    " VALUES (5, nextval('record_versions'), 'theirs')")
                write = asyncio.create_task(store.add_subscriptions(
                    [NewSubscription(Subscription(5, A), Feed(A), Chat(id=5))], state.stamp))
                await asyncio.sleep(0.3)  # the write has checked and now waits on the row
                assert not write.done()
                await tx.commit()
                with pytest.raises(StorageConflict):
                    await write
            finally:
                await other.close()
            assert (await store.get_chat(5) or Chat(0)).title == "theirs"
            assert await store.subscriptions_for_chat(5) == []
        finally:
            await store.close()


async def test_chats_subscribing_from_several_processes_at_once_all_get_in() -> None:
    async with postgres_schema() as url:
        stores = [await PostgresStorage.open(url) for _ in range(3)]
        try:
            async def subscribe(chat_id: int) -> None:
                store = stores[chat_id % len(stores)]

                async def attempt() -> None:
                    state = await store.load_chat(chat_id)
                    await store.add_subscriptions([NewSubscription(
                        Subscription(chat_id, A), Feed(A), Chat(id=chat_id),
                        prints=[P(f"p{chat_id}")],
                    )], state.stamp)

                await retry_on_conflict(attempt, "subscribe")

            await asyncio.gather(*(subscribe(c) for c in range(1, 13)))
            subs = await stores[0].subscriptions_for_feed(A)
            assert [s.chat_id for s in subs] == list(range(1, 13))
            feed = await stores[1].get_feed(A)
            assert feed is not None
            assert sorted(feed.seen) == sorted(P(f"p{c}") for c in range(1, 13))
        finally:
            for store in stores:
                await store.close()


async def test_a_message_for_many_chats_is_stored_once_and_goes_with_its_last_delivery() -> None:
    from tests.storage_contract import post

    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        try:
            shared = post(1).message
            await store.enqueue([post(n, chat=n, message=shared) for n in range(1, 6)])
            assert await store._pool.fetchval("SELECT count(*) FROM messages") == 1
            for n in range(1, 5):
                await store.complete(f"d{n}")
            assert await store._pool.fetchval("SELECT count(*) FROM messages") == 1
            assert [d.message for d in await store.pending()] == [shared]
            await store.drop_chat_deliveries(5)
            assert await store._pool.fetchval("SELECT count(*) FROM messages") == 0
        finally:
            await store.close()


async def test_nul_characters_a_feed_may_send_are_dropped_not_refused() -> None:
    from dataclasses import replace

    from bot.models import ApiCall, RenderedMessage
    from tests.storage_contract import post

    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        try:
            await store.save_feed(Feed(url=A, title="T\x00itle", last_reason={"a": "b\x00"}))
            feed = await store.get_feed(A)
            assert feed is not None and (feed.title, feed.last_reason) == ("Title", {"a": "b"})
            text = "x\x00y, and a backslash and u0000 as written: \\u0000"
            message = RenderedMessage((ApiCall("sendMessage", {"text": text}),))
            await store.enqueue([replace(post(1), entry_key="k\x001", message=message)])
            (delivery,) = await store.pending()
            assert delivery.entry_key == "k1"
            assert delivery.message.attempts[0].params["text"] == text.replace("\x00", "")
        finally:
            await store.close()


async def test_one_seat_holder_among_processes_and_the_seat_frees_when_it_dies() -> None:
    async with postgres_schema() as url:
        first = await PostgresStorage.open(url)
        second = await PostgresStorage.open(url)
        try:
            assert await first.try_lead("sender:test-seat")
            assert not await second.try_lead("sender:test-seat")
            assert await second.try_lead("updates:test-seat")  # another seat is free
            assert first._control is not None
            first._control.terminate()  # the holder's connection ends as in a SIGKILL
            for _ in range(50):  # the server frees the lock once it sees the socket close
                if await second.try_lead("sender:test-seat"):
                    break
                await asyncio.sleep(0.05)
            assert await second.try_lead("sender:test-seat")
            assert not await first.try_lead("sender:test-seat")  # it lost the seat
        finally:
            await first.close()
            await second.close()


async def test_checkers_claiming_at_once_never_share_a_feed() -> None:
    async with postgres_schema() as url:
        stores = [await PostgresStorage.open(url) for _ in range(4)]
        try:
            urls = [f"https://f{i}.test/feed" for i in range(200)]
            for i, u in enumerate(urls):
                await stores[0].save_feed(Feed(url=u, next_check=float(i)))
                await stores[0].save_subscription(Subscription(chat_id=1, feed_url=u))
            claims = await asyncio.gather(*(
                s.claim_due_feeds(1000.0, 30, 60.0) for s in stores for _ in range(3)))
            claimed = [state.feed.url for batch in claims for state in batch]
            assert len(claimed) == len(set(claimed)) == 200  # each once, none twice
        finally:
            for s in stores:
                await s.close()


async def test_recent_sends_count_completed_deliveries_and_recorded_replies() -> None:
    from tests.storage_contract import post

    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        try:
            await store.enqueue([post(1, chat=5), post(2, chat=-100)])
            await store.complete("d1")
            await store.record_sends([7, 7])
            sends = await store.recent_sends(60.0)
            assert sorted(chat for chat, _ in sends) == [5, 7, 7]
            assert all(0 <= age < 5 for _, age in sends)
            await asyncio.sleep(0.3)
            assert await store.recent_sends(0.2) == []
        finally:
            await store.close()


async def test_a_304_and_a_failure_are_one_small_write_whatever_the_feeds_size() -> None:
    # a feed with 200 KB of item records and a full seen-set: a check that parsed nothing
    # writes its small state only (WAL measured by the server; a whole-row write is > 200 KB)
    records = os.urandom(200_000)  # incompressible, like packed records
    async with postgres_schema() as url:
        store = await PostgresStorage.open(url)
        try:
            await store.save_feed(Feed(url=A, item_records=records,
                                       seen=[P(f"e{i}") for i in range(200)]))
            await store.save_subscription(Subscription(chat_id=1, feed_url=A))
            written = []
            for kind in ("not-modified", "failure"):
                state = await store.load_feed(A)
                assert state is not None
                before = await _wal_position(url)
                if kind == "not-modified":
                    await store.record_not_modified(FeedCommit(
                        replace(state.feed, next_check=50.0, etag='"v2"'), state.stamp))
                else:
                    await store.record_failure(FeedCommit(
                        replace(state.feed, errors=1, last_error="HTTP 500"), state.stamp))
                written.append(await _wal_bytes_since(url, before))
            stored = await store.load_feed(A)
        finally:
            await store.close()
    assert all(n < 20_000 for n in written), written  # was 222 KB and 224 KB
    assert stored is not None and stored.feed.item_records == records  # kept as they were
    assert len(stored.feed.seen) == 200
    assert (stored.feed.etag, stored.feed.next_check, stored.feed.errors) == ('"v2"', 50.0, 1)


async def _wal_position(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
    finally:
        await conn.close()


async def _wal_bytes_since(url: str, before: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)", before))
    finally:
        await conn.close()
