"""`feedbot migrate`: a TinyDB database copied into PostgreSQL by the real command, then a bot
resumed on it. Needs FEEDBOT_TEST_DATABASE_URL (skips without it, saying so)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.models import ApiCall, Delivery, RenderedMessage
from bot.storage.postgres import PostgresStorage
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.lock import lock_path
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.test_cli import feedbot
from tests.test_storage_contract import postgres_schema

USERS = (1001, 1002)


def posts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m.plain for m in api.delivered(chat_id) if "series/" in m.text_or_caption
            or "pending post" in m.plain]


async def test_a_tinydb_database_migrated_and_resumed(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer,
    bot_settings: Settings,
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 31)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:  # the bot's own code builds the TinyDB database
        for user in USERS:
            await chat.say(user, f"/sub {url}")
        await chat.say(USERS[1], "/lang de")
    db = Path(bot_settings.db_path)
    store = await TinyDBStorage.open(db)
    message = RenderedMessage((ApiCall("sendMessage", {"text": "pending post"}),))
    await store.enqueue([Delivery("left-1", USERS[0], url, "k", message, created=1.0)])
    source = await store.export_all()
    await store.close()
    assert len(source.subscriptions) == 2 and len(source.deliveries) == 1
    assert all(f.seen for f in source.feeds) and all(c.seen for c in source.chats)

    async with postgres_schema() as database_url:
        result = await asyncio.to_thread(feedbot, "migrate", "--to", database_url, "--from",
                                         str(db))
        assert result.returncode == 0, result.stderr
        assert "2 chats, 1 feeds, 2 subscriptions, 1 pending deliveries" in result.stdout
        target = await PostgresStorage.open(database_url)
        try:
            assert await target.export_all() == source
        finally:
            await target.close()

        again = await asyncio.to_thread(feedbot, "migrate", "--to", database_url, "--from",
                                        str(db))
        assert again.returncode == 2 and "is not empty" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1 and "--force" in again.stderr
        forced = await asyncio.to_thread(feedbot, "migrate", "--to", database_url, "--from",
                                         str(db), "--force")
        assert forced.returncode == 0, forced.stderr

        before = {user: len(fake_api.delivered(user)) for user in USERS}
        async with start_bot(database_url=database_url):
            await fake_api.await_for(lambda: "pending post" in str(posts(fake_api, USERS[0])))
            feed_server.set_feed("/ml.xml", hugo_feed(range(1, 32)))
            for user in USERS:
                await fake_api.await_for(lambda u=user: any(
                    "Topic 31" in p for p in posts(fake_api, u)), timeout=15)
            await asyncio.sleep(2.5)
        for user in USERS:  # the new post once, nothing old again
            new = fake_api.delivered(user)[before[user]:]
            got = [m.plain for m in new]
            assert sum("Topic 31" in p for p in got) == 1
            assert not any("Topic 30" in p for p in got)
        first = fake_api.delivered(USERS[0])[before[USERS[0]]]
        assert first.plain == "pending post"  # the outbox before the new post


def test_migrate_refuses_while_a_bot_holds_the_file(tmp_path: Path) -> None:
    db = tmp_path / "feedbot.json"
    db.write_bytes(b'{"feeds": {}}')
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT)  # as a running bot holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        result = feedbot("migrate", "--to", "postgresql://127.0.0.1:1/none", "--from", str(db))
    finally:
        os.close(fd)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "in use by another feedbot process (process 4242" in line


def test_migrate_without_a_source_file_is_one_line(tmp_path: Path) -> None:
    result = feedbot("migrate", "--to", "postgresql://127.0.0.1:1/none",
                     env={"FEEDBOT_DB": str(tmp_path / "none.json")})
    assert result.returncode == 2 and "no such database file" in result.stderr
    assert not (tmp_path / "none.json").exists()


def test_a_second_bot_on_one_file_is_refused(tmp_path: Path, fake_api: FakeBotApi) -> None:
    db = tmp_path / "feedbot.json"

    async def hold_and_try() -> Any:
        store = await TinyDBStorage.open(db)  # the first bot
        try:
            return await asyncio.to_thread(feedbot, "run", env={
                "TELEGRAM_BOT_TOKEN": fake_api.token, "FEEDBOT_API_URL": fake_api.url,
                "FEEDBOT_DB": str(db)})
        finally:
            await store.close()

    result = asyncio.run(hold_and_try())
    assert result.returncode == 2
    assert f"in use by another feedbot process (process {os.getpid()}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
