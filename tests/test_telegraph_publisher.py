"""The page publisher (bot.telegraph) against the fake Telegraph over loopback, a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.models import Entry
from bot.render.telegraph import PageDraft, page_draft
from bot.storage.tinydb.backend import TinyDBStorage
from bot.telegraph import FAILURE_REST_S, PagePublisher, TelegraphClient
from tests.fakes.telegraph import FakeTelegraph


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TinyDBStorage]:
    opened = await TinyDBStorage.open(tmp_path / "db.json")
    yield opened
    await opened.close()


def draft(n: int) -> PageDraft:
    return page_draft(
        Entry(f"k{n}", f"Post {n}", f"https://b.test/{n}", content_html=f"<p>Body {n}</p>"), "Blog"
    )


async def test_a_post_is_published_once_and_the_account_made_once(
    store: TinyDBStorage, telegraph: FakeTelegraph
) -> None:
    publisher = PagePublisher(TelegraphClient(telegraph.url), store)
    try:
        first = await publisher.publish("feed#k1", draft(1))
        again = await publisher.publish("feed#k1", draft(1))
        other = await publisher.publish("feed#k2", draft(2))
    finally:
        await publisher.aclose()
    assert first == again == telegraph.pages[0].url and other == telegraph.pages[1].url
    assert len(telegraph.pages) == 2 and telegraph.calls.count("createAccount") == 1
    assert await store.telegraph_token() == telegraph.accounts[0]


async def test_a_flood_wait_rests_exactly_that_long_and_a_failure_a_while(
    store: TinyDBStorage, telegraph: FakeTelegraph
) -> None:
    clock = Clock()
    publisher = PagePublisher(TelegraphClient(telegraph.url), store, clock=clock)
    try:
        telegraph.flood_wait = 7
        assert await publisher.publish("feed#k1", draft(1)) is None
        telegraph.flood_wait = 0
        clock.now += 6
        assert not publisher.available()
        assert await publisher.publish("feed#k1", draft(1)) is None
        assert telegraph.calls == ["createAccount"]  # resting: nothing was asked
        clock.now += 1
        assert await publisher.publish("feed#k1", draft(1)) is not None

        telegraph.down = True
        assert await publisher.publish("feed#k2", draft(2)) is None
        telegraph.down = False
        clock.now += FAILURE_REST_S - 1
        assert not publisher.available()
        clock.now += 1
        assert await publisher.publish("feed#k2", draft(2)) is not None
    finally:
        await publisher.aclose()
    assert [p.title for p in telegraph.pages] == ["Post 1", "Post 2"]


async def test_a_token_kept_before_is_used_and_no_account_is_made(
    store: TinyDBStorage, telegraph: FakeTelegraph
) -> None:
    telegraph.accounts.append("made-earlier")
    await store.keep_telegraph_token("made-earlier")
    publisher = PagePublisher(TelegraphClient(telegraph.url), store)
    try:
        assert await publisher.publish("feed#k1", draft(1))
    finally:
        await publisher.aclose()
    assert telegraph.calls == ["createPage"] and telegraph.pages[0].token == "made-earlier"
