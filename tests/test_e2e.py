"""The real application, end to end: fake Bot API over HTTP, real feed server, real database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed, hugo_item, rss
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

USER = 1001
ADMIN = 2002
MEMBER = 3003
GROUP = -100500


def posts(api: FakeBotApi, chat_id: int) -> list[Any]:
    """Deliveries that are feed posts (not command replies)."""
    return [m for m in api.delivered(chat_id) if "series/" in m.text_or_caption]


async def test_private_chat_full_journey(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 31)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        commands = [c.params for c in fake_api.calls("setMyCommands")]
        assert commands and "sub" in str(commands[0])

        (welcome,) = await chat.say(USER, "/start")
        assert "/sub" in welcome.plain

        (helped,) = await chat.say(USER, "/help")
        assert all(f"/{c}" in helped.plain for c in ("sub", "unsub", "list"))

        (answer,) = await chat.say(USER, f"/sub {url}")
        assert "Subscribed to Machine Learning on Test Blog" in answer.plain

        # 30 existing items: no backlog flood
        assert await chat.silence(USER, 2.5) == []

        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 32)))
        post = (await fake_api.await_delivered(4, USER))[-1]
        assert "Topic 31" in post.plain
        assert api_call_error(post.method, post.params) is None
        assert await chat.silence(USER, 2.5) == []  # once, not again on later checks

        (listing,) = await chat.say(USER, "/list")
        assert "1. Machine Learning on Test Blog" in listing.plain and url in listing.plain

        (gone,) = await chat.say(USER, "/unsub 1")
        assert "Unsubscribed" in gone.plain
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 33)))
        assert await chat.silence(USER, 2.5) == []
        (empty,) = await chat.say(USER, "/list")
        assert "follows no feeds" in empty.plain


async def test_second_subscriber_gets_no_backlog_and_both_get_new_posts(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 31)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {url}")
        await asyncio.sleep(1.5)
        await chat.say(USER + 1, f"/sub {url}")
        assert await chat.silence(USER + 1, 2.5) == []
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 32)))
        for user in (USER, USER + 1):
            await fake_api.await_delivered(2, user)
            assert len(posts(fake_api, user)) == 1


async def test_post_shared_by_two_feeds_arrives_once(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", rss("A", "https://a.test/", [hugo_item(1)]))
    feed_server.set_feed("/b.xml", rss("B", "https://b.test/", [hugo_item(2)]))
    async with start_bot() as chat:
        both = f"/sub {feed_server.url('/a.xml')} {feed_server.url('/b.xml')}"
        (progress,) = await chat.say(USER, both)  # one answer, edited as each is checked
        summary = await chat.settled(USER, progress.message_id, "Done: 2 added")
        assert "A" in summary and "B" in summary
        shared = hugo_item(7, guid="https://blog.test/shared-post/")
        feed_server.set_feed("/a.xml", rss("A", "https://a.test/", [shared, hugo_item(1)]))
        feed_server.set_feed("/b.xml", rss("B", "https://b.test/", [shared, hugo_item(2)]))
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) >= 1, timeout=10)
        await asyncio.sleep(2.5)
        assert len(posts(fake_api, USER)) == 1


async def test_group_admins_only_and_addressed_commands(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 5)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        (refused,) = await chat.say(GROUP, f"/sub {url}", user_id=MEMBER)
        assert "only administrators" in refused.plain
        (ok,) = await chat.say(GROUP, f"/sub@{fake_api.bot_username} {url}", user_id=ADMIN)
        assert "Subscribed" in ok.plain
        (listing,) = await chat.say(GROUP, "/list", user_id=MEMBER)
        assert url in listing.plain
        (refused_unsub,) = await chat.say(GROUP, "/unsub 1", user_id=MEMBER)
        assert "only administrators" in refused_unsub.plain
        # commands for other bots are none of our business
        fake_api.send_text(GROUP, "/frobnicate@some_other_bot", user_id=MEMBER)
        assert await chat.silence(GROUP, 1.0) == []
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 6)))
        await fake_api.await_for(lambda: len(posts(fake_api, GROUP)) == 1, timeout=10)


async def test_helpful_answers_for_unknown_commands_missing_args_and_bad_urls(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_response("/missing.xml", 404, "nope")
    feed_server.set_response(
        "/page.html", 200, "<html><body>hi</body></html>", {"Content-Type": "text/html"}
    )
    async with start_bot() as chat:
        (unknown,) = await chat.say(USER, "/frobnicate")
        assert "/help" in unknown.plain
        (usage,) = await chat.say(USER, "/sub")
        assert "/sub https://" in usage.plain
        (usage2,) = await chat.say(USER, "/unsub")
        assert "/unsub 2" in usage2.plain
        (missing,) = await chat.say(USER, f"/sub {feed_server.url('/missing.xml')}")
        assert "404" in missing.plain
        (page,) = await chat.say(USER, f"/sub {feed_server.url('/page.html')}")
        assert "web page" in page.plain or "not an RSS" in page.plain
        (nothing,) = await chat.say(USER, "/unsub 3")
        assert "No subscription" in nothing.plain


async def test_loopback_feed_refused_when_private_addresses_are_not_allowed(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot(allow_private=False) as chat:
        (refused,) = await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        assert "refused" in refused.plain and "loopback" in refused.plain
    assert feed_server.hits("/ml.xml") == 0


async def test_slow_feed_is_never_checked_twice_at_once(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        feed_server.slow("/ml.xml", 3.0)  # each check now outlasts three ticks
        hits_before = feed_server.hits("/ml.xml")
        await asyncio.sleep(4.5)
        # ticks every second; without the in-flight guard this would be 4 or more
        assert 1 <= feed_server.hits("/ml.xml") - hits_before <= 2


async def test_burst_of_new_posts_is_capped_with_one_summary_line(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    async with start_bot(backlog_limit=4) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 13)))  # 9 new posts at once
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) >= 4, timeout=15)
        await asyncio.sleep(2.5)
        arrived = fake_api.delivered(USER)[1:]
        assert "5 older new post(s)" in arrived[0].plain and "skipped" in arrived[0].plain
        topics = [m.plain.split("Topic ")[1].split()[0] for m in arrived[1:]]
        assert topics == ["9", "10", "11", "12"]  # the newest four, oldest first


async def test_filtered_post_older_than_the_newest_few_is_still_delivered(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    async with start_bot(backlog_limit=1) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        await chat.say(USER, "/filter 1 Topic 5")
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 10)))  # posts 4..9; only 5 matches
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) >= 1, timeout=10)
        await asyncio.sleep(2.5)
        assert [p.plain.split("Topic ")[1].split()[0] for p in posts(fake_api, USER)] == ["5"]


async def test_a_feed_with_a_huge_title_can_be_followed_and_listed(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """Issue 13: a 100 KB <title> made /sub fail ("message is too long") and every /list."""
    title = "Endless " * 12_500
    feed_server.set_feed("/huge.xml", rss(title, "https://huge.test/", [hugo_item(1)]))
    async with start_bot() as chat:
        (answer,) = await chat.say(USER, f"/sub {feed_server.url('/huge.xml')}")
        assert "Subscribed to Endless Endless" in answer.plain
        (listing,) = await chat.say(USER, "/list")
    assert "1. Endless Endless" in listing.plain
    assert len(answer.plain) < 1000 and len(listing.plain) < 1000
    assert fake_api.rejected() == []
