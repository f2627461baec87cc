"""The poller against a real store, a real fetcher and the loopback feed server, on a fake clock:
feed health (backoff, one failing notice, recovery, pause), politeness (Retry-After, ttl,
max-age, jitter), moves, and feeds whose entries misbehave."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load
from bot.feeds.fetcher import Fetcher
from bot.models import Chat, Delivery, Feed, FetchResult
from bot.pipeline.poller import DAY, Poller
from bot.runtime import fetch_settings
from bot.service import SubscriptionService
from bot.storage.base import FeedState
from bot.storage.tinydb.backend import TinyDBStorage
from tests.fakes.feeds import hugo_feed, hugo_item, item, rss
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

CHAT = 42
INTERVAL = 60


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    store: TinyDBStorage
    poller: Poller
    service: SubscriptionService
    server: FeedServer
    clock: FakeClock

    async def subscribe(self, path: str, chat_id: int = CHAT) -> str:
        outcome = await self.service.subscribe(Chat(id=chat_id), self.server.url(path))
        assert outcome.status == "added", outcome
        return outcome.url

    async def feed(self, url: str) -> Feed:
        feed = await self.store.get_feed(url)
        assert feed is not None
        return feed

    async def check_when_due(self, url: str) -> Feed:
        """Jump the clock to the feed's next check, run it, and return the feed's new state."""
        await self.run_when_due(url)
        return await self.feed(url)

    async def run_when_due(self, url: str) -> None:
        self.clock.now = max(self.clock.now, (await self.feed(url)).next_check)
        await self.poller.check(url)

    async def drain(self) -> list[str]:
        """Texts of everything queued since the last drain (as the sender would send them)."""
        pending = await self.store.pending()
        for delivery in pending:
            await self.store.complete(delivery.id)
        return [text_of(d) for d in pending]


def text_of(delivery: Delivery) -> str:
    params = delivery.message.attempts[0].params
    return str(params.get("text") or params.get("caption") or "")


@pytest.fixture
async def rig(tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Rig]:
    settings: Settings = replace(
        load(environ={}), poll_interval=INTERVAL, allow_private=True, fetch_timeout=2.0
    )
    store = await TinyDBStorage.open(tmp_path / "db.json")
    fetcher = Fetcher(fetch_settings(settings))
    poller = Poller(store, fetcher, settings)
    clock = FakeClock()
    poller.clock = clock
    poller.notify_after, poller.pause_after, poller.max_backoff = 1000.0, 5000.0, 600.0
    service = SubscriptionService(store, fetcher, settings)
    try:
        yield Rig(store, poller, service, feed_server, clock)
    finally:
        await fetcher.aclose()
        await store.close()


# ------------------------------------------------------------------------------ feed health
async def test_failing_feed_backs_off_warns_once_and_announces_recovery(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 4)))
    url = await rig.subscribe("/f.xml")
    rig.server.set_response("/f.xml", 500, "boom")

    waits, notices = [], []
    for _ in range(8):
        feed = await rig.check_when_due(url)
        assert feed.last_check == rig.clock.now and feed.last_error_kind == "http"
        waits.append(feed.next_check - rig.clock.now)
        notices += await rig.drain()
    assert waits == [60, 120, 240, 480, 600, 600, 600, 600]  # doubling, capped
    assert feed.errors == 8 and feed.failing_since is not None
    assert "HTTP 500" in feed.last_error
    (warning,) = notices  # one notice for the whole streak
    assert "has failed since" in warning and "HTTP 500" in warning

    rig.server.set_feed("/f.xml", hugo_feed(range(1, 5)))
    feed = await rig.check_when_due(url)
    first = await rig.drain()
    assert "works again" in first[0] and "Topic 4" in first[1] and len(first) == 2
    assert (feed.errors, feed.last_error, feed.failing_since) == (0, "", None)
    assert feed.last_success == rig.clock.now
    await rig.check_when_due(url)
    assert await rig.drain() == []  # recovery is announced once


async def test_short_outage_is_not_announced(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    rig.server.set_response("/f.xml", 503, "later")
    for _ in range(4):  # 4 failures within 900 s < notify_after
        await rig.check_when_due(url)
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    await rig.check_when_due(url)
    assert await rig.drain() == []


async def test_recovery_through_not_modified_is_announced(rig: Rig) -> None:
    body = hugo_feed(range(1, 3))
    rig.server.set_feed("/f.xml", body)
    url = await rig.subscribe("/f.xml")
    rig.server.set_response("/f.xml", 502, "bad gateway")
    for _ in range(6):
        await rig.check_when_due(url)
    assert any("has failed since" in n for n in await rig.drain())
    rig.server.set_feed("/f.xml", body)  # same ETag: the next check is a 304
    hits = rig.server.hits("/f.xml")
    feed = await rig.check_when_due(url)
    assert rig.server.hits("/f.xml") == hits + 1 and rig.poller.stats.not_modified == 1
    assert [n for n in await rig.drain() if "works again" in n]
    assert not feed.failure_notified and feed.errors == 0


async def test_pause_after_long_failure_then_resume_gets_a_fresh_window(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    await rig.subscribe("/f.xml", chat_id=CHAT + 1)
    rig.server.set_response("/f.xml", 500, "boom")
    texts: list[str] = []
    while not await rig.store.due_feeds(rig.clock.now + DAY) == []:
        await rig.check_when_due(url)
        texts += await rig.drain()
        assert rig.clock.now < 1_800_000_000 + 10_000, "never paused"
    paused = [t for t in texts if "paused" in t]
    assert len(paused) == 2 and len([t for t in texts if "has failed since" in t]) == 2
    subs = await rig.store.subscriptions_for_feed(url)
    assert all(s.paused for s in subs)

    # /resume (through the store): the feed is checked again, and does not re-pause at once
    for sub in subs:
        await rig.store.save_subscription(replace(sub, paused=False))
    await rig.check_when_due(url)
    assert await rig.drain() == []
    assert not any(s.paused for s in await rig.store.subscriptions_for_feed(url))
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    await rig.check_when_due(url)
    assert len([t for t in await rig.drain() if "works again" in t]) == 2


async def test_gone_retires_feed_and_tells_subscribers_once(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    rig.server.set_response("/f.xml", 410, "gone")
    feed = await rig.check_when_due(url)
    (told,) = await rig.drain()
    assert "is gone" in told and feed.retired
    assert await rig.store.due_feeds(rig.clock.now + 2 * DAY) == []


# ------------------------------------------------------------------------------ politeness
async def test_retry_after_is_a_floor_capped_at_a_day(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    rig.server.set_response("/f.xml", 429, "slow down", {"Retry-After": "7200"})
    feed = await rig.check_when_due(url)
    assert feed.last_error_kind == "rate_limited"
    assert feed.next_check - rig.clock.now == 7200
    rig.server.set_response("/f.xml", 503, "", {"Retry-After": str(30 * 86400)})
    feed = await rig.check_when_due(url)
    assert feed.next_check - rig.clock.now == DAY


@pytest.mark.parametrize(
    ("ttl", "headers", "low", "high"),
    [
        (None, {}, INTERVAL, INTERVAL * 1.1),
        (120, {}, 7200, 7200 + 60),  # <ttl> in minutes
        (None, {"Cache-Control": "public, max-age=900"}, 900, 960),
        (5, {"Cache-Control": "max-age=1200"}, 1200, 1260),  # the larger floor wins
        (100_000, {}, DAY, DAY),  # never less often than daily
    ],
)
async def test_next_check_honours_ttl_and_max_age_within_a_day(
    rig: Rig, ttl: int | None, headers: dict[str, str], low: float, high: float
) -> None:
    rig.server.set_feed("/f.xml", rss("F", "https://f.test/", [hugo_item(1)], ttl=ttl))
    url = await rig.subscribe("/f.xml")
    later = rss("F", "https://f.test/", [hugo_item(2)], ttl=ttl)
    rig.server.set_feed("/f.xml", later, headers=headers)
    feed = await rig.check_when_due(url)
    assert low <= feed.next_check - rig.clock.now <= high


async def test_feeds_of_one_host_are_spread_by_jitter(rig: Rig) -> None:
    urls = []
    for n in range(6):
        rig.server.set_feed(f"/f{n}.xml", hugo_feed(range(1, 3), title=f"Feed {n}"))
        urls.append(await rig.subscribe(f"/f{n}.xml"))
    for url in urls:
        await rig.poller.check(url)
    offsets = {(await rig.feed(u)).next_check - rig.clock.now for u in urls}
    assert len(offsets) == 6 and all(INTERVAL <= o <= INTERVAL * 1.1 for o in offsets)


# ---------------------------------------------------------------------------------- moves
async def test_permanent_move_answered_304_still_moves_the_feed(rig: Rig) -> None:
    body = hugo_feed(range(1, 4))
    rig.server.set_feed("/old.xml", body)
    old = await rig.subscribe("/old.xml")
    rig.server.set_feed("/new.xml", body)
    rig.server.redirect("/old.xml", rig.server.url("/new.xml"), 308)
    await rig.run_when_due(old)
    new = rig.server.url("/new.xml")
    assert await rig.store.get_feed(old) is None
    assert [s.feed_url for s in await rig.store.subscriptions_for_chat(CHAT)] == [new]
    assert await rig.drain() == []


async def test_move_onto_a_feed_the_chat_already_has_merges_them(rig: Rig) -> None:
    rig.server.set_feed("/old.xml", hugo_feed(range(1, 4)))
    # another title: /sub no longer adds a second copy of a feed the chat has
    rig.server.set_feed("/new.xml", hugo_feed(range(1, 4), title="New home"))
    old = await rig.subscribe("/old.xml")
    new = await rig.subscribe("/new.xml")
    rig.server.redirect("/old.xml", new, 301)
    rig.server.set_feed("/new.xml", hugo_feed(range(1, 5)))
    await rig.run_when_due(old)
    subs = await rig.store.subscriptions_for_chat(CHAT)
    assert [s.feed_url for s in subs] == [new]
    await rig.check_when_due(new)
    texts = await rig.drain()
    assert len([t for t in texts if "Topic 4" in t]) == 1  # once, though two subs led to it


async def test_temporary_redirect_keeps_the_url(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    rig.server.set_feed("/tmp.xml", hugo_feed(range(1, 4)))
    rig.server.redirect("/f.xml", rig.server.url("/tmp.xml"), 307)
    await rig.check_when_due(url)
    assert await rig.store.get_feed(url) is not None
    assert ["Topic 3" in t for t in await rig.drain()] == [True]


async def test_title_change_is_followed_quietly(rig: Rig) -> None:
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3), title="Old name"))
    url = await rig.subscribe("/f.xml")
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3), title="New name"))
    feed = await rig.check_when_due(url)
    assert feed.title == "New name" and await rig.drain() == []


# ------------------------------------------------------------------ entries that misbehave
def _bare(title: str, body: str = "text") -> str:
    """An item with neither guid nor link nor date."""
    return f"<item><title>{title}</title><description>{body}</description></item>"


def _json_feed(ids: list[int]) -> str:
    items = [
        {"id": f"j{n}", "title": f"JSON post {n}", "content_text": f"body {n} <not html> & co"}
        for n in ids
    ]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items})


SCENARIOS: dict[str, tuple[list[str], list[str], str]] = {
    # name: (first document(s) seen at subscription, later documents, text of the one new post)
    "no guid, link or date": (
        [rss("B", "https://b.test/", [_bare("alpha"), _bare("beta")])],
        [
            rss("B", "https://b.test/", [_bare("gamma"), _bare("alpha"), _bare("beta")]),
            rss("B", "https://b.test/", [_bare("beta"), _bare("gamma"), _bare("alpha")]),
        ],
        "gamma",
    ),
    "duplicate guids in one feed": (
        [rss("D", "https://d.test/", [hugo_item(1, guid="same"), hugo_item(2, guid="same")])],
        [
            rss("D", "https://d.test/", [hugo_item(3), hugo_item(1, guid="same"),
                                         hugo_item(2, guid="same")]),
            rss("D", "https://d.test/", [hugo_item(2, guid="same"), hugo_item(3),
                                         hugo_item(1, guid="same")]),
        ],
        "Topic 3",
    ),
    "items reordered": (
        [hugo_feed(range(1, 6))],
        [
            rss("R", "https://r.test/", [hugo_item(n) for n in (3, 1, 6, 5, 2, 4)]),
            rss("R", "https://r.test/", [hugo_item(n) for n in (6, 5, 4, 3, 2, 1)]),
        ],
        "Topic 6",
    ),
    "JSON Feed 1.1": ([_json_feed([1, 2])], [_json_feed([3, 1, 2]), _json_feed([2, 3, 1])],
                      "JSON post 3"),
    "BOM and undeclared entities": (
        ["\ufeff" + rss("E", "https://e.test/", [item("e1", "caf&eacute; one", "https://e.test/1",
                                                        "Mon, 02 Feb 2026 10:00:00 GMT", "x")])],
        ["\ufeff" + rss("E", "https://e.test/", [
            item("e2", "na&iuml;ve &nbsp;two", "https://e.test/2",
                 "Tue, 03 Feb 2026 10:00:00 GMT", "y &hellip;"),
            item("e1", "caf&eacute; one", "https://e.test/1", "Mon, 02 Feb 2026 10:00:00 GMT",
                 "x"),
        ])],
        "two",
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_hard_feeds_send_each_new_post_once(rig: Rig, name: str) -> None:
    first, later, expected = SCENARIOS[name]
    rig.server.set_feed("/f.xml", first[0])
    url = await rig.subscribe("/f.xml")
    sent: list[Delivery] = []
    for doc in later:
        rig.server.set_feed("/f.xml", doc)
        await rig.check_when_due(url)
        sent += await rig.store.pending()
        await rig.drain()
    assert [expected in text_of(d) for d in sent] == [True], [text_of(d) for d in sent]
    for attempt in sent[0].message.attempts:
        assert api_call_error(attempt.method, attempt.params) is None


async def test_next_check_counts_from_the_start_of_the_check(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow fetch does not stretch the feed's period (200 with a new post, then a 304)."""
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    fetch = rig.poller.fetcher.fetch

    async def slow_fetch(*args: Any, **kwargs: Any) -> FetchResult:
        result = await fetch(*args, **kwargs)
        rig.clock.now += INTERVAL / 2
        return result

    monkeypatch.setattr(rig.poller.fetcher, "fetch", slow_fetch)
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 4)))
    for expect_new in (1, 0):
        started = rig.clock.now = max(rig.clock.now, (await rig.feed(url)).next_check)
        await rig.poller.check(url)
        assert len(await rig.drain()) == expect_new
        assert INTERVAL <= (await rig.feed(url)).next_check - started <= INTERVAL * 1.1


async def test_an_interval_set_during_a_check_is_what_the_check_schedules_by(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/set interval while the feed is being fetched: the check's commit (a 200 with a new
    post, then a 304) counts the next check by the new interval, not the old one."""
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = await rig.subscribe("/f.xml")
    fetch = rig.poller.fetcher.fetch
    interval = {"value": 3600}

    async def fetch_while_set(*args: Any, **kwargs: Any) -> FetchResult:
        await rig.service.update_options(CHAT, url, {"interval": interval["value"]})
        return await fetch(*args, **kwargs)

    monkeypatch.setattr(rig.poller.fetcher, "fetch", fetch_while_set)
    rig.server.set_feed("/f.xml", hugo_feed(range(1, 4)))
    for expect_new, value in ((1, 3600), (0, 7200)):
        interval["value"] = value
        started = rig.clock.now = max(rig.clock.now, (await rig.feed(url)).next_check)
        await rig.poller.check(url)
        assert len(await rig.drain()) == expect_new
        assert value <= (await rig.feed(url)).next_check - started <= value * 1.1


# ------------------------------------------- only changed items parsed (bot.feeds.parse_delta)
async def _forget_seen(store: TinyDBStorage, url: str) -> None:
    feed = await store.get_feed(url)
    assert feed is not None
    feed.seen = []
    await store.save_feed(feed)


def _serve(server: FeedServer, newest: int) -> None:
    """The feed of posts 1..newest, without validators: every check is a 200."""
    headers = {"Content-Type": "application/rss+xml"}
    server.set_response("/f.xml", 200, hugo_feed(range(1, newest + 1)), headers=headers)


async def test_poller_parses_only_the_new_item_and_never_queues_a_stub(rig: Rig) -> None:
    _serve(rig.server, 19)
    url = await rig.subscribe("/f.xml")
    await rig.poller.check(url)  # the bytes /sub read: nothing parsed
    assert rig.poller.stats.take().items_parsed == 0
    _serve(rig.server, 20)
    await rig.poller.check(url)
    assert rig.poller.stats.take().items_parsed == 20  # no item known yet
    assert len(await rig.drain()) == 1

    _serve(rig.server, 21)
    await rig.poller.check(url)
    stats = rig.poller.stats.take()
    assert stats.items_parsed == 1
    (text,) = await rig.drain()
    assert "ML Math Derivations (21)" in text

    await _forget_seen(rig.store, url)  # the seen-set lost the known items
    _serve(rig.server, 22)
    await rig.poller.check(url)
    stats = rig.poller.stats.take()
    assert stats.items_parsed == 22  # the stubs would be new: parsed whole instead
    texts = await rig.drain()
    assert texts and stats.queued == len(texts)
    assert all(re.search(r"ML Math Derivations \(\d+\): Topic \d+", t) for t in texts), texts
    assert any("ML Math Derivations (22)" in t for t in texts)


async def test_item_records_survive_a_restart_so_only_the_new_item_is_parsed(
    rig: Rig, tmp_path: Path
) -> None:
    """The records of a document's items are stored with the feed: a restarted bot (a fresh
    store and poller on the same file) parses only the item that changed."""
    _serve(rig.server, 19)
    url = await rig.subscribe("/f.xml")
    _serve(rig.server, 20)
    await rig.poller.check(url)
    assert rig.poller.stats.take().items_parsed == 20
    assert len(await rig.drain()) == 1
    await rig.store.close()
    rig.store = await TinyDBStorage.open(tmp_path / "db.json")  # a restart
    rig.poller = Poller(rig.store, rig.poller.fetcher, rig.poller.settings)
    rig.poller.clock = rig.clock

    _serve(rig.server, 21)
    await rig.run_when_due(url)
    stats = rig.poller.stats.take()
    assert (stats.items_parsed, stats.new_entries) == (1, 1)
    (text,) = await rig.drain()
    assert "ML Math Derivations (21)" in text
    await rig.store.close()


async def test_an_unchanged_body_from_a_server_without_validators_is_not_parsed(rig: Rig) -> None:
    """A server that ignores conditional GET answers 200 with the same bytes: after a restart
    (no item memory) that costs no parse, and the feed's own <ttl> still spaces the checks."""
    headers = {"Content-Type": "application/rss+xml"}
    body = hugo_feed(range(1, 6)).replace("<channel>", "<channel><ttl>30</ttl>", 1)
    rig.server.set_response("/plain.xml", 200, body, headers=headers)
    url = await rig.subscribe("/plain.xml")
    await rig.poller.check(url)  # the first check commits the document
    rig.poller.stats.take()
    rig.poller = Poller(rig.store, rig.poller.fetcher, rig.poller.settings)  # a restart
    rig.poller.clock = rig.clock

    before = rig.clock.now
    feed = await rig.check_when_due(url)
    stats = rig.poller.stats.take()
    assert (stats.items_parsed, stats.same_body, stats.new_entries) == (0, 1, 0)
    assert feed.next_check >= rig.clock.now + 30 * 60 > before + INTERVAL
    assert await rig.drain() == []

    changed = hugo_feed(range(1, 7)).replace("<channel>", "<channel><ttl>30</ttl>", 1)
    rig.server.set_response("/plain.xml", 200, changed, headers=headers)
    await rig.check_when_due(url)
    stats = rig.poller.stats.take()
    assert (stats.same_body, stats.new_entries) == (0, 1)
    (text,) = await rig.drain()
    assert "ML Math Derivations (6)" in text


# ------------------------------------------------------------------------------ scheduling
class ClaimWatch(TinyDBStorage):
    """The real store, noting how many claimed checks still waited for a slot at each claim."""

    poller: Poller
    waiting_at_claims: list[int]

    async def claim_due_feeds(self, now: float, limit: int, lease_s: float) -> list[FeedState]:
        running = self.poller.settings.max_concurrent_checks - self.poller._slots._value
        self.waiting_at_claims.append(len(self.poller._in_flight) - running)
        return await super().claim_due_feeds(now, limit, lease_s)


async def test_more_feeds_are_claimed_while_checks_still_wait_for_a_slot(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """A claim takes a store trip: made only once no claimed check was left waiting, it left
    check slots idle meanwhile (half of them at times, in bench.poll)."""
    settings = replace(load(environ={}), allow_private=True, max_concurrent_checks=4)
    store = await ClaimWatch.open(tmp_path / "db.json")
    fetcher = Fetcher(fetch_settings(settings))
    poller = Poller(store, fetcher, settings)
    store.poller, store.waiting_at_claims = poller, []
    service = SubscriptionService(store, fetcher, settings)
    try:
        for i in range(40):
            feed_server.set_feed(f"/f{i}.xml", hugo_feed(range(3 * i + 1, 3 * i + 3), f"Feed {i}"))
            outcome = await service.subscribe(Chat(id=CHAT), feed_server.url(f"/f{i}.xml"))
            assert outcome.status == "added"
            feed_server.slow(f"/f{i}.xml", 0.02)
        poller.clock = FakeClock(2_000_000_000.0)  # every feed is due
        stats = await poller.run_once()
        assert stats.checked == 40
        later = store.waiting_at_claims[1:]  # the first claim starts from nothing
        assert len(later) >= 4 and all(waiting > 0 for waiting in later), later
    finally:
        await fetcher.aclose()
        await store.close()
