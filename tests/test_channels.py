"""Groups (admins, anonymous admins), forum topics and channels, end to end: the real bot against
the fake Bot API and a loopback feed server, asserting on what users see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
ADMIN = 2002
MEMBER = 3003
STRANGER = 4004
GROUP = -100600
FORUM = -100601
CHANNEL = -100900
OTHER_CHANNEL = -100901
TOPIC = 42


async def answered(api: FakeBotApi, n: int) -> dict[str, Any]:
    """The n-th answerCallbackQuery's parameters (1-based), once it was sent."""
    await api.await_for(lambda: len(api.calls("answerCallbackQuery")) >= n)
    return api.calls("answerCallbackQuery")[n - 1].params


def posts(api: FakeBotApi, chat_id: int) -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if "series/" in m.text_or_caption]


# ------------------------------------------------------------------------ groups
async def test_anonymous_admins_manage_but_other_senders_do_not(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    fake_api.add_chat(OTHER_CHANNEL, "channel", title="Linked channel")
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        # a message sent "on behalf of" the group itself: an anonymous administrator
        (ok,) = await chat.say(GROUP, f"/sub {url}", sender_chat_id=GROUP)
        assert "Subscribed" in ok.plain
        # a message sent on behalf of some channel is not an administrator of the group
        (refused,) = await chat.say(GROUP, "/unsub 1", sender_chat_id=OTHER_CHANNEL)
        assert "only administrators" in refused.plain
        (refused2,) = await chat.say(GROUP, "/unsub 1", user_id=MEMBER)
        assert "only administrators" in refused2.plain
        (gone,) = await chat.say(GROUP, "/unsub 1", sender_chat_id=GROUP)
        assert "Unsubscribed" in gone.plain


async def test_subscription_made_in_a_forum_topic_posts_into_that_topic(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(FORUM, "supergroup", title="Forum", admins=(ADMIN,), is_forum=True)
    feed_server.set_feed("/topic.xml", hugo_feed(range(1, 4)))
    feed_server.set_feed("/main.xml", hugo_feed(range(101, 103), title="Main thread feed"))
    async with start_bot() as chat:
        (ok,) = await chat.say(
            FORUM, f"/sub {feed_server.url('/topic.xml')}", user_id=ADMIN, thread_id=TOPIC
        )
        assert "Subscribed" in ok.plain and ok.thread_id == TOPIC  # answered in the topic
        (ok2,) = await chat.say(FORUM, f"/sub {feed_server.url('/main.xml')}", user_id=ADMIN)
        assert ok2.thread_id is None
        feed_server.set_feed("/topic.xml", hugo_feed(range(1, 5)))
        feed_server.set_feed("/main.xml", hugo_feed(range(101, 104), title="Main thread feed"))
        await fake_api.await_for(lambda: len(posts(fake_api, FORUM)) >= 2, timeout=10)
    by_topic = {m.thread_id: m for m in posts(fake_api, FORUM)}
    assert "Topic 4" in by_topic[TOPIC].plain
    assert by_topic[TOPIC].params["message_thread_id"] == TOPIC
    assert "Topic 103" in by_topic[None].plain
    assert "message_thread_id" not in by_topic[None].params


# ------------------------------------------------------------------------ channels
async def test_channel_admin_manages_the_channel_from_a_private_chat(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    feed_server.set_feed("/b.xml", hugo_feed(range(201, 203), title="Second"))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        (ok,) = await chat.say(USER, f"/sub @mychan {url}")
        assert ok.plain.startswith("📢 @mychan") and "Subscribed to Machine Learning" in ok.plain
        # the numeric id works as well, and so does the addressed command form
        (ok2,) = await chat.say(
            USER, f"/sub@{fake_api.bot_username} {CHANNEL} {feed_server.url('/b.xml')}"
        )
        assert "Subscribed to Second" in ok2.plain
        (listing,) = await chat.say(USER, "/list @mychan")
        assert "@mychan follows 2 feed(s)" in listing.plain and url in listing.plain
        (mine,) = await chat.say(USER, "/list")
        assert "follows no feeds" in mine.plain  # the private chat itself follows nothing

        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 5)))
        (post,) = await fake_api.await_delivered(1, CHANNEL, timeout=10)
        assert "Topic 4" in post.plain
        assert fake_api.delivered(CHANNEL) == [post]  # no replies leak into the channel

        (gone,) = await chat.say(USER, "/unsub @mychan 1")
        assert "📢 @mychan" in gone.plain and "Unsubscribed from Machine Learning" in gone.plain
        (left,) = await chat.say(USER, "/list @mychan")
        assert "1 feed(s)" in left.plain and url not in left.plain
        (usage,) = await chat.say(USER, "/sub @mychan")
        assert "/sub https://" in usage.plain


async def test_channel_refusals_say_exactly_what_is_wrong(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    fake_api.add_chat(-100902, "channel", username="memberbot", admins=(USER,), bot_rights={})
    fake_api.add_chat(
        -100903, "channel", username="nopostbot", admins=(USER,),
        bot_rights={"can_post_messages": False},
    )
    fake_api.add_chat(GROUP, "supergroup", username="agroup", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        (stranger,) = await chat.say(STRANGER, f"/sub @mychan {url}")
        assert "Only administrators of @mychan" in stranger.plain
        (stranger_list,) = await chat.say(STRANGER, "/list @mychan")
        assert "Only administrators of @mychan" in stranger_list.plain
        (not_admin,) = await chat.say(USER, f"/sub @memberbot {url}")
        assert "I am not an administrator of @memberbot" in not_admin.plain
        (no_post,) = await chat.say(USER, f"/sub @nopostbot {url}")
        assert "may not post messages" in no_post.plain
        (missing,) = await chat.say(USER, f"/sub @nosuchchannel {url}")
        assert "can't find the channel @nosuchchannel" in missing.plain
        (missing_id,) = await chat.say(USER, f"/unsub -1009999999 {url}")
        assert "can't find the channel -1009999999" in missing_id.plain
        (group,) = await chat.say(USER, f"/sub @agroup {url}")
        assert "is not a channel" in group.plain
        (anonymous,) = await chat.say(GROUP, f"/sub @mychan {url}", sender_chat_id=GROUP)
        assert "anonymously" in anonymous.plain
    assert feed_server.hits("/ml.xml") == 0  # nothing was even fetched
    assert [c for c in fake_api.calls() if c.method.startswith("send")
            and str(c.params.get("chat_id")).startswith("-1009")] == []


async def test_channel_page_with_several_feeds_offers_buttons_that_subscribe_the_channel(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Feed A"))
    feed_server.set_feed("/b.xml", hugo_feed(range(1, 3), title="Feed B"))
    page = (
        '<html><head><link rel="alternate" type="application/rss+xml" title="A" href="/a.xml">'
        '<link rel="alternate" type="application/rss+xml" title="B" href="/b.xml"></head></html>'
    )
    feed_server.set_response("/", 200, page, {"Content-Type": "text/html"})
    async with start_bot() as chat:
        (choose,) = await chat.say(USER, f"/sub @mychan {feed_server.url('/')}")
        assert "several feeds" in choose.plain
        buttons = [b for row in choose.params["reply_markup"]["inline_keyboard"] for b in row]
        assert [b["text"] for b in buttons] == ["A", "B"]
        # someone who does not manage the channel is refused with an alert; the card stays
        fake_api.press_button(USER, choose.message_id, buttons[1]["callback_data"], STRANGER)
        alert = await answered(fake_api, 1)
        assert alert["show_alert"] and "Only administrators of @mychan" in alert["text"]
        assert (fake_api.message(USER, choose.message_id) or {})["reply_markup"]["inline_keyboard"]
        fake_api.press_button(USER, choose.message_id, buttons[1]["callback_data"])
        card = await chat.settled(USER, choose.message_id, "Subscribed to Feed B")
        assert "📢 @mychan" in card and "arrive in @mychan" in card
        assert "reply_markup" not in (fake_api.message(USER, choose.message_id) or {})
        assert len(fake_api.delivered(USER)) == 1  # the card itself is the answer
        (listing,) = await chat.say(USER, "/list @mychan")
        assert feed_server.url("/b.xml") in listing.plain
        assert feed_server.url("/a.xml") not in listing.plain
