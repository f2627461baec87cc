"""Full text for summary-only feeds (`/set N fulltext on`, issue 18): the extraction and its
choice (bot/feeds/article.py), the page fetch and its cache (bot/fulltext.py) against the fake
article pages (tests/fakes/articles.py) on loopback, and the whole bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot.feeds.article import extract_article, full_text_entry, visible_text
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.fulltext import FAILURE_REST_S, ArticleSource
from bot.models import Entry, Feed, ParsedFeed, Subscription, SubscriptionOptions
from bot.pipeline.check import render_for
from tests.fakes.articles import ARTICLES, article_page, serve_articles, summary_feed
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error
from tests.fakes.telegraph import FakeTelegraph

USER = 1001
PAGE_URL = "https://blog.example.org/posts/first/"
CHROME = ("SIDEBAR-NEWSLETTER", "COMMENT-TEXT", "FOOTER-TEXT", "Popular posts", "Archive")


def summary_entry(slug: str, link: str = PAGE_URL) -> Entry:
    article = ARTICLES[slug]
    return Entry(
        key=f"guid:{slug}", title=article.title, link=link,
        content_html=f"<p>{article.summary}</p>",
    )


# --------------------------------------------------------------------------- extraction
def test_the_article_comes_out_of_its_page_without_the_site_around_it() -> None:
    first = ARTICLES["first"]
    found = extract_article(article_page(first).encode(), PAGE_URL, "text/html; charset=utf-8")
    assert found is not None
    text = visible_text(found)
    for i in range(1, first.paragraphs + 1):
        assert first.marker(i) in text
    assert not any(chrome in text for chrome in CHROME), text
    # links and pictures absolute against the page, code as a code block
    assert 'src="https://blog.example.org/img/first.jpg"' in found
    assert '<pre><code>print("hello")</code></pre>' in found


def test_the_servers_charset_is_read_and_a_page_that_is_no_article_gives_none() -> None:
    chinese = ARTICLES["chinese"]
    page = article_page(chinese).replace('<meta charset="utf-8">', "").encode("gb18030")
    found = extract_article(page, PAGE_URL, "text/html; charset=gb18030")
    assert found is not None and chinese.title in found
    assert extract_article(b"\xff\xd8\xff", PAGE_URL, "image/jpeg") is None
    assert extract_article(b"", PAGE_URL, "text/html") is None
    # a page with nothing but its navigation says less than the summary: the summary stays
    bare = extract_article(b"<html><body><nav>Home</nav></body></html>", PAGE_URL) or ""
    assert full_text_entry(summary_entry("first"), bare) is None


def test_the_article_replaces_a_summary_but_never_a_feed_that_carries_the_whole_post() -> None:
    first = ARTICLES["first"]
    article = extract_article(article_page(first).encode(), PAGE_URL, "text/html")
    assert article is not None
    entry = summary_entry("first")
    full = full_text_entry(entry, article)
    assert full is not None and full.key == entry.key and full.title == entry.title
    assert first.marker(1) in full.content_html
    assert "<h1>" not in full.content_html  # the page's title heading repeats the post's title
    assert full.image_url == "https://blog.example.org/img/first.jpg"
    # a feed whose own body is as long as the article keeps it
    whole = Entry(key="k", title=first.title, link=PAGE_URL, content_html=article + "<p>+</p>")
    assert full_text_entry(whole, article) is None
    # the feed's own picture stays the post's picture
    pictured = Entry(key="k", title="t", link=PAGE_URL, content_html="<p>s</p>",
                     image_url="https://cdn.example.org/own.png",
                     images=("https://cdn.example.org/own.png",))
    chosen = full_text_entry(pictured, article)
    assert chosen is not None and chosen.image_url == "https://cdn.example.org/own.png"
    assert chosen.images[:2] == (
        "https://cdn.example.org/own.png", "https://blog.example.org/img/first.jpg"
    )


def test_render_for_gives_the_article_only_to_subscriptions_with_fulltext_on() -> None:
    first = ARTICLES["first"]
    article = extract_article(article_page(first).encode(), PAGE_URL, "text/html")
    assert article is not None
    entry = summary_entry("first")
    full = full_text_entry(entry, article)
    assert full is not None
    on = Subscription(1, "f", options=SubscriptionOptions(fulltext=True))
    off = Subscription(2, "f")
    messages = render_for(Feed(url="f"), ParsedFeed("Feed", "", [entry]), [entry], [on, off],
                          {}, full_texts={entry.key: full})
    with_text = json.dumps(messages[(1, entry.key)].attempts[0].params, ensure_ascii=False)
    without = json.dumps(messages[(2, entry.key)].attempts[0].params, ensure_ascii=False)
    assert first.marker(1) in with_text and first.summary not in with_text
    assert first.summary in without and first.marker(1) not in without


# ------------------------------------------------------------------- fetching and cache
def loopback_fetcher(**overrides: Any) -> Fetcher:
    return Fetcher(FetchSettings(**{"allow_private": True, **overrides}))


async def test_a_page_is_fetched_once_however_many_ask_and_kept(
    feed_server: FeedServer,
) -> None:
    urls = serve_articles(feed_server)
    entry = summary_entry("first", urls["first"])
    async with loopback_fetcher() as fetcher:
        source = ArticleSource(fetcher)
        together = await asyncio.gather(*(source.full_texts([entry]) for _ in range(5)))
        again = await source.full_texts([entry, entry])
    assert feed_server.hits("/posts/first/") == 1
    assert all(ARTICLES["first"].marker(1) in r[entry.key].content_html for r in together)
    assert again == together[0]
    (request,) = feed_server.requests("/posts/first/")
    assert request.headers["accept"].startswith("text/html")


async def test_a_failed_page_keeps_the_summary_is_logged_and_is_tried_again_later(
    feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    entry = summary_entry("first", feed_server.url("/posts/missing/"))
    now = [1000.0]
    caplog.set_level(logging.INFO, logger="bot.fulltext")
    async with loopback_fetcher() as fetcher:
        source = ArticleSource(fetcher, clock=lambda: now[0])
        assert await source.full_texts([entry]) == {}
        assert await source.full_texts([entry]) == {}  # not tried again at once
        assert feed_server.hits("/posts/missing/") == 1
        now[0] += FAILURE_REST_S + 1
        assert await source.full_texts([entry]) == {}
    assert feed_server.hits("/posts/missing/") == 2
    (record, *_) = [r for r in caplog.records if "not fetched" in r.getMessage()]
    assert record.levelno == logging.INFO and "404" in record.getMessage()


async def test_the_cache_is_bounded_by_posts_and_bytes(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.fulltext

    urls = serve_articles(feed_server)
    entries = [summary_entry(slug, urls[slug]) for slug in ("first", "second", "chinese")]
    monkeypatch.setattr(bot.fulltext, "CACHE_SIZE", 2)
    async with loopback_fetcher() as fetcher:
        source = ArticleSource(fetcher)
        for entry in entries:
            await source.full_texts([entry])
        assert len(source._known) == 2  # the oldest went
        await source.full_texts([entries[0]])  # so it is fetched again
        assert feed_server.hits("/posts/first/") == 2
        monkeypatch.setattr(bot.fulltext, "CACHE_BYTES", 1)
        await source.full_texts([entries[1]])
        assert len(source._known) == 0 and source._bytes == 0


async def test_the_ssrf_guard_and_the_size_cap_apply_to_pages(feed_server: FeedServer) -> None:
    urls = serve_articles(feed_server)
    entry = summary_entry("first", urls["first"])
    async with Fetcher(FetchSettings()) as guarded:  # loopback refused, as for feeds
        assert await ArticleSource(guarded).full_texts([entry]) == {}
    assert feed_server.hits("/posts/first/") == 0
    async with loopback_fetcher(max_bytes=1000) as small:
        assert await ArticleSource(small).full_texts([entry]) == {}
    assert feed_server.hits("/posts/first/") == 1


# -------------------------------------------------------------------------- end to end
def post_with(api: FakeBotApi, chat_id: int, marker: str) -> SentMessage:
    (post,) = [m for m in api.delivered(chat_id) if marker in m.plain and "⚙️" not in m.plain]
    return post



async def follow_with_fulltext_until(
    chat: Any, fake_api: FakeBotApi, feed_server: FeedServer, name: str
) -> None:
    """/sub the summary feed (its post "first"), `fulltext on`, then post `name` and wait
    until it arrives."""
    await chat.say(USER, f"/sub {feed_server.url('/s.xml')}")
    await chat.say(USER, "/set 1 fulltext on")
    feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first", name]))
    title = ARTICLES[name].title
    await fake_api.await_for(
        lambda: any(title in m.plain for m in fake_api.delivered(USER)), 15
    )

async def test_fulltext_on_delivers_the_article_fetched_once_for_every_chat(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    serve_articles(feed_server)
    first, second = ARTICLES["first"], ARTICLES["second"]
    feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first"]))
    url = feed_server.url("/s.xml")
    async with start_bot() as chat:
        for user in (USER, USER + 1, USER + 2):
            await chat.say(user, f"/sub {url}")
        (card,) = await chat.say(USER, "/set 1 fulltext on")
        assert "Full text from the post's page: on" in card.plain, card.plain
        (card,) = await chat.say(USER + 1, "/set 1")  # by its button
        rows = card.params["reply_markup"]["inline_keyboard"]
        (data,) = [b["callback_data"] for row in rows for b in row if "Full text" in b["text"]]
        fake_api.press_button(USER + 1, card.message_id, data)
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        shown = fake_api.message(USER + 1, card.message_id) or {}
        assert "Full text from the post's page: on" in str(shown.get("text"))

        feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first", "second"]))
        for user in (USER, USER + 1, USER + 2):
            await fake_api.await_for(
                lambda u=user: any(second.title in m.plain for m in fake_api.delivered(u)), 15
            )

    for user in (USER, USER + 1):
        post = post_with(fake_api, user, second.title)
        assert api_call_error(post.method, post.params) is None
        assert second.marker(1) in post.plain and second.summary not in post.plain
        assert not any(chrome in post.plain for chrome in CHROME)
    other = post_with(fake_api, USER + 2, second.title)  # fulltext off: the summary, as today
    assert second.summary in other.plain and second.marker(1) not in other.plain
    assert feed_server.hits("/posts/second/") == 1  # once for both chats
    assert feed_server.hits(f"/posts/{first.slug}/") == 0  # not new: never fetched


async def test_a_page_that_404s_delivers_the_summary(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve_articles(feed_server)
    feed_server.set_response("/posts/second/", 404, "not found", {"Content-Type": "text/html"})
    second = ARTICLES["second"]
    feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first"]))
    caplog.set_level(logging.INFO, logger="bot.fulltext")
    async with start_bot() as chat:
        await follow_with_fulltext_until(chat, fake_api, feed_server, "second")

    post = post_with(fake_api, USER, second.title)
    assert second.summary in post.plain and api_call_error(post.method, post.params) is None
    assert feed_server.hits("/posts/second/") == 1
    assert any("/posts/second/" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records if r.name == "bot.fulltext")


async def test_a_long_article_arrives_as_an_instant_view_page_of_the_whole_article(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    serve_articles(feed_server)
    longread = ARTICLES["longread"]
    feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first"]))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        await follow_with_fulltext_until(chat, fake_api, feed_server, "longread")

    post = post_with(fake_api, USER, longread.title)
    (page,) = telegraph.pages
    assert "Instant View" in post.plain and page.title == longread.title
    assert longread.marker(1) in page.text and longread.marker(longread.paragraphs) in page.text
    assert longread.summary not in page.text
    assert not any(chrome in page.text for chrome in CHROME)


def test_feedbot_preview_fulltext_shows_the_article(feed_server: FeedServer) -> None:
    from tests.test_cli import feedbot

    serve_articles(feed_server)
    feed_server.set_response("/posts/second/", 404, "not found", {"Content-Type": "text/html"})
    feed_server.set_feed("/s.xml", summary_feed(feed_server, ["first", "second"]))
    env = {"FEEDBOT_ALLOW_PRIVATE": "1"}
    first, second = ARTICLES["first"], ARTICLES["second"]
    shown = feedbot("preview", feed_server.url("/s.xml"), "--fulltext", env=env)
    assert shown.returncode == 0, shown.stderr
    assert first.marker(1) in shown.stdout and first.summary not in shown.stdout
    assert second.summary in shown.stdout  # its page 404s: the feed's text, and a word why
    assert "/posts/second/: no full text" in shown.stderr and "Traceback" not in shown.stderr
    calls = feedbot("preview", feed_server.url("/s.xml"), "--fulltext", "--json", env=env)
    assert calls.returncode == 0, calls.stderr
    for line in calls.stdout.strip().splitlines():
        call = json.loads(line)
        assert api_call_error(call["method"], call["params"]) is None
    assert first.marker(1) in calls.stdout
    plain = feedbot("preview", feed_server.url("/s.xml"), env=env)
    assert first.summary in plain.stdout and first.marker(1) not in plain.stdout
