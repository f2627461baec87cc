"""Fan-out benchmark: `python -m bench.fanout [--chats 1000] [--repeats 3] [--smoke]`.

One feed (the ~40 KB seed) on the loopback feed server, followed by `--chats` chats, each with a
full chat seen-set (bot.pipeline.outbox.CHAT_SEEN_CAP prints: those of the chat's other feeds,
then the feed's current entries, as /sub marks them), all made through the storage protocol
(`add_subscriptions` with prints). The bot (Store, Fetcher, ParsePool, Poller) starts on that
database, checks the feed once (200, nothing new: the state of a running bot), then the feed gets
ONE new post and a second check, the measured one, finds it and queues a delivery to every chat.

Per repeat (each in a fresh child process, on a fresh database):
- `wall_s`, `cpu_s` (the bot's process), `workers_cpu_s` (parse workers) of that check;
- `queued`: deliveries queued (must equal --chats) and the outbox depth after it;
- `log_mib`: `store.bytes_written` from the check's start to its end (the commit's log line,
  plus a snapshot only if one triggered by the write already finished);
- `written_mib`: what the store wrote for the check including any snapshot the write triggered:
  `store.bytes_written` from the check's start until the store is closed (closing waits for a
  background snapshot), minus what the close itself writes, which is one whole snapshot of the
  database (its final size, `final_mib`);
- `wchar_mib` / `disk_write_mib`: the same window and subtraction from /proc/self/io (bytes handed
  to write(), and bytes the kernel sent to the disk for this process), a check on the store's own
  count;
- `growth_check_mib` / `growth_close_mib`: growth of the db.json* files from just before the check
  to just after it, and to after the close.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    FeedServerProcess,
    IoCounters,
    files_bytes,
    median,
    peak_rss_mib,
    print_table,
    seed_body,
    write_results,
)
from bench.poll import RunningBot, feed_url

COLS = ["repeat", "chats", "wall_s", "cpu_s", "workers_cpu_s", "queued", "log_mib",
        "written_mib", "wchar_mib", "disk_write_mib", "growth_check_mib", "growth_close_mib",
        "final_mib", "peak_rss_mib"]
MIB = 2**20


def subscriptions(url: str, chats: int) -> list[Any]:
    """`chats` new subscriptions to `url`, each chat's seen-set full once the feed's prints are
    in."""
    from bot.feeds.diff import entry_prints, oldest_first, seen_cap
    from bot.feeds.identity import fingerprint
    from bot.feeds.parser import parse_bytes
    from bot.models import Chat, Feed, Subscription
    from bot.pipeline.outbox import CHAT_SEEN_CAP
    from bot.storage.base import NewSubscription

    parsed = parse_bytes(seed_body(), url)
    current = [p for e in oldest_first(parsed.entries) for p in entry_prints(e)]
    others = CHAT_SEEN_CAP - len(current)
    return [
        NewSubscription(
            Subscription(chat_id=10_000 + c, feed_url=url, created=1.0),
            Feed(url=url, title=parsed.title),
            Chat(id=10_000 + c, type="supergroup", title=f"chat {c}"),
            prints=[fingerprint(f"chat {c} post {k}") for k in range(others)] + current,
            feed_cap=seen_cap(len(parsed.entries)), chat_cap=CHAT_SEEN_CAP,
        )
        for c in range(chats)
    ]


async def one_repeat(chats: int) -> dict[str, Any]:
    from bot.config import load
    from bot.pipeline.outbox import CHAT_SEEN_CAP
    from bot.storage.base import Stamp
    from bot.storage.tinydb.backend import TinyDBStorage

    with FeedServerProcess(seed_body()) as server, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = replace(load(environ={}), allow_private=True, db_path=f"{tmp}/db.json")
        url = feed_url(server.port, 0, 1)
        store = await TinyDBStorage.open(settings.db_path)
        await store.add_subscriptions(subscriptions(url, chats), Stamp())
        await store.close()  # a clean file: no fold of the set-up left running
        bot = await RunningBot.start(settings)
        first = await bot.poller.run_once()
        assert first.checked == 1 and first.failed == 0 and first.queued == 0, first
        state = await bot.store.load_feed(url)
        assert state is not None
        chat_seen = min(len(c.seen) for c in state.chats.values())
        assert chat_seen == CHAT_SEEN_CAP, chat_seen
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(server.url("/_bump?every=1&count=1"))
        feed = await bot.store.get_feed(url)
        assert feed is not None
        await bot.store.save_feed(replace(feed, next_check=0.0))

        files0, written0, io0 = files_bytes(folder), bot.store.bytes_written, IoCounters.now()
        (cpu0, workers0), t0 = bot.cpu(), time.perf_counter()
        stats = await bot.poller.run_once()
        wall = time.perf_counter() - t0
        cpu1, workers1 = bot.cpu()
        written1, files1 = bot.store.bytes_written, files_bytes(folder)
        depth = await bot.store.outbox_depth()
        await bot.stop()  # waits for the snapshot the write may have triggered, then folds
        written2, io2, files2 = bot.store.bytes_written, IoCounters.now() - io0, files_bytes(folder)
    assert stats.new_entries == 1 and stats.queued == chats == depth, (stats, depth)
    close_fold = files2  # the close writes the whole database once
    return {
        "chats": chats, "chat_seen": chat_seen, "wall_s": round(wall, 3),
        "cpu_s": round(cpu1 - cpu0, 3), "workers_cpu_s": round(workers1 - workers0, 3),
        "queued": stats.queued, "outbox_depth": depth,
        "log_mib": round((written1 - written0) / MIB, 2),
        "written_mib": round((written2 - written0 - close_fold) / MIB, 2),
        # before the subtraction (it assumes the close writes the whole database once)
        "written_through_close_mib": round((written2 - written0) / MIB, 2),
        "wchar_through_close_mib": round(io2.wchar / MIB, 2),
        "wchar_mib": round((io2.wchar - close_fold) / MIB, 2),
        "disk_write_mib": round((io2.write_bytes - close_fold) / MIB, 2),
        "growth_check_mib": round((files1 - files0) / MIB, 2),
        "growth_close_mib": round((files2 - files0) / MIB, 2),
        "final_mib": round(files2 / MIB, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="20 chats, once")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from bot.app import use_fast_event_loop

        use_fast_event_loop()  # the loop `feedbot run` uses
        print(json.dumps(asyncio.run(one_repeat(args.chats))))
        return
    chats, repeats = (20, 1) if args.smoke else (args.chats, args.repeats)
    rows = []
    for repeat in range(1, repeats + 1):
        out = subprocess.run(
            [sys.executable, "-m", "bench.fanout", "--child", "--chats", str(chats)],
            check=True, stdout=subprocess.PIPE,
        ).stdout
        rows.append({"repeat": repeat, **json.loads(out.decode().strip().splitlines()[-1])})
        print_table(rows[-1:], COLS)
    summary = {"repeat": "median", "chats": chats,
               **{c: median([r[c] for r in rows]) for c in COLS[2:]}}
    print()
    print_table([*rows, summary], COLS)
    write_results("fanout-smoke" if args.smoke else "fanout",
                  {"rows": rows, "median": summary, "chats": chats, "repeats": repeats})


if __name__ == "__main__":
    main()
