"""Feed parsing in worker processes, so parsing uses every core and leaves the event loop's GIL.

feedparser is pure Python and slow (tens of ms for a 40 KB feed): in a thread it holds the GIL the
event loop needs, so one core does everything. `ParsePool` runs `parse_bytes` in a
ProcessPoolExecutor instead. Workers are forked from a forkserver (the bot's process has threads,
so plain fork is unsafe), start on first use, ignore Ctrl-C (the bot shuts them down itself) and
exit on their own if the bot's process dies. A worker that crashes (a C-level fault, the OOM
killer) breaks the executor: the pool starts a fresh one and retries the parse once there.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool, _ExceptionWithTraceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, TypeVar, TypeVarTuple

from bot.errors import ParseError
from bot.feeds.first_read import FirstRead, as_feed, first_read_or_parse, first_read_packed
from bot.feeds.parser import parse_bytes
from bot.models import ParsedFeed

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: bodies smaller than this parse in a thread: shipping them to a worker costs more than it saves
INLINE_BELOW = 2048
#: how long starting the worker processes may take before parsing falls back to threads
START_TIMEOUT = 30.0
#: workers left without a parse this long exit (an idle bot, every feed answering 304, does not
#: keep 2 x 35 MB of parsers); the next parse starts them again, in well under a second
IDLE_STOP_S = 120.0


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the forkserver, so each worker starts without importing feedparser.
        ctx.set_forkserver_preload(
            # bot.pipeline.check: a check's parse, diff and rendering (`ParsePool.run`)
            ["bot.feeds.parser", "bot.feeds.parse_delta", "bot.feeds.first_read",
             "bot.pipeline.check"]
        )
        return ctx
    return multiprocessing.get_context("spawn")


#: a worker's copy of the start-up barrier (see ParsePool._spawn)
_start_barrier: threading.Barrier | None = None


def _worker_init(start_barrier: threading.Barrier) -> None:
    global _start_barrier
    _start_barrier = start_barrier
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _meet_the_others(timeout: float) -> int:
    """Warm-up task: wait until every worker holds one, so each ran in a process of its own."""
    assert _start_barrier is not None
    _start_barrier.wait(timeout)
    return os.getpid()


def _exit_with(sentinel: int) -> None:
    """Worker thread: leave as soon as the bot's process is gone (never orphan a worker)."""
    wait([sentinel])
    os._exit(0)


class ParsePool:
    """`await pool.parse(body, url, content_type)`: `parse_bytes` in a worker process; and
    `first_read_or_parse` likewise, and any parsing step (`run`)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        inline_below: int = INLINE_BELOW,
        idle_stop_s: float = IDLE_STOP_S,
    ) -> None:
        self.workers = max(workers or os.cpu_count() or 1, 1)
        self.inline_below = inline_below
        self.idle_stop_s = idle_stop_s
        self._busy = 0
        self._last_used = time.monotonic()
        self._idle_watch: asyncio.Task[None] | None = None
        self._executor: ProcessPoolExecutor | None = None
        self._batcher: _Batcher | None = None  # for the batched tasks of `_executor`
        self._pids: list[int] = []
        self._lock = asyncio.Lock()
        #: closed, or worker processes cannot be started here: parse in a thread
        self._threads_only = False

    async def start(self) -> None:
        """Start every worker now (not on the first parse, which would then wait for them)."""
        await self._ready()

    async def parse(self, body: bytes, url: str, content_type: str = "") -> ParsedFeed:
        """Parse like `parse_bytes`; raises ParseError for a document that is not a feed."""
        return await self._run(parse_bytes, body, url, content_type)

    async def first_read(self, body: bytes, url: str, content_type: str = "") -> ParsedFeed:
        """`bot.feeds.first_read.first_read_or_parse` in a worker: a new feed's identities."""
        return as_feed(await self.first_read_packed(body, url, content_type))

    async def first_read_packed(
        self, body: bytes, url: str, content_type: str = ""
    ) -> FirstRead | ParsedFeed:
        """`bot.feeds.first_read.first_read_packed` in a worker, batched (see _Batcher): an
        OPML import reads hundreds of feeds at once."""
        return await self._run(first_read_packed, body, url, content_type, batched=True)

    async def run(self, fn: Callable[[bytes, str, *Ts], T], body: bytes, url: str, *args: *Ts) -> T:
        """`fn(body, url, *args)` in a worker: a module-level function (workers import it) that
        parses the document, perhaps with more steps after the parse (bot.pipeline.check)."""
        return await self._run(fn, body, url, *args)

    async def _run(
        self,
        fn: Callable[[bytes, str, *Ts], T],
        body: bytes,
        url: str,
        *args: *Ts,
        batched: bool = False,
    ) -> T:
        if self._threads_only or len(body) < self.inline_below:
            return await asyncio.to_thread(fn, body, url, *args)
        try:
            return await self._in_worker(fn, body, url, *args, batched=batched)
        except BrokenProcessPool:
            log.warning("a parser process died (parsing %s); starting fresh ones", url)
        try:
            # alone: a document that crashes its worker takes no batch with it a second time
            return await self._in_worker(fn, body, url, *args)
        except BrokenProcessPool:
            raise ParseError("the feed crashed the parser", key="error_parser_crashed") from None

    async def _in_worker(
        self,
        fn: Callable[[bytes, str, *Ts], T],
        body: bytes,
        url: str,
        *args: *Ts,
        batched: bool = False,
    ) -> T:
        self._busy += 1
        try:
            executor = await self._ready()
            if executor is None:
                return await asyncio.to_thread(fn, body, url, *args)
            try:
                if batched:
                    if self._batcher is None or self._batcher.executor is not executor:
                        self._batcher = _Batcher(executor, self.workers + 1)
                    found: T = await self._batcher.run(fn, (body, url, *args), len(body))
                    return found
                return await asyncio.wrap_future(executor.submit(fn, body, url, *args))
            except BrokenProcessPool:
                self._discard(executor)
                raise
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()

    async def _stop_when_idle(self) -> None:
        """Shut the workers down once no parse ran for `idle_stop_s` (see IDLE_STOP_S)."""
        while self._executor is not None:
            idle = time.monotonic() - self._last_used
            if self._busy == 0 and idle >= self.idle_stop_s:
                async with self._lock:
                    executor, self._executor = self._executor, None
                if executor is not None:
                    log.debug("parser processes idle for %.0f s: stopping them", idle)
                    await asyncio.to_thread(executor.shutdown, wait=True)
                return
            await asyncio.sleep(max(self.idle_stop_s - idle, self.idle_stop_s / 4, 0.05))

    async def _ready(self) -> ProcessPoolExecutor | None:
        if self._executor is not None:
            return self._executor
        async with self._lock:
            if self._executor is None and not self._threads_only:
                try:
                    self._executor = await asyncio.to_thread(self._spawn)
                except (OSError, BrokenProcessPool) as exc:
                    log.warning("cannot start parser processes (%s); parsing in threads", exc)
                    self._threads_only = True
                else:
                    self._last_used = time.monotonic()
                    self._idle_watch = asyncio.create_task(
                        self._stop_when_idle(), name="parser idle stop"
                    )
            return self._executor

    def _spawn(self) -> ProcessPoolExecutor:
        """Worker thread: a new executor with all its processes running. Starting them here
        matters: the executor spawns on demand inside submit(), which would block the loop. One
        warm-up task per worker, each waiting at a barrier for all the others, makes the executor
        start every process (a submit that finds no idle worker starts one)."""
        context = _context()
        barrier = context.Barrier(self.workers)
        executor = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_worker_init, initargs=(barrier,)
        )
        try:
            warm_ups = [
                executor.submit(_meet_the_others, START_TIMEOUT) for _ in range(self.workers)
            ]
            self._pids = sorted({future.result() for future in warm_ups})
        except threading.BrokenBarrierError as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            raise OSError(f"parser processes did not start within {START_TIMEOUT:.0f} s") from exc
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        return executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:
            self._executor = None
            broken.shutdown(wait=False, cancel_futures=True)
        if self._batcher is not None and self._batcher.executor is broken:
            self._batcher = None

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (tests, monitoring)."""
        return list(self._pids) if self._executor is not None else []

    async def close(self) -> None:
        """Stop the workers and wait for them to exit; later parses run in a thread."""
        async with self._lock:
            self._threads_only = True
            executor, self._executor = self._executor, None
        if self._idle_watch is not None:
            self._idle_watch.cancel()
            await asyncio.gather(self._idle_watch, return_exceptions=True)
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


#: the most tasks, and bytes of documents, one trip to a worker carries (see _Batcher)
BATCH_TASKS = 16
BATCH_BYTES = 2**20


def _run_batch(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
    """Worker: each call's (True, result) or (False, the exception it raised), in order. The
    exception travels with its traceback as it would from a task of its own."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, args in calls:
        try:
            outcomes.append((True, fn(*args)))
        except Exception as exc:
            tb = exc.__traceback__
            outcomes.append((False, exc if tb is None else _ExceptionWithTraceback(exc, tb)))
    return outcomes


@dataclass(eq=False)
class _Task:
    call: tuple[Callable[..., Any], tuple[Any, ...]]
    size: int  # bytes of the document
    future: asyncio.Future[Any]


class _Batcher:
    """Tasks for one executor, sent several to a trip when they queue up for the workers.

    Each trip through ProcessPoolExecutor costs the bot's process about 0.2 ms of CPU (its
    manager and queue feeder threads, pipes, pickles) whatever it carries: a first read of
    10,000 feeds paid 2 s for that alone. At most `in_flight` trips are out at a time (one per
    worker and one waiting in the executor's call queue, so a worker that finishes starts the
    next at once); tasks arriving meanwhile wait here and leave together, BATCH_TASKS and
    BATCH_BYTES at most. A task arriving while a trip is free leaves at once, alone: no waiting
    when the pool is not busy. A trip's results all come back when its last task is done."""

    def __init__(self, executor: ProcessPoolExecutor, in_flight: int) -> None:
        self.executor = executor
        self.in_flight = max(in_flight, 1)
        self.out = 0
        self.waiting: collections.deque[_Task] = collections.deque()

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...], size: int) -> asyncio.Future[Any]:
        task = _Task((fn, args), size, asyncio.get_running_loop().create_future())
        self.waiting.append(task)
        self._send()
        return task.future

    def _send(self) -> None:
        while self.waiting and self.out < self.in_flight:
            batch: list[_Task] = []
            size = 0
            while self.waiting and len(batch) < BATCH_TASKS:
                task = self.waiting[0]
                if task.future.done():  # its caller was cancelled meanwhile
                    self.waiting.popleft()
                    continue
                if batch and size + task.size > BATCH_BYTES:
                    break
                batch.append(self.waiting.popleft())
                size += task.size
            if not batch:
                return
            try:
                trip = asyncio.wrap_future(
                    self.executor.submit(_run_batch, [task.call for task in batch])
                )
            except (BrokenProcessPool, RuntimeError) as exc:  # broken, or shut down
                self._fail(batch, exc)
                continue
            self.out += 1
            trip.add_done_callback(functools.partial(self._settle, batch))

    def _settle(self, batch: list[_Task], trip: asyncio.Future[list[tuple[bool, Any]]]) -> None:
        self.out -= 1
        if trip.cancelled():  # the executor was shut down before the trip ran
            for task in batch:
                task.future.cancel()
        elif (exc := trip.exception()) is not None:
            self._fail(batch, exc)
        else:
            for task, (ok, value) in zip(batch, trip.result(), strict=True):
                if not task.future.done():
                    if ok:
                        task.future.set_result(value)
                    else:
                        task.future.set_exception(value)
        self._send()

    def _fail(self, batch: list[_Task], exc: BaseException) -> None:
        """The trip failed as a whole: every task in it fails so (and, when the executor broke,
        every task still waiting for it; their callers retry on a fresh one)."""
        if isinstance(exc, BrokenProcessPool):
            batch = batch + list(self.waiting)
            self.waiting.clear()
        for task in batch:
            if not task.future.done():
                task.future.set_exception(exc)


async def parse_feed(
    body: bytes, url: str, content_type: str = "", *, pool: ParsePool | None = None
) -> ParsedFeed:
    """`parse_bytes` off the event loop: in a worker process of `pool` when given, else in a
    thread."""
    return await in_pool(pool, parse_bytes, body, url, content_type)


async def first_read_feed(
    body: bytes, url: str, content_type: str = "", *, pool: ParsePool | None = None
) -> ParsedFeed:
    """A new feed's first read off the event loop, like `parse_feed`: title, link, ttl and its
    entries' identity prints (stubs, see bot.feeds.first_read), else the whole parse. For what
    only marks the feed's entries seen; never for entries to deliver."""
    if pool is not None:
        return await pool.first_read(body, url, content_type)
    return await asyncio.to_thread(first_read_or_parse, body, url, content_type)


async def first_read_packed_feed(
    body: bytes, url: str, content_type: str = "", *, pool: ParsePool | None = None
) -> FirstRead | ParsedFeed:
    """`first_read_feed` as bot.feeds.first_read.first_read_packed answers it (a FirstRead when
    the first read answered, without an Entry per item)."""
    if pool is not None:
        return await pool.first_read_packed(body, url, content_type)
    return await asyncio.to_thread(first_read_packed, body, url, content_type)


async def in_pool(
    pool: ParsePool | None, fn: Callable[[bytes, str, *Ts], T], body: bytes, url: str, *args: *Ts
) -> T:
    """`pool.run(fn, body, url, *args)`; in a thread without a pool."""
    if pool is not None:
        return await pool.run(fn, body, url, *args)
    return await asyncio.to_thread(fn, body, url, *args)
