"""Feeds as they really are, end to end: the running bot, the fake Bot API and a loopback feed
server that misbehaves. Every assertion is about what the user sees (or what the server saw)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.app import running
from bot.config import Settings
from bot.runtime import Runtime
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed, hugo_item, rss
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

USER = 1001
MIB = 1024 * 1024


def posts(api: FakeBotApi, chat_id: int, marker: str = "series/") -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if marker in m.text_or_caption]


def assert_valid(message: SentMessage) -> None:
    assert api_call_error(message.method, message.params) is None, message.params


async def test_hostile_servers_get_a_clear_reply_and_no_subscription(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/slow.xml", hugo_feed(range(1, 3)))
    feed_server.slow("/slow.xml", 4.0)
    feed_server.drip("/drip.xml", b"<", every_s=0.3, total_bytes=10_000)
    feed_server.huge("/huge.xml", 20 * MIB)
    feed_server.gzip_bomb("/bomb.xml", 20 * MIB)
    feed_server.redirect("/loop-a.xml", feed_server.url("/loop-b.xml"), 302)
    feed_server.redirect("/loop-b.xml", feed_server.url("/loop-a.xml"), 302)
    feed_server.set_response("/junk.xml", 200, b"\x00\x01 this is { not < a feed", {
        "Content-Type": "application/octet-stream"})
    expected = {
        "/slow.xml": "timed out after 1 s",
        "/drip.xml": "timed out after 1 s",
        "/huge.xml": "larger than 1 MiB",
        "/bomb.xml": "larger than 1 MiB",
        "/loop-a.xml": "redirect loop",
        "/junk.xml": "not",
    }
    async with start_bot(fetch_timeout=1.0, max_feed_bytes=MIB) as chat:
        for path, reason in expected.items():
            started = time.monotonic()
            (answer,) = await chat.say(USER, f"/sub {feed_server.url(path)}")
            # a check that outlasts a second shows "checking…" first, edited into the answer
            text = await chat.settled(USER, answer.message_id, "❌")
            assert text.startswith("❌") and reason in text, (path, text)
            assert time.monotonic() - started < 3.5, path  # the caps hold: nothing hangs
        (listing,) = await chat.say(USER, "/list")
        assert "follows no feeds" in listing.plain


async def test_broken_xml_and_wrong_charset_still_work(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    broken = (
        '<rss version="2.0"><channel><title>Broken & co</title><link>https://b.test/</link>'
        "<item><title>One & two <b>bold</title><link>https://b.test/1</link>"
        "<description>unclosed <p>para &nbsp; &copy;</description></item></channel>"
    )
    feed_server.set_feed("/broken.xml", broken, "text/xml")
    latin = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Café crème</title><link>https://c.test/</link>{items}</channel></rss>"
    )
    first = "<item><title>Déjà vu</title><link>https://c.test/1</link><guid>c1</guid></item>"
    second = (
        "<item><title>Deuxième fête</title><link>https://c.test/2</link><guid>c2</guid>"
        "<description>Ça marche &amp; très bien</description></item>"
    )
    utf8_label = "application/rss+xml; charset=utf-8"
    feed_server.set_feed("/latin.xml", latin.format(items=first).encode("latin-1"), utf8_label)
    async with start_bot() as chat:
        (ok,) = await chat.say(USER, f"/sub {feed_server.url('/broken.xml')}")
        assert "Subscribed to Broken & co" in ok.plain
        (ok2,) = await chat.say(USER, f"/sub {feed_server.url('/latin.xml')}")
        assert "Subscribed to Café crème" in ok2.plain
        feed_server.set_feed(
            "/broken.xml",
            broken.replace("<item>", "<item><title>Fresh & new</title><link>https://b.test/9"
                                     "</link><guid>b9</guid></item><item>", 1),
            "text/xml",
        )
        feed_server.set_feed(
            "/latin.xml", latin.format(items=second + first).encode("latin-1"), utf8_label
        )
        await fake_api.await_for(lambda: len(fake_api.delivered(USER)) >= 4, timeout=10)
        new = fake_api.delivered(USER)[2:]
        assert sorted(m.plain.split("\n")[0] for m in new) == ["Deuxième fête", "Fresh & new"]
        for message in new:
            assert_valid(message)
        assert await chat.silence(USER, 2.0) == []


async def test_permanent_redirect_chain_moves_the_feed_without_resending(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/old.xml", hugo_feed(range(1, 4)))
    old = feed_server.url("/old.xml")
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {old}")
        feed_server.set_feed("/new.xml", hugo_feed(range(1, 5)))
        feed_server.redirect("/mid.xml", feed_server.url("/new.xml"), 308)
        feed_server.redirect("/old.xml", feed_server.url("/mid.xml"), 301)
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) >= 1, timeout=10)
        assert "Topic 4" in posts(fake_api, USER)[0].plain
        old_hits = feed_server.hits("/old.xml")
        assert await chat.silence(USER, 2.5) == []  # nothing re-sent after the move
        assert feed_server.hits("/old.xml") == old_hits  # the new URL is used directly
        assert feed_server.hits("/new.xml") >= 2
        (listing,) = await chat.say(USER, "/list")
        assert feed_server.url("/new.xml") in listing.plain and old not in listing.plain


async def test_gone_feed_is_retired_and_the_subscriber_told(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        feed_server.set_response("/f.xml", 410, "gone")
        told = (await fake_api.await_delivered(2, USER))[1]
        assert "is gone (HTTP 410)" in told.plain and "Machine Learning" in told.plain
        hits = feed_server.hits("/f.xml")
        assert await chat.silence(USER, 2.5) == []
        assert feed_server.hits("/f.xml") == hits  # retired: no longer polled
        (listing,) = await chat.say(USER, "/list")
        assert "⛔ gone" in listing.plain


async def test_rate_limited_feed_is_not_asked_again_before_retry_after(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        before = feed_server.hits("/f.xml")
        feed_server.set_response("/f.xml", 429, "slow down", {"Retry-After": "3"})
        await fake_api.await_for(lambda: feed_server.hits("/f.xml") > before, timeout=5)
        limited_at = feed_server.requests("/f.xml")[-1].at
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) == 1, timeout=10)
        after = [r.at for r in feed_server.requests("/f.xml") if r.at > limited_at]
        assert after and min(after) - limited_at >= 2.9  # poll interval is 1 s
        assert "Topic 3" in posts(fake_api, USER)[0].plain


def _page(*links: tuple[str, str]) -> str:
    tags = "".join(
        f'<link rel="alternate" type="application/rss+xml" title="{title}" href="{href}">'
        for href, title in links
    )
    return f"<!doctype html><html><head><title>Blog</title>{tags}</head><body>hi</body></html>"


async def test_web_page_with_one_feed_subscribes_to_it(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/feed.xml", hugo_feed(range(1, 3)))
    feed_server.set_response(
        "/blog/", 200, _page(("/feed.xml", "Posts")), {"Content-Type": "text/html; charset=utf-8"}
    )
    async with start_bot() as chat:
        (found,) = await chat.say(USER, f"/sub {feed_server.url('/blog/')}")
        assert "is a web page; I found its feed" in found.plain
        assert feed_server.url("/feed.xml") in found.plain
        (listing,) = await chat.say(USER, "/list")
        assert feed_server.url("/feed.xml") in listing.plain


async def test_web_page_with_several_feeds_offers_buttons(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/posts.xml", hugo_feed(range(1, 3), title="All posts"))
    feed_server.set_feed("/comments.xml", rss("Comments", "https://c.test/", [hugo_item(9)]))
    page = _page(("/posts.xml", "Posts"), ("/comments.xml", "Comments"))
    feed_server.set_response("/", 200, page, {"Content-Type": "text/html"})
    async with start_bot() as chat:
        (offer,) = await chat.say(USER, f"/sub {feed_server.url('/')}")
        assert "several feeds" in offer.plain
        rows = offer.params["reply_markup"]["inline_keyboard"]
        assert [row[0]["text"] for row in rows] == ["Posts", "Comments"]
        fake_api.press_button(USER, offer.message_id, rows[1][0]["callback_data"])
        await chat.settled(USER, offer.message_id, "Subscribed to Comments")  # the card itself
        assert fake_api.calls("answerCallbackQuery")
        (listing,) = await chat.say(USER, "/list")
        assert feed_server.url("/comments.xml") in listing.plain
        assert feed_server.url("/posts.xml") not in listing.plain


LOOPBACK_SPELLINGS = (
    "127.0.0.1", "localhost", "0.0.0.0", "[::1]", "2130706433", "0x7f000001",
    "[::ffff:127.0.0.1]", "127.1",
)


async def test_every_loopback_spelling_is_refused_when_private_is_off(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    port = feed_server.base_url.rsplit(":", 1)[1]
    async with start_bot(allow_private=False) as chat:
        for host in LOOPBACK_SPELLINGS:
            (answer,) = await chat.say(USER, f"/sub http://{host}:{port}/f.xml")
            assert "refused" in answer.plain, (host, answer.plain)
    assert feed_server.requests() == []


async def test_feed_health_failing_notice_pause_resume_and_recovery(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    chat = Conversation(fake_api)
    async with running(replace(bot_settings, fetch_timeout=2.0)) as app:
        runtime: Runtime = app.bot_data.runtime
        poller = runtime.poller
        poller.notify_after, poller.pause_after, poller.max_backoff = 1.5, 5.0, 1.0
        url = feed_server.url("/f.xml")
        await chat.say(USER, f"/sub {url}")
        feed_server.set_response("/f.xml", 500, "boom")

        def said(text: str) -> list[SentMessage]:
            return [m for m in fake_api.delivered(USER) if text in m.plain]

        await fake_api.await_for(lambda: bool(said("has failed since")), timeout=10)
        assert "HTTP 500" in said("has failed since")[0].plain
        (listing,) = await chat.say(USER, "/list")
        assert "failing since" in listing.plain and "HTTP 500" in listing.plain

        await fake_api.await_for(lambda: bool(said("so it is paused")), timeout=10)
        hits = feed_server.hits("/f.xml")
        assert await chat.silence(USER, 2.0) == []  # paused: not polled, nothing said
        assert feed_server.hits("/f.xml") == hits
        assert len(said("has failed since")) == 1 and len(said("paused")) == 1
        (listing,) = await chat.say(USER, "/list")
        assert "⏸ paused" in listing.plain

        await _resume(chat, runtime, url)  # while the feed still fails: no re-pause at once
        assert await chat.silence(USER, 2.0) == []
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(said("Topic 3")), timeout=10)
        assert len(said("works again")) == 1
        (listing,) = await chat.say(USER, "/list")
        assert "failing" not in listing.plain and "paused" not in listing.plain


async def _resume(chat: Conversation, runtime: Runtime, url: str) -> None:
    """/resume when the command exists (another helper's work), else through the store."""
    try:
        import bot.handlers.options  # noqa: F401
    except ImportError:
        sub = (await runtime.store.subscriptions_for_feed(url))[0]
        await runtime.store.save_subscription(replace(sub, paused=False))
        return
    (ask,) = await chat.say(USER, "/resume 1")
    buttons = [b["callback_data"] for row in ask.params["reply_markup"]["inline_keyboard"]
               for b in row]
    skip = next(b for b in buttons if b.startswith("resume:skip"))
    chat.api.press_button(USER, ask.message_id, skip)
    await chat.api.await_for(lambda: bool(chat.api.calls("editMessageText")), timeout=10)
    subs = await runtime.store.subscriptions_for_feed(url)
    assert subs and not subs[0].paused
