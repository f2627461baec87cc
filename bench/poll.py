"""Poll-cycle benchmark: `python -m bench.poll [--sizes 100,1000,10000] [--modes ...] [--smoke]`.

N feeds (each the ~40 KB seed feed) on a loopback feed server in its own process, one subscriber
chat per feed, checked by the real Poller + Fetcher + Store + ParsePool. A first cycle reads every
feed (200, nothing new: the cycle after a start, `first_cycle_wall_s`); then three mixes per size:
every feed unchanged, 10% with one new item, every feed with one new item. The outbox is the
output: `queued` counts deliveries. Each size and mode runs in a fresh child process, so peak RSS
is per size and mode.

Modes (`--modes`, a row each; `--server ignores-etag` and `--after-restart` pick one):
- `default`: the server answers a matching If-None-Match with 304.
- `ignores-etag`: the server sends an ETag but ignores If-None-Match: always 200 with the full
  body, never 304, so the bot can tell "unchanged" only from the body.
- `after-restart`: before each measured mix the store, fetcher, parse pool and poller are closed
  and opened again, as a restarted bot would (`restart_s`): whatever the bot keeps only in memory
  (the records of a feed's items) is gone, so each measured cycle is the first after a start.
- `ignores-etag+after-restart`: both.

CPU: `cpu_s` is the bot's process (event loop, storage and render threads), `workers_cpu_s` the
parse worker processes; `cpu_ms_per_feed` is both over N (in the `all` mix: what one changed feed
costs).

Baseline, in the same run: the common approach, sequential `feedparser.parse(url, etag=...)`
per feed plus one stock-TinyDB (JSONStorage) insert per new entry, on a sample of feeds; its
per-feed cost is extrapolated to N (which flatters it: its database file, rewritten on every
insert, would be N/sample times bigger). It uses feedparser's defaults, sanitize_html and
resolve_relative_uris on (the bot turns both off, see bot.feeds.parser); the run also times
one parse of the seed with those defaults, with the bot's settings, and the bot's whole
`parse_bytes` (the `parse` table). The
baseline runs twice per size (and per server kind: it faces the same server as the bot rows it
is compared with; it keeps no state that a restart would lose); `base_ms_per_feed` shows both
runs' time per feed; `x_baseline` is the bot's speed-up against the faster of the two (the
figure least kind to the bot), `x_runs` against each.

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.common import (
    FeedServerProcess,
    cpu_seconds,
    current_rss_mib,
    median,
    peak_rss_mib,
    print_table,
    processes_cpu_seconds,
    seed_body,
    write_results,
)

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.feeds.fetcher import Fetcher
    from bot.feeds.parse_pool import ParsePool
    from bot.pipeline.poller import Poller
    from bot.storage.tinydb.backend import TinyDBStorage

MIXES = {"unchanged": 0, "10%": 10, "all": 1}  # value: every K-th feed gets a new item
COLS = ["mode", "who", "run", "feeds", "mix", "wall_s", "cpu_s", "workers_cpu_s",
        "cpu_ms_per_feed", "ms_per_feed", "queued", "items_parsed", "same_body", "peak_rss_mib",
        "x_baseline", "x_runs", "base_ms_per_feed", "first_cycle_wall_s"]
PARSE_COLS = ["parser", "settings", "ms_median", "ms_min", "entries"]


@dataclass(frozen=True)
class Mode:
    conditional: bool  # the server answers 304 to a matching If-None-Match
    restart: bool  # the bot restarts before each measured cycle

    @property
    def server(self) -> str:
        return "etag" if self.conditional else "ignores-etag"


MODES = {
    "default": Mode(conditional=True, restart=False),
    "ignores-etag": Mode(conditional=False, restart=False),
    "after-restart": Mode(conditional=True, restart=True),
    "ignores-etag+after-restart": Mode(conditional=False, restart=True),
}
DEFAULT_MODES = "default,ignores-etag,after-restart"


async def _stub_resolver(host: str, port: int) -> list[str]:
    """Every bench host name is the loopback server (no real name resolution)."""
    return ["127.0.0.1"]


def feed_url(port: int, feed: int, hosts: int) -> str:
    return f"http://h{feed % hosts}.bench.test:{port}/f/{feed}"


async def _control(client: httpx.AsyncClient, server: FeedServerProcess, path: str) -> Any:
    return (await client.get(server.url(path))).json()


@dataclass
class RunningBot:
    """The long-lived parts a started bot holds (bot.runtime), opened on one database."""

    store: TinyDBStorage
    fetcher: Fetcher
    parse_pool: ParsePool
    poller: Poller

    @classmethod
    async def start(cls, settings: Settings) -> RunningBot:
        from bot import heap
        from bot.feeds.fetcher import Fetcher
        from bot.feeds.parse_pool import ParsePool
        from bot.pipeline.poller import Poller
        from bot.runtime import fetch_settings
        from bot.storage.tinydb.backend import TinyDBStorage

        store = await TinyDBStorage.open(settings.db_path)
        fetcher = Fetcher(fetch_settings(settings), resolver=_stub_resolver)
        parse_pool = ParsePool()
        await parse_pool.start()
        heap.settle()  # as bot.runtime does once the store is read
        return cls(store, fetcher, parse_pool, Poller(store, fetcher, settings,
                                                      parse_pool=parse_pool))

    async def stop(self) -> None:
        from bot import heap

        await self.poller.close()
        await self.parse_pool.close()
        await self.fetcher.aclose()
        await self.store.close()
        heap.unsettle()

    def cpu(self) -> tuple[float, float]:
        """(this process, the parse workers) CPU seconds so far."""
        return cpu_seconds(), processes_cpu_seconds(self.parse_pool.pids)


async def _subscribe_all(bot: RunningBot, urls: list[str]) -> None:
    from bot.feeds.diff import oldest_first, remember, seen_cap
    from bot.feeds.parser import parse_bytes
    from bot.models import Chat, Feed, Subscription
    from bot.storage.base import NewSubscription, Stamp

    parsed = parse_bytes(seed_body(), "https://bench.example.org/feed")
    seen = remember([], oldest_first(parsed.entries), seen_cap(len(parsed.entries)))
    await bot.store.add_subscriptions([
        NewSubscription(
            Subscription(chat_id=10_000 + i, feed_url=url, created=1.0),
            Feed(url=url, title=parsed.title, seen=list(seen)),
            Chat(id=10_000 + i),
        )
        for i, url in enumerate(urls)
    ], Stamp())


async def _make_due(bot: RunningBot, urls: list[str]) -> None:
    """Every feed due now, durably, as one group commit, before the cycle."""
    feeds = await asyncio.gather(*(bot.store.get_feed(url) for url in urls))
    await asyncio.gather(*(bot.store.save_feed(replace(f, next_check=0.0)) for f in feeds if f))


async def bot_cycles(
    n: int, hosts: int, mixes: list[str], mode: Mode, delay_s: float = 0.0
) -> list[dict[str, Any]]:
    from bot.config import load

    body = seed_body()
    rows = []
    with (
        FeedServerProcess(body, delay_s=delay_s, conditional=mode.conditional) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = replace(load(environ={}), allow_private=True, db_path=f"{tmp}/db.json")
        t0 = time.perf_counter()
        bot = await RunningBot.start(settings)
        start_s = time.perf_counter() - t0
        urls = [feed_url(server.port, i, hosts) for i in range(n)]
        await _subscribe_all(bot, urls)
        # A running bot has read every feed before: this first cycle (all 200, nothing new) is
        # the one after a start, and leaves the state every later cycle starts from.
        (cpu0, workers0), t0 = bot.cpu(), time.perf_counter()
        first = await bot.poller.run_once()
        first_wall = time.perf_counter() - t0
        first_cpu, first_workers = (b - a for a, b in zip((cpu0, workers0), bot.cpu(),
                                                           strict=True))
        assert first.checked == n and first.failed == 0 and first.queued == 0, first
        async with httpx.AsyncClient(trust_env=False) as client:
            for mix in mixes:
                restart_s = 0.0
                if mode.restart:
                    t0 = time.perf_counter()
                    await bot.stop()
                    bot = await RunningBot.start(settings)
                    restart_s = time.perf_counter() - t0
                await _make_due(bot, urls)
                if MIXES[mix]:
                    await _control(client, server, f"/_bump?every={MIXES[mix]}&count={n}")
                before = await _control(client, server, "/_stats")
                requests0, written0 = bot.fetcher.stats.requests, bot.store.bytes_written
                (cpu0, workers0), t0 = bot.cpu(), time.perf_counter()
                stats = await bot.poller.run_once()
                wall = time.perf_counter() - t0
                cpu1, workers1 = bot.cpu()
                after = await _control(client, server, "/_stats")
                requests = bot.fetcher.stats.requests - requests0
                assert stats.checked == n and stats.failed == 0, stats
                cpu, workers = cpu1 - cpu0, workers1 - workers0
                rows.append({
                    "who": "feedbot", "feeds": n, "mix": mix, "wall_s": wall, "cpu_s": cpu,
                    "workers_cpu_s": workers, "cpu_ms_per_feed": (cpu + workers) / n * 1000,
                    "ms_per_feed": wall / n * 1000,
                    "req_per_s": round(requests / wall), "queued": stats.queued,
                    "new_entries": stats.new_entries, "not_modified": stats.not_modified,
                    "same_body": stats.same_body, "items_parsed": stats.items_parsed,
                    "server_cpu_s": after["cpu_seconds"] - before["cpu_seconds"],
                    "db_bytes_written": bot.store.bytes_written - written0,
                    "restart_s": restart_s, "start_s": start_s,
                    "first_cycle_wall_s": first_wall, "first_cycle_cpu_s": first_cpu,
                    "first_cycle_workers_cpu_s": first_workers,
                })
        rss_now = current_rss_mib()
        await bot.stop()
    for row in rows:
        row["peak_rss_mib"] = round(peak_rss_mib(), 1)
        row["rss_mib"] = round(rss_now, 1)
    return rows


async def baseline_cycles(
    n: int, sample: int, mixes: list[str], conditional: bool, delay_s: float = 0.0
) -> list[dict[str, Any]]:
    """Sequential feedparser.parse(url) (its defaults) + a stock TinyDB insert per new entry, on
    `sample` feeds."""
    import feedparser
    from tinydb import TinyDB

    body = seed_body()
    rows = []
    with (
        FeedServerProcess(body, delay_s=delay_s, conditional=conditional) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
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
                    "ms_per_feed": wall / sample * 1000,
                    "cpu_ms_per_feed": (cpu_seconds() - cpu0) / sample * 1000,
                    "req_per_s": round(sample / wall), "queued": round(inserted * n / sample),
                    "measured_wall_s": wall, "extrapolated": n != sample,
                })
    for row in rows:
        row["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return rows


def baseline_settings() -> dict[str, Any]:
    """feedparser's module defaults, which the baseline's feedparser.parse(url) uses."""
    import feedparser

    return {"feedparser": feedparser.__version__,
            "sanitize_html": bool(feedparser.SANITIZE_HTML),
            "resolve_relative_uris": bool(feedparser.RESOLVE_RELATIVE_URIS)}


def parse_times(repeats: int) -> list[dict[str, Any]]:
    """One parse of the seed feed: feedparser with its defaults (the baseline), feedparser with
    the settings the bot gives it, and the bot's whole `parse_bytes` (feedparser plus its own
    pass: bodies, pictures, identities); interleaved, after a warm-up."""
    import feedparser

    from bot.feeds.parser import parse_bytes

    body, url = seed_body(), "https://bench.example.org/feed"
    xml_base = b"xml:base" in body
    settings = baseline_settings()
    parsers: dict[str, tuple[str, Callable[[], Any]]] = {
        "feedparser-defaults": (
            f"feedparser.parse: sanitize_html={settings['sanitize_html']}, "
            f"resolve_relative_uris={settings['resolve_relative_uris']} (the baseline)",
            lambda: feedparser.parse(body)),
        "feedparser-bot-settings": (
            f"feedparser.parse: sanitize_html=False, resolve_relative_uris={xml_base}",
            lambda: feedparser.parse(body, sanitize_html=False, resolve_relative_uris=xml_base)),
        "bot-parse_bytes": (
            "bot.feeds.parser.parse_bytes: the above plus the bot's own pass",
            lambda: parse_bytes(body, url)),
    }
    counts = {name: len(parse().entries) for name, (_, parse) in parsers.items()}  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in parsers}
    for _ in range(repeats):
        for name, (_, parse) in parsers.items():
            t0 = time.perf_counter()
            parse()
            runs[name].append((time.perf_counter() - t0) * 1000)
    return [{"parser": name, "settings": parsers[name][0], "ms_median": round(median(ms), 2),
             "ms_min": round(min(ms), 2), "entries": counts[name], "repeats": repeats}
            for name, ms in runs.items()]


def run_child(args: list[str]) -> Any:
    out = subprocess.run([sys.executable, "-m", "bench.poll", *args], check=True,
                         stdout=subprocess.PIPE).stdout
    return json.loads(out.decode().strip().splitlines()[-1])


def compare(bot_rows: list[dict[str, Any]], base_runs: list[list[dict[str, Any]]]) -> None:
    """Each bot row's speed-up against every baseline run of its mix, and their ms per feed."""
    for i, bot_row in enumerate(bot_rows):
        bases = [run[i] for run in base_runs]
        ratios = [round(b["wall_s"] / bot_row["wall_s"], 1) for b in bases]
        bot_row["x_baseline"] = min(ratios)
        bot_row["x_baseline_runs"] = ratios
        bot_row["base_ms_per_feed_runs"] = [round(b["ms_per_feed"], 2) for b in bases]
        bot_row["x_runs"] = " / ".join(f"{r:g}" for r in ratios)
        bot_row["base_ms_per_feed"] = " / ".join(f"{b['ms_per_feed']:.2f}" for b in bases)


def parse_modes(args: argparse.Namespace) -> list[str]:
    if args.server == "ignores-etag" or args.after_restart:
        picked = "+".join(
            part for part, on in (("ignores-etag", args.server == "ignores-etag"),
                                  ("after-restart", args.after_restart)) if on
        )
        return [picked]
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"of {', '.join(MODES)}")
    parser.add_argument("--server", choices=["etag", "ignores-etag"], default="etag",
                        help="ignores-etag: only that mode (the server never answers 304)")
    parser.add_argument("--after-restart", action="store_true",
                        help="only that mode (the bot restarts before each measured cycle)")
    parser.add_argument("--hosts", type=int, default=200, help="distinct feed host names")
    parser.add_argument("--baseline-sample", type=int, default=200)
    parser.add_argument("--baseline-runs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--server-delay-ms", type=float, default=0.0,
                        help="the feed server waits this long before each feed response "
                             "(a remote server's round trip; 0 = loopback speed)")
    parser.add_argument("--what-if-sniffio", action="store_true",
                        help="what-if: cache httpcore's failing `import sniffio` (see docs)")
    parser.add_argument("--child", choices=["bot", "baseline", "parse"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=list(MODES), default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    mixes = args.mixes.split(",")
    delay_s = args.server_delay_ms / 1000
    if args.what_if_sniffio:
        # sniffio is not installed, so httpcore retries the import (a sys.path scan) per request
        sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]
    if args.child == "bot":
        from bot.app import use_fast_event_loop

        use_fast_event_loop()  # the loop `feedbot run` uses (the baseline keeps asyncio's)
        rows = asyncio.run(bot_cycles(args.n, args.hosts, mixes, MODES[args.mode], delay_s))
        print(json.dumps(rows))
        return
    if args.child == "baseline":
        sample = min(args.baseline_sample, args.n)
        conditional = MODES[args.mode].conditional
        print(json.dumps(asyncio.run(baseline_cycles(args.n, sample, mixes, conditional,
                                                     delay_s))))
        return
    if args.child == "parse":
        print(json.dumps(parse_times(5 if args.smoke else 30)))
        return
    modes = parse_modes(args)
    sizes = [20] if args.smoke else [int(s) for s in args.sizes.split(",")]
    sample = 10 if args.smoke else args.baseline_sample
    parse_rows = run_child(["--child", "parse", *(["--smoke"] if args.smoke else [])])
    print_table(parse_rows, PARSE_COLS)
    rows = []
    for n in sizes:
        common = ["--n", str(n), "--mixes", ",".join(mixes),
                  "--server-delay-ms", str(args.server_delay_ms)]
        what_if = ["--what-if-sniffio"] if args.what_if_sniffio else []
        base_runs: dict[str, list[list[dict[str, Any]]]] = {}
        size_rows: list[dict[str, Any]] = []
        for mode_name in modes:
            server = MODES[mode_name].server
            if server not in base_runs:  # the baseline keeps nothing a restart would lose
                base_runs[server] = []
                for run in range(1, args.baseline_runs + 1):
                    base_rows = run_child(["--child", "baseline", "--mode", mode_name,
                                           "--baseline-sample", str(sample), *common])
                    for row in base_rows:
                        row.update(mode=server, run=run)
                    base_runs[server].append(base_rows)
                    size_rows += base_rows
            bot_rows = run_child(["--child", "bot", "--mode", mode_name, "--hosts",
                                  str(args.hosts), *what_if, *common])
            for row in bot_rows:
                row["mode"] = mode_name
            compare(bot_rows, base_runs[server])
            size_rows += bot_rows
        size_rows.sort(key=lambda r: (r["who"] != "feedbot", r["mode"], r.get("run", 0)))
        print_table(size_rows, COLS)
        rows += size_rows
    print()
    print_table(parse_rows, PARSE_COLS)
    print(f"baseline: feedparser.parse(url, etag=...) with {baseline_settings()}")
    print_table(rows, COLS)
    name = "poll-smoke" if args.smoke else "poll-sniffio" if args.what_if_sniffio else "poll"
    if args.server_delay_ms:
        name += f"-delay{args.server_delay_ms:g}ms"
    write_results(name, {"rows": rows, "modes": modes, "hosts": args.hosts,
                         "baseline_sample": sample, "baseline_runs": args.baseline_runs,
                         "baseline_settings": baseline_settings(), "parse": parse_rows,
                         "server_delay_ms": args.server_delay_ms,
                         "what_if_sniffio": args.what_if_sniffio})


if __name__ == "__main__":
    main()
