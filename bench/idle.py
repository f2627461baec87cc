"""What the running bot costs when nothing changes:
`python -m bench.idle [--sizes 1000,10000] [--minutes 5] [--interval 300] [--smoke]`.

The REAL `feedbot run` (`python -m bot run` from this checkout, a subprocess configured only by
FEEDBOT_* variables) with N feeds that all answer 304 (ETag match), each checked every
`--interval` seconds. Measured: CPU seconds per minute and RSS/PSS of the bot's WHOLE process
tree (the bot, its forkserver and its parse workers: /proc of the bot and every descendant,
utime+stime plus reaped children), and the checks done (requests the feed server answered).

Set-up, none of it counted:
- the fake Bot API (tests/fakes/botapi.py) runs in this process; the bot long-polls it;
- the feed server (bench/procs.py) runs in its own process on 127.0.0.1 .. 127.0.0.A, each
  listening on `--ports` P ports: A x P endpoints, each a host of its own to the bot (feed i on
  endpoint i % (A x P)), so per-host politeness does not serialise the checks. The endpoint
  count decides how often the bot's kept-alive connections (30 s) are reused: at 10k feeds every
  300 s, 50 endpoints see a check every 1.5 s each (almost always reused), 2,000 endpoints one
  a minute (never reused: like 10k feeds on thousands of distinct hosts on the internet);
- the database is built before the bot starts, through the storage protocol only
  (`add_subscriptions`, what /sub stores): one chat per feed, the seed feed's entry prints as
  seen, the server's ETag, and next checks spread evenly over one interval starting `--lead`
  seconds after the build, so the bot runs in steady state from its first tick (no herd).

Warm-up lasts until the feed server has been asked for every feed once (one interval), plus
`--settle` seconds (the bot's jitter delays the second round: without them the first minute
sampled has 20-25% fewer checks); then `--minutes` of samples every `--sample-s`. Each minute
is reported on its own (the repetitions: the machine is shared and noisy). The bot adds 0-10%
(at most 60 s) of jitter to each next check, so the steady rate is about 5% below the nominal
`expected_per_min` (N per interval).

Baseline, in the same run: before the sizes, an EMPTY bot (no feeds, same fake API) measured
the same way for `--baseline-minutes`: its CPU is the floor every bot pays (long polls, ticks),
and `net_ms_per_check` is (CPU - floor) / checks.

At the end the bot gets SIGTERM and must exit 0, leave no process behind and log no ERROR or
traceback (`clean_exit`).

Results: bench/results/idle.json (idle-smoke.json for --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import print_table, seed_body, write_results
from bench.procs import BotProcess, MultiHostFeedServer, TreeSample, sample_tree

COLS = ["feeds", "endpoints", "interval_s", "minutes", "checks_per_min", "expected_per_min",
        "cpu_s_per_min", "cpu_s_per_min_sd", "ms_per_check", "net_ms_per_check",
        "checks_per_connection", "rss_mib_max",
        "pss_mib_max", "processes", "startup_s", "load_mean", "clean_exit"]
MINUTE_COLS = ["feeds", "endpoints", "minute", "cpu_s", "checks", "not_modified", "ms_per_check",
               "checks_per_connection",
               "rss_mib", "pss_mib", "load"]


@dataclass(frozen=True)
class Plan:
    interval: int
    minutes: float
    sample_s: float
    lead_s: float
    addresses: int
    ports: int
    settle_s: float = 0.0


async def build_database(path: str, server: MultiHostFeedServer, n: int, plan: Plan) -> None:
    """N subscriptions as /sub stores them, feeds due evenly over the first interval."""
    from bot.feeds.diff import entry_prints, seen_cap
    from bot.feeds.parser import parse_bytes
    from bot.models import Chat, Feed, Subscription
    from bot.pipeline.outbox import CHAT_SEEN_CAP
    from bot.storage import open_storage
    from bot.storage.base import NewSubscription, Stamp

    parsed = parse_bytes(seed_body(), "https://bench.example.org/feed")
    prints = [p for e in parsed.entries for p in entry_prints(e)]
    now = time.time()
    first = now + plan.lead_s
    store = await open_storage(path)
    try:
        news = []
        for i in range(n):
            url = server.url(i)
            feed = Feed(url=url, title=parsed.title, link=parsed.link, etag=f'"{i}-0"',
                        last_check=now, last_success=now,
                        next_check=first + (i + 0.5) * plan.interval / n)
            news.append(NewSubscription(
                Subscription(chat_id=10_000 + i, feed_url=url, created=now), feed,
                Chat(id=10_000 + i, type="private"), prints, seen_cap(len(parsed.entries)),
                CHAT_SEEN_CAP,
            ))
        if news:
            await store.add_subscriptions(news, Stamp())
    finally:
        await store.close()


def bot_settings(api: Any, db: str, interval: int) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": api.token, "FEEDBOT_API_URL": api.url, "FEEDBOT_DB": db,
        "FEEDBOT_POLL_INTERVAL": str(interval), "FEEDBOT_ALLOW_PRIVATE": "1",
    }


def wait_started(api: Any, bot: BotProcess, timeout: float) -> float:
    """Seconds until the bot set its command menu (the last step of its start-up)."""
    t0 = time.monotonic()
    while not any(c.method == "setMyCommands" for c in api.calls()):
        if not bot.alive():
            raise RuntimeError(f"the bot exited during start-up:\n{bot.log_tail()}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"the bot did not start within {timeout:.0f} s:\n{bot.log_tail()}")
        time.sleep(0.1)
    return time.monotonic() - t0


def warm_up(server: MultiHostFeedServer, bot: BotProcess, n: int, plan: Plan) -> float:
    """Until every feed was checked once, then `settle_s` more (an empty bot: two ticks)."""
    t0, timeout = time.monotonic(), plan.lead_s + plan.interval * 2 + 60
    if n == 0:
        time.sleep(2 * min(5, plan.interval))
        return time.monotonic() - t0
    while server.stats()["distinct_feeds"] < n:
        if not bot.alive():
            raise RuntimeError(f"the bot exited during warm-up:\n{bot.log_tail()}")
        if time.monotonic() - t0 > timeout:
            got = server.stats()["distinct_feeds"]
            raise RuntimeError(f"warm-up: only {got}/{n} feeds checked in {timeout:.0f} s")
        time.sleep(1)
    time.sleep(plan.settle_s)
    return time.monotonic() - t0


@dataclass(frozen=True)
class Sample:
    tree: TreeSample
    server: dict[str, Any]
    load: float  # the machine's 1-minute load average (2 cores shared with others)


def take_sample(bot: BotProcess, server: MultiHostFeedServer) -> Sample:
    return Sample(sample_tree(bot.pid), server.stats(), os.getloadavg()[0])


def sample_window(bot: BotProcess, server: MultiHostFeedServer, plan: Plan) -> list[Sample]:
    samples = [take_sample(bot, server)]
    end = samples[0].tree.at + plan.minutes * 60
    while samples[-1].tree.at < end - 1e-3:
        time.sleep(max(0.0, min(plan.sample_s, end - time.monotonic())))
        if not bot.alive():
            raise RuntimeError(f"the bot exited while sampled:\n{bot.log_tail()}")
        samples.append(take_sample(bot, server))
    return samples


def minute_rows(n: int, endpoints: int, samples: list[Sample]) -> list[dict[str, Any]]:
    """The window cut into whole minutes (the last part, if shorter, scaled to a minute)."""
    rows: list[dict[str, Any]] = []
    start = samples[0]
    for i, s in enumerate(samples[1:], start=1):
        span = s.tree.at - start.tree.at
        if span < 60 - 1e-3 and i < len(samples) - 1:
            continue
        scale = 60 / span
        checks = s.server["requests"] - start.server["requests"]
        cpu = s.tree.cpu_s - start.tree.cpu_s
        part = samples[samples.index(start): i + 1]
        rows.append({
            "feeds": n, "endpoints": endpoints, "minute": len(rows) + 1, "span_s": round(span, 1),
            "cpu_s": cpu * scale, "checks": round(checks * scale),
            "not_modified": round((s.server["not_modified"] - start.server["not_modified"])
                                  * scale),
            "ms_per_check": 1000 * cpu / checks if checks else None,
            "checks_per_connection": _per_connection(start.server, s.server),
            "rss_mib": max(p.tree.rss_mib for p in part),
            "pss_mib": max(p.tree.pss_mib for p in part),
            "load": statistics.fmean(p.load for p in part),
        })
        start = s
    return rows


def _per_connection(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Checks per new TCP connection in a window: how many checks shared one."""
    opened = after["connections"] - before["connections"]
    return round((after["requests"] - before["requests"]) / opened, 2) if opened else None


def summary(n: int, plan: Plan, samples: list[Sample], minutes: list[dict[str, Any]],
            floor: float | None) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    span_min = (last.tree.at - first.tree.at) / 60
    cpu_per_min = (last.tree.cpu_s - first.tree.cpu_s) / span_min
    checks_per_min = (last.server["requests"] - first.server["requests"]) / span_min
    per_check = 1000 * cpu_per_min / checks_per_min if checks_per_min else None
    net = (1000 * (cpu_per_min - floor) / checks_per_min
           if checks_per_min and floor is not None else None)
    cpus = [m["cpu_s"] for m in minutes]
    return {
        "feeds": n, "interval_s": plan.interval, "minutes": round(span_min, 2),
        "checks_per_min": round(checks_per_min), "expected_per_min": round(60 * n / plan.interval),
        "not_modified_per_min": round(
            (last.server["not_modified"] - first.server["not_modified"]) / span_min),
        "cpu_s_per_min": cpu_per_min,
        "cpu_s_per_min_sd": statistics.stdev(cpus) if len(cpus) > 1 else 0.0,
        "core_share": cpu_per_min / 60, "ms_per_check": per_check, "net_ms_per_check": net,
        "checks_per_connection": _per_connection(first.server, last.server),
        "floor_cpu_s_per_min": floor,
        "rss_mib_mean": statistics.fmean(s.tree.rss_mib for s in samples),
        "rss_mib_max": max(s.tree.rss_mib for s in samples),
        "pss_mib_mean": statistics.fmean(s.tree.pss_mib for s in samples),
        "pss_mib_max": max(s.tree.pss_mib for s in samples),
        "processes": max(s.tree.processes for s in samples),
        "load_mean": statistics.fmean(s.load for s in samples),
    }


async def measure(n: int, plan: Plan, floor: float | None) -> dict[str, Any]:
    from tests.fakes.botapi import FakeBotApi

    with (MultiHostFeedServer(seed_body(), plan.addresses, plan.ports) as server,
          tempfile.TemporaryDirectory() as tmp, FakeBotApi() as api):
        db = f"{tmp}/db.json"
        t0 = time.perf_counter()
        await build_database(db, server, n, plan)
        build_s = time.perf_counter() - t0
        bot = BotProcess(bot_settings(api, db, plan.interval), Path(tmp) / "bot.log")
        bot.start()
        try:
            startup_s = wait_started(api, bot, timeout=120)
            late = startup_s + build_s > plan.lead_s  # feeds due before the bot was up
            warm_s = warm_up(server, bot, n, plan)
            samples = sample_window(bot, server, plan)
        finally:
            stop = bot.stop()
        if not stop.clean:
            print(f"bot did not stop cleanly: {stop}\n{bot.log_tail()}")
    endpoints = server.endpoints.count
    minutes = minute_rows(n, endpoints, samples)
    return {
        **summary(n, plan, samples, minutes, floor), "endpoints": endpoints, "build_s": build_s,
        "startup_s": startup_s,
        "herd_at_start": late, "warm_up_s": warm_s, "stop_s": stop.stop_s,
        "exit_code": stop.returncode, "clean_exit": stop.clean, "left_behind": stop.left_behind,
        "log_errors": stop.log_errors[:10], "per_minute": minutes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=int, default=300)
    parser.add_argument("--baseline-minutes", type=float, default=2.0,
                        help="minutes of the empty bot (the floor); 0 = skip")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--lead", type=float, default=30.0,
                        help="seconds from building the database to the first due feed "
                             "(must cover the bot's start-up, or early feeds come as a herd)")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="seconds of warm-up after every feed was checked once: the bot "
                             "adds up to 10%% (at most 60 s) of jitter to each next check, so "
                             "the second round starts up to that much later than the first")
    parser.add_argument("--addresses", type=int, default=50,
                        help="feed server addresses 127.0.0.1..A")
    parser.add_argument("--ports", type=int, default=1,
                        help="ports per address: A x P endpoints, each a host to the bot")
    parser.add_argument("--smoke", action="store_true", help="20 feeds, 2 s interval, seconds")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.minutes, args.interval = "20", 0.15, 2
        args.baseline_minutes, args.sample_s, args.lead, args.addresses = 0.05, 1.0, 3.0, 5
        args.settle = 0.0
    plan = Plan(args.interval, args.minutes, args.sample_s, args.lead, args.addresses, args.ports,
                args.settle)
    rows, floor = [], None
    if args.baseline_minutes > 0:
        base_plan = Plan(args.interval, args.baseline_minutes, args.sample_s, 0.0, 1, 1)
        base = asyncio.run(measure(0, base_plan, None))
        floor = base["cpu_s_per_min"]
        rows.append(base)
        print_table([base], COLS)
    for n in (int(s) for s in args.sizes.split(",")):
        row = asyncio.run(measure(n, plan, floor))
        rows.append(row)
        print_table([row], COLS)
        if row["herd_at_start"]:
            print(f"note: start-up took longer than --lead {args.lead:g} s")
    print()
    print_table(rows, COLS)
    print()
    print_table([m for r in rows for m in r["per_minute"]], MINUTE_COLS)
    write_results("idle-smoke" if args.smoke else "idle",
                  {"rows": rows, "addresses": args.addresses, "ports": args.ports,
                   "sample_s": args.sample_s,
                   "lead_s": args.lead, "baseline_minutes": args.baseline_minutes})
    if not all(r["clean_exit"] for r in rows):
        raise SystemExit("a bot did not exit cleanly (see above)")


if __name__ == "__main__":
    main()
