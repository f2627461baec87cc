"""End-to-end latency: `python -m bench.latency [--posts 100] [--interval 5] [--spacing 2]`.

The real bot (bot.app.running) talks to the fake Bot API (tests/fakes/botapi.py) and polls a
loopback feed server every `interval` seconds. One private chat subscribes with /sub; then `posts`
posts appear in the feed at random moments spread over `posts * spacing` seconds. For each post:
time from the moment the feed server starts serving it until the fake Bot API receives the
message. Target: p99 < interval + 1 s.

Each latency is split into phases (`phases_s`, and `per_post` in the JSON):
- schedule: post appears -> the feed server answers the first request that includes it;
- check: that request -> the check's deliveries are in the outbox (fetch, parse, render, commit);
- queue: outbox -> the fake Bot API has the message (per-chat pacing, retries, the send itself).

The load must stay below what Telegram lets one chat receive (about one message per second,
bursts of a few: `DeliverySettings.private_per_second`). At `--spacing 1` posts arrive exactly as
fast as the chat may be sent to; with random arrivals the outbox then grows without bound
(p99 ~10 s over 100 posts, almost all of it in the queue phase, while the bot sends at the limit).
That measures Telegram's per-chat limit, not the bot's latency, so spacings at or below
1 / private_per_second are refused. The default of 2 s (half the chat's limit, ~2.5 posts per
check) is still far busier than any real feed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import tempfile
import time
from dataclasses import replace
from typing import Any

from bench.common import print_table, write_results

CHAT = 4242
FIRST = 31  # the feed starts with posts 1..30
COLS = ["posts", "interval_s", "spacing_s", "p50_s", "p90_s", "p99_s", "max_s", "target_s", "met"]
PHASES = ("schedule", "check", "queue")
PHASE_COLS = ["phase", "p50_s", "p90_s", "p99_s", "max_s"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def slowest_spacing() -> float:
    """Spacing at which posts arrive exactly as fast as one private chat may receive them."""
    from bot.delivery.sender import DeliverySettings

    return 1.0 / DeliverySettings().private_per_second


async def measure(posts: int, interval: int, spacing: float, seed: int) -> dict[str, Any]:
    from bot.app import running
    from bot.config import load
    from tests.fakes.botapi import FakeBotApi
    from tests.fakes.feeds import hugo_feed
    from tests.fakes.feedserver import FeedServer

    rng = random.Random(seed)
    window = posts * spacing
    moments = sorted(rng.uniform(0, window) for _ in range(posts))
    appeared: dict[int, float] = {}
    with FakeBotApi() as api, FeedServer() as feeds, tempfile.TemporaryDirectory() as tmp:
        feeds.set_feed("/lat.xml", hugo_feed(range(1, FIRST)))
        settings = replace(load(environ={}), token=api.token, api_url=api.url,
                           db_path=f"{tmp}/db.json", poll_interval=interval, allow_private=True)
        async with running(settings) as app:
            queued_at = _watch_queued(app)
            api.send_text(CHAT, f"/sub {feeds.url('/lat.xml')}")
            await api.await_delivered(1, CHAT, timeout=30)
            start = time.monotonic()
            for i, moment in enumerate(moments):
                await asyncio.sleep(max(0.0, start + moment - time.monotonic()))
                n = FIRST + i
                feeds.set_feed("/lat.xml", hugo_feed(range(n - 29, n + 1)))
                appeared[n] = time.monotonic()
            await api.await_for(lambda: _received(api).keys() >= appeared.keys(),
                                timeout=interval * 3 + 30)
            sender_stats = app.bot_data.runtime.sender.stats.as_dict()
        got = _received(api)
        fetched = [r.at for r in feeds.requests("/lat.xml")]
    order = sorted(appeared)
    latencies = [got[n] - appeared[n] for n in order]
    phases = [_phases(appeared[n], fetched, queued_at, got[n]) for n in order]
    target = interval + 1.0
    p99 = percentile(latencies, 99)
    return {
        "posts": posts, "interval_s": interval, "spacing_s": spacing, "window_s": round(window, 1),
        "p50_s": percentile(latencies, 50), "p90_s": percentile(latencies, 90), "p99_s": p99,
        "max_s": max(latencies), "target_s": target, "met": p99 < target,
        "phases_s": {name: _distribution([p[name] for p in phases]) for name in PHASES},
        "sender": sender_stats,
        "latencies_s": [round(v, 3) for v in latencies],
        "per_post": [{"post": n, **p} for n, p in zip(order, phases, strict=True)],
    }


def _watch_queued(app: Any) -> list[float]:
    """Record when the poller hands new deliveries to the sender (monotonic clock)."""
    poller = app.bot_data.runtime.poller
    times: list[float] = []
    inner = poller.on_queued

    def on_queued() -> None:
        times.append(time.monotonic())
        inner()

    poller.on_queued = on_queued
    return times


def _phases(appeared: float, fetched: list[float], queued: list[float], sent: float
            ) -> dict[str, float]:
    """One post's latency split at the first feed request after it appeared and at the next
    enqueue (one feed, so checks, and their enqueues, follow each other)."""
    fetched_at = next((f for f in fetched if f >= appeared), sent)
    queued_at = next((q for q in queued if q >= fetched_at), sent)
    return {"schedule": round(fetched_at - appeared, 3), "check": round(queued_at - fetched_at, 3),
            "queue": round(sent - queued_at, 3)}


def _distribution(values: list[float]) -> dict[str, float]:
    return {"p50_s": percentile(values, 50), "p90_s": percentile(values, 90),
            "p99_s": percentile(values, 99), "max_s": max(values)}


def _received(api: Any) -> dict[int, float]:
    """Post number -> when the fake Bot API got it (first time)."""
    out: dict[int, float] = {}
    for message in api.delivered(CHAT):
        match = re.search(r"Topic (\d+)", message.text_or_caption)
        if match:
            out.setdefault(int(match.group(1)), message.at)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--spacing", type=float, default=2.0,
                        help="mean seconds between posts (posts appear over posts*spacing s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="5 posts, 1 s interval")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.smoke:
        args.posts, args.interval, args.spacing = 5, 1, 1.5
    if args.spacing <= slowest_spacing():
        parser.error(f"--spacing must exceed {slowest_spacing():g} s: faster posts outrun what "
                     "Telegram lets one chat receive, and the outbox grows without bound")
    row = asyncio.run(measure(args.posts, args.interval, args.spacing, args.seed))
    print_table([row], COLS)
    print_table([{"phase": k, **v} for k, v in row["phases_s"].items()], PHASE_COLS)
    write_results("latency-smoke" if args.smoke else "latency", row)


if __name__ == "__main__":
    main()
