"""Shared parts of the benchmarks: machine facts, tables, results files, and a fast feed server.

The feed server runs in its own process (one asyncio loop on raw protocols, HTTP/1.1 keep-alive)
so that serving 10,000 feeds does not compete with the bot for the GIL. It serves `/f/<i>` as the
seed feed with `version(i)` extra items on top; ETag `"<i>-<version>"` answers conditional GETs
with 304, unless the server is started with `conditional=False`: then it sends the ETag but ignores
If-None-Match, answering 200 with the full body every time (a server without conditional GET).
Control endpoints: `/_bump?every=K` (one new item in every K-th feed), `/_stats`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import resource
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEED = SHARED / "seeds" / "machine-learning.xml"


# ------------------------------------------------------------------ reporting
def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        #: other work on the machine when the results were written (1, 5, 15 minutes)
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_mib(pid: int | str = "self") -> float:
    """Resident memory now (VmRSS), not the peak."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def processes_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU (user + system) used so far by other running processes, e.g. parse workers, whose
    time getrusage(RUSAGE_CHILDREN) would count only once they exit. Gone ones count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class IoCounters:
    """/proc/self/io: bytes handed to write() (`wchar`) and bytes sent to the storage layer."""

    wchar: int
    write_bytes: int

    @classmethod
    def now(cls) -> IoCounters:
        with open("/proc/self/io", encoding="ascii") as fh:
            values = dict(line.split(": ") for line in fh.read().splitlines())
        return cls(int(values["wchar"]), int(values["write_bytes"]))

    def __sub__(self, other: IoCounters) -> IoCounters:
        return IoCounters(self.wchar - other.wchar, self.write_bytes - other.write_bytes)


def files_bytes(folder: Path, pattern: str = "db.json*") -> int:
    """Total size of the files matching `pattern` (a database's snapshot and logs)."""
    total = 0
    for path in folder.glob(pattern):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # a log deleted by a fold meanwhile
            continue
    return total


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> None:
    cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    data = {"benchmark": name, "machine": machine(), "argv": sys.argv[1:], **payload}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path


# ------------------------------------------------------------------- feeds
def seed_body() -> bytes:
    """The bigger seed feed (~40 KB, 28 items) or, without ../shared, a generated look-alike."""
    if SEED.is_file():
        return SEED.read_bytes()
    from tests.fakes.feeds import hugo_feed

    return hugo_feed(range(1, 31)).encode()


def new_item(feed: int, version: int) -> bytes:
    when = format_datetime(_date(version))
    link = f"https://bench.example.org/{feed}/posts/{version}/"
    body = (
        f"&lt;p&gt;Post {version} of feed {feed}: &lt;img src=&quot;https://img.example.org/"
        f"{feed}/{version}.png&quot;&gt; with &lt;b&gt;some&lt;/b&gt; text.&lt;/p&gt;"
    )
    return (
        f"<item><title>Bench post {feed}-{version}</title><link>{link}</link>"
        f"<pubDate>{when}</pubDate><guid>{link}</guid><description>{body}</description></item>"
    ).encode()


def _date(version: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(2026, 6, 1, tzinfo=UTC) + timedelta(hours=version)


@dataclass
class FeedCatalogue:
    """What the feed server serves: the seed with `versions[i]` bench items on top."""

    base: bytes
    versions: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cut = self.base.find(b"<item>")
        self._head, self._tail = self.base[:cut], self.base[cut:]

    def etag(self, feed: int) -> str:
        return f'"{feed}-{self.versions.get(feed, 0)}"'

    def body(self, feed: int) -> bytes:
        version = self.versions.get(feed, 0)
        items = b"".join(new_item(feed, v) for v in range(version, 0, -1))
        return self._head + items + self._tail

    def bump(self, feeds: Iterable[int]) -> int:
        count = 0
        for feed in feeds:
            self.versions[feed] = self.versions.get(feed, 0) + 1
            count += 1
        return count


class HeadProtocol(asyncio.Protocol):
    """A keep-alive HTTP/1.1 server connection for bodiless requests: `on_head` gets each
    request's head (request line and headers) and writes the answer to `self.transport`."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.on_head(head)

    def on_head(self, head: bytes) -> None:
        raise NotImplementedError


class _FeedProtocol(HeadProtocol):
    def __init__(self, server: _ServerState) -> None:
        super().__init__()
        self.server = server

    def on_head(self, head: bytes) -> None:
        assert self.transport is not None
        answer = self.server.answer(head)
        if self.server.delay_s and head.split(b" ", 2)[1].startswith(b"/f/"):
            # a remote server's think time + round trip; control requests answer at once
            asyncio.get_running_loop().call_later(
                self.server.delay_s, self.transport.write, answer
            )
        else:
            self.transport.write(answer)


@dataclass
class _ServerState:
    catalogue: FeedCatalogue
    delay_s: float = 0.0
    #: False: If-None-Match is ignored (always 200 with the full body)
    conditional: bool = True
    requests: int = 0
    not_modified: int = 0

    def answer(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        pairs = (h.partition(":") for h in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
        url = urlsplit(target)
        if url.path.startswith("/f/"):
            return self._feed(int(url.path[3:]), headers.get("if-none-match"))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/_bump":
            every, count = int(query.get("every", "1")), int(query.get("count", "0"))
            bumped = self.catalogue.bump(i for i in range(count) if i % every == 0)
            return _response(200, json.dumps({"bumped": bumped}).encode(), "application/json")
        if url.path == "/_stats":
            stats = {"requests": self.requests, "not_modified": self.not_modified,
                     "cpu_seconds": cpu_seconds()}
            return _response(200, json.dumps(stats).encode(), "application/json")
        return _response(404, b"not found", "text/plain")

    def _feed(self, feed: int, if_none_match: str | None) -> bytes:
        self.requests += 1
        etag = self.catalogue.etag(feed)
        if self.conditional and if_none_match == etag:
            self.not_modified += 1
            return _response(304, b"", "", etag=etag)
        return _response(200, self.catalogue.body(feed), "application/rss+xml", etag=etag)


def _response(status: int, body: bytes, content_type: str, *, etag: str = "") -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    if etag:
        head.append(f"ETag: {etag}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _serve_forever(base: bytes, conn: Any, delay_s: float = 0.0, conditional: bool = True) -> None:
    async def main() -> None:
        state = _ServerState(FeedCatalogue(base), delay_s, conditional)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _FeedProtocol(state), "127.0.0.1", 0,
                                          backlog=4096)
        conn.send(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())


class FeedServerProcess:
    """The feed server in a child process, bound to 127.0.0.1 on an ephemeral port."""

    def __init__(self, base: bytes, *, delay_s: float = 0.0, conditional: bool = True) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve_forever, args=(base, child, delay_s, conditional), daemon=True
        )

    def __enter__(self) -> FeedServerProcess:
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("feed server did not start")
        self.port: int = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"
