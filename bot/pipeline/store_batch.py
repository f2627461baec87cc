"""Share one trip to the store's worker thread among many small calls.

Every `Store` call is a hop to its worker thread and back (two thread switches, a GIL hand-over
and a wake-up of the event loop). A poll cycle makes several small calls per feed: reading the
feed before its check, saving its next check time after a 304. `Coalescer` queues such calls
while one trip is under way and runs all of them in the next one, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.storage import Database

T = TypeVar("T")
#: how a batch reaches the database: e.g. `store.read` or a non-durable `store.transaction`
Runner = Callable[[Callable[[Database], Any]], Awaitable[Any]]
_Outcome = tuple[Any, BaseException | None]
_Batch = list[tuple[Callable[[Database], Any], asyncio.Future[Any]]]


class Coalescer:
    """`await coalescer.run(fn)` returns `fn(db)`; calls queued meanwhile share one trip.

    Each call's exception is its own; the others in its batch are not affected."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._queue: _Batch = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[[Database], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="store batch")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._run_batch(batch)
        finally:
            self._task = None

    async def _run_batch(self, batch: _Batch) -> None:
        fns = [fn for fn, _ in batch]
        try:
            outcomes: list[_Outcome] = await self._runner(lambda db: [_call(fn, db) for fn in fns])
        except Exception as exc:  # the whole trip failed (e.g. the store is closed)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), (value, error) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    async def close(self) -> None:
        """Wait for the batch under way (call before the store closes)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _call(fn: Callable[[Database], Any], db: Database) -> _Outcome:
    try:
        return fn(db), None
    except Exception as exc:
        return None, exc
