"""Poll-cycle benchmark: `python -m bench.poll [--sizes 100,1000,10000] [--smoke]`.

N feeds (each the ~40 KB seed feed) on a loopback feed server in its own process, one subscriber
chat per feed, checked by the real Poller + Fetcher + Store. A first cycle reads every feed (200,
nothing new: the cycle after a start, `first_cycle_wall_s`); then three mixes per size: every
feed unchanged (304), 10% with one new item, every feed with one new item. The outbox is the output:
`queued` counts deliveries. Each size runs in a fresh child process so peak RSS is per size.

Baseline, in the same run: the common approach, sequential `feedparser.parse(url, etag=...)`
per feed plus one stock-TinyDB (JSONStorage) insert per new entry, on a sample of feeds; its
per-feed cost is extrapolated to N (which flatters it: its database file, rewritten on every
insert, would be N/sample times bigger).

`--server-delay-ms 50` makes the feed server wait before each feed response, like a remote
server's think time and round trip: loopback answers in microseconds, the internet does not, and
that is where checking feeds concurrently pays off against the sequential baseline.
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
    cpu_seconds,
    peak_rss_mib,
    print_table,
    seed_body,
    write_results,
)

MIXES = {"unchanged": 0, "10%": 10, "all": 1}  # value: every K-th feed gets a new item
COLS = ["who", "feeds", "mix", "wall_s", "cpu_s", "req_per_s", "queued", "items_parsed",
        "server_cpu_s", "peak_rss_mib", "x_baseline", "first_cycle_wall_s"]


async def _stub_resolver(host: str, port: int) -> list[str]:
    """Every bench host name is the loopback server (no real name resolution)."""
    return ["127.0.0.1"]


def feed_url(port: int, feed: int, hosts: int) -> str:
    return f"http://h{feed % hosts}.bench.test:{port}/f/{feed}"


async def _control(client: httpx.AsyncClient, server: FeedServerProcess, path: str) -> Any:
    return (await client.get(server.url(path))).json()


async def bot_cycles(
    n: int, hosts: int, mixes: list[str], delay_s: float = 0.0
) -> list[dict[str, Any]]:
    from bot.config import load
    from bot.feeds.diff import oldest_first, remember, seen_cap
    from bot.feeds.fetcher import Fetcher
    from bot.feeds.parse_pool import ParsePool
    from bot.feeds.parser import parse_bytes
    from bot.models import Chat, Feed, Subscription
    from bot.pipeline.poller import Poller
    from bot.runtime import fetch_settings
    from bot.storage.base import NewSubscription, Stamp
    from bot.storage.tinydb.backend import TinyDBStorage

    body = seed_body()
    parsed = parse_bytes(body, "https://bench.example.org/feed")
    seen = remember([], oldest_first(parsed.entries), seen_cap(len(parsed.entries)))
    rows = []
    with FeedServerProcess(body, delay_s=delay_s) as server, tempfile.TemporaryDirectory() as tmp:
        settings = replace(load(environ={}), allow_private=True, db_path=f"{tmp}/db.json")
        store = await TinyDBStorage.open(settings.db_path)
        urls = [feed_url(server.port, i, hosts) for i in range(n)]

        async def make_due() -> None:  # durably, as one group commit, before the cycle
            feeds = await asyncio.gather(*(store.get_feed(url) for url in urls))
            await asyncio.gather(*(store.save_feed(replace(f, next_check=0.0)) for f in feeds if f))

        await store.add_subscriptions([
            NewSubscription(
                Subscription(chat_id=10_000 + i, feed_url=url, created=1.0),
                Feed(url=url, title=parsed.title, seen=list(seen)),
                Chat(id=10_000 + i),
            )
            for i, url in enumerate(urls)
        ], Stamp())
        fetcher = Fetcher(fetch_settings(settings), resolver=_stub_resolver)
        pool_t0 = time.perf_counter()
        parse_pool = ParsePool()
        await parse_pool.start()
        pool_start_s = time.perf_counter() - pool_t0
        poller = Poller(store, fetcher, settings, parse_pool=parse_pool)
        # A running bot has read every feed before: this first cycle (all 200, nothing new) is
        # the one after a start, and leaves the state every later cycle starts from.
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        first = await poller.run_once()
        first_wall, first_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        assert first.checked == n and first.failed == 0 and first.queued == 0, first
        async with httpx.AsyncClient(trust_env=False) as client:
            for mix in mixes:
                await make_due()
                if MIXES[mix]:
                    await _control(client, server, f"/_bump?every={MIXES[mix]}&count={n}")
                before = await _control(client, server, "/_stats")
                requests0, cpu0, t0 = fetcher.stats.requests, cpu_seconds(), time.perf_counter()
                stats = await poller.run_once()
                wall = time.perf_counter() - t0
                cpu = cpu_seconds() - cpu0
                after = await _control(client, server, "/_stats")
                requests = fetcher.stats.requests - requests0
                assert stats.checked == n and stats.failed == 0, stats
                rows.append({
                    "who": "feedbot", "feeds": n, "mix": mix, "wall_s": wall, "cpu_s": cpu,
                    "req_per_s": round(requests / wall), "queued": stats.queued,
                    "new_entries": stats.new_entries, "not_modified": stats.not_modified,
                    "server_cpu_s": after["cpu_seconds"] - before["cpu_seconds"],
                    "db_bytes_written": store.bytes_written, "pool_start_s": pool_start_s,
                    "items_parsed": stats.items_parsed,
                    "first_cycle_wall_s": first_wall, "first_cycle_cpu_s": first_cpu,
                })
        await poller.close()
        await parse_pool.close()
        await fetcher.aclose()
        await store.close()
    for row in rows:
        row["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return rows


async def baseline_cycles(
    n: int, sample: int, mixes: list[str], delay_s: float = 0.0
) -> list[dict[str, Any]]:
    """Sequential feedparser.parse(url) + a stock TinyDB insert per new entry, on `sample` feeds."""
    import feedparser
    from tinydb import TinyDB

    body = seed_body()
    rows = []
    with FeedServerProcess(body, delay_s=delay_s) as server, tempfile.TemporaryDirectory() as tmp:
        db = TinyDB(Path(tmp) / "baseline.json")  # stock JSONStorage: rewrites the file per insert
        entries = db.table("entries")
        first = feedparser.parse(body)
        entries.insert_multiple(
            {"feed": i, "guid": e.get("id"), "title": e.get("title")}
            for i in range(sample) for e in first.entries
        )
        seen = {(d["feed"], d["guid"]) for d in entries.all()}
        etags = {i: f'"{i}-0"' for i in range(sample)}
        async with httpx.AsyncClient(trust_env=False) as client:
            for mix in mixes:
                if MIXES[mix]:
                    await _control(client, server, f"/_bump?every={MIXES[mix]}&count={sample}")
                cpu0, t0, inserted = cpu_seconds(), time.perf_counter(), 0
                for i in range(sample):
                    doc = feedparser.parse(server.url(f"/f/{i}"), etag=etags[i])
                    etags[i] = doc.get("etag", etags[i])
                    for e in doc.entries:
                        if (i, e.get("id")) not in seen:
                            seen.add((i, e.get("id")))
                            entries.insert({"feed": i, "guid": e.get("id"), "title": e.title})
                            inserted += 1
                wall = time.perf_counter() - t0
                rows.append({
                    "who": "baseline", "feeds": n, "mix": mix, "sample": sample,
                    "wall_s": wall * n / sample, "cpu_s": (cpu_seconds() - cpu0) * n / sample,
                    "req_per_s": round(sample / wall), "queued": round(inserted * n / sample),
                    "measured_wall_s": wall, "extrapolated": n != sample,
                })
    for row in rows:
        row["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return rows


def run_child(args: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "bench.poll", *args], check=True,
                         stdout=subprocess.PIPE).stdout
    return list(json.loads(out.decode().strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--hosts", type=int, default=200, help="distinct feed host names")
    parser.add_argument("--baseline-sample", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--server-delay-ms", type=float, default=0.0,
                        help="the feed server waits this long before each feed response "
                             "(a remote server's round trip; 0 = loopback speed)")
    parser.add_argument("--what-if-sniffio", action="store_true",
                        help="what-if: cache httpcore's failing `import sniffio` (see docs)")
    parser.add_argument("--child", choices=["bot", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    mixes = args.mixes.split(",")
    delay_s = args.server_delay_ms / 1000
    if args.what_if_sniffio:
        # sniffio is not installed, so httpcore retries the import (a sys.path scan) per request
        sys.modules.setdefault("sniffio", None)  # type: ignore[assignment]
    if args.child == "bot":
        print(json.dumps(asyncio.run(bot_cycles(args.n, args.hosts, mixes, delay_s))))
        return
    if args.child == "baseline":
        sample = min(args.baseline_sample, args.n)
        print(json.dumps(asyncio.run(baseline_cycles(args.n, sample, mixes, delay_s))))
        return
    sizes = [20] if args.smoke else [int(s) for s in args.sizes.split(",")]
    sample = 10 if args.smoke else args.baseline_sample
    rows = []
    for n in sizes:
        common = ["--n", str(n), "--mixes", ",".join(mixes),
                  "--server-delay-ms", str(args.server_delay_ms)]
        what_if = ["--what-if-sniffio"] if args.what_if_sniffio else []
        bot_rows = run_child(["--child", "bot", "--hosts", str(args.hosts), *what_if, *common])
        base_rows = run_child(["--child", "baseline", "--baseline-sample", str(sample), *common])
        for bot_row, base_row in zip(bot_rows, base_rows, strict=True):
            bot_row["x_baseline"] = round(base_row["wall_s"] / bot_row["wall_s"], 1)
        rows += bot_rows + base_rows
        print_table(bot_rows + base_rows, COLS)
    print()
    print_table(rows, COLS)
    name = "poll-smoke" if args.smoke else "poll-sniffio" if args.what_if_sniffio else "poll"
    if args.server_delay_ms:
        name += f"-delay{args.server_delay_ms:g}ms"
    write_results(name, {"rows": rows, "hosts": args.hosts, "baseline_sample": sample,
                         "server_delay_ms": args.server_delay_ms,
                         "what_if_sniffio": args.what_if_sniffio})


if __name__ == "__main__":
    main()
