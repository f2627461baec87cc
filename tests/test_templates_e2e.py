"""Templates and hashtags end to end: /set in a chat against the fake Bot API, then the post that
arrives from a loopback feed server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import BASE_DATE, hugo_html, item, rss
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

USER = 1001
ZH_USER = 1002
CATEGORIES = ("Machine Learning", "深度学习", "2024", "machine-learning")


def tagged_feed(ns: list[int], title: str) -> str:
    items = [
        item(
            guid=f"https://blog.test/{title}/{n}/",
            title=f"Topic {n} of {title}",
            link=f"https://blog.test/{title}/{n}/",
            pub_date=BASE_DATE - timedelta(days=100 - n),
            html=hugo_html(n),
            categories=CATEGORIES,
        )
        for n in sorted(ns, reverse=True)
    ]
    return rss(title, "https://blog.test/", items)


def post_of(api: FakeBotApi, chat_id: int, marker: str) -> SentMessage:
    (post,) = [m for m in api.delivered(chat_id) if marker in m.plain and "⚙️" not in m.plain]
    return post


async def test_a_template_and_hashtags_shape_the_next_post(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", tagged_feed([1, 2], "Alpha"))
    feed_server.set_feed("/b.xml", tagged_feed([1, 2], "Beta"))
    async with start_bot() as chat:
        (progress,) = await chat.say(
            USER, f"/sub {feed_server.url('/a.xml')} {feed_server.url('/b.xml')}"
        )
        await chat.settled(USER, progress.message_id, "Done: 2 added")
        # typed over several lines, as in a Telegram message
        (card,) = await chat.say(USER, "/set 1 template <b>{title}</b> · {feed}\n{summary}\n{tags}")
        assert "Style: your template" in card.plain and "{title}" in card.plain, card.plain
        (card,) = await chat.say(USER, "/set 1 tags news #tech")
        assert "Own hashtags: #news #tech" in card.plain
        (card,) = await chat.say(USER, "/set 2 hashtags off")
        assert "Categories as hashtags: off" in card.plain

        feed_server.set_feed("/a.xml", tagged_feed([1, 2, 3], "Alpha"))
        feed_server.set_feed("/b.xml", tagged_feed([1, 2, 4], "Beta"))
        await fake_api.await_for(
            lambda: (
                any("Topic 3" in m.plain for m in fake_api.delivered(USER))
                and any("Topic 4" in m.plain for m in fake_api.delivered(USER))
            ),
            timeout=15,
        )
        alpha, beta = post_of(fake_api, USER, "Topic 3"), post_of(fake_api, USER, "Topic 4")
        assert api_call_error(alpha.method, alpha.params) is None
        source = alpha.text_or_caption
        assert source.startswith("<b>Topic 3 of Alpha</b> · Alpha\n"), source
        assert "What You Will Learn" in alpha.plain  # {summary}
        assert source.endswith("#news #tech #Machine_Learning #深度学习"), source
        assert "#2024" not in source and "UTC" not in alpha.plain  # no {date} in the template
        # the other feed: today's rendering, without the categories
        assert "Beta · " in beta.plain and "What You Will Learn" in beta.plain
        assert "Machine_Learning" not in beta.plain and "#深度学习" not in beta.plain


async def test_an_invalid_template_is_refused_by_name_and_changes_nothing(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", tagged_feed([1, 2], "Alpha"))
    fake_api.set_user_language(ZH_USER, "zh-hans")
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        (card,) = await chat.say(USER, "/set 1 template compact")
        assert "✅ compact" in str(card.params["reply_markup"])
        for typed, says in (
            ('"<b>{title}</b>\\n{summry}"', "There is no placeholder “{summry}”"),
            ("<b>{title}</b> {link", "lone “{”"),
            ("<div>{title}</div>", "does not allow “<div>”"),
            ("<b>{summary}</b>", "{summary} has formatting and links of its own"),
            ("<b>{title}", "“<b>” is opened but never closed"),
        ):
            (refused,) = await chat.say(USER, f"/set 1 template {typed}")
            assert says in refused.plain and "⚙️" not in refused.plain, (typed, refused.plain)
        (refused,) = await chat.say(USER, "/set 1 tags 2024")
        assert "“2024” makes no hashtag" in refused.plain
        (card,) = await chat.say(USER, "/set 1")
        assert "Style: compact" in card.plain and "Own hashtags: none" in card.plain

        await chat.say(ZH_USER, f"/sub {feed_server.url('/a.xml')}")
        (refused,) = await chat.say(ZH_USER, "/set 1 template {titel}")
        assert "没有占位符“{titel}”" in refused.plain

        feed_server.set_feed("/a.xml", tagged_feed([1, 2, 3], "Alpha"))
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), timeout=15
        )
        post = post_of(fake_api, USER, "Topic 3")
        # compact: the linked title, then the text and the tags; no feed · date line
        assert post.text_or_caption.startswith(
            '<b><a href="https://blog.test/Alpha/3/">Topic 3 of Alpha</a></b>\n'
        )
        assert "UTC" not in post.plain and post.plain.endswith("#Machine_Learning #深度学习")


async def test_style_buttons_pick_a_built_in_style(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", tagged_feed([1, 2], "Alpha"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        (card,) = await chat.say(USER, "/set 1")
        rows = card.params["reply_markup"]["inline_keyboard"]
        labels = {b["text"]: b["callback_data"] for row in rows for b in row}
        assert "📝 ✅ full post" in labels and "#️⃣ Hashtags: on" in labels
        fake_api.press_button(USER, card.message_id, labels["📝 linked title only"])
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        shown = fake_api.message(USER, card.message_id)
        assert shown is not None and "Style: linked title only" in shown["text"]
        assert "📝 ✅ linked title only" in str(shown["reply_markup"])

        feed_server.set_feed("/a.xml", tagged_feed([1, 2, 3], "Alpha"))
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), timeout=15
        )
        post = post_of(fake_api, USER, "Topic 3")
        assert post.method == "sendMessage"  # no picture, no body: the title and the tags
        assert post.text_or_caption == (
            '<a href="https://blog.test/Alpha/3/">Topic 3 of Alpha</a>\n#Machine_Learning #深度学习'
        )
