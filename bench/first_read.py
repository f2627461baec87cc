"""The first read of N new feeds: `python -m bench.first_read [--feeds 10000] [--chats 100]
[--repeat 2] [--smoke]`.

N feeds, each the ~40 KB seed feed (bench/common.py seed_body, 28 items), on a loopback feed
server in its own process (bench/procs.py: 127.0.0.1 .. 127.0.0.A on P ports each, feed i on
endpoint i % (A x P), each endpoint a host of its own to the bot, so the fetcher's per-host
politeness does not serialise them). `--chats` chats each import N/chats
of them at once, through the path an OPML import takes in the bot: the runtime built as
`feedbot run` builds it (bot.app.build_application, then bot.runtime.Runtime.start: storage,
fetcher, parse pool, service), then `SubscriptionService.import_feeds` per chat with the
handler's concurrency (bot.handlers.import_export.IMPORT_CONCURRENCY), all chats concurrently.
The chats' subscription limit (`max_subscriptions`) is raised to N/chats.

Measured, in a fresh child process per repetition (its own database in a temporary directory):
- wall seconds from the first import call until every import returned;
- CPU seconds of the child's whole process tree over that time (the child, the forkserver and
  the parse workers; /proc, utime+stime plus reaped children), split into the main process and
  the others;
- feeds per second, CPU ms per feed, and beside it the CPU of one `parse_bytes` of the seed
  (after the run, the least of 20 and their median): `parse_share` = N x the least / the CPU,
  how much of the bill a full parse per feed explains at least;
- the tree's peak RSS and PSS and the machine's load average, sampled every second by the
  parent (not counted in the CPU). Wall time suffers from a loaded machine more than CPU.

The result is checked through the storage protocol: every import item "added", every chat has
its N/chats subscriptions, nothing queued for delivery (outbox depth 0), every feed's seen-set
non-empty, and the feed server was asked for each feed exactly once.

Results: bench/results/first_read.json (first_read-smoke.json for --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

from bench.common import print_table, seed_body, write_results
from bench.procs import Endpoints, MultiHostFeedServer, sample_tree

COLS = ["feeds", "chats", "endpoints", "rep", "wall_s", "cpu_s", "cpu_main_s", "cpu_others_s",
        "feeds_per_s", "cpu_ms_per_feed", "parse_ms_min", "parse_share", "rss_mib_max",
        "pss_mib_max", "load_mean", "ok"]
FIRST_CHAT = 20_000


def chat_feeds(n: int, chats: int) -> list[list[int]]:
    per = n // chats
    return [list(range(c * per, (c + 1) * per)) for c in range(chats)]


async def first_read(endpoints: Endpoints, n: int, chats: int) -> dict[str, Any]:
    """In the child: build the runtime, import, measure, check, stop."""
    from bot.app import build_application
    from bot.config import load
    from bot.handlers.import_export import IMPORT_CONCURRENCY
    from bot.models import Chat
    from bot.runtime import Runtime
    from tests.fakes.botapi import TOKEN

    plan = chat_feeds(n, chats)
    with tempfile.TemporaryDirectory() as tmp:
        # nothing here talks to Telegram; the address is loopback all the same
        settings = replace(load(environ={}), token=TOKEN, api_url="http://127.0.0.1:9",
                           db_path=f"{tmp}/db.json", allow_private=True,
                           max_subscriptions=len(plan[0]))
        app = build_application(settings)
        runtime = await Runtime.start(settings, app.bot)
        try:
            service = runtime.service
            imports = [
                service.import_feeds(Chat(id=FIRST_CHAT + c, type="private"),
                                     [(endpoints.url(i), "") for i in feeds],
                                     concurrency=IMPORT_CONCURRENCY)
                for c, feeds in enumerate(plan)
            ]
            before, t0 = sample_tree(os.getpid()), time.perf_counter()
            results = await asyncio.gather(*imports)
            wall = time.perf_counter() - t0
            after = sample_tree(os.getpid())
            problems = await check(runtime.store, plan, results)
        finally:
            await runtime.stop()
    main = os.getpid()
    cpu_main = after.cpu_by_pid.get(main, 0.0) - before.cpu_by_pid.get(main, 0.0)
    cpu = after.cpu_s - before.cpu_s
    others = max(cpu - cpu_main, 0.0)  # sums of the same clock ticks: below 0 is float rounding
    return {"wall_s": wall, "cpu_s": cpu, "cpu_main_s": cpu_main, "cpu_others_s": others,
            **parse_ms(), "problems": problems[:10], "ok": not problems}


async def check(store: Any, plan: list[list[int]], results: list[Any]) -> list[str]:
    """What is wrong with the imported state, read back through the storage protocol."""
    problems = [f"chat {FIRST_CHAT + c}: {item.url} {item.status} {item.reason}"
                for c, items in enumerate(results) for item in items if item.status != "added"]
    urls: list[str] = []
    for c, feeds in enumerate(plan):
        subs = await store.subscriptions_for_chat(FIRST_CHAT + c)
        if len(subs) != len(feeds):
            problems.append(f"chat {FIRST_CHAT + c}: {len(subs)} subscriptions, not {len(feeds)}")
        urls += [s.feed_url for s in subs]
    depth = await store.outbox_depth()
    if depth:
        problems.append(f"{depth} deliveries queued (a first read sends nothing)")
    for url in urls:
        feed = await store.get_feed(url)
        if feed is None or not len(feed.seen):
            problems.append(f"{url}: {'no feed' if feed is None else 'empty seen-set'}")
    return problems


def parse_ms(times: int = 20) -> dict[str, float]:
    """CPU of one full parse of the seed feed (what the first read did per feed, before #16):
    the least of `times` (the cost without the shared machine's noise) and the median."""
    from bot.feeds.parser import parse_bytes

    body, spent = seed_body(), []
    for _ in range(times):
        t0 = time.process_time()
        parse_bytes(body, "https://bench.example.org/feed")
        spent.append(1000 * (time.process_time() - t0))
    return {"parse_ms_min": min(spent), "parse_ms_median": statistics.median(spent)}


def run_child(server: MultiHostFeedServer, n: int, chats: int) -> dict[str, Any]:
    """One repetition in a fresh process; its tree's memory sampled from here every second."""
    args = ["--child", "--endpoints", server.endpoints.to_arg(),
            "--feeds", str(n), "--chats", str(chats)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.first_read", *args],
                            stdout=subprocess.PIPE)
    peaks = {"rss": 0.0, "pss": 0.0}
    loads: list[float] = []

    def watch() -> None:
        while proc.poll() is None:
            tree = sample_tree(proc.pid)
            peaks["rss"], peaks["pss"] = (max(peaks["rss"], tree.rss_mib),
                                          max(peaks["pss"], tree.pss_mib))
            loads.append(os.getloadavg()[0])
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    requests0 = server.stats()["requests"]
    out, _ = proc.communicate()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"first_read child failed ({proc.returncode})")
    row: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    requests = server.stats()["requests"] - requests0
    if requests != n:
        row["problems"].append(f"the feed server was asked {requests} times, not {n}")
        row["ok"] = False
    row.update(rss_mib_max=peaks["rss"], pss_mib_max=peaks["pss"], requests=requests,
               load_mean=statistics.fmean(loads) if loads else None)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--addresses", type=int, default=50,
                        help="feed server addresses 127.0.0.1..A")
    parser.add_argument("--ports", type=int, default=1,
                        help="ports per address: A x P endpoints, each a host to the bot")
    parser.add_argument("--smoke", action="store_true", help="40 feeds in 4 chats, once")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoints = Endpoints.from_arg(args.endpoints)
        from bot.app import use_fast_event_loop

        use_fast_event_loop()  # the loop `feedbot run` uses
        print(json.dumps(asyncio.run(first_read(endpoints, args.feeds, args.chats))))
        return
    if args.smoke:
        args.feeds, args.chats, args.repeat, args.addresses = 40, 4, 1, 5
    if args.feeds % args.chats:
        parser.error("--feeds must be a multiple of --chats")
    rows = []
    seed = seed_body()  # the shared seed, or its generated look-alike without ../shared
    print(f"seed: {len(seed)} bytes, {seed.count(b'<item>')} items")
    with MultiHostFeedServer(seed, args.addresses, args.ports) as server:
        for rep in range(1, args.repeat + 1):
            row = run_child(server, args.feeds, args.chats)
            n = args.feeds
            row = {"feeds": n, "chats": args.chats, "endpoints": server.endpoints.count,
                   "rep": rep, "seed_bytes": len(seed), **row,
                   "feeds_per_s": n / row["wall_s"], "cpu_ms_per_feed": 1000 * row["cpu_s"] / n,
                   "parse_share": n * row["parse_ms_min"] / 1000 / row["cpu_s"]}
            rows.append(row)
            print_table([row], COLS)
            for problem in row["problems"]:
                print(f"  problem: {problem}")
    print()
    print_table(rows, COLS)
    write_results("first_read-smoke" if args.smoke else "first_read",
                  {"rows": rows, "addresses": args.addresses, "ports": args.ports})
    if not all(r["ok"] for r in rows):
        raise SystemExit("the first read left the wrong state (see the problems above)")


if __name__ == "__main__":
    main()
