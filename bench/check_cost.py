"""Where a 304 check's CPU goes: `python -m bench.check_cost [--feeds 2000] [--repeat 3] [--smoke]`.

N feeds on a loopback feed server in its own process (bench/procs.py, feed i on endpoint
i % (A x P), each endpoint a host of its own), every one answering 304 to its ETag. Measured in
this process, CPU (utime + stime, all threads; and the event loop's thread alone) per request:

- `aiohttp reused`: a bare aiohttp session, the connections of the previous round kept alive;
- `aiohttp new`: the same with `force_close` (a new TCP connection per request);
- `fetcher reused`: `bot.feeds.fetcher.Fetcher.fetch` (guard, per-host slots, redirects by hand);
- `poller reused` / `poller expired`: a whole cycle of the real `Poller` on a TinyDB store
  (claim with the feeds' state, fetch, the lazy 304 write), with the connections kept alive from
  the round before, or after the keep-alive (the bot's 30 s) ran out, as in the running bot at
  interval 300 s (`bench.idle`).

The difference between the rows is what each layer adds; `bench.idle` measures the running bot.
Every row runs on the loop `feedbot run` uses (uvloop where installed: bot.app.use_fast_event_loop).
Results: bench/results/check_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cpu_seconds, print_table, seed_body
from bench.procs import MultiHostFeedServer
from bot.config import load
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.models import Chat, Feed, Subscription
from bot.pipeline.poller import Poller
from bot.storage import open_storage
from bot.storage.base import NewSubscription, Stamp

RESULTS = Path(__file__).parent / "results" / "check_cost.json"
CONCURRENCY = 64


async def measured(n: int, cycle: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(CPU ms per request, of which the event loop's thread) of one cycle of `n` requests."""
    c0, m0 = cpu_seconds(), time.thread_time()
    await cycle()
    return 1000 * (cpu_seconds() - c0) / n, 1000 * (time.thread_time() - m0) / n


async def raw_rows(server: MultiHostFeedServer, n: int, force_close: bool) -> tuple[float, float]:
    etags: dict[int, str | None] = {}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=force_close)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            headers = {"If-None-Match": etags[i] or ""} if etags.get(i) else {}
            async with slots, session.get(server.url(i), headers=headers) as response:
                await response.read()
                etags[i] = response.headers.get("ETag")

        async def cycle() -> None:
            await asyncio.gather(*(one(i) for i in range(n)))

        await cycle()  # the ETags
        return await measured(n, cycle)


async def fetcher_row(server: MultiHostFeedServer, n: int) -> tuple[float, float]:
    fetcher = Fetcher(FetchSettings(allow_private=True, max_connections=CONCURRENCY))
    etags: dict[int, str | None] = {}
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with slots:
            etags[i] = (await fetcher.fetch(server.url(i), etag=etags.get(i))).etag

    async def cycle() -> None:
        await asyncio.gather(*(one(i) for i in range(n)))

    try:
        await cycle()
        return await measured(n, cycle)
    finally:
        await fetcher.aclose()


async def poller_rows(
    server: MultiHostFeedServer, n: int, keepalive: float
) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(load(environ={}), allow_private=True,
                                       db_path=f"{tmp}/db.json", poll_interval=300)
        store = await open_storage(settings.db_path)
        new = [NewSubscription(Subscription(1 + i // 100, server.url(i)),
                               Feed(url=server.url(i)), Chat(id=1 + i // 100)) for i in range(n)]
        for k in range(0, n, 500):
            await store.add_subscriptions(new[k:k + 500], Stamp())
        fetcher = Fetcher(FetchSettings(allow_private=True, keepalive_s=keepalive,
                                        max_connections=settings.max_concurrent_checks))
        poller = Poller(store, fetcher, settings)
        clock = [time.time()]
        poller.clock = lambda: clock[0]

        async def cycle() -> None:
            clock[0] += 400  # every feed due
            await poller.run_once()

        rows: dict[str, tuple[float, float]] = {}
        try:
            await cycle()  # the first read: 200s
            await cycle()  # ETags known, connections warm
            rows["poller reused"] = await measured(n, cycle)
            await asyncio.sleep(keepalive + 1.0)
            rows["poller expired"] = await measured(n, cycle)
        finally:
            await poller.close()
            await fetcher.aclose()
            await store.close()
        return rows


async def one_round(
    server: MultiHostFeedServer, n: int, keepalive: float
) -> dict[str, tuple[float, float]]:
    rows = {
        "aiohttp reused": await raw_rows(server, n, force_close=False),
        "aiohttp new": await raw_rows(server, n, force_close=True),
        "fetcher reused": await fetcher_row(server, n),
    }
    return {**rows, **await poller_rows(server, n, keepalive)}


async def run(
    n: int, repeat: int, addresses: int, ports: int, keepalive: float
) -> list[dict[str, Any]]:
    with MultiHostFeedServer(seed_body(), addresses, ports) as server:
        rounds = [await one_round(server, n, keepalive) for _ in range(repeat)]
    out = []
    for name in rounds[0]:
        totals = [r[name][0] for r in rounds]
        loops = [r[name][1] for r in rounds]
        out.append({"what": name, "feeds": n, "cpu_ms_per_request": statistics.median(totals),
                    "loop_thread_ms": statistics.median(loops),
                    "runs": " ".join(f"{v:.3f}" for v in totals)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument("--ports", type=int, default=40)
    parser.add_argument("--keepalive", type=float, default=30.0,
                        help="the fetcher's keep-alive (the bot's: 30 s); `poller expired` waits "
                             "a second longer")
    parser.add_argument("--smoke", action="store_true", help="40 feeds, once")
    args = parser.parse_args()
    if args.smoke:
        args.feeds, args.repeat, args.addresses, args.ports, args.keepalive = 40, 1, 5, 2, 1.0
    from bot.app import use_fast_event_loop

    use_fast_event_loop()
    rows = asyncio.run(run(args.feeds, args.repeat, args.addresses, args.ports, args.keepalive))
    print_table(rows, ["what", "feeds", "cpu_ms_per_request", "loop_thread_ms", "runs"])
    out = RESULTS.with_name("check_cost-smoke.json") if args.smoke else RESULTS
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv[1:], "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
