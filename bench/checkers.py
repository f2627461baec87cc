"""Checkers sharing one PostgreSQL database:
`python -m bench.checkers [--feeds 100000] [--checkers 1,2,4] [--changed 5] [--smoke]`.

N feeds, all due at one moment, are checked by 1, 2 and 4 REAL checker processes
(`python -m bot run --role checker`, configured by FEEDBOT_* variables only) sharing one
PostgreSQL database (FEEDBOT_TEST_DATABASE_URL or --database-url: the benchmark empties its
tables), then by one TinyDB process (`python -m bot run`, role all) on the same feeds, in the same
run. Each configuration starts from a freshly seeded database and a fresh feed server.

Set-up, none of it counted:
- the feed server (its own process) listens on 127.0.0.1 .. 127.0.0.A, each on P ports: A x P
  endpoints, each a host of its own to the fetcher, feed i on endpoint i % (A x P) (what
  bench.idle uses, bench/procs.py). Feed i is the ~40 KB seed with ETag `"<i>-<version>"`;
  `--changed` percent of the feeds (every K-th) have one new item on top, the rest answer a
  conditional GET with 304. Each answer waits `--server-delay-ms` (a remote server's think time;
  it also gives every fetch a duration, so overlapping fetches of one feed can be seen);
- the fake Bot API (tests/fakes/botapi.py) runs in this process, on loopback;
- the database is seeded in bulk (PostgreSQL: COPY; TinyDB: `Storage.import_all`): one private
  chat per feed, the seed's entry prints as seen, the ETag, the records of the feed's items (so a
  changed feed parses only its new item, as after a first check), interval 1 day. PostgreSQL:
  every feed is parked (next check far ahead) until every checker has started, then all are made
  due at once, 1 µs apart in feed order so that each claim takes feeds of every endpoint (the
  claim order is next check, then URL, and URLs sort by host). TinyDB: every feed is due when
  the file is written, 1 µs apart in the same way, and checked from the process's first tick.

Measured:
- checks/s from the database side: feeds whose `last_check` is at or after the go moment,
  counted every second (PostgreSQL); from the feed server side: feed requests per second (both
  backends). The rate is taken between 5% and 95% of the feeds done (the steady part);
- commit latency: wall time of each `commit_check` (a changed feed) and `record_not_modified`
  (a 304) inside the checker processes: the bot is started through a wrapper that times those two
  storage calls (bench.checkers --child-run, then bot.cli.main: the real `feedbot run`);
- CPU seconds of the checker processes' trees, of the PostgreSQL server's processes (when its
  postmaster.pid is readable) and of the feed server;
- from the feed server: feeds fetched more than once (in one cycle: the interval is a day),
  fetches of a feed that began while another fetch of it was still being answered
  (`overlapping`), and whether every feed was fetched exactly once (`once_each`, when the cycle
  completed). Every configuration is run until every feed was checked, or `--max-seconds`.

Results: bench/results/checkers.json (checkers-smoke.json for --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from bench.common import (
    FeedCatalogue,
    HeadProtocol,
    cpu_seconds,
    print_table,
    seed_body,
    write_results,
)
from bench.procs import ROOT, BotProcess, Endpoints, _listen, descendants, read_stat

COLS = ["backend", "checkers", "run", "feeds", "checked", "wall_s", "checks_per_s",
        "server_req_per_s", "commit_p50_ms", "commit_p95_ms", "304_p50_ms", "304_p95_ms",
        "changed", "bot_cpu_ms_per_check", "pg_cpu_ms_per_check", "load", "fetched_twice",
        "overlapping", "once_each"]
#: a content type the fetcher passes on as it is (part of the item records' hash context)
CONTENT_TYPE = "application/rss+xml"
PARKED = 1e12  # a next check nobody reaches
INTERVAL = 86_400
CHAT0 = 10_000
#: the PostgreSQL schema the benchmark's tables live in (dropped and made again per run)
SCHEMA = "bench_checkers"


# ------------------------------------------------------------- feed server
@dataclass
class _Log:
    n: int
    counts: bytearray = field(init=False)
    pending: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    changed_served: int = 0
    overlapping: int = 0

    def __post_init__(self) -> None:
        self.counts = bytearray(self.n)

    def stats(self) -> dict[str, Any]:
        fetched = sum(1 for c in self.counts if c)
        return {
            "requests": self.requests, "not_modified": self.not_modified,
            "changed_served": self.changed_served, "distinct_feeds": fetched,
            "fetched_twice": sum(1 for c in self.counts if c > 1),
            "max_fetches": max(self.counts, default=0), "overlapping": self.overlapping,
            "cpu_seconds": cpu_seconds(),
        }


class _Protocol(HeadProtocol):
    def __init__(self, catalogue: FeedCatalogue, log: _Log, delay_s: float) -> None:
        super().__init__()
        self.catalogue, self.log, self.delay_s = catalogue, log, delay_s

    def on_head(self, head: bytes) -> None:
        assert self.transport is not None
        request, *lines = head.decode("latin-1").split("\r\n")
        path = request.split(" ")[1]
        if not path.startswith("/f/") or not path[3:].isdigit() or int(path[3:]) >= self.log.n:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        feed, log = int(path[3:]), self.log
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        log.requests += 1
        log.counts[feed] = min(log.counts[feed] + 1, 255)
        if log.pending.get(feed):
            log.overlapping += 1
        log.pending[feed] = log.pending.get(feed, 0) + 1
        etag = self.catalogue.etag(feed)
        if headers.get("if-none-match") == etag:
            log.not_modified += 1
            answer = f"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nETag: {etag}\r\n\r\n"
            data = answer.encode()
        else:
            log.changed_served += 1
            body = self.catalogue.body(feed)
            data = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: "
                    f"{CONTENT_TYPE}\r\nETag: {etag}\r\n\r\n").encode() + body
        if self.delay_s:
            asyncio.get_running_loop().call_later(self.delay_s, self._answer, feed, data)
        else:
            self._answer(feed, data)

    def _answer(self, feed: int, data: bytes) -> None:
        left = self.log.pending.pop(feed, 1) - 1
        if left:
            self.log.pending[feed] = left
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


def _serve(base: bytes, n: int, every: int, delay_s: float, addresses: int, ports: int,
           conn: Any) -> None:
    async def main() -> None:
        catalogue, log = FeedCatalogue(base), _Log(n)
        if every:
            catalogue.bump(range(0, n, every))
        endpoints, servers = await _listen(
            addresses, ports, lambda: _Protocol(catalogue, log, delay_s))
        conn.send(endpoints)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def command() -> None:
            if conn.recv() == "stats":
                conn.send(log.stats())
            elif not stop.done():
                stop.set_result(None)

        loop.add_reader(conn.fileno(), command)
        await stop
        for server in servers:
            server.close()

    asyncio.run(main())


class CheckFeedServer:
    """The feed server in a child process; `stats()` over a pipe."""

    def __init__(self, base: bytes, n: int, every: int, delay_s: float, addresses: int,
                 ports: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, daemon=True,
                                 args=(base, n, every, delay_s, addresses, ports, child))
        self.endpoints = Endpoints(addresses, ())

    def __enter__(self) -> CheckFeedServer:
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("feed server did not start")
        self.endpoints = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()

    @property
    def pid(self) -> int:
        return self._proc.pid or 0

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return dict(self._conn.recv())


# ------------------------------------------------------------------ seeding
@dataclass(frozen=True)
class Template:
    """What every feed's stored state shares: the seed's title, entry prints and items."""

    title: str
    link: str
    prints: list[str]
    seen_cap: int
    context: bytes
    spans: list[tuple[int, int]]
    record_tails: list[bytes]  # each item's packed record without its 8-byte hash

    @classmethod
    def of(cls, body: bytes) -> Template:
        from bot.feeds.diff import entry_prints, seen_cap
        from bot.feeds.parse_delta import merge, parse_changed_items, split_items
        from bot.feeds.parser import parse_bytes

        url = "http://127.0.0.1:1/f/0"
        parsed = parse_bytes(body, url, CONTENT_TYPE)
        split = split_items(body)
        assert split is not None, "the seed must split into items"
        answer = parse_changed_items(body, url, CONTENT_TYPE, frozenset())
        _, blob = merge(answer, {})
        size = len(blob) // len(split[1])
        tails = [blob[i + 8:i + size] for i in range(0, len(blob), size)]
        return cls(parsed.title, parsed.link, [p for e in parsed.entries for p in entry_prints(e)],
                   seen_cap(len(parsed.entries)), split[0], split[1], tails)

    def records(self, body: bytes, url: str) -> bytes:
        """The packed item records a check of `url` would have stored for the seed."""
        from bot.feeds.parse_delta import item_hasher

        hasher = item_hasher(b"\x00".join((self.context, url.encode(), CONTENT_TYPE.encode())))
        return b"".join(hasher(body[a:b]) + tail
                        for (a, b), tail in zip(self.spans, self.record_tails, strict=True))


def stored_state(urls: list[str], template: Template, body: bytes, next_check: list[float]
                 ) -> Any:
    from bot.models import Chat, Feed, Prints, Subscription, pack_prints
    from bot.storage.base import StoredState

    now = time.time()
    seen = Prints(pack_prints(template.prints[-template.seen_cap:]))
    feeds, chats, subs = [], [], []
    for i, url in enumerate(urls):
        feeds.append(Feed(url=url, title=template.title, link=template.link, etag=f'"{i}-0"',
                          seen=seen, next_check=next_check[i], last_success=now - INTERVAL,
                          item_records=template.records(body, url)))
        chats.append(Chat(id=CHAT0 + i, type="private"))
        subs.append(Subscription(chat_id=CHAT0 + i, feed_url=url, created=now - INTERVAL))
    return StoredState(feeds, chats, subs)


def in_schema(url: str, schema: str) -> str:
    """The URL with its tables in `schema` (asyncpg sends unknown parameters as settings)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"search_path": schema})) if q)
    return urlunsplit(parts._replace(query=query))


async def fresh_schema(url: str, schema: str, *, create: bool = True) -> None:
    """Drop `schema` (and everything in it) and, with `create`, make it again, empty."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if create:
            await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()


async def seed_postgres(url: str, state: Any) -> float:
    """A fresh schema SCHEMA at `url` holding `state` (COPY); returns seconds taken."""
    import asyncpg

    from bot.storage.postgres import PostgresStorage
    from bot.storage.postgres.records import (
        CHAT_COLUMNS,
        FEED_COLUMNS,
        SUBSCRIPTION_COLUMNS,
        chat_values,
        feed_values,
        subscription_values,
    )

    t0 = time.perf_counter()
    await fresh_schema(url, SCHEMA)
    url = in_schema(url, SCHEMA)
    store = await PostgresStorage.open(url)  # creates the schema's tables
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        n = len(state.feeds)

        def rows(values: list[list[Any]]) -> list[tuple[Any, ...]]:
            return [(*v, i + 1) for i, v in enumerate(values)]

        # COPY takes jsonb as text: every jsonb column of the schema, whatever step added it
        json_cols = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'jsonb'")}

        def text_json(cols: tuple[str, ...], values: list[Any]) -> list[Any]:
            return [json.dumps(v) if c in json_cols else v for c, v in zip(cols, values,
                                                                             strict=True)]

        async with conn.transaction():
            await conn.copy_records_to_table(
                "feeds", columns=[*FEED_COLUMNS, "version"],
                records=rows([text_json(FEED_COLUMNS, feed_values(f)) for f in state.feeds]))
            await conn.copy_records_to_table(
                "chats", columns=[*CHAT_COLUMNS, "version"],
                records=[(*text_json(CHAT_COLUMNS, chat_values(c)), n + i + 1)
                         for i, c in enumerate(state.chats)])
            await conn.copy_records_to_table(
                "subscriptions", columns=[*SUBSCRIPTION_COLUMNS, "version"],
                records=[(*text_json(SUBSCRIPTION_COLUMNS, subscription_values(s)),
                          2 * n + i + 1) for i, s in enumerate(state.subscriptions)])
            await conn.copy_records_to_table(
                "subscription_sets", columns=["chat_id", "version"],
                records=[(c.id, 3 * n + i + 1) for i, c in enumerate(state.chats)])
            await conn.execute("SELECT setval('record_versions', $1)", 4 * n + 1)
        await conn.execute("ANALYZE feeds; ANALYZE subscriptions; ANALYZE chats")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def seed_tinydb(path: str, state: Any) -> float:
    from bot.storage.tinydb.backend import TinyDBStorage

    t0 = time.perf_counter()
    store = await TinyDBStorage.open(path)
    try:
        await store.import_all(state)
    finally:
        await store.close()
    return time.perf_counter() - t0


# -------------------------------------------------------- the timed bot
def child_run(samples_path: str, argv: list[str]) -> int:
    """`feedbot run` (bot.cli.main) with its checks' commits timed; the samples (epoch start,
    seconds, kind) are written to `samples_path` when the process exits."""
    from bot.cli import main as feedbot
    from bot.storage.postgres.backend import PostgresStorage
    from bot.storage.tinydb.backend import TinyDBStorage

    samples: list[tuple[float, float, str]] = []

    def timed(cls: type, name: str, kind: str) -> None:
        original = getattr(cls, name)

        async def wrapper(self: Any, commit: Any) -> Any:
            started, t0 = time.time(), time.perf_counter()
            try:
                return await original(self, commit)
            finally:
                samples.append((started, time.perf_counter() - t0, kind))

        setattr(cls, name, wrapper)

    for cls in (PostgresStorage, TinyDBStorage):
        timed(cls, "commit_check", "commit")
        timed(cls, "record_not_modified", "304")

    def dump() -> None:
        Path(samples_path).write_text(json.dumps(samples))

    atexit.register(dump)
    return feedbot(argv)


# ---------------------------------------------------------------- a run
@dataclass(frozen=True)
class Plan:
    n: int
    every: int  # every K-th feed changed (0: none)
    delay_s: float
    addresses: int
    ports: int
    concurrency: int
    max_seconds: float


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's PID, when its data directory can be read from here."""

    async def data_dir() -> str:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    try:
        text = (Path(asyncio.run(data_dir())) / "postmaster.pid").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    return sum(s.cpu_s for s in map(read_stat, descendants(pid)) if s is not None)


class Progress:
    """How many feeds were checked since the go moment, from the database (PostgreSQL)."""

    def __init__(self, url: str, go: float) -> None:
        self.url, self.go = url, go
        self._conn: Any = None

    async def count(self) -> int:
        import asyncpg

        if self._conn is None:
            self._conn = await asyncpg.connect(self.url)
        return int(await self._conn.fetchval(
            "SELECT count(*) FROM feeds WHERE last_check >= $1", self.go))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def steady_rate(samples: list[tuple[float, int]], n: int) -> float | None:
    """Checks per second between 5% and 95% of the feeds done (or the whole window)."""
    lo = next((s for s in samples if s[1] >= 0.05 * n), None)
    hi = next((s for s in samples if s[1] >= 0.95 * n), samples[-1] if samples else None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


async def run_config(backend: str, checkers: int, plan: Plan, database_url: str,
                     tmp: Path, pg_pid: int | None) -> dict[str, Any]:
    from tests.fakes.botapi import FakeBotApi

    body = seed_body()
    template = Template.of(body)
    schema_url = in_schema(database_url, SCHEMA)
    with (CheckFeedServer(body, plan.n, plan.every, plan.delay_s, plan.addresses,
                          plan.ports) as server, FakeBotApi() as api):
        urls = [server.endpoints.url(i) for i in range(plan.n)]
        db = str(tmp / f"{backend}-{checkers}" / "db.json")
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if backend == "postgres":
            state = stored_state(urls, template, body, [PARKED] * plan.n)
            seed_s = await seed_postgres(database_url, state)
        else:  # due already: checked from the process's first tick on
            due = time.time() - 1
            state = stored_state(urls, template, body, [due + i * 1e-6 for i in range(plan.n)])
            seed_s = await seed_tinydb(db, state)
        build_s = time.perf_counter() - t0
        del state
        env = {
            "TELEGRAM_BOT_TOKEN": api.token, "FEEDBOT_API_URL": api.url,
            "FEEDBOT_ALLOW_PRIVATE": "1", "FEEDBOT_POLL_INTERVAL": str(INTERVAL),
            "FEEDBOT_CONCURRENCY": str(plan.concurrency), "FEEDBOT_TELEGRAPH_URL": "off",
            "FEEDBOT_LOG_LEVEL": "INFO",
        }
        if backend == "postgres":
            env["FEEDBOT_DATABASE_URL"] = schema_url
            argv = ["run", "--role", "checker"]
        else:
            env["FEEDBOT_DB"] = db
            argv = ["run"]
        bots = []
        for k in range(checkers):
            samples = tmp / f"{backend}-{checkers}-{k}.json"
            bot = TimedBotProcess(env, tmp / f"{backend}-{checkers}-{k}.log", samples, argv)
            bots.append((bot, samples))
        try:
            for bot, _ in bots:
                bot.start()
            go_at = _wait_started([b for b, _ in bots])
            if backend == "postgres":
                go_at = time.time()
                await _release(schema_url, go_at)
            result = await _measure(backend, plan, server, schema_url, go_at,
                                    [b for b, _ in bots], pg_pid)
        finally:
            stops = [bot.stop() for bot, _ in bots]
    latencies: dict[str, list[float]] = {"commit": [], "304": []}
    for _, path in bots:
        if path.exists():
            for started, seconds, kind in json.loads(path.read_text()):
                if started >= go_at:
                    latencies[kind].append(seconds * 1000)
    row = {
        "backend": backend, "checkers": checkers, "feeds": plan.n, "build_s": build_s,
        "seed_s": seed_s, **result,
        "commits": len(latencies["commit"]), "not_modified_commits": len(latencies["304"]),
        "commit_p50_ms": percentile(latencies["commit"], 0.5),
        "commit_p95_ms": percentile(latencies["commit"], 0.95),
        "304_p50_ms": percentile(latencies["304"], 0.5),
        "304_p95_ms": percentile(latencies["304"], 0.95),
        "all_p50_ms": percentile(latencies["commit"] + latencies["304"], 0.5),
        "all_p95_ms": percentile(latencies["commit"] + latencies["304"], 0.95),
        "bot_cpu_ms_per_check": _per(result["bot_cpu_s"], result["checked"]),
        "pg_cpu_ms_per_check": _per(result["pg_cpu_s"], result["checked"]),
        "clean_exit": all(s.clean for s in stops),
        "log_errors": [e for s in stops for e in s.log_errors][:10],
    }
    if not row["clean_exit"]:
        print(f"note: a {backend} process did not stop cleanly: {stops}")
    return row


def _per(cpu_s: float | None, checks: int) -> float | None:
    return 1000 * cpu_s / checks if cpu_s is not None and checks else None


class TimedBotProcess(BotProcess):
    """`feedbot run ARGV` through `--child-run`: the real bot, its commits timed."""

    def __init__(self, settings: dict[str, str], log_path: Path, samples: Path,
                 argv: list[str]) -> None:
        super().__init__(settings, log_path)
        self.command = [sys.executable, "-m", "bench.checkers", "--child-run", str(samples),
                        "--", *argv]

    def start(self) -> int:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        return self.proc.pid


def _wait_started(bots: list[BotProcess], timeout: float = 300) -> float:
    """Until every process logged that it started (its storage open, its jobs scheduled);
    returns when."""
    t0 = time.monotonic()
    while not all("feedbot started as" in b.log_tail(200) for b in bots):
        for bot in bots:
            if not bot.alive():
                raise RuntimeError(f"a bot exited during start-up:\n{bot.log_tail()}")
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"the bots did not start within {timeout:.0f} s")
        time.sleep(0.05)
    return time.time()


async def _release(url: str, go: float) -> None:
    """Every feed due now, 1 µs apart in feed order (claims then take every endpoint)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE feeds SET next_check = $1 + split_part(url, '/f/', 2)::int * 1e-6", go)
    finally:
        await conn.close()


async def _measure(backend: str, plan: Plan, server: CheckFeedServer, url: str, go: float,
                   bots: list[BotProcess], pg_pid: int | None) -> dict[str, Any]:
    progress = Progress(url, go) if backend == "postgres" else None
    while time.time() < go:
        await asyncio.sleep(0.05)
    pids = [b.pid for b in bots]
    cpu0 = sum(tree_cpu(p) for p in pids)
    pg0, srv0 = tree_cpu(pg_pid), server.stats()["cpu_seconds"]
    db_samples: list[tuple[float, int]] = []
    srv_samples: list[tuple[float, int]] = []
    t_end = go + plan.max_seconds
    done_at = None
    try:
        while time.time() < t_end:
            await asyncio.sleep(1.0)
            now = time.time()
            stats = server.stats()
            srv_samples.append((now, stats["distinct_feeds"]))
            if progress is not None:
                db_samples.append((now, await progress.count()))
            for bot in bots:
                if not bot.alive():
                    raise RuntimeError(f"a bot exited while measured:\n{bot.log_tail()}")
            finished = db_samples[-1][1] if db_samples else stats["distinct_feeds"]
            if finished >= plan.n:
                done_at = now
                break
        wall = (done_at or time.time()) - go
        cpu = sum(tree_cpu(p) for p in pids) - cpu0
        pg_cpu = tree_cpu(pg_pid) - pg0 if pg_pid else None
        await asyncio.sleep(1.0)  # the last answers leave
        stats = server.stats()
        checked = db_samples[-1][1] if db_samples else stats["distinct_feeds"]
    finally:
        if progress is not None:
            await progress.close()
    complete = stats["distinct_feeds"] >= plan.n
    return {
        "checked": checked, "wall_s": wall, "complete": complete,
        "checks_per_s": steady_rate(db_samples or srv_samples, plan.n),
        "server_req_per_s": steady_rate(srv_samples, plan.n),
        "mean_checks_per_s": checked / wall if wall else None,
        "requests": stats["requests"], "not_modified": stats["not_modified"],
        "changed": stats["changed_served"], "distinct_feeds": stats["distinct_feeds"],
        "fetched_twice": stats["fetched_twice"], "max_fetches": stats["max_fetches"],
        "overlapping": stats["overlapping"],
        "once_each": (complete and stats["requests"] == plan.n and stats["fetched_twice"] == 0)
        if complete else None,
        "bot_cpu_s": cpu, "pg_cpu_s": pg_cpu,
        "server_cpu_s": stats["cpu_seconds"] - srv0,
        "load": os.getloadavg()[0],
        "progress": [(round(t - go, 2), c) for t, c in (db_samples or srv_samples)],
    }


def postgres_version(url: str) -> str:
    async def version() -> str:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(version())


def server_settings(url: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])",
                ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
                 "max_connections"])
            return {r["name"]: r["setting"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(read())


def main() -> None:
    if "--child-run" in sys.argv:
        i = sys.argv.index("--child-run")
        rest = sys.argv[i + 2:]
        raise SystemExit(child_run(sys.argv[i + 1], rest[1:] if rest[:1] == ["--"] else rest))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=100_000)
    parser.add_argument("--checkers", default="1,2,4", help="checker process counts")
    parser.add_argument("--changed", type=float, default=5.0,
                        help="percent of the feeds with one new item (the rest answer 304)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every configuration")
    parser.add_argument("--no-tinydb", action="store_true", help="skip the TinyDB figure")
    parser.add_argument("--server-delay-ms", type=float, default=5.0)
    parser.add_argument("--addresses", type=int, default=50)
    parser.add_argument("--ports", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20, help="FEEDBOT_CONCURRENCY")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="a configuration stops here even if not every feed was checked")
    parser.add_argument("--database-url", default=os.environ.get("FEEDBOT_TEST_DATABASE_URL", ""))
    parser.add_argument("--smoke", action="store_true", help="2,000 feeds, checkers 1,2")
    args = parser.parse_args()
    if args.smoke:
        args.feeds, args.checkers, args.max_seconds = 2000, "1,2", 40.0
        args.addresses, args.ports = 10, 2
    if not args.database_url:
        print("checkers: no PostgreSQL (set FEEDBOT_TEST_DATABASE_URL or --database-url): "
              "skipped")
        return
    every = round(100 / args.changed) if args.changed > 0 else 0
    plan = Plan(args.feeds, every, args.server_delay_ms / 1000, args.addresses, args.ports,
                args.concurrency, args.max_seconds)
    pg_pid = postmaster_pid(args.database_url)
    rows: list[dict[str, Any]] = []
    configs = [("postgres", int(c)) for c in args.checkers.split(",")]
    if not args.no_tinydb:
        configs.append(("tinydb", 1))
    tmp = Path(tempfile.mkdtemp(prefix="bench-checkers-"))
    try:
        for run in range(1, args.repeats + 1):
            for backend, count in configs:
                row = asyncio.run(run_config(backend, count, plan, args.database_url, tmp,
                                             pg_pid))
                row["run"] = run
                rows.append(row)
                print_table([row], COLS)
                sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        asyncio.run(fresh_schema(args.database_url, SCHEMA, create=False))
    print()
    print_table(rows, COLS)
    bad = [r for r in rows if r["fetched_twice"] or r["overlapping"]
           or (r["complete"] and not r["once_each"])]
    facts = {"postgres_version": postgres_version(args.database_url),
             "postgres_settings": server_settings(args.database_url), "nproc": os.cpu_count()}
    print(f"PostgreSQL {facts['postgres_version']} {facts['postgres_settings']}, "
          f"nproc {facts['nproc']}")
    write_results("checkers-smoke" if args.smoke else "checkers",
                  {"rows": rows, "plan": plan.__dict__, **facts})
    if bad:
        raise SystemExit(f"a feed was fetched twice or by two processes at once: {len(bad)} rows")


if __name__ == "__main__":
    main()
