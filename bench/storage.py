"""Storage benchmark: `python -m bench.storage [--sizes 1000,10000,100000] [--cycles 20] [--smoke]`.

A database of N feeds, each with a full seen-set (200 fingerprints, as bot.feeds.diff keeps), one
subscription and one chat per feed. Per size, in a fresh child process: time to open (load) the
file, then `cycles` check cycles in which 10% of the feeds get one new entry (seen-set updated,
one delivery queued) committed as ONE durable commit (a change-log append), after which the
deliveries are completed one by one (each a small durable append). Reports load time, commit time
and bytes written per cycle (log lines plus any snapshot fold started in that cycle), the time of
one full fold (it runs in a background thread in the bot), the time to reopen after a crash with
the log written since the last fold, disk use after each cycle (snapshot + logs: it must stay
bounded, since seen-sets are capped and the log is folded in once it outgrows the snapshot) and
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mib, print_table, write_results

SEEN = 200
COLS = ["feeds", "file_mib", "load_s", "write_ms_median", "write_ms_max", "complete_ms_median",
        "mib_per_cycle", "fold_s", "reopen_log_mib", "reopen_s", "disk_first_mib", "disk_max_mib",
        "peak_rss_mib"]


def build(path: Path, n: int) -> None:
    from bot.feeds.identity import fingerprint
    from bot.models import Chat, Feed, Subscription
    from bot.storage.tinydb.database import Database

    db = Database(path)
    for i in range(n):
        url = f"https://blog{i}.example.org/index.xml"
        seen = [fingerprint(f"{url}#{k}") for k in range(SEEN)]
        db.save_feed(Feed(url=url, title=f"Blog {i}", etag=f'"{i}"', seen=seen,
                          next_check=1e9, last_check=1.0, last_success=1.0))
        db.save_chat(Chat(id=10_000 + i, title=f"chat {i}", seen=seen[-60:]))
        db.save_subscription(Subscription(chat_id=10_000 + i, feed_url=url, created=1.0))
    db.commit()
    db.close()


def one_cycle(db: Any, n: int, cycle: int) -> list[str]:
    """What a check cycle commits: 10% of feeds with one new entry each, one delivery each."""
    from bot.feeds.identity import fingerprint
    from bot.models import ApiCall, Delivery, RenderedMessage
    from bot.storage.tinydb.database import merge_recent

    queued = []
    for i in range(cycle % 10, n, 10):
        url = f"https://blog{i}.example.org/index.xml"
        feed = db.get_feed(url)
        key = f"{url}#new-{cycle}"
        feed.seen = merge_recent(feed.seen, [fingerprint(key)], SEEN)
        feed.last_check = feed.last_success = time.time()
        db.save_feed(feed)
        message = RenderedMessage((ApiCall("sendMessage", {"text": f"<b>Post {cycle}</b> " * 20,
                                                           "parse_mode": "HTML"}),))
        delivery = Delivery(id=f"{cycle}-{i}", chat_id=10_000 + i, feed_url=url, entry_key=key,
                            message=message, created=time.time())
        db.enqueue([delivery])
        queued.append(delivery.id)
    return queued


def disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("db.json*")) / 2**20


def measure(n: int, cycles: int) -> dict[str, Any]:
    from bot.storage.tinydb.database import Database

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.json"
        build(path, n)
        file_mib = path.stat().st_size / 2**20
        t0 = time.perf_counter()
        db = Database(path)
        load = time.perf_counter() - t0
        writes, sizes, written, completes = [], [], [], []
        for cycle in range(cycles):
            queued = one_cycle(db, n, cycle)
            before = db.bytes_written
            t0 = time.perf_counter()
            db.commit(durable=True)
            writes.append((time.perf_counter() - t0) * 1000)
            for delivery_id in queued:
                t0 = time.perf_counter()
                db.complete(delivery_id)
                completes.append((time.perf_counter() - t0) * 1000)
            written.append(db.bytes_written - before)
            sizes.append(disk_mib(Path(tmp)))
        # a crash now: the next start replays the log since the last fold
        db._snapshotter.shutdown(wait=True)
        db.log.close()
        del db
        log_mib = sum(p.stat().st_size for p in Path(tmp).glob("db.json.log.*")) / 2**20
        t0 = time.perf_counter()
        reopened = Database(path)
        reopen = time.perf_counter() - t0
        t0 = time.perf_counter()
        reopened.snapshot(wait=True)
        fold = time.perf_counter() - t0
        reopened.close()
    ordered, done = sorted(writes), sorted(completes)
    return {
        "feeds": n, "file_mib": round(file_mib, 2), "load_s": round(load, 3),
        "write_ms_median": round(ordered[len(ordered) // 2], 1),
        "write_ms_max": round(ordered[-1], 1),
        "complete_ms_median": round(done[len(done) // 2], 2),
        "mib_per_cycle": round(sum(written) / len(written) / 2**20, 2),
        "fold_s": round(fold, 3), "reopen_log_mib": round(log_mib, 1),
        "reopen_s": round(reopen, 3),
        "disk_first_mib": round(sizes[0], 2), "disk_max_mib": round(max(sizes), 2),
        "sizes_mib": [round(s, 3) for s in sizes], "write_ms": [round(w, 1) for w in writes],
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.cycles)))
        return
    sizes = [200] if args.smoke else [int(s) for s in args.sizes.split(",")]
    cycles = 3 if args.smoke else args.cycles
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.storage", "--child", str(n), "--cycles", str(cycles)],
            check=True, stdout=subprocess.PIPE,
        ).stdout
        rows.append(json.loads(out.decode().strip().splitlines()[-1]))
        print_table(rows[-1:], COLS)
    print()
    print_table(rows, COLS)
    write_results("storage-smoke" if args.smoke else "storage", {"rows": rows, "cycles": cycles})


if __name__ == "__main__":
    main()
