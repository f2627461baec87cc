"""Delivery benchmark: drain N messages to M chats through the Sender at Telegram's real limits.

    python -m bench.delivery [--sizes 600x60,3000x1000] [--rtt-ms 100] [--replies 60] [--smoke]

The fake Bot API (enforce_limits=True: 30 msg/s global, 1/s per private chat with bursts of 3,
20/min per group) runs in a child process, so the CPU time reported is the sender's own (plus
PTB, httpx and the store). With --rtt-ms it waits that long around each call (half before it
counts the message, half before its answer arrives), like the real API seen from a server.
Half the chats are private, half groups; messages are spread evenly. --replies N sends N command
replies (interactive calls through the same gateway, as a handler's reply_text does) to chats
chosen at random, spread over the first half of the run.
Reports total time (first request to last delivery), the least time the limits allow (replies
included), their ratio (target <= 1.1), 429s received (target 0), reply latency, CPU seconds;
writes bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, print_table, write_results


def serve_fake(conn: Connection, groups: list[int], rtt: float) -> None:
    """Child process: run the fake until told to stop, then report what it saw."""
    from tests.fakes.botapi import FakeBotApi

    with FakeBotApi(enforce_limits=True, latency=rtt) as api:
        for chat_id in groups:
            api.add_chat(chat_id, type="group")
        conn.send((api.url, api.token))
        conn.recv()  # "stop"
        delivered = [(m.chat_id, m.plain, m.at) for m in api.delivered()]
        conn.send({"delivered": delivered, "count_429": api.count_429})


def chat_ids(chats: int) -> list[int]:
    return [(1000 + i) if i % 2 else -(1000 + i) for i in range(chats)]


def plan(messages: int, chats: int) -> dict[int, int]:
    ids = chat_ids(chats)
    return {c: messages // chats + (1 if i < messages % chats else 0) for i, c in enumerate(ids)}


async def drive(
    url: str, token: str, per_chat: dict[int, int], db: Path, replies: list[int]
) -> dict[str, Any]:
    from telegram.ext import ExtBot

    from bot.delivery.gateway import TelegramGateway
    from bot.delivery.sender import DeliverySettings, Sender
    from bot.models import ApiCall, Delivery, RenderedMessage
    from bot.storage.tinydb.backend import TinyDBStorage

    store = await TinyDBStorage.open(db)
    items = []
    for chat_id, count in per_chat.items():
        for k in range(count):
            text = f"<b>post {k}</b> for chat {chat_id}"
            call = ApiCall("sendMessage", {"text": text, "parse_mode": "HTML"})
            message = RenderedMessage((call,))
            items.append(Delivery(f"{chat_id}:{k}", chat_id, "https://bench.example/feed",
                                  f"k{k}", message, time.time()))
    await store.enqueue(items)
    settings = DeliverySettings()
    bot = ExtBot(token, base_url=f"{url}/bot", rate_limiter=TelegramGateway(settings.limits()))
    async with bot:
        sender = Sender(bot, store, settings)
        cpu0, t0 = cpu_seconds(), time.monotonic()
        task = asyncio.create_task(sender.run())
        horizon = sum(per_chat.values()) / settings.global_per_second / 2
        reply_tasks = [asyncio.create_task(reply(bot, chat_id, n, horizon))
                       for n, chat_id in enumerate(replies)]
        drained = await sender.drain(timeout=3600)
        latencies = await asyncio.gather(*reply_tasks)
        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        await sender.stop()
        await task
    await store.close()
    return {"drained": drained, "wall": wall, "cpu": cpu, "stats": sender.stats.as_dict(),
            "started": t0, "reply_latencies": latencies}


async def reply(bot: Any, chat_id: int, n: int, horizon: float) -> float | None:
    """One command reply at a random moment: the seconds until Telegram accepted it, or None
    when it was refused (lost, as a handler's reply would be)."""
    from telegram.error import TelegramError

    await asyncio.sleep(random.Random(n).uniform(0, horizon))
    started = time.monotonic()
    try:
        await bot.send_message(chat_id, f"reply {n}")
    except TelegramError:
        return None
    return time.monotonic() - started


def run(messages: int, chats: int, rtt: float = 0.0, replies: int = 0) -> dict[str, Any]:
    from bot.delivery.pacing import minimum_duration

    per_chat = plan(messages, chats)
    targets = [random.Random(k).choice(list(per_chat)) for k in range(replies)]
    parent, child = multiprocessing.Pipe()
    groups = [c for c in per_chat if c < 0]
    proc = multiprocessing.get_context("spawn").Process(
        target=serve_fake, args=(child, groups, rtt)
    )
    proc.start()
    try:
        url, token = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(drive(url, token, per_chat, Path(tmp) / "bench.json", targets))
        parent.send("stop")
        seen = parent.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    delivered = seen["delivered"]
    span = delivered[-1][2] - delivered[0][2] if delivered else 0.0
    counts = dict(per_chat)
    for chat_id in targets:
        counts[chat_id] += 1
    floor = minimum_duration(counts, global_per_second=30, private_per_second=1,
                             private_burst=3, group_per_minute=20)
    posts = [(c, p) for c, p, _ in delivered if p.startswith("post ")]
    in_order = all(
        [p for c, p in posts if c == chat_id]
        == [f"post {k} for chat {chat_id}" for k in range(n)]
        for chat_id, n in per_chat.items()
    )
    latencies = [x for x in result["reply_latencies"] if x is not None]
    return {
        "messages": messages,
        "chats": chats,
        "rtt_ms": round(rtt * 1000),
        "replies": replies,
        "delivered": len(delivered),
        "in_order": in_order,
        "total_s": round(result["wall"], 3),
        "first_to_last_s": round(span, 3),
        "minimum_s": floor,
        "ratio": round(span / floor, 3) if floor else None,
        "count_429": seen["count_429"],
        "replies_lost": replies - len(latencies),
        "reply_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "reply_max_s": round(max(latencies), 3) if latencies else None,
        "sender_cpu_s": round(result["cpu"], 3),
        "stats": result["stats"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="600x60,3000x1000",
                        help="comma-separated MESSAGESxCHATS runs (default: the issue's two)")
    parser.add_argument("--rtt-ms", type=float, default=0.0,
                        help="the fake API's round trip per call, in milliseconds")
    parser.add_argument("--replies", type=int, default=0,
                        help="command replies mixed into each run")
    parser.add_argument("--smoke", action="store_true", help="tiny run (60 messages, 20 chats)")
    args = parser.parse_args()
    sizes = [(60, 20)] if args.smoke else [
        (int(m), int(c)) for m, c in (size.split("x") for size in args.sizes.split(","))
    ]
    cols = ["messages", "chats", "rtt_ms", "replies", "delivered", "in_order", "total_s",
            "first_to_last_s", "minimum_s", "ratio", "count_429", "replies_lost", "reply_p50_s",
            "reply_max_s",
            "sender_cpu_s"]
    rows, ok = [], True
    for messages, chats in sizes:
        rows.append(run(messages, chats, args.rtt_ms / 1000, args.replies))
        print_table(rows[-1:], cols)
        row = rows[-1]
        ok = ok and row["delivered"] == messages + args.replies and row["in_order"]
        ok = ok and row["count_429"] == 0 and row["replies_lost"] == 0
        # a smoke run is too short for the ratio to mean much: ~30 sends of ~10 ms
        # each sit on top of a 1 s floor
        ok = ok and (args.smoke or row["ratio"] is None or row["ratio"] <= 1.1)
    print()
    print_table(rows, cols)
    print("PASS" if ok else "FAIL",
          "(targets: all delivered in order, ratio <= 1.1, zero 429s, no reply lost)")
    write_results("delivery-smoke" if args.smoke else "delivery", {"rows": rows, "pass": ok})


if __name__ == "__main__":
    main()
