"""Filters end to end (issue 18): the real bot against the fake Bot API and a loopback feed
server. A regular expression on the author lets only matching posts through; /filter N test
fetches the feed and says of each current post whether it would be sent and why, in the chat's
language and within one message; mistakes get their own answer and change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.english import english_words
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import item, rss
from tests.fakes.feedserver import FeedServer

USER = 1001
FEED_TITLE = "Team blog"


def team_feed(posts: dict[int, tuple[str, str, str]], title: str = FEED_TITLE) -> str:
    """Post n -> (title, author, category), dated around now, newest first."""
    now = datetime.now(UTC)
    items = [
        item(
            guid=f"https://team.test/{n}",
            title=post_title,
            link=f"https://team.test/{n}",
            pub_date=now - timedelta(minutes=100 - n),
            html=f"<p>Post {n} by {author}.</p>"
            + ("<p>Sponsored.</p>" if "roundup" in post_title else ""),
            author=author,
            categories=[category] if category else [],
        )
        for n, (post_title, author, category) in sorted(posts.items(), reverse=True)
    ]
    return rss(title, "https://team.test/", items)


def delivered_posts(api: FakeBotApi) -> list[str]:
    return [m.plain.split("\n")[0] for m in api.delivered(USER) if "Team post" in m.plain]


async def test_a_regex_on_the_author_lets_only_matching_posts_through(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    first = {1: ("Team post 1", "alice", ""), 2: ("Team post 2", "carol", "")}
    later = {
        3: ("Team post 3", "Bob", ""),
        4: ("Team post 4", "carol", ""),
        5: ("Team post 5", "alice-bot", ""),  # ^…$: the whole name, so not alice
        6: ("Team post 6", "Alice", ""),
    }
    feed_server.set_feed("/team.xml", team_feed(first))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/team.xml')}")
        (set_,) = await chat.say(USER, "/filter 1 author:/^(alice|bob)$/")
        assert "only posts matching one of: author:/^(alice|bob)$/" in set_.plain
        (shown,) = await chat.say(USER, "/filter 1")
        assert "author:/^(alice|bob)$/" in shown.plain
        feed_server.set_feed("/team.xml", team_feed({**first, **later}))
        await fake_api.await_for(lambda: len(delivered_posts(fake_api)) >= 2, timeout=15)
        await asyncio.sleep(2.5)  # later checks would have sent the others by now
    titles = [m.plain for m in fake_api.delivered(USER) if "Team post" in m.plain]
    assert len(titles) == 2
    assert "Team post 3" in titles[0] and "Team post 6" in titles[1]


def line_about(answer: SentMessage, title: str) -> str:
    (line,) = [x for x in answer.plain.split("\n") if title in x]
    return line


TRIAL_POSTS = {
    1: ("Rust 1.80 released", "alice", ""),
    2: ("Weekly links", "links-bot", ""),
    3: ("Go 1.23 is out", "Bob", ""),
    4: ("Rust merchandise", "alice", "ads"),
    5: ("Rust and Go roundup", "carol", ""),  # its text says "Sponsored"
}


async def test_filter_test_lists_each_post_with_why(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/team.xml", team_feed(TRIAL_POSTS))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/team.xml')}")
        await chat.say(USER, "/filter 1 title:/rust|go/ AND NOT author:/bot$/, !categories:ads")
        await chat.say(USER, "/filter global !sponsored")
        requests_before = len(feed_server.requests("/team.xml"))
        (answer,) = await chat.say(USER, "/filter 1 test")
        assert len(feed_server.requests("/team.xml")) > requests_before  # fetched now
        assert f"{FEED_TITLE}: 2 of its 5 current posts would be sent" in answer.plain
        assert line_about(answer, "Rust 1.80 released") == (
            "✅ Rust 1.80 released — kept by title:/rust|go/"
        )
        assert line_about(answer, "Go 1.23 is out").startswith("✅")
        assert line_about(answer, "Weekly links") == "❌ Weekly links — matches no part"
        assert line_about(answer, "Rust merchandise") == (
            "❌ Rust merchandise — dropped by categories:ads"
        )
        assert line_about(answer, "Rust and Go roundup") == (
            "❌ Rust and Go roundup — dropped by sponsored (the filter for every feed here)"
        )

        # a filter tried, not saved
        (tried,) = await chat.say(USER, "/filter 1 test author:carol OR author:links-bot")
        assert "Tried, not saved" in tried.plain and "1 of its 5" in tried.plain
        assert line_about(tried, "Weekly links") == "✅ Weekly links — kept by author:links-bot"
        assert line_about(tried, "Rust and Go roundup").endswith("(the filter for every feed here)")
        (kept,) = await chat.say(USER, "/filter 1")
        assert "title:/rust|go/ AND NOT author:/bot$/" in kept.plain

        # in the chat's language
        await chat.say(USER, "/lang zh-CN")
        (zh,) = await chat.say(USER, "/filter 1 test")
        assert "当前 5 篇文章中有 2 篇会推送" in zh.plain
        assert "因 title:/rust|go/ 保留" in line_about(zh, "Rust 1.80 released")
        assert "不符合任何一部分" in line_about(zh, "Weekly links")
        titles = [FEED_TITLE, *(title for title, _, _ in TRIAL_POSTS.values())]
        assert english_words(str(zh.params["text"]), titles) == []


async def test_filter_test_stays_within_one_message(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    many = {n: (f"Post {n} " + "🦀 with a long title " * 20, "alice", "") for n in range(1, 201)}
    feed_server.set_feed("/many.xml", team_feed(many, title="Many"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/many.xml')}")
        await chat.say(USER, "/filter 1 post 1")
        (answer,) = await chat.say(USER, "/filter 1 test")
        assert await chat.silence(USER, 1.0) == []  # not split into several messages
    assert "of its 200 current posts would be sent" in answer.plain
    assert "more posts not shown." in answer.plain
    assert len(answer.plain.encode("utf-16-le")) // 2 <= 4096 and fake_api.rejected() == []


async def test_mistakes_get_a_specific_answer_and_change_nothing(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/team.xml", team_feed(TRIAL_POSTS))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/team.xml')}")
        (bad,) = await chat.say(USER, "/filter 1 author:/(bot/")
        assert "(bot is not a valid regular expression: missing )" in bad.plain
        (lookahead,) = await chat.say(USER, "/filter 1 title:/rust(?=\\d)/")
        assert "lookarounds" in lookahead.plain and "rust(?=\\d)" in lookahead.plain
        (slow,) = await chat.say(USER, "/filter 1 title:/(a{100}){100}/")
        assert "repetition" in slow.plain
        (missing,) = await chat.say(USER, "/filter 1 title:rust author:bob")
        assert "Put AND or OR between title:rust and author:bob" in missing.plain
        (unclosed,) = await chat.say(USER, "/filter 1 test title:/rust")
        assert "has no closing /" in unclosed.plain
        (shown,) = await chat.say(USER, "/filter 1")
        assert "every post is sent" in shown.plain
        (global_,) = await chat.say(USER, "/filter global test")
        assert "Which feed?" in global_.plain
        feed_server.set_response("/team.xml", 500, b"down")
        (failed,) = await chat.say(USER, "/filter 1 test")
        assert f"Could not read {FEED_TITLE} now" in failed.plain and "500" in failed.plain
