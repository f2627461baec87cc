"""Storage benchmark: `python -m bench.storage [--sizes 1000,10000,100000] [--cycles 20] [--smoke]`.

Drives only the storage protocol (bot.storage.base, `TinyDBStorage.open`), so it measures any
on-disk format behind it. A database of N feeds, each with a full seen-set (200 fingerprints, as
bot.feeds.diff keeps) and a running feed's state (title, link, ETag, Last-Modified, body digest,
check times, next checks spread over a 300 s interval), one subscription and one chat (60 seen
prints, the feed's newest, as /sub leaves them) per feed. Per size, three child processes on
one database:

1. build: the database through `add_subscriptions` (1,000 per write), then a clean close.
2. run: start-up (`open`, `open_s`) and the process's RSS before and after it (current RSS, not
   only the peak); `due_feeds(now)` as a tick calls it: nothing due (`tick_idle_ms`, median of
   `--ticks` calls), 1/60 of the feeds due (a 5 s tick at a 300 s interval, `tick_some_ms`) and
   every feed due (`tick_all_ms`); the idle tick once more after `gc.freeze()`
   (`tick_idle_gc_frozen_ms`, a what-if: how much of it is the cyclic GC walking the database's
   objects, which the bot does not freeze); then `cycles` check cycles in which 10% of the
   feeds get one new entry: `load_feed` each, then each feed's `commit_check` (its seen-set and
   its chat's updated, one delivery queued) all at once, as concurrent checks do (the backend
   groups them: `write_ms`), after which the deliveries are completed one by one (`complete`,
   each durable). With `--concurrency K` the cycle's checks go K at a time (load, then commit),
   as the poller's bounded concurrency runs them; all at once holds every check's state (10,000
   feeds' seen-sets unpacked to hex at 100k) in memory together.
   Reports bytes written per cycle (`store.bytes_written`: log lines plus any snapshot fold
   settled in that cycle) and disk use (db.json*) after each cycle: it must stay bounded, since
   seen-sets are capped. The process then dies without closing the store (`os._exit`: a crash).
   `rss_end_mib` is the process's RSS after the cycles (what a running bot holds).
3. reopen: the start-up after that crash (`reopen_s`, replaying whatever was written since the
   last fold; `reopen_log_mib` is the disk beyond the snapshot before it; `reopen_rss_mib` the
   RSS right after), one feed saved, and a clean close (`close_s`: a stopping bot folds
   everything into one file).

`--repeats R` builds each size once and runs steps 2 and 3 R times on fresh copies of it; the
last table holds the medians (the results file also each run and the spread).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

from bench.common import (
    current_rss_mib,
    files_bytes,
    median,
    peak_rss_mib,
    print_table,
    write_results,
)

SEEN = 200
CHAT_SEEN = 60
BATCH = 1000
INTERVAL = 300.0
TICK = 5.0
#: the first next-check time: far ahead of any real clock, so only the ticks below make feeds due
T0 = 4e9
COLS = ["feeds", "file_mib", "build_s", "open_s", "rss_open_mib", "rss_delta_mib",
        "tick_idle_ms", "tick_idle_gc_frozen_ms", "tick_some_ms", "tick_all_ms",
        "write_ms_median", "write_ms_max", "complete_ms_median", "mib_per_cycle",
        "disk_first_mib", "disk_max_mib", "rss_end_mib", "reopen_log_mib", "reopen_s",
        "reopen_rss_mib", "close_s", "peak_rss_mib"]


def feed_url(i: int) -> str:
    return f"https://blog{i}.example.org/index.xml"


def new_subscription(i: int, n: int) -> Any:
    """Feed i as a running bot holds it, with its subscription and chat."""
    from bot.feeds.identity import fingerprint
    from bot.models import Chat, Feed, Subscription
    from bot.pipeline.outbox import CHAT_SEEN_CAP
    from bot.storage.base import NewSubscription

    url = feed_url(i)
    seen = [fingerprint(f"{url}#{k}") for k in range(SEEN)]
    last = T0 - INTERVAL + (i % 997) * 0.37
    feed = Feed(
        url=url, title=f"Blog {i}: notes on things", link=f"https://blog{i}.example.org/",
        etag=f'W/"{i:08x}-5f3a9c"', last_modified=formatdate(1.7e9 + i, usegmt=True),
        seen=seen, next_check=T0 + INTERVAL * i / n, last_check=last, last_success=last,
        last_new_entry=last - 86400, body_digest=fingerprint(f"{url}#body") * 2,
        ttl_minutes=60 if i % 10 == 0 else None,
    )
    chat = Chat(id=10_000 + i, type="private" if i % 3 else "supergroup", title=f"chat {i}")
    return NewSubscription(
        Subscription(chat_id=chat.id, feed_url=url, created=1.7e9), feed, chat,
        prints=seen[-CHAT_SEEN:], feed_cap=SEEN, chat_cap=CHAT_SEEN_CAP,
    )


async def build(folder: Path, n: int) -> dict[str, Any]:
    from bot.storage.base import Stamp
    from bot.storage.tinydb.backend import TinyDBStorage

    t0 = time.perf_counter()
    store = await TinyDBStorage.open(folder / "db.json")
    for start in range(0, n, BATCH):
        batch = [new_subscription(i, n) for i in range(start, min(start + BATCH, n))]
        await store.add_subscriptions(batch, Stamp())
    await store.close()
    return {"build_s": round(time.perf_counter() - t0, 1),
            "file_mib": round(files_bytes(folder) / 2**20, 2)}


async def _timed(call: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = await call
    return (time.perf_counter() - t0) * 1000, value


async def ticks(store: Any, n: int, calls: int) -> dict[str, Any]:
    """`due_feeds` as a tick calls it, with nothing, 1/60 and everything due."""
    idle = [(await _timed(store.due_feeds(T0 - 1)))[0] for _ in range(calls)]
    some, some_due = [], 0
    for _ in range(max(calls // 4, 1)):
        ms, due = await _timed(store.due_feeds(T0 + TICK))
        some.append(ms)
        some_due = len(due)
    every, all_due = [], 0
    for _ in range(1 if n >= 50_000 else 3):
        ms, due = await _timed(store.due_feeds(T0 + INTERVAL))
        every.append(ms)
        all_due = len(due)
    assert all_due == n, (all_due, n)
    # what-if: the same idle tick with every object made so far out of the cyclic GC's reach
    gc.freeze()
    frozen = [(await _timed(store.due_feeds(T0 - 1)))[0] for _ in range(calls)]
    gc.unfreeze()
    return {"tick_idle_ms": round(median(idle), 2), "tick_idle_ms_max": round(max(idle), 2),
            "tick_idle_gc_frozen_ms": round(median(frozen), 2),
            "tick_some_ms": round(median(some), 2), "tick_some_due": some_due,
            "tick_all_ms": round(median(every), 1), "tick_calls": calls}


async def one_cycle(
    store: Any, n: int, cycle: int, wave: int = 0
) -> tuple[float, float, list[str]]:
    """What concurrent checks commit in a cycle: 10% of the feeds with one new entry each (the
    feed's and the chat's seen-sets, one delivery). All at once, or (`wave`) that many checks at
    a time, as the poller's bounded concurrency runs them. Returns (read ms, write ms, delivery
    ids), the times summed over the waves."""
    urls = [feed_url(i) for i in range(cycle % 10, n, 10)]
    step = wave or len(urls)
    read_ms = write_ms = 0.0
    ids: list[str] = []
    for start in range(0, len(urls), step):
        read, write, queued = await _checks(store, urls[start:start + step], cycle)
        read_ms, write_ms, ids = read_ms + read, write_ms + write, ids + queued
    return read_ms, write_ms, ids


async def _checks(store: Any, urls: list[str], cycle: int) -> tuple[float, float, list[str]]:
    from bot.feeds.identity import fingerprint
    from bot.models import ApiCall, Delivery, RenderedMessage
    from bot.pipeline.outbox import merge_chat_seen
    from bot.storage.base import FeedCommit, remember_in_feed

    read_ms, states = await _timed(asyncio.gather(*(store.load_feed(url) for url in urls)))
    commits, now = [], time.time()
    for state in states:
        url = state.feed.url
        key = f"{url}#new-{cycle}"
        feed = state.feed
        feed.seen = remember_in_feed(feed.seen, [fingerprint(key)], SEEN)
        feed.last_check = feed.last_success = feed.last_new_entry = now
        feed.next_check = now + INTERVAL
        chat = state.chats[state.subscriptions[0].chat_id]
        chat.seen = merge_chat_seen(chat.seen, [fingerprint(key)])
        text = f"<b>Post {cycle} of {feed.title}</b>\n" + "Some words of the post. " * 16
        message = RenderedMessage((ApiCall("sendMessage", {"text": text, "parse_mode": "HTML"}),))
        delivery = Delivery(id=f"{cycle}-{url}", chat_id=chat.id, feed_url=url, entry_key=key,
                            message=message, created=now)
        commits.append(FeedCommit(feed, state.stamp, chats=[chat], deliveries=[delivery]))
    write_ms, _ = await _timed(asyncio.gather(*(store.commit_check(c) for c in commits)))
    return read_ms, write_ms, [d.id for c in commits for d in c.deliveries]


async def run(folder: Path, n: int, cycles: int, tick_calls: int, wave: int) -> dict[str, Any]:
    from bot.storage.tinydb.backend import TinyDBStorage

    rss_before = current_rss_mib()
    t0 = time.perf_counter()
    store = await TinyDBStorage.open(folder / "db.json")
    open_s = time.perf_counter() - t0
    rss_open = current_rss_mib()
    row: dict[str, Any] = {
        "feeds": n, "open_s": round(open_s, 3), "rss_before_open_mib": round(rss_before, 1),
        "rss_open_mib": round(rss_open, 1), "rss_delta_mib": round(rss_open - rss_before, 1),
        **await ticks(store, n, tick_calls),
    }
    reads, writes, sizes, written, completes = [], [], [], [], []
    for cycle in range(cycles):
        before = store.bytes_written
        read_ms, write_ms, queued = await one_cycle(store, n, cycle, wave)
        reads.append(read_ms)
        writes.append(write_ms)
        for delivery_id in queued:
            completes.append((await _timed(store.complete(delivery_id)))[0])
        written.append(store.bytes_written - before)
        sizes.append(files_bytes(folder) / 2**20)
    ordered = sorted(writes)
    row.update({
        "read_ms_median": round(median(reads), 1),
        "write_ms_median": round(median(writes), 1), "write_ms_max": round(ordered[-1], 1),
        "complete_ms_median": round(median(completes), 2),
        "mib_per_cycle": round(sum(written) / len(written) / 2**20, 2),
        "disk_first_mib": round(sizes[0], 2), "disk_max_mib": round(max(sizes), 2),
        "sizes_mib": [round(s, 3) for s in sizes], "write_ms": [round(w, 1) for w in writes],
        "rss_end_mib": round(current_rss_mib(), 1), "peak_rss_mib": round(peak_rss_mib(), 1),
    })
    return row


async def reopen(folder: Path) -> dict[str, Any]:
    from bot.storage.tinydb.backend import TinyDBStorage

    snapshot = (folder / "db.json").stat().st_size
    log_mib = (files_bytes(folder) - snapshot) / 2**20
    t0 = time.perf_counter()
    store = await TinyDBStorage.open(folder / "db.json")
    reopen_s = time.perf_counter() - t0
    reopen_rss = current_rss_mib()
    feed = await store.get_feed(feed_url(0))
    assert feed is not None
    await store.save_feed(feed)  # one change, so that closing folds everything into one file
    t0 = time.perf_counter()
    await store.close()
    return {"reopen_log_mib": round(log_mib, 1), "reopen_s": round(reopen_s, 3),
            "reopen_rss_mib": round(reopen_rss, 1),
            "close_s": round(time.perf_counter() - t0, 3),
            "reopen_peak_rss_mib": round(peak_rss_mib(), 1)}


def child(phase: str, folder: Path, n: int, cycles: int, tick_calls: int, wave: int) -> None:
    if phase == "build":
        result = asyncio.run(build(folder, n))
    elif phase == "reopen":
        result = asyncio.run(reopen(folder))
    else:
        result = asyncio.run(run(folder, n, cycles, tick_calls, wave))
    print(json.dumps(result), flush=True)
    if phase == "run":
        os._exit(0)  # a crash: the store is not closed, the next start replays its log


def run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.storage", *args], check=True,
                         stdout=subprocess.PIPE).stdout
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def measure(
    n: int, cycles: int, tick_calls: int, repeats: int = 1, wave: int = 0
) -> list[dict[str, Any]]:
    """One build, then `repeats` runs (and reopens), each on a fresh copy of the built file."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        built_dir, run_dir = Path(tmp) / "built", Path(tmp) / "run"
        built_dir.mkdir()
        common = ["--n", str(n), "--cycles", str(cycles), "--ticks", str(tick_calls),
                  "--concurrency", str(wave)]
        built = run_child(["--child", "build", "--dir", str(built_dir), *common])
        for repeat in range(repeats):
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(built_dir, run_dir)
            ran = run_child(["--child", "run", "--dir", str(run_dir), *common])
            reopened = run_child(["--child", "reopen", "--dir", str(run_dir), *common])
            rows.append({**ran, **built, **reopened, "repeat": repeat + 1})
    return rows


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per column, the median of the repeats (and its spread as `<col>_range`)."""
    if len(rows) == 1:
        return rows[0]
    out: dict[str, Any] = {"feeds": rows[0]["feeds"], "repeats": len(rows)}
    for key in COLS[1:]:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if values:
            out[key] = round(median(values), 3)
            out[key + "_range"] = [min(values), max(values)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=20, help="due_feeds calls per idle figure")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per size on copies of one build; the table shows medians")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="checks at a time in a cycle (default: all of them at once)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", choices=["build", "run", "reopen"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.n, args.cycles, args.ticks, args.concurrency)
        return
    sizes = [200] if args.smoke else [int(s) for s in args.sizes.split(",")]
    cycles = 3 if args.smoke else args.cycles
    tick_calls = 4 if args.smoke else args.ticks
    rows, runs = [], []
    for n in sizes:
        repeated = measure(n, cycles, tick_calls, max(args.repeats, 1), args.concurrency)
        print_table(repeated, ["repeat", *COLS])
        runs += repeated
        rows.append(medians(repeated))
    print()
    print_table(rows, COLS)
    write_results("storage-smoke" if args.smoke else "storage",
                  {"rows": rows, "runs": runs, "cycles": cycles, "ticks": tick_calls,
                   "concurrency": args.concurrency or "all"})


if __name__ == "__main__":
    main()
