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


def button_data(message: SentMessage | dict[str, Any], prefix: str) -> str:
    params = message.params if isinstance(message, SentMessage) else message
    rows = params["reply_markup"]["inline_keyboard"]
    (data,) = [b["callback_data"] for row in rows for b in row if b["text"].startswith(prefix)]
    return str(data)


async def test_channel_options_filters_status_and_pause_from_a_private_chat(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    feed_server.set_feed("/mine.xml", hugo_feed(range(301, 303), title="Mine"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub @mychan {feed_server.url('/ml.xml')}")
        await chat.say(USER, f"/sub {feed_server.url('/mine.xml')}")
        (card,) = await chat.say(USER, "/set @mychan 1")
        assert card.plain.startswith("📢 @mychan") and "Machine Learning" in card.plain
        fake_api.press_button(USER, card.message_id, button_data(card, "🔕"))
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        edited = fake_api.message(USER, card.message_id)
        assert edited is not None and "Silent notifications: on" in edited["text"]
        assert "@mychan" in edited["text"]
        (named,) = await chat.say(USER, "/set @mychan 1 title Channel name")
        assert "1. Channel name" in named.plain and "Silent notifications: on" in named.plain
        (mine,) = await chat.say(USER, "/set 1")
        assert "Mine" in mine.plain and "Silent notifications: off" in mine.plain

        (filtered,) = await chat.say(USER, "/filter @mychan 1 topic 5")
        assert filtered.plain.startswith("📢 @mychan") and "topic 5" in filtered.plain
        (status,) = await chat.say(USER, "/status @mychan")
        assert status.plain.startswith("📢 @mychan") and "Status of 1 feed(s)" in status.plain
        assert "Channel name" in status.plain and "Mine" not in status.plain

        (paused,) = await chat.say(USER, "/pause @mychan")
        assert paused.plain.startswith("📢 @mychan") and "Channel name is paused" in paused.plain
        (mine_status,) = await chat.say(USER, "/status")
        assert "paused" not in mine_status.plain  # the private chat's own feed runs on
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 7)))
        (ask,) = await chat.say(USER, "/resume @mychan 1")
        assert ask.plain.startswith("📢 @mychan") and "Channel name" in ask.plain
        fake_api.press_button(USER, ask.message_id, button_data(ask, "📬"))
        (post,) = await fake_api.await_delivered(1, CHANNEL, timeout=10)
        assert "Topic 5" in post.plain and post.params["disable_notification"] is True
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 2)
        done = fake_api.message(USER, ask.message_id)
        assert done is not None and "@mychan" in done["text"] and "Resumed 1" in done["text"]
        (nothing,) = await chat.say(USER, "/resume @mychan")
        assert "@mychan" in nothing.plain and "Nothing here is paused" in nothing.plain


async def test_a_channel_s_non_admin_may_neither_see_nor_change_its_feeds(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub @mychan {feed_server.url('/ml.xml')}")
        (card,) = await chat.say(USER, "/set @mychan 1")
        for command in ("/list @mychan", "/status @mychan", "/filter @mychan 1"):
            (seen,) = await chat.say(STRANGER, command)
            assert "Only administrators of @mychan can see" in seen.plain, command
        for command in ("/set @mychan 1 silent on", "/pause @mychan", "/filter @mychan 1 x"):
            (changed,) = await chat.say(STRANGER, command)
            assert "Only administrators of @mychan can change" in changed.plain, command
        # the card's button, pressed by someone else (a forwarded copy), is refused too
        before = len(fake_api.delivered(USER))
        fake_api.press_button(USER, card.message_id, button_data(card, "🔕"), STRANGER)
        got = await fake_api.await_delivered(before + 1, USER)
        assert "Only administrators of @mychan can change" in got[-1].plain
        (check,) = await chat.say(USER, "/set @mychan 1")
        assert "Silent notifications: off" in check.plain
        assert fake_api.calls("editMessageText") == []


async def test_allow_list_applies_to_the_channel_a_command_targets(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """Issue 13: an unlisted member of a listed group made the bot post into their channel."""
    stranger = 7007
    fake_api.add_chat(GROUP, "supergroup", title="Listed", admins=(ADMIN,))
    fake_api.add_chat(CHANNEL, "channel", title="Theirs", username="theirchan", admins=(stranger,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    url = feed_server.url("/ml.xml")
    async with start_bot(allowed_chats=(GROUP,)) as chat:
        (refused,) = await chat.say(GROUP, f"/sub @theirchan {url}", user_id=stranger)
        assert "allow-list" in refused.plain
        (listing,) = await chat.say(GROUP, "/list @theirchan", user_id=stranger)
        assert "allow-list" in listing.plain
    assert fake_api.delivered(CHANNEL) == []
    assert not feed_server.hits("/ml.xml")
