import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bot.feeds.identity import fingerprint
from bot.models import ApiCall, Chat, Delivery, Feed, Prints, RenderedMessage, Subscription
from bot.pipeline.outbox import CHAT_SEEN_CAP, merge_chat_seen
from bot.storage.base import FeedCommit, FeedState, StorageConflict
from bot.storage.tinydb.backend import TinyDBStorage
from bot.storage.tinydb.database import Database
from bot.storage.tinydb.files import atomic_write
from bot.storage.tinydb.layout import dumps

REPO = Path(__file__).resolve().parents[1]


def delivery(i: int, chat: int = 1) -> Delivery:
    msg = RenderedMessage((ApiCall("sendMessage", {"text": f"post {i}"}),))
    return Delivery(
        id=f"d{i}",
        chat_id=chat,
        feed_url="https://f.test/",
        entry_key=f"k{i}",
        message=msg,
        created=0,
    )


def crash(db: Database) -> None:
    """Stop as a killed process would: no final fold (a fold already in flight completes)."""
    db._snapshotter.shutdown(wait=True)
    db.log.close()


def crash_store(store: TinyDBStorage) -> None:
    """A killed bot: no final fold, and its lock on the file goes with the process."""
    crash(store._db)
    store._executor.shutdown(wait=True)
    if store._lock is not None:
        store._lock.release()


def log_lines(folder: Path) -> list[bytes]:
    return [
        line
        for path in sorted(folder.glob("db.json.log.*"))
        for line in path.read_bytes().splitlines()
    ]


async def test_round_trip_and_one_small_write_per_change_set(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    await store.save_feed(Feed(url="https://f.test/other", seen=[f"k{i}" for i in range(500)]))
    before = store.bytes_written

    def change(db: Database) -> None:
        db.save_feed(Feed(url="https://f.test/", title="F", seen=["a", "b"]))
        db.save_chat(Chat(id=5, type="group", title="G"))
        db.save_subscription(Subscription(chat_id=5, feed_url="https://f.test/"))
        db.enqueue([delivery(1, 5), delivery(2, 5)])

    await store._durable(change)  # one change set, as a check commits
    lines = log_lines(tmp_path)
    assert len(lines) == 2  # one line per change set
    assert store.bytes_written - before == len(lines[-1]) + 1  # that line, nothing else
    assert b"k499" not in lines[-1]  # the untouched feed is not rewritten
    await store.close()
    assert log_lines(tmp_path) == []  # a clean close folds the log into the snapshot

    store = await TinyDBStorage.open(tmp_path / "db.json")
    feed = await store.get_feed("https://f.test/")
    assert feed is not None and feed.seen == ["a", "b"]
    assert [d.entry_key for d in await store.pending()] == ["k1", "k2"]
    assert [s.chat_id for s in await store.subscriptions_for_feed("https://f.test/")] == [5]
    await store.close()


async def test_changes_survive_a_crash_through_the_log(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = await TinyDBStorage.open(path)
    await store.enqueue([delivery(i) for i in range(3)])
    await store.complete("d0")
    await store.save_feed(Feed(url="u", title="T", seen=["a"]))
    crash_store(store)  # no close, so the snapshot still holds the empty database
    assert json.loads(path.read_bytes())["outbox"] == {}
    reopened = await TinyDBStorage.open(path)
    assert [d.id for d in await reopened.pending()] == ["d1", "d2"]
    feed = await reopened.get_feed("u")
    assert feed is not None and feed.title == "T"
    await reopened._run(lambda: reopened._db._settle_snapshot(wait=True))  # the open's fold
    assert log_lines(tmp_path) == []  # replayed, then folded into a fresh snapshot
    await reopened.close()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path)
    db.save_feed(Feed(url="u", title="one"))
    db.commit()
    db.save_feed(Feed(url="u", title="two"))
    db.commit()
    log_file = next(tmp_path.glob("db.json.log.*"))
    data = log_file.read_bytes()
    log_file.write_bytes(data[: len(data) - 7])  # the crash cut the second append short
    reopened = Database(path)
    feed = reopened.get_feed("u")
    assert feed is not None and feed.title == "one"
    reopened.close()


def test_the_log_is_folded_in_once_it_outgrows_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path, log_floor=10_000)
    for i in range(200):
        db.save_feed(Feed(url=f"u{i % 3}", title=str(i), seen=[f"{i}-{j}" for j in range(20)]))
        db.commit()
    crash(db)
    # the log never grew far past the floor: older logs were deleted after each fold
    assert sum(p.stat().st_size for p in tmp_path.glob("db.json.log.*")) < 20_000
    assert db.bytes_written < 200 * 600 * 3  # no full rewrite per commit
    reopened = Database(path)  # snapshot + the log written since
    assert [f.title for f in sorted(reopened.all_feeds(), key=lambda f: f.url)] == [
        "198", "199", "197"
    ]
    reopened.close()


def test_a_start_after_a_crash_replays_at_most_an_eighth_of_the_snapshot(tmp_path: Path) -> None:
    """The log is folded once it outgrows an eighth of the snapshot, so a start after a crash
    replays little (at 100k feeds a whole snapshot's worth of log took 18 s to replay)."""
    path = tmp_path / "db.json"
    db = Database(path, log_floor=1)
    for i in range(40):
        db.save_feed(Feed(url=f"u{i}", title="T", seen=[f"{i}-{j}" for j in range(200)]))
    db.commit()
    db.snapshot(wait=True)
    logs = lambda: sum(p.stat().st_size for p in tmp_path.glob("db.json.log.*"))  # noqa: E731
    for i in range(300):
        feed = db.get_feed(f"u{i % 40}")
        assert feed is not None
        feed.title = f"title {i}"
        db.save_feed(feed)
        db.commit()
        db._settle_snapshot(wait=True)  # a fold in flight done (the log grows meanwhile)
        assert logs() <= path.stat().st_size / 8 + 200  # an eighth, and at most one line more
    crash(db)
    reopened = Database(path)
    assert {f.url: f.title for f in reopened.all_feeds()}["u19"] == "title 299"
    reopened.close()


def test_a_start_after_a_crash_does_not_wait_for_its_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open replays the log and folds it into a fresh snapshot in the background: at 100k
    feeds writing that snapshot took most of an 18 s start."""
    import threading

    from bot.storage.tinydb.files import AtomicJSONStorage

    path = tmp_path / "db.json"
    db = Database(path)
    db.save_feed(Feed(url="u", title="T"))
    db.commit()
    crash(db)
    release, real = threading.Event(), AtomicJSONStorage.flush

    def slow(self: AtomicJSONStorage, payload: Any) -> int:
        release.wait(10)
        return real(self, payload)

    monkeypatch.setattr(AtomicJSONStorage, "flush", slow)
    t0 = time.monotonic()
    reopened = Database(path)
    assert time.monotonic() - t0 < 5  # not the 10 s the fold is held up
    assert reopened.get_feed("u").title == "T"  # type: ignore[union-attr]
    reopened.save_feed(Feed(url="u", title="after"))
    reopened.commit()  # commits go on meanwhile, into the next log
    assert len(list(tmp_path.glob("db.json.log.*"))) == 2  # the replayed log stays till then
    release.set()
    reopened._settle_snapshot(wait=True)
    assert len(list(tmp_path.glob("db.json.log.*"))) == 1
    crash(reopened)
    again = Database(path)
    assert again.get_feed("u").title == "after"  # type: ignore[union-attr]
    again.close()


def test_the_next_check_heap_stays_one_entry_a_feed_without_ticks(tmp_path: Path) -> None:
    """Each save pushes a next-check entry and stale ones leave when they come up; feeds saved
    again and again with no tick in between (10% of 100k feeds per cycle) must not pile them up
    (they held 17 MB more after 20 cycles at 100k)."""
    from bot.storage.tinydb.database import HEAP_SLACK

    db = Database(tmp_path / "db.json")
    for i in range(10):
        db.save_feed(Feed(url=f"u{i}", next_check=1e9 + i))
    db.save_subscription(Subscription(chat_id=1, feed_url="u3"))
    for k in range(3 * HEAP_SLACK):
        feed = db.get_feed(f"u{k % 10}")
        assert feed is not None
        feed.next_check = 2e9 + k
        db.save_feed(feed)
    assert len(db._next_checks) <= 2 * 10 + HEAP_SLACK
    due = db.due_feeds(3e9)
    assert [f.url for f in due] == ["u3"]  # the only one followed, due once
    assert due[0].next_check == 2e9 + max(k for k in range(3 * HEAP_SLACK) if k % 10 == 3)
    db.close()


async def test_unsubscribing_last_chat_removes_feed(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    await store.save_feed(Feed(url="u"))
    await store.save_subscription(Subscription(chat_id=1, feed_url="u"))
    await store.save_subscription(Subscription(chat_id=2, feed_url="u"))
    assert await store.remove_subscription(1, "u")
    assert await store.get_feed("u") is not None
    assert await store.remove_subscription(2, "u")
    assert await store.get_feed("u") is None
    assert not await store.remove_subscription(2, "u")
    await store.close()


async def test_migrate_chat_rewrites_everything(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    await store.save_chat(Chat(id=-5, type="group", title="G"))
    await store.save_subscription(Subscription(chat_id=-5, feed_url="u"))
    await store.enqueue([delivery(1, -5)])
    await store.migrate_chat(-5, -1005)
    assert await store.get_chat(-5) is None
    chat = await store.get_chat(-1005)
    assert chat is not None and chat.type == "supergroup" and chat.title == "G"
    assert [s.chat_id for s in await store.subscriptions_for_chat(-1005)] == [-1005]
    assert [d.chat_id for d in await store.pending()] == [-1005]
    await store.close()


async def test_move_feed_keeps_seen_and_merges_duplicates(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")

    def setup(db: Database) -> None:
        db.save_feed(Feed(url="old", seen=["a", "b"]))
        db.save_feed(Feed(url="new", seen=["c"]))
        db.save_subscription(Subscription(chat_id=1, feed_url="old"))
        db.save_subscription(Subscription(chat_id=1, feed_url="new"))
        db.save_subscription(Subscription(chat_id=2, feed_url="old"))

    await store._durable(setup)
    await store._durable(lambda db: db.move_feed("old", "new"))
    assert await store.get_feed("old") is None
    moved = await store.get_feed("new")
    assert moved is not None and set(moved.seen) == set(Prints(["a", "b", "c"]))
    assert sorted(s.chat_id for s in await store.subscriptions_for_feed("new")) == [1, 2]
    assert await store.subscriptions_for_feed("old") == []
    await store.close()


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


WRITER = textwrap.dedent(
    """
    import sys, time
    from bot.models import Feed, Delivery, RenderedMessage, ApiCall
    from bot.storage.tinydb.database import Database
    db = Database(sys.argv[1])
    start = int(db.get_feed("counter").title) + 1 if db.get_feed("counter") else 0
    for left in db.pending():  # like the sender after a restart: finish what was in flight
        db.complete(left.id)
    print("ready", flush=True)
    for i in range(start, start + 100000):
        db.save_feed(Feed(url="counter", title=str(i), seen=[f"{i}-{j}" for j in range(3000)]))
        msg = RenderedMessage((ApiCall("sendMessage", {"text": str(i)}),))
        db.enqueue([Delivery(id=f"d{i}", chat_id=1, feed_url="counter", entry_key=str(i),
                             message=msg, created=0)])
        db.commit()
        db.complete(f"d{i}")
    """
)


def test_sigkill_at_any_moment_never_leaves_an_unreadable_database(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    last = -1
    for _ in range(15):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.01, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        json.loads(path.read_bytes())  # the main file is always whole JSON
        db = Database(path)
        feed = db.get_feed("counter")
        assert feed is not None
        i = int(feed.title)
        assert i >= last  # nothing committed is ever lost
        assert feed.seen == [f"{i}-{j}" for j in range(3000)]  # never half a change set
        assert [d.id for d in db.pending()] in ([], [f"d{i}"])  # completions survive via the log
        last = i
        db.close()
    assert last > 0


def test_store_runs_off_the_event_loop(tmp_path: Path) -> None:
    async def main() -> str:
        store = await TinyDBStorage.open(tmp_path / "db.json")
        name = await store._shared(lambda db: __import__("threading").current_thread().name)
        await store.close()
        return name

    assert asyncio.run(main()).startswith("feedbot-store")


def test_a_crash_on_either_side_of_a_fold_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path)
    db.save_feed(Feed(url="u", title="before the fold"))
    db.commit()
    (old_log,) = tmp_path.glob("db.json.log.*")
    saved = {p: p.read_bytes() for p in (path, old_log)}
    db.snapshot(wait=True)
    db.save_feed(Feed(url="u", title="after the fold"))
    db.commit()
    crash(db)
    new_log = db.log.path(db.log.generation)
    saved[new_log] = new_log.read_bytes()

    # died after the new snapshot but before deleting the old log: that log is stale
    old_log.write_bytes(saved[old_log])
    reopened = Database(path)
    assert reopened.get_feed("u").title == "after the fold"  # type: ignore[union-attr]
    assert not old_log.exists()
    crash(reopened)

    # died before the new snapshot replaced the old one: old snapshot + every log replay
    for file, content in saved.items():
        file.write_bytes(content)
    reopened = Database(path)
    assert reopened.get_feed("u").title == "after the fold"  # type: ignore[union-attr]
    reopened.close()


def test_a_field_change_logs_only_that_field(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    db = Database(path)
    seen = [f"key-{i}" for i in range(200)]
    db.save_feed(Feed(url="u", title="T", seen=seen))
    db.commit()
    feed = db.get_feed("u")
    assert feed is not None
    feed.next_check, feed.etag = 123.0, '"v2"'
    db.save_feed(feed)
    db.commit()
    last = log_lines(tmp_path)[-1]
    assert b"key-1" not in last and b"123.0" in last  # the seen-set is not logged again
    crash(db)
    reopened = Database(path)
    again = reopened.get_feed("u")
    assert again is not None
    assert (again.next_check, again.etag, again.seen, again.title) == (123.0, '"v2"', seen, "T")
    reopened.close()


def test_random_changes_then_a_crash_reopen_as_last_committed(tmp_path: Path) -> None:
    rng = random.Random(11)
    for run in range(20):
        path = tmp_path / f"run{run}" / "db.json"
        db = Database(path, lazy_flush_s=3600, log_floor=rng.choice([200, 2000, 10**6]))
        committed = ""
        for step in range(60):
            url = f"u{rng.randrange(6)}"
            action = rng.random()
            if action < 0.5:
                feed = db.get_feed(url) or Feed(url=url)
                feed.title = f"{run}-{step}"
                if rng.random() < 0.5:
                    feed.seen = [*feed.seen, f"s{step}"][-5:]
                db.save_feed(feed)
            elif action < 0.6:
                db.delete_feed(url)
            elif action < 0.75:
                db.enqueue([delivery(step)])
            elif action < 0.85 and db.pending():
                db.complete(rng.choice(db.pending()).id)  # durable, with all changes so far
                committed = state(db)
            if rng.random() < 0.4:
                durable = rng.random() < 0.7
                db.commit(durable=durable)
                if durable:
                    committed = state(db)
        crash(db)
        reopened = Database(path)
        assert state(reopened) == committed
        reopened.close()


def state(db: Database) -> str:
    return dumps({name: dict(sorted(table.docs.items())) for name, table in db._tables.items()})


BEFORE_PROTOCOL = REPO / "tests" / "db_files" / "before_storage_protocol"


def _holds(loaded: dict[str, object], written: dict[str, object]) -> bool:
    """Every field as written (fields added since have their defaults beside them)."""
    return {k: loaded.get(k) for k in written} == written


async def _feeds_and_chats_as_written(store: TinyDBStorage, expected: dict[str, Any]) -> None:
    for written in expected["feeds"]:
        feed = await store.get_feed(written["url"])
        assert feed is not None and _holds(feed.to_dict(), written), written["url"]
    for written in expected["chats"]:
        chat = await store.get_chat(written["id"])
        assert chat is not None and _holds(chat.to_dict(), written), written["id"]


async def test_a_database_written_before_the_storage_protocol_loads(tmp_path: Path) -> None:
    """tests/db_files/before_storage_protocol was written by the code at 04f5a03, before
    bot/storage/ (make_before_storage_protocol.py.txt: a snapshot, then log lines not folded in,
    then a crash); expected.json is what that code read back. The new backend reads the same."""
    for file in BEFORE_PROTOCOL.glob("feedbot.json*"):
        shutil.copy(file, tmp_path / file.name)
    expected = json.loads((BEFORE_PROTOCOL / "expected.json").read_text())
    store = await TinyDBStorage.open(tmp_path / "feedbot.json")
    await _feeds_and_chats_as_written(store, expected)
    chats = sorted({s["chat_id"] for s in expected["subscriptions"]} | {-1002, 303})
    subs = [s for c in chats for s in await store.subscriptions_for_chat(c)]
    assert len(subs) == len(expected["subscriptions"]) == 4
    by_key = {(s.chat_id, s.feed_url): s.to_dict() for s in subs}
    for written in expected["subscriptions"]:
        loaded = by_key[written["chat_id"], written["feed_url"]]
        options = written.pop("options")
        assert _holds(loaded, written) and _holds(loaded["options"], options), written
    pending = await store.pending()
    assert [d.to_dict() for d in pending] == expected["pending"]
    assert [(d.id, d.attempts, d.reply_to_previous) for d in pending] == [
        ("d2", 0, False), ("d3", 0, True), ("d1", 2, False)]
    assert list(tmp_path.glob("*.damaged-*")) == []
    await store.close()
    reopened = await TinyDBStorage.open(tmp_path / "feedbot.json")  # folded: one file again
    assert [d.id for d in await reopened.pending()] == ["d2", "d3", "d1"]
    assert list(tmp_path.glob("feedbot.json.log.*")) == []
    await reopened.close()


# ------------------------------- shared trips (what bot/pipeline/store_batch.py used to do)
async def test_concurrent_reads_and_lazy_writes_share_trips_in_order(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    urls = [f"https://f.test/{i}" for i in range(50)]
    await asyncio.gather(*(store.save_feed(Feed(url=u, title=f"t{i}")) for i, u in enumerate(urls)))
    trips: list[object] = []
    run = store._run

    async def counting(fn: Any, *args: Any) -> Any:
        trips.append(fn)
        return await run(fn, *args)

    store._run = counting  # type: ignore[method-assign]
    states = await asyncio.gather(*(store.load_feed(u) for u in urls))
    await asyncio.gather(*(store.postpone_check(u, float(i)) for i, u in enumerate(urls)))
    assert [s.feed.title if s else "" for s in states] == [f"t{i}" for i in range(50)]
    assert len(trips) <= 4  # not one trip per call
    store._run = run  # type: ignore[method-assign]
    assert [(f.url, f.next_check) for f in await store.due_feeds(1e9)] == []  # no subscribers
    assert [(await store.get_feed(u) or Feed(u)).next_check for u in urls] == [
        float(i) for i in range(50)]
    await store.close()


async def test_an_error_in_a_shared_trip_stays_with_its_own_call(tmp_path: Path) -> None:
    store = await TinyDBStorage.open(tmp_path / "db.json")
    await store.save_feed(Feed(url="u", title="T"))
    stale = await store.load_feed("u")
    assert stale is not None
    await store.save_feed(Feed(url="u", title="changed"))
    ok, failed, also_ok = await asyncio.gather(
        store.load_feed("u"),
        store.record_not_modified(FeedCommit(stale.feed, stale.stamp)),
        store.postpone_check("u", 5.0),
        return_exceptions=True,
    )
    assert isinstance(ok, FeedState) and ok.feed.title == "changed"
    assert isinstance(failed, StorageConflict) and also_ok is None
    assert (await store.get_feed("u") or Feed("x")).next_check == 5.0
    await store.close()
    with pytest.raises(RuntimeError):  # a closed store fails every call of the trip
        await store.load_feed("u")


# ------------------------------------- compact seen-sets and shared messages (issue 16)
BEFORE_COMPACT = REPO / "tests" / "db_files" / "before_compact_seen"


async def test_a_database_with_seen_lists_and_inline_messages_migrates(tmp_path: Path) -> None:
    """tests/db_files/before_compact_seen was written by the code at 3caf761 (seen-sets as
    lists of hex prints, each delivery holding its message; make_before_compact_seen.py.txt:
    a snapshot, log lines not folded in, a crash). It reads the same, is stored compactly
    from the next fold on, and reads the same again."""
    for file in BEFORE_COMPACT.glob("feedbot.json*"):
        shutil.copy(file, tmp_path / file.name)
    expected = json.loads((BEFORE_COMPACT / "expected.json").read_text())

    async def read_back(store: TinyDBStorage) -> None:
        await _feeds_and_chats_as_written(store, expected)
        assert [d.to_dict() for d in await store.pending()] == expected["pending"]

    store = await TinyDBStorage.open(tmp_path / "feedbot.json")
    await read_back(store)
    assert len((await store.get_chat(1) or Chat(0)).seen) == 2000
    await store.close()
    snapshot = (tmp_path / "feedbot.json").read_bytes()
    assert b'"8c4b25f797df8d1d"' not in snapshot  # no print as a hex string any more
    empty_tables = len(b',"digests":{}')  # tables added since the file was written
    before = (BEFORE_COMPACT / "feedbot.json.log.2").stat().st_size
    assert len(snapshot) - empty_tables < 0.6 * before
    store = await TinyDBStorage.open(tmp_path / "feedbot.json")
    await read_back(store)
    await store.close()


def _log_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + ".log.*"))


async def test_a_chat_seen_set_change_is_logged_as_the_prints_appended(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    full = [fingerprint(f"p{n}") for n in range(CHAT_SEEN_CAP)]
    store = await TinyDBStorage.open(path)
    await store.save_chat(Chat(id=7, seen=full))
    before = _log_bytes(path)
    chat = await store.get_chat(7)
    assert chat is not None
    chat.seen = merge_chat_seen(chat.seen, [fingerprint("new")])  # one in, the oldest out
    await store.save_chat(chat)
    assert _log_bytes(path) - before < 150  # not the 16 KB of the whole set
    crash_store(store)
    reopened = await TinyDBStorage.open(path)  # replayed from the log
    again = await reopened.get_chat(7)
    assert again is not None and again.seen == [*full[1:], fingerprint("new")]
    await reopened.close()


async def test_one_post_to_many_chats_stores_its_message_once(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = await TinyDBStorage.open(path)
    text = "<b>One post</b> " + "x" * 2000
    message = RenderedMessage((ApiCall("sendMessage", {"text": text, "parse_mode": "HTML"}),))
    before = _log_bytes(path)
    await store.enqueue([
        Delivery(id=f"d{c}", chat_id=c, feed_url="u", entry_key="k", message=message, created=1)
        for c in range(200)
    ])
    assert _log_bytes(path) - before < 200 * 300  # 2 KB of text once, not 200 times
    pending = await store.pending()
    assert len(pending) == 200 and all(d.message == message for d in pending)
    for delivery in pending[:-1]:
        await store.complete(delivery.id)
    assert [d.message for d in await store.pending()] == [message]  # still there for the last
    await store.complete(pending[-1].id)
    await store.close()
    assert text.encode() not in path.read_bytes()  # gone with the last delivery
