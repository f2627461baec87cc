"""Coalescer: store calls made while a trip to the store is under way share the next trip,
run in order, and each gets its own result or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.models import Feed
from bot.pipeline.store_batch import Coalescer
from bot.storage import Database, Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "db.json")
    try:
        yield store
    finally:
        await store.close()


class CountingRunner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.trips: list[int] = []

    async def __call__(self, fn: Callable[[Database], Any]) -> Any:
        result = await self.store.transaction(fn, durable=False)
        self.trips.append(len(result))
        return result


async def test_concurrent_calls_share_trips_in_order(store: Store) -> None:
    runner = CountingRunner(store)
    batch = Coalescer(runner)

    ran: list[int] = []

    def save(i: int) -> Callable[[Database], str]:
        def fn(db: Database) -> str:
            ran.append(i)
            db.save_feed(Feed(url=f"https://f.test/{i}", title=f"t{i}"))
            return f"saved {i}"

        return fn

    results = await asyncio.gather(*(batch.run(save(i)) for i in range(50)))
    assert results == [f"saved {i}" for i in range(50)]
    assert ran == list(range(50))  # in the order the calls were made
    assert sum(runner.trips) == 50 and len(runner.trips) <= 2  # not one trip per call
    titles = await store.read(lambda db: [f.title for f in db.all_feeds()])
    assert sorted(titles) == sorted(f"t{i}" for i in range(50))


async def test_an_error_stays_with_its_own_call(store: Store) -> None:
    batch = Coalescer(store.read)

    def boom(db: Database) -> None:
        raise KeyError("no such thing")

    ok, failed, also_ok = await asyncio.gather(
        batch.run(lambda db: 1), batch.run(boom), batch.run(lambda db: 3), return_exceptions=True
    )
    assert (ok, also_ok) == (1, 3)
    assert isinstance(failed, KeyError)


async def test_a_failed_trip_fails_every_call_in_it(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.json")
    await store.close()
    batch = Coalescer(store.read)
    with pytest.raises(RuntimeError):
        await batch.run(lambda db: 1)
    await batch.close()
