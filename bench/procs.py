"""Helpers for the benchmarks that measure a whole running bot: its process tree, the real
`feedbot run` as a subprocess, and a feed server on many loopback addresses.

- `sample_tree(pid)`: CPU seconds, RSS and PSS of a process and all its descendants, read from
  /proc (the bot, its forkserver and its parse workers). CPU includes what each process's reaped
  children used (cutime/cstime), so a worker that exited still counts.
- `BotProcess`: `python -m bot run` from this checkout, configured by FEEDBOT_* variables only,
  stopped with SIGTERM and checked for a clean exit.
- `MultiHostFeedServer`: one process serving `/f/<i>` (the seed feed, ETag `"<i>-0"`, 304 to a
  matching If-None-Match, HTTP/1.1 keep-alive) on 127.0.0.1 .. 127.0.0.A, each on P ports: A x P
  endpoints, each a host of its own to the fetcher, so its per-host politeness does not
  serialise the checks, and (with enough endpoints) its kept-alive connections are not reused
  more than on the internet. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import FeedCatalogue, HeadProtocol, cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20


# ------------------------------------------------------------ process trees
@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_s: float  # utime + stime + cutime + cstime
    rss_bytes: int
    state: str  # R, S, D, Z (a zombie: exited, not yet reaped) ...


def read_stat(pid: int) -> ProcStat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name is in parentheses and may hold spaces: fields start after the last ")"
    rest = text[text.rindex(")") + 2:].split()
    ticks = sum(int(v) for v in rest[11:15])  # utime stime cutime cstime (fields 14-17)
    return ProcStat(pid, int(rest[1]), ticks / CLOCK_TICKS, int(rest[21]) * PAGE_BYTES, rest[0])


def running(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""



def descendants(root: int) -> list[int]:
    """`root` and every process below it (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages (forked workers) split between their sharers."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


@dataclass(frozen=True)
class TreeSample:
    at: float  # monotonic
    cpu_s: float
    rss_mib: float  # sum over the tree (counts pages shared by forked processes once per process)
    pss_mib: float  # sum of proportional set sizes (shared pages counted once in all)
    processes: int
    cpu_by_pid: Mapping[int, float] = field(default_factory=dict)


def sample_tree(root: int) -> TreeSample:
    stats = [s for s in map(read_stat, descendants(root)) if s is not None]
    return TreeSample(
        at=time.monotonic(),
        cpu_s=sum(s.cpu_s for s in stats),
        rss_mib=sum(s.rss_bytes for s in stats) / MIB,
        pss_mib=sum(pss_bytes(s.pid) for s in stats) / MIB,
        processes=len(stats),
        cpu_by_pid={s.pid: s.cpu_s for s in stats},
    )


# ------------------------------------------------------------- the real bot
@dataclass
class StopReport:
    returncode: int | None
    stop_s: float
    left_behind: list[str]  # processes of the tree still running 5 s after the bot exited
    log_errors: list[str]  # ERROR / Traceback lines in the bot's log

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.left_behind and not self.log_errors


class BotProcess:
    """`python -m bot run` from this checkout (its bot/ package), settings from the environment
    only: a clean environment plus `settings` (FEEDBOT_* names and TELEGRAM_BOT_TOKEN)."""

    def __init__(self, settings: Mapping[str, str], log_path: Path) -> None:
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), **settings}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> StopReport:
        assert self.proc is not None
        tree = descendants(self.proc.pid)
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            self.proc.kill()
            self.proc.wait()
        stop_s = time.monotonic() - t0
        deadline = time.monotonic() + 5  # workers and the forkserver leave when the bot is gone
        while any(map(running, tree)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in tree if running(pid)]
        named = [f"{pid} {command_line(pid)}" for pid in left]
        for pid in left:  # only processes of the tree this helper started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return StopReport(code, stop_s, named, self.log_errors())

    def log_errors(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -------------------------------------------------- feeds on many addresses
@dataclass(frozen=True)
class Endpoints:
    """Where the feeds are: 127.0.0.1 .. 127.0.0.`addresses`, each listening on every one of
    `ports`; feed i on endpoint i % (addresses * ports). Each endpoint is a host of its own to
    the fetcher (politeness slots and kept-alive connections are per host and port)."""

    addresses: int
    ports: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.addresses * len(self.ports)

    def url(self, feed: int) -> str:
        endpoint = feed % self.count
        address, port = 1 + endpoint % self.addresses, self.ports[endpoint // self.addresses]
        return f"http://127.0.0.{address}:{port}/f/{feed}"

    def to_arg(self) -> str:
        return f"{self.addresses}:{','.join(map(str, self.ports))}"

    @classmethod
    def from_arg(cls, text: str) -> Endpoints:
        addresses, _, ports = text.partition(":")
        return cls(int(addresses), tuple(int(p) for p in ports.split(",")))


@dataclass
class _Counts:
    requests: int = 0
    not_modified: int = 0
    connections: int = 0  # TCP connections accepted
    feeds: set[int] = field(default_factory=set)  # distinct feeds asked for

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "not_modified": self.not_modified,
                "connections": self.connections, "distinct_feeds": len(self.feeds),
                "cpu_seconds": cpu_seconds()}


class _Protocol(HeadProtocol):
    def __init__(self, catalogue: FeedCatalogue, counts: _Counts) -> None:
        super().__init__()
        self.catalogue, self.counts = catalogue, counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.counts.connections += 1

    def on_head(self, head: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self.answer(head.decode("latin-1")))

    def answer(self, head: str) -> bytes:
        request, *lines = head.split("\r\n")
        path = request.split(" ")[1]
        if not path.startswith("/f/") or not path[3:].isdigit():
            return _response("404 Not Found", b"not found", {"Content-Type": "text/plain"})
        feed = int(path[3:])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        self.counts.requests += 1
        self.counts.feeds.add(feed)
        etag = self.catalogue.etag(feed)
        if headers.get("if-none-match") == etag:
            self.counts.not_modified += 1
            return _response("304 Not Modified", b"", {"ETag": etag})
        body = self.catalogue.body(feed)
        return _response("200 OK", body, {"Content-Type": "application/rss+xml", "ETag": etag})


def _response(status: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _listen(addresses: int, ports: int, factory: Any
                  ) -> tuple[Endpoints, list[asyncio.Server]]:
    """`ports` ports, each on 127.0.0.1 .. 127.0.0.`addresses` (Linux routes 127/8 to lo)."""
    loop = asyncio.get_running_loop()
    chosen: list[int] = []
    servers: list[asyncio.Server] = []
    for _ in range(ports + 20):
        if len(chosen) == ports:
            return Endpoints(addresses, tuple(chosen)), servers
        first = await loop.create_server(factory, "127.0.0.1", 0, backlog=1024)
        port, these = first.sockets[0].getsockname()[1], [first]
        try:
            for k in range(2, addresses + 1):
                these.append(await loop.create_server(factory, f"127.0.0.{k}", port,
                                                      backlog=1024))
        except OSError:  # that port is taken on some address: try another
            for server in these:
                server.close()
            continue
        chosen.append(port)
        servers += these
    raise RuntimeError("not enough ports free on every loopback address")


def _serve(base: bytes, addresses: int, ports: int, conn: Any) -> None:
    async def main() -> None:
        catalogue, counts = FeedCatalogue(base), _Counts()
        endpoints, servers = await _listen(addresses, ports, lambda: _Protocol(catalogue, counts))
        conn.send(endpoints)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def command() -> None:
            message = conn.recv()
            if message == "stats":
                conn.send(counts.as_dict())
            elif not stop.done():
                stop.set_result(None)

        loop.add_reader(conn.fileno(), command)
        await stop
        for server in servers:
            server.close()

    asyncio.run(main())


class MultiHostFeedServer:
    """The feed server in a child process (its CPU is not the bot's); `stats()` over a pipe."""

    def __init__(self, base: bytes, addresses: int, ports: int = 1) -> None:
        if not 1 <= addresses <= 254:
            raise ValueError("addresses must be 1..254 (127.0.0.1 .. 127.0.0.254)")
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(base, addresses, ports, child), daemon=True)
        self.endpoints = Endpoints(addresses, ())

    def __enter__(self) -> MultiHostFeedServer:
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

    def url(self, feed: int) -> str:
        return self.endpoints.url(feed)

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return dict(self._conn.recv())
