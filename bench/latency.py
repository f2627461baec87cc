"""End-to-end latency: `python -m bench.latency [--posts 100] [--interval 5] [--smoke]`.

The real bot (bot.app.running) talks to the fake Bot API (tests/fakes/botapi.py) and polls a
loopback feed server every `interval` seconds. One chat subscribes with /sub; then `posts` posts
appear in the feed at random moments spread over `posts * spacing` seconds. For each post: time
from the moment the feed server starts serving it until the fake Bot API receives the message.
Target: p99 < interval + 1 s.
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
COLS = ["posts", "interval_s", "p50_s", "p90_s", "p99_s", "max_s", "target_s", "met"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


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
        async with running(settings):
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
        got = _received(api)
    latencies = [got[n] - appeared[n] for n in sorted(appeared)]
    target = interval + 1.0
    p99 = percentile(latencies, 99)
    return {
        "posts": posts, "interval_s": interval, "window_s": round(window, 1),
        "p50_s": percentile(latencies, 50), "p90_s": percentile(latencies, 90), "p99_s": p99,
        "max_s": max(latencies), "target_s": target, "met": p99 < target,
        "latencies_s": [round(v, 3) for v in latencies],
    }


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
        args.posts, args.interval, args.spacing = 5, 1, 0.5
    row = asyncio.run(measure(args.posts, args.interval, args.spacing, args.seed))
    print_table([row], COLS)
    write_results("latency-smoke" if args.smoke else "latency", row)


if __name__ == "__main__":
    main()
