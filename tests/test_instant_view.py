"""Instant View pages end to end: the real bot, the fake Bot API, a loopback feed server and the
fake Telegraph (tests/fakes/telegraph.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import BASE_DATE, item, rss
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error
from tests.fakes.telegraph import FakeTelegraph

USER = 1001
BLOG = "https://longreads.test"


def long_post(n: int) -> str:
    """An item whose body is far longer than one Telegram message, with two pictures."""
    body = (
        f'<p><img src="/img/{n}-top.png" alt="top"></p>'
        + "".join(
            f"<h2>Section {i}</h2><p>Paragraph {i} of post {n}: "
            + "lorem ipsum dolor " * 40
            + "</p>"
            for i in range(1, 9)
        )
        + f'<figure><img src="https://cdn.longreads.test/{n}-end.jpg"><figcaption>The end of '
        f"post {n}</figcaption></figure><p>Last words of post {n}.</p>"
    )
    link = f"{BLOG}/posts/{n}/"
    return item(link, f"Long read {n}", link, BASE_DATE + timedelta(days=n), body)


def short_post(n: int) -> str:
    link = f"{BLOG}/posts/{n}/"
    return item(
        link,
        f"Short note {n}",
        link,
        BASE_DATE + timedelta(days=n),
        f"<p>Only a line, note {n}.</p>",
    )


def feed(*items: str) -> str:
    return rss("Long Reads", BLOG + "/", list(reversed(items)))


def preview_of(message: SentMessage) -> dict[str, Any]:
    options = message.params.get("link_preview_options") or {}
    return json.loads(options) if isinstance(options, str) else dict(options)


async def test_a_long_post_arrives_as_an_instant_view_link_to_its_whole_page(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/long.xml')}")
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1)))
        post = (await fake_api.await_delivered(2, USER, timeout=15))[-1]

    (page,) = telegraph.pages
    assert post.method == "sendMessage" and api_call_error(post.method, post.params) is None
    assert "Long read 1" in post.plain and "Instant View" in post.plain
    assert "Paragraph 8" not in post.plain  # a short message, not the post cut
    assert any(e.get("url") == page.url for e in post.entities)
    assert preview_of(post).get("url") == page.url  # the preview shows the Instant View button
    # the page holds the whole post, its pictures (absolute) and a link back
    assert page.title == "Long read 1"
    assert "Paragraph 1 of post 1" in page.text and "Paragraph 8 of post 1" in page.text
    assert "Last words of post 1." in page.text and "The end of post 1" in page.text
    assert page.images == [f"{BLOG}/img/1-top.png", "https://cdn.longreads.test/1-end.jpg"]
    assert f"{BLOG}/posts/1/" in page.links
    assert telegraph.refused == []


async def test_telegraph_down_the_post_is_cut_as_before_and_logged(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    telegraph.down = True
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    caplog.set_level(logging.WARNING, logger="bot.telegraph")
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/long.xml')}")
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1)))
        # as without pages: its two pictures as an album, then its text, cut
        await fake_api.await_for(lambda: "Read more" in fake_api.delivered(USER)[-1].plain, 15)

    arrived = fake_api.delivered(USER)[1:]
    text = arrived[-1]
    assert telegraph.calls and telegraph.pages == []
    assert {m.method for m in arrived[:-1]} == {"sendMediaGroup"}
    assert "Paragraph 1 of post 1" in text.plain and "Read more" in text.plain
    assert all("Instant View" not in m.plain for m in arrived)
    assert api_call_error(text.method, text.params) is None
    assert any("not published" in r.getMessage() for r in caplog.records)


async def test_always_publishes_even_a_short_post(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/long.xml')}")
        (answer,) = await chat.say(USER, "/set 1 instantview always")
        assert "Instant View pages: always" in answer.plain
        feed_server.set_feed("/long.xml", feed(short_post(0), short_post(1)))
        post = (await fake_api.await_delivered(3, USER, timeout=15))[-1]

    (page,) = telegraph.pages
    assert "Only a line, note 1." in page.text
    assert "Instant View" in post.plain and preview_of(post).get("url") == page.url


async def test_off_sends_a_long_post_cut_without_a_page(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/long.xml')}")
        await chat.say(USER, "/set 1 instantview off")
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1)))
        await fake_api.await_for(lambda: "Read more" in fake_api.delivered(USER)[-1].plain, 15)
    assert telegraph.calls == []


async def test_one_account_for_every_post_and_chat_and_across_a_restart(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    url = feed_server.url("/long.xml")
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {url}")
        await chat.say(USER + 1, f"/sub {url}")
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1)))
        for user in (USER, USER + 1):
            await fake_api.await_delivered(2, user, timeout=15)
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1), long_post(2)))
        for user in (USER, USER + 1):
            await fake_api.await_delivered(3, user, timeout=15)
    assert len(telegraph.pages) == 2  # once per post, not once per chat
    async with start_bot(telegraph_url=telegraph.url):
        feed_server.set_feed(
            "/long.xml", feed(short_post(0), long_post(1), long_post(2), long_post(3))
        )
        for user in (USER, USER + 1):
            await fake_api.await_delivered(4, user, timeout=15)

    assert telegraph.calls.count("createAccount") == 1
    assert [p.title for p in telegraph.pages] == ["Long read 1", "Long read 2", "Long read 3"]
    assert {p.token for p in telegraph.pages} == set(telegraph.accounts)
    for user in (USER, USER + 1):
        links = [preview_of(m).get("url") for m in fake_api.delivered(user)[1:]]
        assert links == [p.url for p in telegraph.pages]


async def test_a_private_feeds_long_post_gets_no_public_page(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    """A page on Telegraph is readable by anyone with its address: a feed fetched with a
    password (or cookie, or token) keeps its posts in the chat, cut as without Telegraph."""
    feed_server.set_feed("/long.xml", feed(short_post(0)))
    private = feed_server.url("/long.xml").replace("http://", "http://reader:s3cret@")
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await chat.say(USER, f"/sub {private}")
        feed_server.set_feed("/long.xml", feed(short_post(0), long_post(1)))
        await fake_api.await_for(lambda: "Read more" in fake_api.delivered(USER)[-1].plain, 15)

    assert telegraph.calls == [] and telegraph.pages == []
    text = fake_api.delivered(USER)[-1]
    assert "Paragraph 1 of post 1" in text.plain and "Instant View" not in text.plain
