"""/preview URL (issue 18): the feed's newest post exactly as the chat would get it (the poller's
render path, the chat's language and default options), then a Subscribe button that goes the
way of /sub. The real bot against the fake Bot API and a loopback feed server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.feeds.diff import oldest_first
from bot.feeds.parser import parse_bytes
from bot.models import SubscriptionOptions
from bot.render import RenderOptions, render_entry
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegraph import FakeTelegraph
from tests.test_instant_view import feed, long_post

USER = 1001
ADMIN = 2002
MEMBER = 3003
GROUP = -100610
CHANNEL = -100910


def buttons(message: SentMessage | dict[str, Any]) -> list[dict[str, str]]:
    params = message.params if isinstance(message, SentMessage) else message
    return [b for row in params.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def posts(api: FakeBotApi, chat_id: int) -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if "series/" in m.text_or_caption]


def expected_call(feed_xml: str, url: str, lang: str = "en", **options: Any) -> dict[str, Any]:
    """What `feedbot preview --json` prints for the newest post: the first call, no chat_id."""
    parsed = parse_bytes(feed_xml.encode(), url)
    newest = oldest_first(parsed.entries)[-1]
    look = RenderOptions.for_subscription(SubscriptionOptions(**options), lang)
    return render_entry(newest, parsed.title, look).attempts[0].to_dict()


def as_sent(message: SentMessage) -> dict[str, Any]:
    params = {k: v for k, v in message.params.items()
              if k not in ("chat_id", "reply_parameters", "reply_markup")}
    return {"method": message.method, "params": params}


async def test_preview_shows_the_newest_post_as_it_arrives_and_its_button_subscribes(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    xml = hugo_feed(range(1, 4))
    feed_server.set_feed("/ml.xml", xml)
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        post, card = await chat.say(USER, f"/preview {url}", replies=2)
        assert "Topic 3" in post.plain and "Topic 2" not in post.plain  # the newest only
        assert as_sent(post) == expected_call(xml, url)  # the poller's (and the CLI's) render
        assert "newest post of Machine Learning on Test Blog" in card.plain and url in card.plain
        (button,) = buttons(card)
        assert button["text"] == "➕ Subscribe"
        (listing,) = await chat.say(USER, "/list")
        assert "follows no feeds" in listing.plain  # a preview subscribes nothing
        fake_api.press_button(USER, card.message_id, button["callback_data"])
        await chat.settled(USER, card.message_id, "Subscribed to Machine Learning")
        (listing,) = await chat.say(USER, "/list")
        assert url in listing.plain
        # the post shown is not sent again; the next one arrives as the preview showed it
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 5)))
        await fake_api.await_for(lambda: len(posts(fake_api, USER)) == 2, timeout=10)
        assert "Topic 4" in posts(fake_api, USER)[-1].plain
        (again,) = (await chat.say(USER, f"/preview {url}", replies=2))[1:]
        assert "Already subscribed" in again.plain and not buttons(again)


async def test_preview_uses_the_chats_language_and_default_options(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    xml = hugo_feed(range(1, 3))
    feed_server.set_feed("/ml.xml", xml)
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        await chat.say(USER, "/lang zh")
        await chat.say(USER, "/set default style compact")
        await chat.say(USER, "/set default silent on")
        post, card = await chat.say(USER, f"/preview {url}", replies=2)
        expected = expected_call(xml, url, "zh", style="compact")
        expected["params"]["disable_notification"] = True  # the chat's posts arrive silently
        assert as_sent(post) == expected
        assert "最新文章" in card.plain and buttons(card)[0]["text"] == "➕ 订阅"


async def test_preview_errors_are_those_of_sub(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_response("/blog/", 200, "<html><head></head></html>",
                             {"Content-Type": "text/html"})
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Feed A"))
    feed_server.set_feed("/b.xml", hugo_feed(range(1, 3), title="Feed B"))
    page = (
        '<html><head><link rel="alternate" type="application/rss+xml" title="A" href="/a.xml">'
        '<link rel="alternate" type="application/rss+xml" title="B" href="/b.xml"></head></html>'
    )
    feed_server.set_response("/two/", 200, page, {"Content-Type": "text/html"})
    async with start_bot() as chat:
        for path, why in (("/missing.xml", "HTTP 404"), ("/blog/", "without a feed link")):
            (sub,) = await chat.say(USER, f"/sub {feed_server.url(path)}")
            (preview,) = await chat.say(USER, f"/preview {feed_server.url(path)}")
            assert why in preview.plain and preview.plain == sub.plain
        (refused,) = await chat.say(USER, "/preview ftp://files.test/feed.xml")
        assert "only http:// and https://" in refused.plain
        (usage,) = await chat.say(USER, "/preview")
        assert "/preview https://" in usage.plain
        (choose,) = await chat.say(USER, f"/preview {feed_server.url('/two/')}")
        assert "several feeds" in choose.plain
        assert f"/preview {feed_server.url('/a.xml')}" in choose.plain
        assert f"/preview {feed_server.url('/b.xml')}" in choose.plain
        (listing,) = await chat.say(USER, "/list")
        assert "follows no feeds" in listing.plain
    assert posts(fake_api, USER) == []


async def test_in_a_group_anyone_previews_but_only_admins_subscribe(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        command = fake_api.send_text(GROUP, f"/preview {feed_server.url('/ml.xml')}",
                                     user_id=MEMBER)
        post, card = await fake_api.await_delivered(2, GROUP)
        assert "Topic 2" in post.plain
        assert post.params["reply_parameters"]["message_id"] == command["message_id"]
        data = buttons(card)[0]["callback_data"]
        fake_api.press_button(GROUP, card.message_id, data, MEMBER)
        await fake_api.await_for(lambda: len(fake_api.calls("answerCallbackQuery")) >= 1)
        refused = fake_api.calls("answerCallbackQuery")[0].params
        assert refused["show_alert"] and "only administrators" in refused["text"]
        fake_api.press_button(GROUP, card.message_id, data, ADMIN)
        await chat.settled(GROUP, card.message_id, "Subscribed to Machine Learning")
        (listing,) = await chat.say(GROUP, "/list", user_id=MEMBER)
        assert "Machine Learning" in listing.plain


async def test_preview_for_a_channel_is_shown_here_and_subscribes_the_channel(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        (refused,) = await chat.say(MEMBER, f"/preview @mychan {url}")
        assert "Only administrators of @mychan" in refused.plain
        post, card = await chat.say(USER, f"/preview @mychan {url}", replies=2)
        assert "Topic 2" in post.plain and card.plain.startswith("📢 @mychan")
        fake_api.press_button(USER, card.message_id, buttons(card)[0]["callback_data"])
        text = await chat.settled(USER, card.message_id, "Subscribed to Machine Learning")
        assert "arrive in @mychan" in text
        (listing,) = await chat.say(USER, "/list @mychan")
        assert url in listing.plain
        await asyncio.sleep(0.5)
    assert fake_api.delivered(CHANNEL) == []  # the preview went to the admin, not the channel


async def test_a_long_post_is_previewed_as_the_instant_view_link_it_would_be(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    feed_server.set_feed("/long.xml", feed(long_post(1)))
    async with start_bot(telegraph_url=telegraph.url) as chat:
        post, card = await chat.say(USER, f"/preview {feed_server.url('/long.xml')}", replies=2)
        assert buttons(card)
    (page,) = telegraph.pages
    assert "Long read 1" in post.plain and "Instant View" in post.plain
    assert any(e.get("url") == page.url for e in post.entities)
