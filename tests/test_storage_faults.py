"""The database when the disk misbehaves: full (a real small filesystem, and a byte-exact fault
injector), damaged log lines, and databases written by earlier versions."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StorageWriteError
from bot.models import ApiCall, Chat, Delivery, Feed, RenderedMessage, Subscription
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.database import Database
from bot.storage.tinydb.layout import dumps
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.tmpfs import mounted_tmpfs

REPO = Path(__file__).resolve().parents[1]
OLD_FORMAT = REPO / "tests" / "db_files" / "old_format"


def delivery(i: int, chat: int = 1) -> Delivery:
    msg = RenderedMessage((ApiCall("sendMessage", {"text": f"post {i}"}),))
    return Delivery(
        id=f"d{i}", chat_id=chat, feed_url="u", entry_key=f"k{i}", message=msg, created=0
    )


def state(db: Database) -> str:
    return dumps({name: dict(sorted(table.docs.items())) for name, table in db._tables.items()})


def crash(db: Database) -> None:
    """Stop as a killed process would: no final fold."""
    db._snapshotter.shutdown(wait=True)
    db.log.close()


def full_after(budget: int) -> Callable[[int, memoryview], int]:
    """An os.write that writes `budget` more bytes, then fails as a full disk does."""
    left = [budget]

    def write(fd: int, data: memoryview) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = os.write(fd, bytes(data[: left[0]]))
        left[0] -= written
        return written

    return write


# ------------------------------------------------------------- byte-exact injector
async def test_a_failed_append_at_any_byte_is_cut_back_and_undone(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json", lazy_flush_s=3600)
    db = store._db
    await store.save_feed(Feed(url="u", title="kept", seen=["a"]))
    await store.save_subscription(Subscription(chat_id=1, feed_url="u"))
    # a lazy change waits for the next line; it must survive the failures below
    await store._shared(lambda d: d.save_feed(Feed(url="lazy", title="L")))  # a lazy change set
    log_file = db.log.path(db.log.generation)
    good_bytes, committed = log_file.read_bytes(), state(db)

    def change(d: Database) -> None:
        feed = d.get_feed("u")
        assert feed is not None
        feed.title, feed.seen = "new", ["a", "b"]
        d.save_feed(feed)
        d.save_chat(Chat(id=1, title="alice"))
        d.save_subscription(Subscription(chat_id=2, feed_url="u"))
        d.remove_subscription(1, "u")
        d.enqueue([delivery(1, 2)])

    failures = 0
    for budget in range(100_000):
        db.log.write = full_after(budget)
        try:
            await store._durable(change)
        except StorageWriteError as exc:
            assert exc.kind == "disk_full"
            assert "cannot write" in str(exc) and str(log_file) in str(exc)
            failures += 1
            assert log_file.read_bytes() == good_bytes  # cut back to the last complete line
            assert state(db) == committed  # and undone in memory: nothing half-applied
            assert [s.chat_id for s in await store.subscriptions_for_feed("u")] == [1]
            assert await store.pending() == []
            continue
        break
    assert failures > 200  # every byte of the line was a place to fail
    crash(db)
    store._executor.shutdown(wait=True)
    reopened = Database(tmp_path / "db.json")
    feed = reopened.get_feed("u")
    assert feed is not None and feed.title == "new" and feed.seen == ["a", "b"]
    assert [s.chat_id for s in reopened.subscriptions_for_feed("u")] == [2]
    assert [d.entry_key for d in reopened.pending()] == ["k1"]
    assert reopened.get_feed("lazy") is not None  # the lazy change rode along, once
    reopened.close()


async def test_a_completion_that_cannot_be_written_is_kept_for_a_retry(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    await store.enqueue([delivery(1)])
    store._db.log.write = full_after(5)
    with pytest.raises(StorageWriteError):
        await store.complete("d1")
    assert [d.id for d in await store.pending()] == ["d1"]  # still owed, still completable
    store._db.log.write = os.write
    await store.complete("d1")
    assert await store.pending() == []
    await store.close()
    reopened = Database(tmp_path / "db.json")
    assert reopened.pending() == []
    reopened.close()


def fails(
    code: int, times: int = 10**9, then: Callable[..., None] = os.fsync
) -> Callable[..., None]:
    """A system call that fails `times` times with `code`, then is `then`."""
    left = [times]

    def call(*args: int) -> None:
        if left[0] <= 0:
            return then(*args)
        left[0] -= 1
        raise OSError(code, os.strerror(code))

    return call


def test_a_failed_sync_is_cut_back_and_a_failed_cut_moves_to_the_next_log(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path)
    db.save_feed(Feed(url="kept"))
    db.commit()
    first = db.log.path(db.log.generation)
    good = first.read_bytes()
    # the whole line was written, but the disk could not sync it (EIO): cut back
    db.log.sync = fails(errno.EIO, times=1)
    db.savepoint()
    db.save_feed(Feed(url="unsynced"))
    with pytest.raises(StorageWriteError) as unsynced:
        db.commit()
    assert unsynced.value.kind == "io" and first.read_bytes() == good
    db.log.sync = os.fsync
    # torn by a full disk, and the cut fails too: the torn bytes stay a torn last line
    db.log.write, db.log.truncate = full_after(7), fails(errno.EIO, then=os.ftruncate)
    db.savepoint()
    db.save_feed(Feed(url="torn"))
    with pytest.raises(StorageWriteError):
        db.commit()
    assert first.read_bytes().startswith(good) and first.read_bytes() != good
    db.log.write, db.log.truncate = os.write, os.ftruncate
    db.save_feed(Feed(url="after"))
    db.commit()
    assert db.log.path(db.log.generation) != first  # appends moved on
    crash(db)
    reopened = Database(path)
    assert sorted(f.url for f in reopened.all_feeds()) == ["after", "kept"]
    assert list(tmp_path.glob("*.damaged-*")) == []
    reopened.close()


# ------------------------------------------------------------------- damaged lines
def test_complete_lines_after_a_torn_or_damaged_one_are_replayed(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path)
    for name in "abcde":
        db.save_feed(Feed(url=name, title=name))
        db.commit()
    crash(db)
    (log_file,) = tmp_path.glob("db.json.log.*")
    lines = log_file.read_bytes().splitlines(keepends=True)[-5:]
    head = log_file.read_bytes()[: -sum(len(line) for line in lines)]
    damaged = bytearray(lines[3])
    damaged[len(damaged) // 2] ^= 0x01  # a bad sector in the middle of line d
    # b was torn by a full disk and c glued onto it (what the unfixed log did)
    log_file.write_bytes(
        head + lines[0] + lines[1][: len(lines[1]) // 2] + lines[2] + bytes(damaged) + lines[4]
    )
    original = log_file.read_bytes()

    reopened = Database(path)
    assert sorted(f.url for f in reopened.all_feeds()) == ["a", "c", "e"]
    (aside,) = tmp_path.glob("db.json.log.*.damaged-*")
    assert aside.read_bytes() == original  # kept aside, never deleted
    reopened.close()
    assert aside.exists()
    again = Database(path)
    assert sorted(f.url for f in again.all_feeds()) == ["a", "c", "e"]
    again.close()


def test_a_database_written_by_the_previous_version_loads(tmp_path: Path) -> None:
    """tests/db_files/old_format was written by the code at a8cc8dc (bare-JSON log lines, a crash
    before the fold: make_old_format.py.txt); every change in it must be read back."""
    for file in OLD_FORMAT.glob("feedbot.json*"):
        shutil.copy(file, tmp_path / file.name)
    path = tmp_path / "feedbot.json"
    db = Database(path)
    a, b = db.get_feed("https://example.org/a.xml"), db.get_feed("https://example.org/b.xml")
    assert a is not None and a.next_check == 99.0 and a.seen == ["aaaa000000000001",
                                                                 "aaaa000000000002"]
    assert b is not None and b.title == "Feed B — 二"
    subs = db.subscriptions_for_chat(101)
    assert [(s.feed_url, s.options.silent) for s in subs] == [
        ("https://example.org/a.xml", False),
        ("https://example.org/b.xml", True),
    ]
    assert db.subscriptions_for_chat(-2002) == []  # removed in the log
    group = db.get_chat(-2002)
    assert group is not None and group.lang == "zh"
    assert [(d.id, d.seq) for d in db.pending()] == [("d1", 1)]
    assert list(tmp_path.glob("*.damaged-*")) == []
    # new lines on top of the old snapshot, then a crash: both read back
    db.save_chat(Chat(id=303, title="new"))
    db.commit()
    crash(db)
    again = Database(path)
    assert again.get_chat(303) is not None and again.get_feed("https://example.org/a.xml")
    again.close()


# ------------------------------------------------------- a real full filesystem
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 384 KB tmpfs, where the test may mount one (root); else the test is skipped (the
    byte-exact injector above covers the same ground everywhere)."""
    with mounted_tmpfs(tmp_path / "fs", "384k") as mount:
        yield mount


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full, to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


WRITER = textwrap.dedent(
    """
    import random, sys, time
    from bot.models import Feed, Subscription
    from bot.storage.tinydb.database import Database
    db = Database(sys.argv[1], log_floor=60_000)
    rng = random.Random(int(sys.argv[2]))
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        if hasattr(db, "savepoint"):
            db.savepoint()
        # a small new document, and a large one rewritten (the database stays well under the
        # filesystem's size: only the filler fills it)
        db.save_subscription(Subscription(chat_id=i, feed_url=f"https://f.test/{i % 5}"))
        db.save_feed(Feed(url=f"https://f.test/{i % 5}", title="x" * rng.randrange(500, 6000)))
        try:
            db.commit(durable=True)
        except Exception as exc:  # what the bot tells a user: not subscribed
            print(f"fail {i} {type(exc).__name__}", flush=True)
        else:
            print(f"ok {i}", flush=True)
        time.sleep(0.004)
    """
)


def test_a_full_filesystem_at_random_moments_then_sigkill_loses_nothing_acknowledged(
    small_fs: Path,
) -> None:
    rng = random.Random(13)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(4):
        folder = small_fs / f"round{round_}"
        folder.mkdir()
        path = folder / "db.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(round_)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        said: list[bytes] = []
        reader = threading.Thread(target=said.extend, args=(proc.stdout,), daemon=True)
        reader.start()
        try:
            for _ in range(3):  # the disk fills while it writes, then space is freed
                time.sleep(rng.uniform(0.02, 0.15))
                filler = fill(small_fs)
                time.sleep(rng.uniform(0.05, 0.2))
                filler.unlink()
            time.sleep(rng.uniform(0.0, 0.1))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            reader.join(timeout=5)
            (small_fs / "filler").unlink(missing_ok=True)
        outcomes = [line.decode().split() for line in said]
        assert len(outcomes) < 1500  # so the database stayed far smaller than the filesystem
        acknowledged = {int(words[1]) for words in outcomes if words[0] == "ok"}
        refused = {int(words[1]) for words in outcomes if words[0] == "fail"}
        assert refused and acknowledged, outcomes[-5:]
        assert max(acknowledged) > min(refused)  # it went on after the disk had been full
        db = Database(path)
        present = {sub.chat_id for sub in db.all_subscriptions()}
        assert acknowledged <= present, f"lost: {sorted(acknowledged - present)[:10]}"
        assert not refused & present, f"refused but stored: {sorted(refused & present)[:10]}"
        assert list(folder.glob("*.damaged-*")) == []  # the log was never torn
        db.close()
        shutil.rmtree(folder)


# --------------------------------------------------------------- the bot on a full disk
OWNER, USER = 9009, 1001


async def test_the_bot_on_a_full_disk_says_so_retries_and_tells_the_owners_once(
    small_fs: Path, start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3)))
    for n in range(12):
        feed_server.set_feed(f"/b{n}.xml", hugo_feed(range(1, 3), title=f"B{n}"))
    async with start_bot(db_path=str(small_fs / "feedbot.json"), owners=(OWNER,)) as chat:
        (ok,) = await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        assert "Subscribed" in ok.plain
        filler = fill(small_fs)
        for n in range(12):  # the log's last page still has room for a few small lines
            (answer,) = await chat.say(USER, f"/sub {feed_server.url(f'/b{n}.xml')}")
            if "Subscribed" not in answer.plain:
                break
        assert "cannot write its database: disk full" in answer.plain
        refused_url = feed_server.url(f"/b{n}.xml")
        feed_server.set_feed("/a.xml", hugo_feed(range(1, 4)))  # post 3 while the disk is full
        hits = feed_server.hits("/a.xml")
        while feed_server.hits("/a.xml") < hits + 3:  # checks keep failing to store, and retry
            await asyncio.sleep(0.1)
        assert not any("(3)" in m.plain for m in fake_api.delivered(USER))
        alerts = [m.plain for m in fake_api.delivered(OWNER) if "needs attention" in m.plain]
        assert len(alerts) == 1 and "storage" in alerts[0] and "No space left" in alerts[0]
        filler.unlink()
        await fake_api.await_delivered(n + 3, USER, timeout=15)  # the retried check got in
        (again,) = await chat.say(USER, f"/sub {refused_url}")
        assert "Subscribed" in again.plain  # the refused /sub had left nothing behind
        assert not await chat.silence(USER, 1.5)
    posts = [m.plain for m in fake_api.delivered(USER) if "ML Math Derivations (3)" in m.plain]
    assert len(posts) == 1  # sent once
    assert len([m for m in fake_api.delivered(OWNER) if "needs attention" in m.plain]) == 1
