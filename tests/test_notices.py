"""Where notices go (issue 18): a chat's feed notices (failing, working again, gone, paused) go to
the chat its `notices` setting names (`/set @channel notices me`), never into the channel then;
and a feed address with credentials is never shown in a channel or group. The decisions are pure
(bot.pipeline.outbox, bot.pipeline.check), tested here without I/O; then end to end against the
fake Bot API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bot.app import running
from bot.config import Settings
from bot.errors import Reason
from bot.feeds.urls import is_private_url, public_url
from bot.models import (
    ApiCall,
    Chat,
    Entry,
    Feed,
    FetchResult,
    ParsedFeed,
    RenderedMessage,
    Subscription,
)
from bot.pipeline.check import CheckPlan, check_commit, render_for
from bot.pipeline.outbox import Moment, notify_subscribers, post_deliveries
from bot.render.fallback import title_and_link
from bot.storage.base import FeedState, Stamp
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed, rss
from tests.fakes.feedserver import FeedServer

ADMIN = 1001
STRANGER = 4004
CHANNEL = -100920
SECOND = -100921
GROUP = -100622
TOKEN = "s3cretT0ken42abc"
PRIVATE_URL = f"https://git.example/me/project.atom?feed_token={TOKEN}"


def channel(chat_id: int = CHANNEL, title: str = "News", notices: int | None = None) -> Chat:
    return Chat(id=chat_id, type="channel", title=title, notices=notices)


def texts(deliveries: list[Any]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for d in deliveries:
        out.setdefault(d.chat_id, []).append(d.message.attempts[0].params["text"])
    return out


# ------------------------------------------------------------------------ addresses
def test_private_feed_addresses_are_recognised_and_shown_without_their_secret() -> None:
    for url in (
        PRIVATE_URL,
        "https://user:pw@feeds.example/f.xml",
        "https://github.com/me.private.atom?token=AAAB3NzaC1yc2E",
        "https://tracker.example/rss?passkey=abc",
        "https://redmine.example/issues.atom?key=abc",
        "https://feeds.example/rss?x=9f86d081884c7d659a2feaa0c55ad015",
    ):
        assert is_private_url(url), url
        shown = public_url(url)
        assert "@" not in shown and "pw" not in shown and "abc" not in shown, shown
        assert shown.startswith(("https://git.example/", "https://feeds.example/",
                                 "https://github.com/", "https://tracker.example/",
                                 "https://redmine.example/"))
    for url in ("https://feeds.example/f.xml", "https://blog.example/feed?page=2&lang=en",
                "https://blog.example/rss?id=12345678901234567890&keyword=go"):
        assert not is_private_url(url) and public_url(url) == url


def test_the_last_resort_form_of_a_post_names_the_feed_without_its_secret() -> None:
    empty = RenderedMessage((ApiCall("sendMessage", {"text": ""}),))
    assert TOKEN not in title_and_link(empty, "key-without-link", PRIVATE_URL)
    assert "git.example" in title_and_link(empty, "key-without-link", PRIVATE_URL)


def test_an_untitled_feeds_posts_name_it_without_its_secret() -> None:
    entry = Entry(key="k", title="", link="https://git.example/1")
    parsed = ParsedFeed(title="", link="", entries=[entry])
    sub = Subscription(CHANNEL, PRIVATE_URL)
    messages = render_for(Feed(url=PRIVATE_URL), parsed, [entry], [sub], {CHANNEL: "en"})
    text = str(messages[(CHANNEL, "k")].attempts[0].params)
    assert TOKEN not in text and "git.example" in text


# ------------------------------------------------------------------------ routing, pure
def test_a_channels_notices_go_to_its_notices_chat_and_not_into_the_channel() -> None:
    subs = [Subscription(CHANNEL, PRIVATE_URL), Subscription(ADMIN, PRIVATE_URL)]
    chats = {CHANNEL: channel(notices=ADMIN), ADMIN: Chat(id=ADMIN, type="private")}
    values: dict[str, object] = {
        "title": "Project", "since": Moment(0.0), "reason": Reason("error_http_500", {"code": 500})
    }
    deliveries, paused = notify_subscribers(subs, chats, "feed_failing", 10.0, values)
    sent = texts(deliveries)
    assert CHANNEL not in sent and paused == []
    own, routed = sent[ADMIN]  # the admin's own feed; the channel's, framed with its name
    assert routed.startswith("📢 <b>News</b>\n⚠️ <b>Project</b>") and "⚠️" in own
    assert not own.startswith("📢")
    routed_delivery = next(d for d in deliveries if d.message.attempts[0].params["text"] == routed)
    assert routed_delivery.thread_id is None and not routed_delivery.silent


def test_several_channels_with_one_notices_chat_make_one_notice_naming_them_all() -> None:
    subs = [Subscription(CHANNEL, PRIVATE_URL), Subscription(SECOND, PRIVATE_URL),
            Subscription(GROUP, PRIVATE_URL, paused=True)]
    chats = {CHANNEL: channel(notices=ADMIN), SECOND: channel(SECOND, "Tech", notices=ADMIN),
             GROUP: Chat(GROUP, "supergroup", notices=ADMIN)}
    deliveries, paused = notify_subscribers(
        subs, chats, "feed_gone", 10.0, {"title": PRIVATE_URL, "url": PRIVATE_URL}, pause=True
    )
    (text,) = texts(deliveries)[ADMIN]
    assert text.startswith("📢 <b>News, Tech</b>\n⛔")
    assert TOKEN in text  # the admin's private chat may see the address whole
    assert [s.chat_id for s in paused] == [CHANNEL, SECOND]  # the paused one is left alone


def test_notices_in_a_channel_or_group_never_show_a_private_address() -> None:
    subs = [Subscription(CHANNEL, PRIVATE_URL), Subscription(GROUP, PRIVATE_URL),
            Subscription(ADMIN, PRIVATE_URL), Subscription(SECOND, PRIVATE_URL)]
    chats = {CHANNEL: channel(), GROUP: Chat(GROUP, "supergroup"),
             ADMIN: Chat(ADMIN, "private"), SECOND: channel(SECOND, notices=GROUP)}
    reason = Reason("error_not_feed", {"detail": PRIVATE_URL})
    values: dict[str, object] = {"title": PRIVATE_URL, "url": PRIVATE_URL, "reason": reason,
                                 "since": Moment(0.0)}
    for key in ("feed_gone", "feed_failing", "feed_paused"):
        sent = texts(notify_subscribers(subs, chats, key, 10.0, values)[0])
        assert all(TOKEN not in text for text in sent[CHANNEL] + sent[GROUP]), key
        assert "git.example" in sent[CHANNEL][0], key
        assert TOKEN in sent[ADMIN][0] or key != "feed_gone"


def test_the_backlog_line_in_a_channel_names_the_feed_without_its_secret() -> None:
    entries = [Entry(key=f"k{n}", title=f"Post {n}", link=f"https://git.example/{n}")
               for n in range(3)]
    message = RenderedMessage((ApiCall("sendMessage", {"text": "post"}),))
    feed, sub = Feed(url=PRIVATE_URL), Subscription(CHANNEL, PRIVATE_URL)
    messages = {(CHANNEL, e.key): message for e in entries}
    line, *posts = post_deliveries(channel(), sub, feed, entries, messages, 10.0, 1)
    assert len(posts) == 1 and "skipped" in line.message.attempts[0].params["text"]
    assert TOKEN not in line.message.attempts[0].params["text"]
    mine = {(ADMIN, e.key): message for e in entries}
    line, *_ = post_deliveries(Chat(ADMIN), replace(sub, chat_id=ADMIN), feed, entries, mine,
                               10.0, 1)
    assert TOKEN in line.message.attempts[0].params["text"]  # the subscriber's own chat


def _plan_recovering(state: FeedState) -> CheckPlan:
    parsed = ParsedFeed(title="Project", link="https://git.example/", entries=[])
    result = FetchResult(url=PRIVATE_URL, status=200, body=b"")
    return CheckPlan(PRIVATE_URL, result, parsed, [], subscriptions=list(state.subscriptions))


def test_a_recovery_notice_goes_where_the_chats_notices_go() -> None:
    feed = Feed(url=PRIVATE_URL, title="", failure_notified=True, errors=3)
    subs = [Subscription(CHANNEL, PRIVATE_URL), Subscription(GROUP, PRIVATE_URL)]
    state = FeedState(feed, subs, {CHANNEL: channel(notices=ADMIN),
                                   GROUP: Chat(GROUP, "supergroup")}, Stamp())
    commit = check_commit(state, _plan_recovering(state), 10.0, 5)
    sent = texts(commit.deliveries)
    assert CHANNEL not in sent
    (routed,) = sent[ADMIN]
    assert routed.startswith("📢 <b>News</b>\n✅ <b>Project</b> works again")
    (in_group,) = sent[GROUP]
    assert "works again" in in_group and TOKEN not in in_group


# ------------------------------------------------------------------------ end to end
def said(api: FakeBotApi, chat_id: int, text: str) -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if text in m.plain]


async def test_a_channels_failure_and_recovery_notices_reach_its_admin_not_the_channel(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(ADMIN,))
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    url = feed_server.url("/f.xml") + f"?feed_token={TOKEN}"
    chat = Conversation(fake_api)
    async with running(replace(bot_settings, fetch_timeout=2.0)) as app:
        poller = app.bot_data.runtime.poller
        poller.notify_after, poller.pause_after, poller.max_backoff = 1.0, 600.0, 0.5
        await chat.say(ADMIN, f"/sub @mychan {url}")
        (shown,) = await chat.say(ADMIN, "/set @mychan notices")
        assert "go into @mychan itself" in shown.plain and "/set @mychan notices me" in shown.plain
        (ok,) = await chat.say(ADMIN, "/set @mychan notices me")
        assert ok.plain.startswith("📢 @mychan")
        assert "now go to your private chat with me" in ok.plain
        (now,) = await chat.say(ADMIN, "/set @mychan notices")
        assert "go to your private chat with me" not in now.plain  # a stored name, or its id
        assert "notices off" in now.plain

        feed_server.set_response("/f.xml", 500, "boom")
        await fake_api.await_for(lambda: bool(said(fake_api, ADMIN, "has failed since")), 15)
        (failing,) = said(fake_api, ADMIN, "has failed since")
        assert failing.plain.startswith("📢 News") and "HTTP 500" in failing.plain
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(said(fake_api, ADMIN, "works again")), 15)
        await fake_api.await_for(lambda: bool(said(fake_api, CHANNEL, "Topic 3")), 15)
    in_channel = fake_api.delivered(CHANNEL)
    assert len(in_channel) == 1 and "Topic 3" in in_channel[0].plain  # the post, nothing else
    assert not any(TOKEN in str(c.params) for c in fake_api.calls()
                   if str(c.params.get("chat_id")) == str(CHANNEL))


async def test_without_a_notices_chat_a_channel_hears_of_its_feed_but_not_its_secret(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(ADMIN,))
    feed_server.set_feed("/f.xml", rss("", "", []))  # no title: notices name it by address
    url = feed_server.url("/f.xml") + f"?feed_token={TOKEN}"
    chat = Conversation(fake_api)
    async with running(bot_settings):
        await chat.say(ADMIN, f"/sub @mychan {url}")
        await chat.say(ADMIN, "/set @mychan notices me")
        (off,) = await chat.say(ADMIN, "/set @mychan notices off")
        assert "go into @mychan itself again" in off.plain
        feed_server.set_response("/f.xml", 410, "gone")
        (gone,) = await fake_api.await_delivered(1, CHANNEL, timeout=15)
    assert "is gone" in gone.plain and feed_server.url("/f.xml") in gone.plain
    assert TOKEN not in str(gone.params)


async def test_the_notices_chat_must_be_one_the_user_is_in_and_the_bot_writes_in(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(CHANNEL, "channel", title="News", username="mychan", admins=(ADMIN,))
    fake_api.add_chat(SECOND, "channel", title="Other", username="otherchan", admins=(STRANGER,))
    fake_api.add_chat(GROUP, "supergroup", title="Admins", username="admins", admins=(ADMIN,))
    fake_api.add_chat(-100623, "supergroup", title="Left", username="leftgroup")
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(ADMIN, f"/sub @mychan {feed_server.url('/f.xml')}")
        fake_api.bot_membership(-100623, "kicked")
        for value, expected in (
            (str(STRANGER), "someone else's private chat"),
            ("@otherchan", "Only administrators of"),
            ("@leftgroup", "I can't write in"),
            ("@nosuchchat", "I can't find the chat @nosuchchat"),
            ("somewhere", "Where should the notices go?"),
        ):
            (refused,) = await chat.say(ADMIN, f"/set @mychan notices {value}")
            assert expected in refused.plain, (value, refused.plain)
        (denied,) = await chat.say(STRANGER, "/set @mychan notices me")
        assert "Only administrators of @mychan" in denied.plain
        (group,) = await chat.say(ADMIN, "/set @mychan notices @admins")
        assert "now go to @admins" in group.plain
        (itself,) = await chat.say(ADMIN, "/set @mychan notices @mychan")
        assert "go into @mychan itself again" in itself.plain
        (here,) = await chat.say(GROUP, "/set @mychan notices here", user_id=ADMIN)
        assert "now go to Admins" in here.plain
