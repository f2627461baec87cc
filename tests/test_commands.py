"""The /sub and /unsub conversation, end to end: the real bot against the fake Bot API and loopback
feed servers (issue 12). Each test names the defect it pins down."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from bot.app import running
from bot.config import Settings
from bot.models import Chat, Subscription
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
ADMIN = 2002
MEMBER = 3003
FORUM = -100700
GROUP = -100701
CHANNEL = -100900
TOPIC = 42


def posts(api: FakeBotApi, chat_id: int) -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if "series/" in m.text_or_caption]


def buttons(message: SentMessage | dict[str, Any]) -> list[dict[str, str]]:
    params = message.params if isinstance(message, SentMessage) else message
    return [b for row in params.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def alert(api: FakeBotApi, n: int) -> dict[str, Any]:
    """The n-th answerCallbackQuery (1-based), once the bot sent it."""
    await api.await_for(lambda: len(api.calls("answerCallbackQuery")) >= n)
    return api.calls("answerCallbackQuery")[n - 1].params


def two_feed_page(server: FeedServer) -> str:
    server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Feed A"))
    server.set_feed("/b.xml", hugo_feed(range(1, 3), title="Feed B"))
    page = (
        '<html><head><link rel="alternate" type="application/rss+xml" title="A" href="/a.xml">'
        '<link rel="alternate" type="application/rss+xml" title="B" href="/b.xml"></head></html>'
    )
    server.set_response("/page", 200, page, {"Content-Type": "text/html"})
    return server.url("/page")


def edits_of(api: FakeBotApi, chat_id: int, message_id: int) -> list[Any]:
    return [
        c for c in api.calls("editMessageText")
        if str(c.params.get("chat_id")) == str(chat_id)
        and str(c.params.get("message_id")) == str(message_id)
    ]


# ------------------------------------------------------------------------ storage
def test_records_written_before_these_fields_still_load() -> None:
    from bot.service import PendingChoice  # here: the other tests also run against older code

    chat = Chat.from_dict({"id": 5, "type": "private", "lang": "zh", "seen": ["a"]})
    assert chat.choices == {} and chat.lang == "zh"
    sub = Subscription.from_dict({"chat_id": 5, "feed_url": "http://a.example/f", "options": {}})
    assert sub.page == ""
    choice = PendingChoice(target=5, page="http://a.example/", options=[("u", "T")], thread_id=7)
    assert PendingChoice.from_dict(choice.to_dict()) == choice


# ------------------------------------------------------------------------ /unsub
async def test_unsub_numbers_refer_to_the_list_as_shown(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """/unsub 1 2 with [Red, Green, Blue] removed Red and Blue."""
    for name in ("Red", "Green", "Blue"):
        feed_server.set_feed(f"/{name}.xml", hugo_feed(range(1, 3), title=name))
    async with start_bot() as chat:
        for name in ("Red", "Green", "Blue"):
            await chat.say(USER, f"/sub {feed_server.url(f'/{name}.xml')}")
        (gone,) = await chat.say(USER, "/unsub 1 2")  # one answer for both
        assert "Unsubscribed from Red" in gone.plain and "Unsubscribed from Green" in gone.plain
        (listing,) = await chat.say(USER, "/list")
        assert "1. Blue" in listing.plain and "Red" not in listing.plain
        assert "Green" not in listing.plain


async def test_unsub_for_a_channel_numbers_refer_to_the_list_as_shown(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    for name in ("Red", "Green", "Blue"):
        feed_server.set_feed(f"/{name}.xml", hugo_feed(range(1, 3), title=name))
    async with start_bot() as chat:
        for name in ("Red", "Green", "Blue"):
            await chat.say(USER, f"/sub @mychan {feed_server.url(f'/{name}.xml')}")
        (gone,) = await chat.say(USER, "/unsub @mychan 1 2")
        assert "Red" in gone.plain and "Green" in gone.plain and "Blue" not in gone.plain
        (listing,) = await chat.say(USER, "/list @mychan")
        assert "1. Blue" in listing.plain and "Green" not in listing.plain


# ------------------------------------------------------------------------ choice cards
async def test_feed_chosen_in_a_forum_topic_posts_into_that_topic(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """The feed button of a card sent in a topic subscribed General, not the topic; the card
    kept its buttons after the choice."""
    fake_api.add_chat(FORUM, "supergroup", title="Forum", admins=(ADMIN,), is_forum=True)
    page = two_feed_page(feed_server)
    async with start_bot() as chat:
        (card,) = await chat.say(FORUM, f"/sub {page}", user_id=ADMIN, thread_id=TOPIC)
        assert card.thread_id == TOPIC and [b["text"] for b in buttons(card)] == ["A", "B"]
        fake_api.press_button(FORUM, card.message_id, buttons(card)[1]["callback_data"], ADMIN)
        await fake_api.await_for(lambda: feed_server.hits("/b.xml") >= 1)
        await asyncio.sleep(0.5)
        feed_server.set_feed("/b.xml", hugo_feed(range(1, 4), title="Feed B"))
        await fake_api.await_for(lambda: len(posts(fake_api, FORUM)) == 1, timeout=10)
        (post,) = posts(fake_api, FORUM)
        assert post.thread_id == TOPIC and post.params["message_thread_id"] == TOPIC
        text = await chat.settled(FORUM, card.message_id, "Subscribed to Feed B")
        assert "arrive here" in text
        assert "reply_markup" not in (fake_api.message(FORUM, card.message_id) or {})


async def test_feed_buttons_refuse_non_admins_and_answer_a_second_press(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """A non-admin's press used the choice up without an alert; a second press did nothing."""
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    page = two_feed_page(feed_server)
    async with start_bot() as chat:
        (card,) = await chat.say(GROUP, f"/sub {page}", user_id=ADMIN)
        data = buttons(card)[0]["callback_data"]
        fake_api.press_button(GROUP, card.message_id, data, MEMBER)
        refused = await alert(fake_api, 1)
        assert refused["show_alert"] and "only administrators" in refused["text"]
        assert buttons(fake_api.message(GROUP, card.message_id) or {})  # still usable
        fake_api.press_button(GROUP, card.message_id, data, ADMIN)
        await chat.settled(GROUP, card.message_id, "Subscribed to Feed A")
        fake_api.press_button(GROUP, card.message_id, buttons(card)[1]["callback_data"], ADMIN)
        closed = await alert(fake_api, 3)
        assert closed["show_alert"] and "no longer open" in closed["text"]
        assert "/sub" in closed["text"]
        (listing,) = await chat.say(GROUP, "/list", user_id=MEMBER)
        assert "Feed A" in listing.plain and "Feed B" not in listing.plain


async def test_feed_buttons_still_work_after_a_restart(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """Choices lived in PTB's chat_data: after a restart the buttons did nothing."""
    page = two_feed_page(feed_server)
    chat = Conversation(fake_api)
    async with running(bot_settings):
        (card,) = await chat.say(USER, f"/sub {page}")
    async with running(bot_settings):
        fake_api.press_button(USER, card.message_id, buttons(card)[1]["callback_data"])
        await chat.settled(USER, card.message_id, "Subscribed to Feed B")
        (listing,) = await chat.say(USER, "/list")
        assert feed_server.url("/b.xml") in listing.plain


async def test_channel_feed_buttons_answer_a_second_press(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    page = two_feed_page(feed_server)
    async with start_bot() as chat:
        (card,) = await chat.say(USER, f"/sub @mychan {page}")
        data = buttons(card)[0]["callback_data"]
        fake_api.press_button(USER, card.message_id, data)
        text = await chat.settled(USER, card.message_id, "Subscribed to Feed A")
        assert "arrive in @mychan" in text and "arrive here" not in text
        fake_api.press_button(USER, card.message_id, data)
        closed = await alert(fake_api, 2)
        assert closed["show_alert"] and "no longer open" in closed["text"]


# ------------------------------------------------------------------------ channels
async def test_sub_for_a_channel_says_where_posts_go(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """"/sub @chan URL" ended with "New posts will arrive here"."""
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(USER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        (ok,) = await chat.say(USER, f"/sub @mychan {feed_server.url('/ml.xml')}")
        assert "New posts will arrive in @mychan" in ok.plain and "here" not in ok.plain


async def test_channel_name_without_at_is_questioned_without_any_lookup(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """"/sub mychannel URL" looked up the name "mychannel"."""
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        (hint,) = await chat.say(USER, f"/sub mychannel {feed_server.url('/ml.xml')}")
        assert "Did you mean @mychannel?" in hint.plain
        (hint2,) = await chat.say(USER, "/unsub mychannel 1")
        assert "Did you mean @mychannel?" in hint2.plain
        (words,) = await chat.say(USER, "/sub nothing here")  # no address follows: no hint
        assert "Not web addresses: nothing, here." in words.plain
    assert feed_server.hits("/ml.xml") == 0
    assert fake_api.calls("getChat") == []


# ------------------------------------------------------------------------ addresses
async def test_words_that_are_no_address_get_one_answer_and_no_lookup(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """"/sub not a url at all" gave 5 errors after a DNS lookup per word."""
    async with start_bot() as chat:
        (answer,) = await chat.say(USER, "/sub not a url at all")
        assert "Not web addresses: not, a, url, at, all." in answer.plain
        assert await chat.silence(USER, 1.0) == []
    assert feed_server.requests() == []


async def test_trailing_punctuation_is_not_part_of_the_url(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """"/sub URL," kept the comma and got a 404."""
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        (ok,) = await chat.say(USER, f"/sub {feed_server.url('/ml.xml')},")
        assert "Subscribed to Machine Learning" in ok.plain


async def test_url_without_scheme_falls_back_to_http(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """A URL typed without a scheme got "TLS error: ... [SSL: WRONG_VERSION_NUMBER]"."""
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    bare = feed_server.url("/ml.xml").removeprefix("http://")
    async with start_bot() as chat:
        answers = await chat.say(USER, f"/sub {bare}", timeout=15)
        text = await chat.settled(USER, answers[0].message_id, "Subscribed", timeout=15)
        assert "SSL" not in text and f"http://{bare}" in text


async def test_slow_feed_shows_progress_within_a_second(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """A feed that is slow to answer gave 30 s of nothing."""
    feed_server.set_feed("/slow.xml", hugo_feed(range(1, 3)))
    feed_server.slow("/slow.xml", 3.0)
    async with start_bot() as chat:
        sent = time.monotonic()
        (checking,) = await chat.say(USER, f"/sub {feed_server.url('/slow.xml')}")
        assert time.monotonic() - sent < 2.5  # shown after 1 s (loaded CI machines: slack)
        assert "checking" in checking.plain
        await chat.settled(USER, checking.message_id, "Subscribed to Machine Learning")
        assert len(fake_api.delivered(USER)) == 1  # the same message became the answer


async def test_twelve_urls_are_all_subscribed_and_reported_in_one_edited_message(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """"/sub" with 12 URLs: 5 confirmations arrived, the rest were never tried."""
    urls = []
    for n in range(12):
        feed_server.set_feed(f"/f{n}.xml", hugo_feed(range(1, 3), title=f"Feed {n}"))
        feed_server.slow(f"/f{n}.xml", 0.4)
        urls.append(feed_server.url(f"/f{n}.xml"))
    async with start_bot() as chat:
        (progress,) = await chat.say(USER, "/sub " + " ".join(urls))
        assert "Checked 0 of 12" in progress.plain
        summary = await chat.settled(USER, progress.message_id, "Done: 12 added", timeout=20)
        assert all(f"Feed {n} — {urls[n]}" in summary for n in range(12))
        assert len(fake_api.delivered(USER)) == 1
        edits = [c.at for c in edits_of(fake_api, USER, progress.message_id)]
        # progress edits come at most about once a second; the final one may follow at once
        assert all(b - a >= 0.8 for a, b in itertools.pairwise(edits[:-1]))
        (listing,) = await chat.say(USER, "/list")
        assert [f"{n + 1}. Feed {n}" in listing.plain for n in range(12)] == [True] * 12


async def test_long_summary_is_split_below_telegrams_limit(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    path = "/missing/" + "x" * 90
    urls = [feed_server.url(f"{path}{n}.xml") for n in range(45)]
    async with start_bot() as chat:
        (progress,) = await chat.say(USER, "/sub " + " ".join(urls))

        def parts() -> list[str]:
            final = fake_api.message(USER, progress.message_id) or {}
            return [str(final.get("text", ""))] + [m.plain for m in fake_api.delivered(USER)[1:]]

        await fake_api.await_for(lambda: "".join(parts()).count("HTTP 404") == 45, timeout=20)
        assert "Done: 0 added, 0 already followed, 45 failed." in parts()[0]
        assert len(parts()) >= 2 and all(len(part) <= 4096 for part in parts())
    assert not fake_api.rejected()


# ------------------------------------------------------------------------ duplicates
async def test_the_same_feed_under_other_names_is_followed_once(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """localhost, 127.0.0.1 and ?utm_source=x were three subscriptions with identical lines."""
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {url}")
        hits = feed_server.hits("/ml.xml")
        (tracked,) = await chat.say(USER, f"/sub {url}?utm_source=x")
        assert "Already subscribed to Machine Learning" in tracked.plain
        assert feed_server.hits("/ml.xml") == hits  # known without fetching it again
        (other_name,) = await chat.say(USER, f"/sub {url.replace('127.0.0.1', 'localhost')}")
        assert "Already subscribed to Machine Learning" in other_name.plain
        assert url in other_name.plain
        (listing,) = await chat.say(USER, "/list")
        assert listing.plain.count("Machine Learning on Test Blog") == 1


async def test_unsub_and_sub_again_know_the_page_a_feed_was_found_on(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    """"/unsub <the page URL used with /sub>" said "No subscription"."""
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    page = '<html><head><link rel="alternate" type="application/rss+xml" href="/ml.xml"></head>'
    feed_server.set_response("/blog/", 200, page, {"Content-Type": "text/html"})
    async with start_bot() as chat:
        (found,) = await chat.say(USER, f"/sub {feed_server.url('/blog/')}")
        assert "I found its feed" in found.plain
        (again,) = await chat.say(USER, f"/sub {feed_server.url('/blog/')}")
        assert "Already subscribed to Machine Learning" in again.plain
        (gone,) = await chat.say(USER, f"/unsub {feed_server.url('/blog')}")
        assert "Unsubscribed from Machine Learning" in gone.plain


# ------------------------------------------------------------------------ plain text
async def test_plain_text_in_a_private_chat_gets_an_answer(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    """A bare feed URL, "sub URL" or a question sent as plain text got no answer at all."""
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        (hint,) = await chat.say(USER, "how do I use this?")
        assert "/sub" in hint.plain and len(hint.plain.splitlines()) == 1
        (offer,) = await chat.say(USER, f"sub {feed_server.url('/ml.xml')}")
        (button,) = buttons(offer)
        assert feed_server.hits("/ml.xml") == 0  # nothing is fetched before the press
        fake_api.press_button(USER, offer.message_id, button["callback_data"])
        await chat.settled(USER, offer.message_id, "Subscribed to Machine Learning")
        fake_api.send_text(GROUP, "what a nice day", user_id=MEMBER)
        assert await chat.silence(GROUP, 1.0) == []  # groups: not a word for non-commands


# ------------------------------------------------------------------------ groups
async def test_group_replies_quote_the_command(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    async with start_bot() as chat:
        command = fake_api.send_text(GROUP, "/list", user_id=MEMBER)
        (answer,) = await fake_api.await_delivered(1, GROUP)
        assert answer.params["reply_parameters"]["message_id"] == command["message_id"]
        (private,) = await chat.say(USER, "/list")
        assert "reply_parameters" not in private.params


# ------------------------------------------------------------------------ Chinese
async def test_sub_conversation_in_chinese(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    url = feed_server.url("/ml.xml")
    async with start_bot() as chat:
        await chat.say(USER, "/lang zh")
        (refused,) = await chat.say(USER, "/sub 不是 网址")
        assert "这些不是网址" in refused.plain
        (hint,) = await chat.say(USER, f"/sub mychannel {url}")
        assert "你是想说 @mychannel 吗" in hint.plain
        (progress,) = await chat.say(USER, f"/sub {url} nothing")
        summary = await chat.settled(USER, progress.message_id, "完成:新增 1 个")
        assert "失败 1 个" in summary and "这些不是网址" in summary
        (question,) = await chat.say(USER, "你好")
        assert "要订阅" in question.plain
        (offer,) = await chat.say(USER, url)
        assert "要在这个聊天里订阅吗" in offer.plain and "订阅" in buttons(offer)[0]["text"]

