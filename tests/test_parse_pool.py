"""ParsePool: feeds parse in worker processes, with the same result as in-process parsing; the
workers come and go with the pool, and a worker that dies does not take the pool with it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ParseError
from bot.feeds import parse_pool as pp
from bot.feeds.first_read import first_read_or_parse
from bot.feeds.parse_pool import ParsePool, parse_feed
from bot.feeds.parser import parse_bytes
from bot.models import ParsedFeed
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed

URL = "https://blog.test/index.xml"
BODY = hugo_feed(range(1, 12)).encode()


@pytest.fixture
async def pool() -> AsyncIterator[ParsePool]:
    pool = ParsePool(2, inline_below=0)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before or while reading
        return False


async def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(_alive(pid) for pid in pids):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_workers_parse_exactly_like_the_parser(pool: ParsePool) -> None:
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids
    results = await asyncio.gather(*(pool.parse(BODY, URL, "application/rss+xml")
                                     for _ in range(6)))
    expected = parse_bytes(BODY, URL, "application/rss+xml")
    assert all(result == expected for result in results)
    assert [e.title[:24] for e in expected.entries[:2]] == [
        "ML Math Derivations (11)", "ML Math Derivations (10)"
    ]


async def test_not_a_feed_is_a_parse_error_from_the_worker(pool: ParsePool) -> None:
    with pytest.raises(ParseError, match="not an RSS or Atom feed"):
        await pool.parse(b"<html><body>" + b"hello " * 500 + b"</body></html>", URL)


async def test_parse_feed_uses_the_pool_when_given(pool: ParsePool) -> None:
    assert await parse_feed(BODY, URL, pool=pool) == parse_bytes(BODY, URL)


async def test_close_stops_every_worker_and_later_parses_still_work() -> None:
    pool = ParsePool(2, inline_below=0)
    await pool.start()
    pids = pool.pids
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    await pool.close()
    assert await _gone(pids), "workers still running (or left as zombies) after close"
    assert pool.pids == []
    assert (await pool.parse(BODY, URL)).title  # in a thread now


async def test_idle_workers_exit_and_the_next_parse_starts_them_again() -> None:
    """A bot whose feeds all answer 304 parses nothing: its parser processes do not stay."""
    pool = ParsePool(2, inline_below=0, idle_stop_s=0.3)
    try:
        await pool.start()
        pids = pool.pids
        assert (await pool.parse(BODY, URL)).title
        assert await _gone(pids), "idle workers still running"
        assert pool.pids == []
        parsed = await pool.parse(BODY, URL)  # in fresh worker processes
        assert len(parsed.entries) == 11 and len(pool.pids) == 2
        assert not set(pool.pids) & set(pids)
    finally:
        await pool.close()


async def test_a_killed_worker_is_replaced(pool: ParsePool) -> None:
    before = pool.pids
    os.kill(before[0], signal.SIGKILL)
    assert await _gone([before[0]])
    parsed = await pool.parse(BODY, URL)  # the broken executor is swapped for a fresh one
    assert len(parsed.entries) == 11
    assert len(pool.pids) == 2 and before[0] not in pool.pids
    assert await _gone([before[1]]), "the old executor's other worker was not stopped"


# --------------------------------------------------------------------- batched first reads
NOT_A_FEED = b"<html><body>" + b"hello " * 500 + b"</body></html>"
CRASH = BODY.replace(b"<rss", b"<!-- crash --><rss", 1)


def crash_once(body: bytes, url: str, marker: str) -> ParsedFeed:
    """A worker's task that takes its worker process down (a C-level fault, say) the first
    time it reads CRASH, the time `marker` does not exist yet."""
    if body == CRASH and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(70)
    return first_read_or_parse(body, url)


def _trips(pool: ParsePool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tasks in each batched trip to a worker, recorded as they leave."""
    sizes: list[int] = []

    def submit(self: Any, fn: Any, *args: Any) -> Any:
        if fn is pp._run_batch:
            sizes.append(len(args[0]))
        return original(self, fn, *args)

    original = ProcessPoolExecutor.submit
    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    return sizes


async def test_first_reads_queued_for_the_workers_go_together(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips = _trips(pool, monkeypatch)
    results = await asyncio.gather(*(pool.first_read(BODY, f"{URL}?{n}") for n in range(60)))
    assert all(r == first_read_or_parse(BODY, f"{URL}?{n}") for n, r in enumerate(results))
    assert sum(trips) == 60 and len(trips) < 20, trips  # in batches, not 60 trips
    assert trips[0] == 1  # the first one left at once: no waiting while a worker is free


async def test_a_failing_task_fails_alone_in_its_batch(pool: ParsePool) -> None:
    bodies = [BODY, NOT_A_FEED] * 10
    results = await asyncio.gather(*(pool.first_read(b, URL) for b in bodies),
                                   return_exceptions=True)
    for body, result in zip(bodies, results, strict=True):
        if body is BODY:
            assert result == first_read_or_parse(BODY, URL)
        else:
            assert isinstance(result, ParseError) and result.__cause__ is not None  # traceback


async def test_a_worker_dying_in_a_batch_fails_none_of_it(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every task of the broken trip (and those waiting) is tried again on fresh workers."""
    trips = _trips(pool, monkeypatch)
    bodies = [BODY] * 8 + [CRASH] + [BODY] * 8
    marker = str(tmp_path / "crashed")
    results = await asyncio.gather(
        *(pool._run(crash_once, b, URL, marker, batched=True) for b in bodies)
    )
    assert os.path.exists(marker) and max(trips) > 1  # it crashed, in company
    assert results == [first_read_or_parse(b, URL) for b in bodies]


async def test_small_bodies_parse_in_a_thread_without_workers() -> None:
    pool = ParsePool(2, inline_below=len(BODY) + 1)
    try:
        assert await pool.parse(BODY, URL) == parse_bytes(BODY, URL)
        assert pool.pids == []  # never started: nothing needed a worker
    finally:
        await pool.close()


# ------------------------------------------------------------- the real bot process (feedbot run)
def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_bot_process_leaves_no_parser_processes_behind(
    sig: signal.Signals, tmp_path: Path, fake_api: FakeBotApi
) -> None:
    """SIGTERM: the bot stops its workers and exits 0. SIGKILL: the workers notice their parent
    is gone and leave by themselves."""
    from tests.test_cli import start_bot_process

    proc = start_bot_process(fake_api, tmp_path / "feedbot.json")
    try:
        fake_api.send_text(1001, "/start")
        fake_api.wait_delivered(1, 1001, timeout=30)  # up: the pool started before polling
        helpers = _descendants(proc.pid)
        assert len(helpers) >= 2  # the forkserver and at least one worker
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert _wait_gone(helpers) == set()
