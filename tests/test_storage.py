import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bot.models import ApiCall, Chat, Delivery, Feed, RenderedMessage, Subscription
from bot.storage import Database, Store, atomic_write

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


async def test_round_trip_and_one_write_per_change_set(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.json")
    before = store.bytes_written

    def change(db: Database) -> None:
        db.save_feed(Feed(url="https://f.test/", title="F", seen=["a", "b"]))
        db.save_chat(Chat(id=5, type="group", title="G"))
        db.save_subscription(Subscription(chat_id=5, feed_url="https://f.test/"))
        db.enqueue([delivery(1, 5), delivery(2, 5)])

    await store.transaction(change)
    size = (tmp_path / "db.json").stat().st_size
    assert store.bytes_written - before == size  # exactly one full write for the change set
    await store.close()

    store = await Store.open(tmp_path / "db.json")
    feed = await store.get_feed("https://f.test/")
    assert feed is not None and feed.seen == ["a", "b"]
    assert [d.entry_key for d in await store.pending()] == ["k1", "k2"]
    assert [s.chat_id for s in await store.subscriptions_for_feed("https://f.test/")] == [5]
    await store.close()


async def test_completion_journal_survives_without_full_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    store = await Store.open(path)
    await store.enqueue([delivery(i) for i in range(3)])
    written = store.bytes_written
    await store.complete("d0")
    assert store.bytes_written == written  # no full rewrite per message
    assert (tmp_path / "db.json.done").read_text() == "d0\n"
    # simulate a crash: the main file still lists d0, the journal says it was sent
    store._executor.shutdown(wait=True)
    reopened = await Store.open(path)
    assert [d.id for d in await reopened.pending()] == ["d1", "d2"]
    assert not (tmp_path / "db.json.done").exists()  # folded into the main file
    await reopened.close()


async def test_unsubscribing_last_chat_removes_feed(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.json")
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
    store = await Store.open(tmp_path / "db.json")
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
    store = await Store.open(tmp_path / "db.json")

    def setup(db: Database) -> None:
        db.save_feed(Feed(url="old", seen=["a", "b"]))
        db.save_feed(Feed(url="new", seen=["c"]))
        db.save_subscription(Subscription(chat_id=1, feed_url="old"))
        db.save_subscription(Subscription(chat_id=1, feed_url="new"))
        db.save_subscription(Subscription(chat_id=2, feed_url="old"))

    await store.transaction(setup)
    await store.transaction(lambda db: db.move_feed("old", "new"))
    assert await store.get_feed("old") is None
    moved = await store.get_feed("new")
    assert moved is not None and set(moved.seen) == {"a", "b", "c"}
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
    from bot.storage import Database
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
        assert [d.id for d in db.pending()] in ([], [f"d{i}"])  # completions survive via journal
        last = i
        db.close()
    assert last > 0


def test_store_runs_off_the_event_loop(tmp_path: Path) -> None:
    async def main() -> str:
        store = await Store.open(tmp_path / "db.json")
        name = await store.read(lambda db: __import__("threading").current_thread().name)
        await store.close()
        return name

    assert asyncio.run(main()).startswith("feedbot-store")
