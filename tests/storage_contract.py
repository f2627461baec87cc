"""The storage contract: what every backend of bot.storage.base.Storage must do.

Written against the protocol only. Each case takes an `Opener` (opens the backend's storage at
one place; opening again after `close()` must find everything) and closes what it opens.
tests/test_storage_contract.py runs every case against every backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from bot.feeds.identity import fingerprint as P
from bot.models import ApiCall, Chat, Delivery, DigestItem, Feed, RenderedMessage, Subscription
from bot.models import SubscriptionOptions as Options
from bot.storage.base import (
    FeedCommit,
    NewSubscription,
    Stamp,
    Storage,
    StorageConflict,
    StoredState,
    SubscriptionMove,
)

Opener = Callable[[], Awaitable[Storage]]
Case = Callable[[Opener], Awaitable[None]]
CASES: list[Case] = []

A, B, C = "https://a.test/feed", "https://b.test/feed", "https://c.test/feed"


def case(fn: Case) -> Case:
    CASES.append(fn)
    return fn


def post(n: int, chat: int = 1, url: str = A, **fields: object) -> Delivery:
    message = RenderedMessage((ApiCall("sendMessage", {"text": f"post {n}"}),))
    made = Delivery(id=f"d{n}", chat_id=chat, feed_url=url, entry_key=f"k{n}", message=message,
                    created=float(n))
    return replace(made, **fields)  # type: ignore[arg-type]


async def subscribed(store: Storage, chat: int, url: str, **sub: object) -> None:
    new = NewSubscription(
        Subscription(chat_id=chat, feed_url=url, **sub),  # type: ignore[arg-type]
        await store.get_feed(url) or Feed(url=url, title=url),
        await store.get_chat(chat) or Chat(id=chat),
    )
    await store.add_subscriptions([new], Stamp())


# --------------------------------------------------------------------- feeds
@case
async def feeds_round_trip_and_survive_a_reopen(open_storage: Opener) -> None:
    store = await open_storage()
    feed = Feed(url=A, title="A — 一", link="https://a.test/", etag='"e"', seen=[P("p1"), P("p2")],
                next_check=5.0, errors=2, last_reason={"key": "error_timeout", "args": {}})
    await store.save_feed(feed)
    assert await store.get_feed(A) == feed
    assert await store.get_feed(B) is None
    got = await store.get_feed(A)
    assert got is not None
    got.seen = [*got.seen, P("p3")]  # a read is a copy
    assert (await store.get_feed(A)) == feed
    await store.close()
    store = await open_storage()
    assert await store.get_feed(A) == feed
    await store.close()


@case
async def due_feeds_are_those_with_an_active_subscriber(open_storage: Opener) -> None:
    store = await open_storage()
    for url, next_check in ((A, 30.0), (B, 10.0), (C, 20.0)):
        await store.save_feed(Feed(url=url, next_check=next_check))
    await subscribed(store, 1, A)
    await subscribed(store, 1, B)
    await subscribed(store, 2, C, paused=True)
    assert [f.url for f in await store.due_feeds(100.0)] == [B, A]  # soonest first
    assert [f.url for f in await store.due_feeds(15.0)] == [B]
    await store.save_chat(Chat(id=1, paused=True))  # a paused chat's feeds wait
    assert await store.due_feeds(100.0) == []
    await store.save_chat(Chat(id=1))
    retired = await store.get_feed(B)
    assert retired is not None
    await store.save_feed(replace(retired, retired=True))
    assert [f.url for f in await store.due_feeds(100.0)] == [A]
    await store.close()


@case
async def postpone_check_is_kept_after_a_clean_close(open_storage: Opener) -> None:
    store = await open_storage()
    await store.save_feed(Feed(url=A, next_check=1.0))
    await store.postpone_check(A, 99.0)
    await store.postpone_check(B, 99.0)  # no such feed: nothing happens
    assert (await store.get_feed(A) or Feed(B)).next_check == 99.0
    await store.close()
    store = await open_storage()
    assert (await store.get_feed(A) or Feed(B)).next_check == 99.0
    assert await store.get_feed(B) is None
    await store.close()


# ------------------------------------------------------------- subscriptions
@case
async def subscription_queries_by_chat_and_by_feed(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 7, B, created=1.0)
    await subscribed(store, 7, A, created=2.0, options=Options(silent=True, filters="x"))
    await subscribed(store, 3, A, created=3.0, thread_id=9)
    mine = await store.subscriptions_for_chat(7)
    assert [(s.feed_url, s.created) for s in mine] == [(B, 1.0), (A, 2.0)]  # /list order
    assert mine[1].options == Options(silent=True, filters="x")
    assert [(s.chat_id, s.thread_id) for s in await store.subscriptions_for_feed(A)] == [
        (3, 9), (7, None)]  # by chat id
    assert await store.subscriptions_for_chat(8) == []
    await store.save_subscription(replace(mine[0], paused=True, paused_at=4.0))
    (b,) = await store.subscriptions_for_feed(B)
    assert b.paused and b.paused_at == 4.0
    await store.close()


#: a filter in the full syntax (issue 18): quotes, backslashes, slashes and CJK, stored as text
FULL_FILTER = 'V2:title:/\\brust\\b|go\\// AND NOT author:"bot \\" x", !categories:广告'


@case
async def filters_in_the_full_syntax_are_stored_verbatim(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 7, A, options=Options(filters=FULL_FILTER))
    await store.save_chat(Chat(id=8, filters=FULL_FILTER))
    await store.close()
    store = await open_storage()
    (sub,) = await store.subscriptions_for_chat(7)
    assert sub.options.filters == FULL_FILTER
    assert (await store.get_chat(8) or Chat(0)).filters == FULL_FILTER
    await store.close()


@case
async def templates_and_hashtags_round_trip_and_survive_a_reopen(open_storage: Opener) -> None:
    template = '<b>{title}</b> «{feed}»\n{summary}\n<a href="{link}">→</a> {{x}} \\n 深度'
    options = Options(style=template, hashtags=False, tags="news 深度学习")
    store = await open_storage()
    await subscribed(store, 7, A, options=options)
    await subscribed(store, 7, B, options=Options(style="compact"))
    await store.close()
    store = await open_storage()
    a, b = await store.subscriptions_for_chat(7)
    assert a.options == options
    assert (b.options.style, b.options.hashtags, b.options.tags) == ("compact", True, "")
    await store.close()


@case
async def a_feed_goes_with_its_last_subscription(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 1, A)
    await subscribed(store, 2, A)
    await subscribed(store, 1, B)
    assert await store.remove_subscription(1, A)
    assert await store.get_feed(A) is not None  # chat 2 still follows it
    assert not await store.remove_subscription(1, A)
    await store.remove_subscriptions(2, [A, C])
    assert await store.get_feed(A) is None
    assert [s.feed_url for s in await store.subscriptions_for_chat(1)] == [B]
    await store.close()


@case
async def add_subscriptions_stores_feed_chat_and_subscription_at_once(open_storage: Opener) -> None:
    store = await open_storage()
    state = await store.load_chat(5)
    assert state.chat is None and state.rows == []
    chat = Chat(id=5, type="group", seen=[P("p1")], defaults={"silent": True})
    await store.add_subscriptions([
        NewSubscription(Subscription(chat_id=5, feed_url=A, created=1.0), Feed(A, seen=[P("p1")]),
                        chat),
        NewSubscription(Subscription(chat_id=5, feed_url=B, created=2.0), Feed(B), chat),
    ], state.stamp)
    state = await store.load_chat(5)
    assert state.chat == chat
    assert [(r.subscription.feed_url, r.feed.seen) for r in state.rows] == [(A, [P("p1")]), (B, [])]
    await store.close()


@case
async def a_new_subscription_marks_the_feed_seen_in_the_stored_feed_and_chat(
    open_storage: Opener,
) -> None:
    store = await open_storage()
    await store.save_feed(Feed(url=A, title="stored", etag='"1"', seen=[P("p1"), P("p2"), P("p3")],
                               retired=True))
    await store.save_chat(Chat(id=5, seen=[P("p2"), P("q")], lang="zh"))
    state = await store.load_chat(5)
    await store.add_subscriptions([NewSubscription(
        Subscription(5, A), Feed(url=A, title="template"), Chat(id=5),
        prints=[P("p2"), P("p4")], feed_cap=3, chat_cap=3,
    )], state.stamp)
    feed = await store.get_feed(A)
    assert feed is not None and (feed.title, feed.etag, feed.retired) == ("stored", '"1"', False)
    assert feed.seen == [P("p3"), P("p2"), P("p4")]  # those seen again are the newest
    chat = await store.get_chat(5)
    assert chat is not None and chat.lang == "zh"
    assert chat.seen == [P("p2"), P("q"), P("p4")]  # those there stay put
    await store.close()


@case
async def chats_subscribing_to_one_feed_at_once_do_not_conflict(open_storage: Opener) -> None:
    store = await open_storage()
    states = [await store.load_chat(c) for c in range(1, 6)]
    for chat_id, state in enumerate(states, start=1):
        await store.add_subscriptions([NewSubscription(
            Subscription(chat_id, A), Feed(url=A), Chat(id=chat_id), prints=[P(f"p{chat_id}")]
        )], state.stamp)
    assert [s.chat_id for s in await store.subscriptions_for_feed(A)] == [1, 2, 3, 4, 5]
    assert (await store.get_feed(A) or Feed(B)).seen == [P(f"p{n}") for n in range(1, 6)]
    await store.close()


@case
async def add_subscriptions_conflicts_when_the_chat_changed(open_storage: Opener) -> None:
    store = await open_storage()
    state = await store.load_chat(5)
    await subscribed(store, 5, B)  # meanwhile (another /sub): the chat's set changed
    with pytest.raises(StorageConflict):
        await store.add_subscriptions(
            [NewSubscription(Subscription(5, A), Feed(A), Chat(id=5))], state.stamp
        )
    assert await store.get_feed(A) is None  # nothing of it was written
    assert [s.feed_url for s in await store.subscriptions_for_chat(5)] == [B]
    state = await store.load_chat(5)
    feed = await store.get_feed(B)
    assert feed is not None
    await store.save_feed(replace(feed, title="renamed"))  # a feed the decision read changed
    with pytest.raises(StorageConflict):
        await store.add_subscriptions(
            [NewSubscription(Subscription(5, A), Feed(A), Chat(id=5))], state.stamp
        )
    await store.close()


@case
async def update_subscriptions_checks_the_feed_it_read(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 1, A)
    await subscribed(store, 2, A)
    state = await store.load_feed(A)
    assert state is not None
    sub = replace(state.subscriptions[0], options=Options(interval=60))
    await store.update_subscriptions([sub], [replace(state.feed, next_check=7.0)], state.stamp)
    (first, _) = await store.subscriptions_for_feed(A)
    assert first.options.interval == 60
    assert (await store.get_feed(A) or Feed(B)).next_check == 7.0
    with pytest.raises(StorageConflict):  # the stamp was used up by that write
        await store.update_subscriptions([replace(sub, paused=True)], [], state.stamp)
    assert not (await store.subscriptions_for_feed(A))[0].paused
    await store.close()


# --------------------------------------------------------------------- chats
@case
async def chats_round_trip_and_conflict_on_a_stale_read(open_storage: Opener) -> None:
    store = await open_storage()
    chat = Chat(id=-100, type="supergroup", title="群", lang="zh", seen=[P("p")], filters="!ads",
                defaults={"style": "title"}, choices={"t": {"target": -100, "page": "p"}},
                notices=5_000_000_001,  # where its notices go (issue 18): a user id, 64-bit
                timezone="Europe/Berlin")
    await store.save_chat(chat)
    assert await store.get_chat(-100) == chat
    record = await store.read_chat(-100)
    assert record.chat == chat
    await store.save_chat(replace(chat, title="renamed"))  # someone else, meanwhile
    with pytest.raises(StorageConflict):
        await store.save_chat(replace(chat, lang="en"), record.stamp)
    assert (await store.get_chat(-100) or Chat(0)).lang == "zh"
    fresh = await store.read_chat(-100)
    await store.save_chat(replace(chat, lang="en"), fresh.stamp)
    assert (await store.get_chat(-100) or Chat(0)).lang == "en"
    unknown = await store.read_chat(42)
    assert unknown.chat is None
    await store.save_chat(Chat(id=42), unknown.stamp)  # creating it counts as a change too
    with pytest.raises(StorageConflict):
        await store.save_chat(Chat(id=42, title="x"), unknown.stamp)
    await store.close()


@case
async def a_migrated_chat_takes_its_subscriptions_and_outbox(open_storage: Opener) -> None:
    store = await open_storage()
    await store.save_chat(Chat(id=-5, type="group", title="G", lang="zh"))
    await subscribed(store, -5, A)
    await store.enqueue([post(1, -5), post(2, 9)])
    await store.migrate_chat(-5, -1005)
    assert await store.get_chat(-5) is None
    moved = await store.get_chat(-1005)
    assert moved is not None and moved.type == "supergroup" and moved.lang == "zh"
    assert [s.chat_id for s in await store.subscriptions_for_chat(-1005)] == [-1005]
    assert await store.subscriptions_for_chat(-5) == []
    assert [(d.id, d.chat_id) for d in await store.pending()] == [("d1", -1005), ("d2", 9)]
    await store.close()


# -------------------------------------------------------------------- outbox
@case
async def the_outbox_keeps_each_chats_order(open_storage: Opener) -> None:
    store = await open_storage()
    await store.enqueue([post(1, 2), post(2, 1), post(3, 2)])
    await store.enqueue([post(4, 1, reply_to_previous=True, thread_id=3, silent=True,
                              not_before=1_796_360_400.5)])  # held by quiet hours
    pending = await store.pending()
    assert [d.id for d in pending] == ["d2", "d4", "d1", "d3"]  # by chat, then seq
    seqs = {d.id: d.seq for d in pending}
    assert seqs["d1"] < seqs["d2"] < seqs["d3"] < seqs["d4"]  # numbered as queued
    last = pending[1]
    assert last.reply_to_previous and last.thread_id == 3 and last.silent
    assert last.not_before == 1_796_360_400.5
    assert await store.outbox_depth() == 4
    assert await store.outbox_depth(2) == 2
    await store.complete("d2")
    await store.complete("d2")  # twice is once
    await store.record_attempt(replace(pending[2], attempts=3))
    await store.close()
    store = await open_storage()
    pending = await store.pending()
    assert [(d.id, d.attempts) for d in pending] == [("d4", 0), ("d1", 3), ("d3", 0)]
    assert await store.drop_chat_deliveries(2) == 2
    assert await store.drop_chat_deliveries(2) == 0
    assert [d.id for d in await store.pending()] == ["d4"]
    await store.enqueue([post(5, 1)])
    assert [d.id for d in await store.pending()] == ["d4", "d5"]  # seq goes on after a reopen
    await store.close()


# --------------------------------------------------------------- a check
async def _two_subscribers(store: Storage) -> None:
    await store.save_feed(Feed(url=A, title="A", seen=[P("old")]))
    await subscribed(store, 1, A, created=1.0)
    await subscribed(store, 2, A, created=2.0)
    await store.save_chat(Chat(id=1, seen=[P("x")], lang="zh"))


@case
async def load_feed_reads_what_a_check_decides_on(open_storage: Opener) -> None:
    store = await open_storage()
    assert await store.load_feed(A) is None
    await _two_subscribers(store)
    state = await store.load_feed(A)
    assert state is not None and state.feed.seen == [P("old")]
    assert [s.chat_id for s in state.subscriptions] == [1, 2]
    assert state.chats[1].lang == "zh" and state.chats[1].seen == [P("x")]
    await store.close()


@case
async def commit_check_writes_everything_at_once(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    state = await store.load_feed(A)
    assert state is not None
    feed = replace(state.feed, seen=[P("old"), P("new")], etag='"2"', next_check=50.0)
    chats = [replace(state.chats[1], seen=[P("x"), P("new")]), Chat(id=2, seen=[P("new")])]
    await store.commit_check(FeedCommit(
        feed, state.stamp, chats=chats, deliveries=[post(1, 1), post(2, 2), post(3, 2)]
    ))
    await store.close()
    store = await open_storage()
    assert await store.get_feed(A) == feed
    assert [(await store.get_chat(c) or Chat(0)).seen for c in (1, 2)] == [["x", "new"], ["new"]]
    assert [d.id for d in await store.pending()] == ["d1", "d2", "d3"]
    await store.close()


@case
async def commit_check_reports_a_conflict_and_writes_nothing(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    meanwhile = {
        "a chat changed": lambda s: s.save_chat(Chat(id=2, title="renamed")),
        "a subscription paused": lambda s: s.save_subscription(Subscription(1, A, paused=True)),
        "the feed changed": lambda s: s.save_feed(Feed(url=A, title="A", seen=[P("old"), P("o2")])),
        "a chat left": lambda s: s.remove_subscription(2, A),
    }
    for what, change in meanwhile.items():
        state = await store.load_feed(A)
        assert state is not None, what
        before = (await store.get_feed(A), await store.get_chat(1), await store.pending())
        await change(store)
        after_change = (await store.get_feed(A), await store.get_chat(1))
        commit = FeedCommit(replace(state.feed, seen=[P("new")]), state.stamp,
                            chats=[Chat(id=1, seen=[P("new")])], deliveries=[post(1, 1)])
        with pytest.raises(StorageConflict):
            await store.commit_check(commit)
        assert (await store.get_feed(A), await store.get_chat(1)) == after_change, what
        assert await store.pending() == before[2] == [], what
    await store.close()


@case
async def a_permanent_move_takes_state_subscriptions_and_outbox(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    await store.enqueue([post(1, 1)])
    state = await store.load_feed(A)
    assert state is not None
    await store.commit_check(FeedCommit(
        replace(state.feed, seen=[P("old"), P("n")]), state.stamp, deliveries=[post(2, 2)],
        moved_to=B,
    ))
    assert await store.get_feed(A) is None
    moved = await store.get_feed(B)
    assert moved is not None and moved.seen == [P("old"), P("n")]
    assert [s.chat_id for s in await store.subscriptions_for_feed(B)] == [1, 2]
    assert {d.feed_url for d in await store.pending()} == {B}
    await store.close()


@case
async def a_subscription_moves_to_the_feed_record_of_its_fetch_settings(
    open_storage: Opener,
) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    await store.enqueue([post(1, 1), post(2, 2)])
    marked = A + "#feedbot-h=t1"
    headers = {"Cookie": "member=1", "Authorization": "Basic dTpw"}
    chat, feed = await store.load_chat(1), await store.load_feed(A)
    assert feed is not None
    (sub,) = [s for s in feed.subscriptions if s.chat_id == 1]
    sub.options.silent = True
    moving = replace(sub, feed_url=marked)
    new = Feed(url=marked, title="A", seen=[P("p1")], request_headers=headers)
    await store.move_subscription(SubscriptionMove(1, A, moving, new), chat.stamp | feed.stamp)
    with pytest.raises(StorageConflict):  # decided on what is stale now
        await store.move_subscription(SubscriptionMove(1, A, moving, new), chat.stamp)
    await store.close()
    store = await open_storage()
    stored = await store.get_feed(marked)
    assert stored is not None and stored.request_headers == headers
    assert stored.seen == [P("p1")]
    (moved,) = await store.subscriptions_for_chat(1)
    assert moved.feed_url == marked and moved.options.silent and moved.thread_id == sub.thread_id
    assert [s.chat_id for s in await store.subscriptions_for_feed(A)] == [2]
    assert {(d.chat_id, d.feed_url) for d in await store.pending()} == {(1, marked), (2, A)}
    # back to the plain record, which another chat still follows: that record is kept as is
    chat, feed = await store.load_chat(1), await store.load_feed(marked)
    assert feed is not None
    back = SubscriptionMove(1, marked, replace(moved, feed_url=A), Feed(url=A, title="new"))
    await store.move_subscription(back, chat.stamp | feed.stamp)
    assert await store.get_feed(marked) is None  # nobody follows it any more
    plain = await store.get_feed(A)
    assert plain is not None and plain.title != "new" and plain.request_headers == {}
    assert [s.chat_id for s in await store.subscriptions_for_feed(A)] == [1, 2]
    assert {d.feed_url for d in await store.pending()} == {A}
    await store.close()


@case
async def not_modified_failure_and_resume_are_commits_too(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    state = await store.load_feed(A)
    assert state is not None
    await store.record_not_modified(FeedCommit(replace(state.feed, next_check=11.0), state.stamp))
    with pytest.raises(StorageConflict):
        await store.record_failure(FeedCommit(replace(state.feed, errors=1), state.stamp))
    state = await store.load_feed(A)
    assert state is not None and state.feed.next_check == 11.0
    paused = [replace(s, paused=True, paused_at=3.0) for s in state.subscriptions]
    await store.record_failure(FeedCommit(
        replace(state.feed, errors=9, failure_notified=True), state.stamp,
        subscriptions=paused, deliveries=[post(1, 1), post(2, 2)],
    ))
    assert await store.due_feeds(1e12) == []  # every subscriber paused
    state = await store.load_feed(A)
    assert state is not None and state.feed.errors == 9
    sub = replace(state.subscriptions[0], paused=False, paused_at=None)
    await store.resume_subscription(FeedCommit(
        replace(state.feed, next_check=0.0), state.stamp, subscriptions=[sub],
        chats=[replace(state.chats[1], seen=[P("x"), P("y")])], deliveries=[post(3, 1)],
    ))
    state = await store.load_feed(A)
    assert state is not None and state.feed.failure_notified  # as that commit left it
    await store.record_not_modified(FeedCommit(replace(state.feed, failure_notified=False),
                                               state.stamp, deliveries=[post(4, 1)]))
    await store.close()
    store = await open_storage()
    assert [f.url for f in await store.due_feeds(1e12)] == [A]
    feed = await store.get_feed(A)
    assert feed is not None and not feed.failure_notified and feed.errors == 9
    assert (await store.get_chat(1) or Chat(0)).seen == [P("x"), P("y")]
    assert [d.id for d in await store.pending()] == ["d1", "d3", "d4", "d2"]
    await store.close()


# ------------------------------------------------------------------ the whole
@case
async def stats_count_what_is_stored(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    await subscribed(store, 3, B, paused=True)
    await subscribed(store, 3, C)
    for url, fields in ((B, {"errors": 2}), (C, {"errors": 1, "retired": True})):
        feed = await store.get_feed(url)
        assert feed is not None
        await store.save_feed(replace(feed, **fields))  # type: ignore[arg-type]
    await store.enqueue([post(1), post(2)])
    stats = await store.stats()
    assert (stats.chats, stats.feeds, stats.subscriptions, stats.paused) == (3, 3, 4, 1)
    assert (stats.outbox, stats.failing, stats.retired) == (2, 1, 1)
    await store.flush_due()
    await store.close()


# ------------------------------------------------------------------ the whole
def everything() -> StoredState:
    """A state with every kind of record, each field away from its default somewhere."""
    busy = Feed(url=A, title="A", link="https://a.test/", etag='"e1"',
                last_modified="Wed, 02 Dec 2026 08:00:00 GMT", seen=[P("a1"), P("a2")],
                next_check=123.5, last_check=100.0, last_success=90.0, last_new_entry=80.0,
                errors=2, last_error="timed out", last_error_kind="timeout",
                last_reason={"key": "error_timeout", "args": {}}, failing_since=95.0,
                failure_notified=True, last_paused=70.0, body_digest="d" * 32, ttl_minutes=60,
                item_records=b"\x00\x01records")
    chats = [
        Chat(id=-100, type="supergroup", title="G", lang="de", seen=[P("a1")], filters="-ads",
             defaults={"silent": True}, choices={"t1": {"urls": [B], "page": "https://b.test/"}}),
        Chat(id=1, failures=1),
    ]
    subs = [
        Subscription(-100, A, created=5.0, thread_id=7, options=Options(silent=True, filters="x"),
                     page="https://a.test/"),
        Subscription(-100, B, created=6.0, paused=True, paused_at=60.0),
        Subscription(1, A, created=4.0),
    ]
    deliveries = [post(2, chat=-100, seq=11), post(3, chat=-100, seq=14, attempts=2),
                  post(1, chat=1, seq=12, thread_id=7, silent=True, reply_to_previous=True)]
    digest = [item(1, chat=-100, thread_id=7), item(2, chat=1, due=50.0)]
    return StoredState(
        [busy, Feed(url=B, retired=True)], chats, subs, deliveries, digest
    ).sorted()


@case
async def import_all_replaces_everything_and_export_all_reads_it_back(open_storage: Opener) -> None:
    store = await open_storage()
    assert (await store.export_all()).empty
    await subscribed(store, 9, C)  # what was there before goes
    await store.enqueue([post(99, chat=9, url=C)])
    state = everything()
    await store.import_all(state)
    assert await store.export_all() == state
    assert await store.pending() == state.deliveries  # by chat, then seq, as imported
    assert await store.get_chat(9) is None and await store.get_feed(C) is None
    assert [f.url for f in await store.due_feeds(1000.0)] == [A]  # B is retired
    await store.enqueue([post(4, chat=1)])  # numbered after the imported ones
    assert (await store.pending())[-1].seq > 14
    await store.close()
    store = await open_storage()
    after = await store.export_all()
    assert replace(after, deliveries=after.deliveries[:-1]) == state
    await store.close()


@case
async def export_all_reads_what_the_operations_wrote(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 1, A, created=1.0)
    await subscribed(store, 2, A, created=2.0, paused=True)
    await store.enqueue([post(1, chat=2), post(2, chat=1), post(3, chat=2)])
    state = await store.export_all()
    assert [f.url for f in state.feeds] == [A]
    assert [c.id for c in state.chats] == [1, 2]
    assert [(s.chat_id, s.paused) for s in state.subscriptions] == [(1, False), (2, True)]
    assert [d.id for d in state.deliveries] == ["d2", "d1", "d3"]
    assert state.deliveries == await store.pending()
    await store.close()


@case
async def an_import_is_conflicting_with_reads_made_before_it(open_storage: Opener) -> None:
    store = await open_storage()
    await subscribed(store, 1, A)
    before = await store.load_chat(1)
    await store.import_all(everything())
    with pytest.raises(StorageConflict):
        await store.save_chat(Chat(id=1), before.stamp)
    await store.close()


# ------------------------------------------------------------------ the bot's own
@case
async def the_telegraph_token_is_kept_once_and_survives_a_reopen(open_storage: Opener) -> None:
    store = await open_storage()
    assert await store.telegraph_token() is None
    assert await store.keep_telegraph_token("first") == "first"
    # another process made an account meanwhile: the first kept wins, for every process
    assert await store.keep_telegraph_token("second") == "first"
    assert await store.telegraph_token() == "first"
    await store.close()
    store = await open_storage()
    assert await store.telegraph_token() == "first"
    await store.close()


# ------------------------------------------------- several processes, one bot
@case
async def a_claimed_feed_is_not_claimed_again_until_its_check_commits(
    open_storage: Opener,
) -> None:
    store = await open_storage()
    for url, next_check in ((A, 10.0), (B, 20.0), (C, 30.0)):
        await store.save_feed(Feed(url=url, next_check=next_check))
        await subscribed(store, 1, url)
    assert [s.feed.url for s in await store.claim_due_feeds(100.0, 2, 60.0)] == [A, B]  # soonest
    assert [s.feed.url for s in await store.claim_due_feeds(100.0, 5, 60.0)] == [C]
    assert await store.claim_due_feeds(100.0, 5, 60.0) == []  # all leased
    state = await store.load_feed(A)
    assert state is not None
    await store.record_not_modified(FeedCommit(replace(state.feed, next_check=50.0),
                                               state.stamp))
    await store.postpone_check(B, 20.0)  # a crashed check puts its feed back
    assert [s.feed.url for s in await store.claim_due_feeds(100.0, 5, 60.0)] == [B, A]
    # every lease ran out (C's at 160, A's and B's at 160 too): all are claimed again
    assert [s.feed.url for s in await store.claim_due_feeds(161.0, 5, 60.0)] == [B, C, A]
    assert await store.claim_due_feeds(5.0, 5, 60.0) == []  # nothing due yet
    assert await store.claim_due_feeds(100.0, 0, 60.0) == []
    await store.close()


@case
async def a_claim_changes_no_stamp(open_storage: Opener) -> None:
    store = await open_storage()
    await store.save_feed(Feed(url=A, next_check=1.0))
    await subscribed(store, 1, A)
    state = await store.load_feed(A)
    assert state is not None
    assert [s.feed.url for s in await store.claim_due_feeds(10.0, 5, 60.0)] == [A]
    await store.commit_check(FeedCommit(replace(state.feed, next_check=99.0), state.stamp))
    assert (await store.get_feed(A) or Feed(B)).next_check == 99.0
    await store.close()


@case
async def a_claimed_feed_comes_as_load_feed_reads_it(open_storage: Opener) -> None:
    store = await open_storage()
    await store.save_feed(Feed(url=A, next_check=1.0, etag='"v1"'))
    await store.save_feed(Feed(url=B, next_check=2.0))
    await subscribed(store, 1, A)
    await subscribed(store, 2, A)
    await subscribed(store, 2, B)
    await store.save_chat(Chat(id=2, lang="de"))
    loaded = {url: await store.load_feed(url) for url in (A, B)}
    claimed = await store.claim_due_feeds(10.0, 5, 60.0)
    assert [s.feed.url for s in claimed] == [A, B]
    for state in claimed:
        expected = loaded[state.feed.url]
        assert expected is not None
        assert (state.feed, state.subscriptions, state.chats, state.stamp) == (
            expected.feed, expected.subscriptions, expected.chats, expected.stamp)
    a, b = claimed
    assert [s.chat_id for s in a.subscriptions] == [1, 2] and a.feed.etag == '"v1"'
    assert set(a.chats) == {1, 2} and a.chats[2].lang == "de"
    # the claim's stamp commits; a change after the claim makes it conflict
    await store.commit_check(FeedCommit(replace(a.feed, next_check=99.0), a.stamp))
    await subscribed(store, 3, B)
    with pytest.raises(StorageConflict):
        await store.commit_check(FeedCommit(replace(b.feed, next_check=99.0), b.stamp))
    await store.close()


@case
async def a_seat_is_held_until_stepping_down(open_storage: Opener) -> None:
    import uuid

    seat = f"sender:{uuid.uuid4().hex}"
    store = await open_storage()
    assert await store.try_lead(seat)
    assert await store.try_lead(seat)  # still held
    await store.step_down(seat)
    assert await store.try_lead(seat)
    await store.close()


@case
async def relayed_calls_are_taken_by_priority_and_answered_once(open_storage: Opener) -> None:
    from bot.storage.base import TOPIC_ANSWERS, TOPIC_CALLS, CallAnswer, RelayedCall

    store = await open_storage()
    calls_event = await store.watch(TOPIC_CALLS)
    answers_event = await store.watch(TOPIC_ANSWERS)
    calls_event.clear()
    await store.relay_call(RelayedCall("c1", "sendMessage", {"chat_id": 1, "text": "a"}, 1, 0.0))
    await store.relay_call(RelayedCall("c2", "editMessageText", {"text": "b"}, 0, 0.0))
    await asyncio.wait_for(calls_event.wait(), 5)  # announced
    taken = await store.take_calls(10, 30.0)
    assert [(c.id, c.endpoint, c.params) for c in taken] == [
        ("c2", "editMessageText", {"text": "b"}),
        ("c1", "sendMessage", {"chat_id": 1, "text": "a"}),
    ]
    assert await store.take_calls(10, 30.0) == []  # taken: not handed out twice
    assert await store.collect_answer("c1") is None  # not answered yet
    answers_event.clear()
    await store.answer_call("c1", CallAnswer(False, error="BadRequest", message="no text"))
    await asyncio.wait_for(answers_event.wait(), 5)
    assert await store.collect_answer("c1") == CallAnswer(False, None, "BadRequest", "no text")
    assert await store.collect_answer("c1") is None  # collected once
    await store.answer_call("c2", CallAnswer(True, {"message_id": 7}))
    assert await store.collect_answer("c2") == CallAnswer(True, {"message_id": 7})
    await store.close()


@case
async def new_deliveries_are_announced(open_storage: Opener) -> None:
    from bot.storage.base import TOPIC_OUTBOX

    store = await open_storage()
    event = await store.watch(TOPIC_OUTBOX)
    event.clear()
    await store.enqueue([post(1)])
    await asyncio.wait_for(event.wait(), 5)
    await store.close()


# ------------------------------------------------------------------- digests
def item(n: int, chat: int = 1, url: str = A, **fields: object) -> DigestItem:
    made = DigestItem(id=f"i{n}", chat_id=chat, feed_url=url, feed_title="Feed A",
                      title=f"Post {n}", link=f"https://a.test/{n}", due=100.0,
                      created=float(n), entry_key=f"k{n}")
    return replace(made, **fields)  # type: ignore[arg-type]


@case
async def posts_collected_for_a_digest_wait_until_it_is_made(open_storage: Opener) -> None:
    store = await open_storage()
    await _two_subscribers(store)
    state = await store.load_feed(A)
    assert state is not None
    chats = [replace(state.chats[1], seen=[P("x"), P("n")])]
    collected = [item(1), item(2, due=200.0), item(3, chat=2, thread_id=4), item(4, chat=1)]
    await store.commit_check(FeedCommit(state.feed, state.stamp, chats=chats,
                                        digest_items=collected))
    assert await store.pending() == []  # nothing is sent until the digest is made
    assert [i.id for i in await store.digest_waiting(1)] == ["i1", "i2", "i4"]
    assert await store.digest_waiting(5) == []
    assert await store.due_digests(99.0, 10) == []
    await store.close()
    store = await open_storage()
    due = await store.due_digests(100.0, 10)
    assert [i.id for i in due] == ["i1", "i4", "i3"]  # by chat, topic, when collected
    assert due[2] == collected[2]
    assert [i.id for i in await store.due_digests(100.0, 1)] == ["i1", "i4"]  # whole chats
    digest = post(7, chat=1)
    await store.commit_digest(["i1", "i4"], [digest])
    assert [d.id for d in await store.pending()] == ["d7"]
    with pytest.raises(StorageConflict):  # made elsewhere first: nothing written
        await store.commit_digest(["i3", "i4"], [post(8, chat=2)])
    assert [d.id for d in await store.pending()] == ["d7"]
    assert [i.id for i in await store.due_digests(1000.0, 10)] == ["i2", "i3"]
    await store.close()
    store = await open_storage()
    assert [i.id for i in await store.due_digests(1000.0, 10)] == ["i2", "i3"]
    await store.close()


@case
async def digest_items_follow_a_migrated_chat_and_go_with_its_queue(open_storage: Opener) -> None:
    store = await open_storage()
    await store.save_feed(Feed(url=A))
    await subscribed(store, -5, A)
    state = await store.load_feed(A)
    assert state is not None
    await store.commit_check(FeedCommit(state.feed, state.stamp, digest_items=[
        item(1, chat=-5), item(2, chat=9)]))
    await store.migrate_chat(-5, -1005)
    assert [(i.id, i.chat_id) for i in await store.due_digests(100.0, 10)] == [
        ("i1", -1005), ("i2", 9)]
    await store.drop_chat_deliveries(-1005)  # the bot was removed: its digest goes too
    assert [i.id for i in await store.due_digests(100.0, 10)] == ["i2"]
    await store.close()
