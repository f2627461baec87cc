"""Per-subscription options, filters, /status, /pause and /resume: end to end against the fake
Bot API, asserting on what the user receives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import running
from bot.config import Settings
from bot.feeds.diff import entry_prints
from bot.handlers.options import (
    OptionError,
    format_duration,
    normalize_filter,
    parse_duration,
    parse_option,
)
from bot.models import Entry, Feed, Subscription, SubscriptionOptions
from bot.pipeline.schedule import effective_interval, owed_on_resume, rescheduled
from bot.runtime import Runtime
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import hugo_feed, hugo_html, item, rss
from tests.fakes.feedserver import FeedServer

USER = 1001
ADMIN = 2002
MEMBER = 3003
GROUP = -100700


def recent_feed(ns: range | list[int], title: str = "Recent") -> str:
    """Hugo-like posts dated around now (catch-up only looks at posts from about the pause on)."""
    now = datetime.now(UTC)
    items = [
        item(
            guid=f"https://blog.test/{title}/{n}/",
            title=f"{title} post {n}",
            link=f"https://blog.test/{title}/{n}/",
            pub_date=now - timedelta(minutes=100 - n),
            html=hugo_html(n),
        )
        for n in sorted(ns, reverse=True)
    ]
    return rss(title, "https://blog.test/", items)


def dated_feed(posts: dict[int, datetime], title: str = "Dated") -> str:
    """Posts numbered n, each published at the given time."""
    items = [
        item(
            guid=f"https://blog.test/{title}/{n}/",
            title=f"{title} post {n}",
            link=f"https://blog.test/{title}/{n}/",
            pub_date=when,
            html=hugo_html(n),
        )
        for n, when in sorted(posts.items(), key=lambda p: p[1], reverse=True)
    ]
    return rss(title, "https://blog.test/", items)


def posts(api: FakeBotApi, chat_id: int, marker: str = "Topic") -> list[SentMessage]:
    return [m for m in api.delivered(chat_id) if marker in m.plain]


def buttons(message: SentMessage | dict[str, Any]) -> dict[str, str]:
    """Button label -> callback data of a message's inline keyboard."""
    params = message.params if isinstance(message, SentMessage) else message
    rows = params["reply_markup"]["inline_keyboard"]
    return {b["text"]: b["callback_data"] for row in rows for b in row}


def button(message: SentMessage | dict[str, Any], prefix: str) -> str:
    (data,) = [d for label, d in buttons(message).items() if label.startswith(prefix)]
    return data


async def wait_posts(api: FakeBotApi, chat_id: int, n: int, marker: str = "Topic") -> None:
    await api.await_for(lambda: len(posts(api, chat_id, marker)) >= n, timeout=12)


# ------------------------------------------------------------------------ pure parts
def test_parse_duration_and_option_values() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == parse_duration("30") == 1800
    assert parse_duration("2h") == 7200 and parse_duration("1d") == 86400
    assert parse_duration("soon") is None and parse_duration("-5m") is None
    assert format_duration(1800) == "30m" and format_duration(90) == "90s"
    assert parse_option("silent", "on", min_interval=60) == {"silent": True}
    assert parse_option("PREVIEW", "off", min_interval=60) == {"link_preview": False}
    assert parse_option("style", "title", min_interval=60) == {"style": "title"}
    assert parse_option("title", "  My   name ", min_interval=60) == {"custom_title": "My name"}
    assert parse_option("title", "off", min_interval=60) == {"custom_title": ""}
    assert parse_option("interval", "default", min_interval=60) == {"interval": None}
    assert parse_option("interval", "1d", min_interval=60) == {"interval": 86400}
    for name, value, key in (
        ("loud", "on", "set_unknown_option"),
        ("silent", "maybe", "set_bad_switch"),
        ("style", "fancy", "set_style_bad"),
        ("interval", "10s", "set_interval_min"),
        ("interval", "often", "set_interval_bad"),
        ("interval", "3d", "set_interval_max"),  # refused, not silently capped to a day
    ):
        with pytest.raises(OptionError) as refused:
            parse_option(name, value, min_interval=60)
        assert refused.value.key == key
    with pytest.raises(OptionError):
        parse_option("title", "x", min_interval=60, for_defaults=True)


def test_filters_of_words_are_stored_as_before() -> None:
    assert normalize_filter(" Rust ,  PYTHON, !Sponsored ") == "rust, python, !sponsored"
    assert normalize_filter('".*(a+)+$"') == ".*(a+)+$"  # quoted: a literal word, never compiled
    for bad in (",,", "x" * 501, ",".join(f"w{i}" for i in range(31))):
        with pytest.raises(OptionError):
            normalize_filter(bad)


def test_what_a_resumed_subscription_is_owed() -> None:
    now = datetime.now(UTC)
    since = (now - timedelta(hours=1)).timestamp()

    def entry(key: str, age: timedelta | None) -> Entry:
        return Entry(key=key, title=key, link="", published=None if age is None else now - age)

    before = entry("before", timedelta(hours=2))  # published before the pause, never checked
    ancient = entry("ancient", timedelta(days=30))  # the same, a month before the pause
    during = entry("during", timedelta(minutes=5))
    undated = entry("undated", None)
    forgotten = entry("forgotten", timedelta(days=30))  # the bot saw it: the chat forgot it
    seen_during = entry("seen_during", timedelta(minutes=5))  # seen by another chat's check
    entries = [seen_during, undated, during, before, forgotten, ancient]
    feed_seen = [*entry_prints(forgotten), *entry_prints(seen_during)]

    catch = owed_on_resume(entries, [], feed_seen, since, catch_up=True)
    assert {e.key for e in catch.send} == {"before", "ancient", "during", "undated", "seen_during"}
    assert catch.too_old == 1
    skip = owed_on_resume(entries, [], feed_seen, since, catch_up=False)
    assert [e.key for e in skip.send] == ["ancient", "before"] and skip.too_old == 0
    chat_seen = [p for e in entries for p in entry_prints(e)]
    assert owed_on_resume(entries, chat_seen, feed_seen, since, catch_up=True).send == []
    assert len(owed_on_resume(entries, [], feed_seen, None, catch_up=True).send) == 6


def test_rescheduling_counts_from_the_last_check() -> None:
    subs = [
        Subscription(1, "u", options=SubscriptionOptions(interval=3600)),
        Subscription(2, "u", options=SubscriptionOptions(interval=60), paused=True),
    ]
    assert effective_interval(subs, 300) == 3600  # a paused chat does not drive the feed
    assert effective_interval(subs[1:], 300) == 300
    assert effective_interval([Subscription(1, "u")], 7 * 86400) == 86400
    now = 1_000_000.0
    feed = Feed("u", last_check=now - 100, next_check=now + 86400)
    assert rescheduled(feed, 300, now) == now + 200  # shortened
    assert rescheduled(feed, 60, now) == now  # overdue: check now
    assert rescheduled(Feed("u", last_check=now, next_check=now + 5), 3600, now) == now + 3600
    failing = Feed("u", last_check=now, next_check=now + 600, errors=3)
    assert rescheduled(failing, 3600, now) == now + 600  # its backoff is not stretched
    assert rescheduled(failing, 60, now) == now + 60


# ------------------------------------------------------------------------ /set
async def test_set_buttons_edit_the_same_message_and_change_what_arrives(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        (card,) = await chat.say(USER, "/set 1")
        assert "Silent notifications: off" in card.plain and "Link preview: on" in card.plain
        fake_api.press_button(USER, card.message_id, button(card, "🔕"))
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        fake_api.press_button(USER, card.message_id, button(card, "📝 title and link"))
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 2)
        shown = fake_api.message(USER, card.message_id)
        assert shown is not None
        assert (
            "Silent notifications: on" in shown["text"] and "Style: title and link" in shown["text"]
        )
        assert "Silent: on" in str(shown["reply_markup"])
        assert len(fake_api.delivered(USER)) == 2  # edited in place, no new message

        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 5)))
        await wait_posts(fake_api, USER, 1)
        (post,) = posts(fake_api, USER)
        assert post.params.get("disable_notification") is True
        assert post.method == "sendMessage" and "What You Will Learn" not in post.plain


async def test_each_text_option_changes_the_post(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    names = ["plain", "silent", "nopreview", "title", "nopics", "named"]
    for name in names:
        feed_server.set_feed(f"/{name}.xml", hugo_feed(range(1, 3), title=f"Feed {name}"))
    async with start_bot() as chat:
        urls = " ".join(feed_server.url(f"/{n}.xml") for n in names)
        (progress,) = await chat.say(USER, f"/sub {urls}")
        await chat.settled(USER, progress.message_id, f"Done: {len(names)} added")
        for command in (
            "/set 2 silent on",
            "/set 3 preview off",
            "/set 3 pictures off",
            "/set 4 style title",
            "/set 5 pictures off",
            "/set 6 title My own name",
        ):
            (answer,) = await chat.say(USER, command)
            assert "⚙️" in answer.plain, answer.plain
        (card,) = await chat.say(USER, "/set 6")
        assert "Title: My own name" in card.plain
        for n, name in enumerate(names, start=1):
            # each feed gets a different new post, so chat-level dedup keeps all of them
            feed_server.set_feed(f"/{name}.xml", hugo_feed([1, 2, 10 + n], title=f"Feed {name}"))
        await wait_posts(fake_api, USER, len(names))
        got = {m.plain.split("\n")[1].split(" · ")[0]: m for m in posts(fake_api, USER)}
        plain = got["Feed plain"]
        assert plain.method == "sendPhoto" and "disable_notification" not in plain.params
        assert "What You Will Learn" in plain.plain
        silent, nopreview, title = got["Feed silent"], got["Feed nopreview"], got["Feed title"]
        nopics, named = got["Feed nopics"], got["My own name"]
        assert silent.method == "sendPhoto" and silent.params["disable_notification"] is True
        assert nopreview.method == "sendMessage"
        assert nopreview.params["link_preview_options"] == {"is_disabled": True}
        assert "What You Will Learn" not in title.plain and "What You Will Learn" in nopics.plain
        assert nopics.method == "sendMessage" and "is_disabled" not in str(
            nopics.params["link_preview_options"]
        )
        assert named.method == "sendPhoto" and "disable_notification" not in named.params
        (answer,) = await chat.say(USER, "/set 1 interval 30m")
        assert "Checked every: 30m" in answer.plain
        (status,) = await chat.say(USER, "/status")
        soon = [
            time.strftime("%d %b %H:%M UTC", time.gmtime(time.time() + minutes * 60))
            for minutes in range(28, 33)
        ]
        first = status.plain.split("\n\n")[1]
        assert any(f"next check {s}" in first for s in soon), first  # feed 1: every 30 minutes


async def test_interval_below_the_operator_minimum_is_refused(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot(min_interval=600) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        (refused,) = await chat.say(USER, "/set 1 interval 5m")
        assert "more often than every 10m" in refused.plain
        (ok,) = await chat.say(USER, "/set 1 interval 10m")
        assert "Checked every: 10m" in ok.plain
        (unknown,) = await chat.say(USER, "/set 7 silent on")
        assert "No subscription 7" in unknown.plain
        (usage,) = await chat.say(USER, "/set")
        assert "/set 2 silent on" in usage.plain


async def test_chat_defaults_apply_to_new_subscriptions(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/old.xml", hugo_feed(range(1, 3), title="Old"))
    feed_server.set_feed("/new.xml", hugo_feed(range(1, 3), title="New"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/old.xml')}")
        (card,) = await chat.say(USER, "/set default silent on")
        assert "Defaults" in card.plain and "Silent notifications: on" in card.plain
        fake_api.press_button(USER, card.message_id, button(card, "🖼"))
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        edited = fake_api.message(USER, card.message_id)
        assert edited is not None and "Pictures: off" in edited["text"]
        (refused,) = await chat.say(USER, "/set default title X")
        assert "belongs to one feed" in refused.plain
        await chat.say(USER, f"/sub {feed_server.url('/new.xml')}")
        (old,) = await chat.say(USER, "/set 1")
        (new,) = await chat.say(USER, "/set 2")
        assert "Silent notifications: off" in old.plain and "Pictures: on" in old.plain
        assert "Silent notifications: on" in new.plain and "Pictures: off" in new.plain
        feed_server.set_feed("/new.xml", hugo_feed(range(1, 4), title="New"))
        await wait_posts(fake_api, USER, 1)
        (post,) = posts(fake_api, USER)
        assert post.method == "sendMessage" and post.params["disable_notification"] is True


async def test_only_group_admins_change_options(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(GROUP, f"/sub {feed_server.url('/ml.xml')}", user_id=ADMIN)
        (refused,) = await chat.say(GROUP, "/set 1 silent on", user_id=MEMBER)
        assert "only administrators" in refused.plain
        (card,) = await chat.say(GROUP, "/set 1", user_id=ADMIN)
        fake_api.press_button(GROUP, card.message_id, button(card, "🔕"), user_id=MEMBER)
        await asyncio.sleep(1.0)
        assert fake_api.calls("editMessageText") == []
        (shown,) = await chat.say(GROUP, "/filter 1", user_id=MEMBER)  # reading is allowed
        assert "every post is sent" in shown.plain
        (refused2,) = await chat.say(GROUP, "/filter 1 rust", user_id=MEMBER)
        assert "only administrators" in refused2.plain


# --------------------------------------------------------------------- /filter
async def test_filters_per_feed_and_chat_wide(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")
        (shown,) = await chat.say(USER, "/filter 1")
        assert "every post is sent" in shown.plain
        (set_,) = await chat.say(USER, "/filter 1 TOPIC 3, topic 5, topic 6, !Quote number 6")
        assert "only posts mentioning: topic 3, topic 5, topic 6" in set_.plain
        assert "never posts mentioning: quote number 6" in set_.plain
        (global_,) = await chat.say(USER, "/filter global !topic 5")
        assert "every feed in this chat" in global_.plain
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 7)))
        await wait_posts(fake_api, USER, 1)
        await asyncio.sleep(2.0)  # a check that would let others through has happened
        assert [m.plain.count("Topic 3") for m in posts(fake_api, USER)] == [1]
        (off,) = await chat.say(USER, "/filter 1 off")
        assert "removed" in off.plain
        await chat.say(USER, "/filter global off")
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 8)))
        await wait_posts(fake_api, USER, 2)
        assert "Topic 7" in posts(fake_api, USER)[-1].plain
        (usage,) = await chat.say(USER, "/filter")
        assert "!sponsored" in usage.plain
        (empty,) = await chat.say(USER, "/filter 1 , ,")
        assert "No words given" in empty.plain


# --------------------------------------------------------------------- /status
async def test_status_shows_checks_errors_and_waiting_messages(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ok.xml", hugo_feed(range(1, 3), title="Fine feed"))
    feed_server.set_feed("/bad.xml", hugo_feed(range(1, 3), title="Broken feed"))
    async with start_bot() as chat:
        both = f"/sub {feed_server.url('/ok.xml')} {feed_server.url('/bad.xml')}"
        (progress,) = await chat.say(USER, both)
        await chat.settled(USER, progress.message_id, "Done: 2 added")
        feed_server.set_response("/bad.xml", 500, "oops")
        # the post is refused again and again (the chat's flood wait keeps being renewed)
        fake_api.fail_next("sendPhoto", 429, "Too Many Requests: retry after 1", retry_after=1,
                           times=1000)
        feed_server.set_feed("/ok.xml", hugo_feed(range(1, 4), title="Fine feed"))
        await fake_api.await_for(lambda: bool(fake_api.calls("sendPhoto")), timeout=10)
        await asyncio.sleep(1.5)
        (status,) = await chat.say(USER, "/status")
        assert "Status of 2 feed(s)" in status.plain
        assert "Messages waiting to be sent here: 1" in status.plain
        fine, broken = status.plain.split("\n\n")[1:]
        assert fine.startswith("1. Fine feed ✅") and "new post never" not in fine
        assert "checked " in fine and "UTC" in fine
        assert broken.startswith("2. Broken feed ⚠️ failing since") and "500" in broken
        await chat.say(USER, "/pause 2")
        (paused,) = await chat.say(USER, "/status")
        assert "2. Broken feed ⏸ paused" in paused.plain and "next check —" in paused.plain


# -------------------------------------------------------------- /pause, /resume
async def test_pause_then_resume_with_catch_up(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/r.xml", recent_feed(range(1, 4)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/r.xml')}")
        (paused,) = await chat.say(USER, "/pause 1")
        assert "is paused" in paused.plain
        hits = feed_server.hits("/r.xml")
        feed_server.set_feed("/r.xml", recent_feed(range(1, 6)))
        assert posts(fake_api, USER, "Recent post") == []
        assert await chat.silence(USER, 2.5) == []
        assert feed_server.hits("/r.xml") == hits  # a paused feed is not even checked
        (listing,) = await chat.say(USER, "/list")
        assert "⏸ paused" in listing.plain
        (ask,) = await chat.say(USER, "/resume")
        assert "Catch up" in str(ask.params["reply_markup"])
        fake_api.press_button(USER, ask.message_id, button(ask, "📬"))
        await wait_posts(fake_api, USER, 2, "Recent post")
        got = [m.plain.split("\n")[0] for m in posts(fake_api, USER, "Recent post")]
        assert got == ["Recent post 4", "Recent post 5"]
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        edited = fake_api.message(USER, ask.message_id)
        assert edited is not None and "Resumed 1 feed(s); 2 message(s)" in edited["text"]
        await asyncio.sleep(2.5)  # the regular checks that follow do not send them again
        assert len(posts(fake_api, USER, "Recent post")) == 2
        (nothing,) = await chat.say(USER, "/resume")
        assert "Nothing here is paused" in nothing.plain


async def test_resume_skip_to_now_sends_only_later_posts(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/r.xml", recent_feed(range(1, 4)))
    feed_server.set_feed("/s.xml", recent_feed(range(1, 3), title="Other"))
    async with start_bot() as chat:
        both = f"/sub {feed_server.url('/r.xml')} {feed_server.url('/s.xml')}"
        (progress,) = await chat.say(USER, both)
        await chat.settled(USER, progress.message_id, "Done: 2 added")
        (paused,) = await chat.say(USER, "/pause")
        assert "Paused 2 feed(s)" in paused.plain
        later = datetime.now(UTC) + timedelta(minutes=1)  # published during the pause
        start = datetime.now(UTC) - timedelta(hours=2)
        dates = {1: start, 2: start, 3: start, 4: later, 5: later}
        feed_server.set_feed("/r.xml", dated_feed(dates, title="Recent"))
        (ask,) = await chat.say(USER, "/resume 1")
        assert "Resume Recent" in ask.plain
        fake_api.press_button(USER, ask.message_id, button(ask, "⏭"))
        await chat.settled(USER, ask.message_id, "posts from the pause skipped")
        assert await chat.silence(USER, 2.5) == []
        feed_server.set_feed("/r.xml", recent_feed(range(1, 7)))
        await wait_posts(fake_api, USER, 1, "Recent post")
        assert [m.plain.split("\n")[0] for m in posts(fake_api, USER, "Recent post")] == [
            "Recent post 6"
        ]
        (listing,) = await chat.say(USER, "/list")
        assert listing.plain.count("⏸ paused") == 1  # feed 2 is still paused


async def test_resume_restarts_a_feed_the_poller_paused_after_failing(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/r.xml", recent_feed(range(1, 4)))
    async with running(replace(bot_settings)) as app:
        runtime: Runtime = app.bot_data.runtime
        runtime.poller.notify_after, runtime.poller.pause_after = 0.5, 2.0  # a week in seconds
        fake_api.send_text(USER, f"/sub {feed_server.url('/r.xml')}")
        await fake_api.await_delivered(1, USER)
        feed_server.set_response("/r.xml", 503, "down")
        await fake_api.await_for(
            lambda: any("has failed for a week" in m.plain for m in fake_api.delivered(USER)),
            timeout=15,
        )
        feed_server.set_feed("/r.xml", recent_feed(range(1, 5)))
        before = len(fake_api.delivered(USER))
        fake_api.send_text(USER, "/resume 1")
        (ask,) = (await fake_api.await_delivered(before + 1, USER))[before:]
        fake_api.press_button(USER, ask.message_id, button(ask, "📬"))
        await wait_posts(fake_api, USER, 1, "Recent post")
        assert posts(fake_api, USER, "Recent post")[0].plain.startswith("Recent post 4")
        subs = await runtime.store.subscriptions_for_chat(USER)
        assert [s.paused for s in subs] == [False]


# ---------------------------------------------- issue 12: intervals, skip, catch-up
async def test_resetting_the_interval_brings_back_the_default_schedule(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/r.xml", recent_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/r.xml')}")
        await chat.say(USER, "/set 1 interval 1d")
        await asyncio.sleep(2.5)  # time for a check that would start a one-day wait
        feed_server.set_feed("/r.xml", recent_feed(range(1, 4)))  # published meanwhile
        (card,) = await chat.say(USER, "/set 1 interval default")
        assert "Checked every: 1s (default)" in card.plain
        await wait_posts(fake_api, USER, 1, "Recent post")
        assert posts(fake_api, USER, "Recent post")[0].plain.startswith("Recent post 3")


async def test_skip_to_now_still_sends_what_arrived_before_the_pause(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    now = datetime.now(UTC)
    old = {1: now - timedelta(hours=3), 2: now - timedelta(hours=2)}
    feed_server.set_feed("/d.xml", dated_feed(old))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/d.xml')}")
        await chat.say(USER, "/set 1 interval 1d")
        await asyncio.sleep(2.5)  # the feed now waits a day between checks
        before_pause = {**old, 3: datetime.now(UTC) - timedelta(minutes=5)}
        feed_server.set_feed("/d.xml", dated_feed(before_pause))  # not checked yet
        await chat.say(USER, "/pause 1")
        during = {**before_pause, 4: datetime.now(UTC) + timedelta(minutes=1)}
        feed_server.set_feed("/d.xml", dated_feed(during))
        (ask,) = await chat.say(USER, "/resume 1")
        fake_api.press_button(USER, ask.message_id, button(ask, "⏭"))
        await wait_posts(fake_api, USER, 1, "Dated post")
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        edited = fake_api.message(USER, ask.message_id)
        assert edited is not None and "1 post(s) from before the pause" in edited["text"]
        await chat.say(USER, "/set 1 interval default")  # regular checks again
        await asyncio.sleep(2.5)
        got = [m.plain.split("\n")[0] for m in posts(fake_api, USER, "Dated post")]
        assert got == ["Dated post 3"]  # post 4 came during the pause: skipped, and only once


async def test_catch_up_sends_backdated_posts_it_never_saw(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    now = datetime.now(UTC)
    old = {1: now - timedelta(hours=3), 2: now - timedelta(hours=2)}
    feed_server.set_feed("/d.xml", dated_feed(old))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/d.xml')}")
        await chat.say(USER, "/pause 1")
        backdated = {**old, 3: now - timedelta(days=3), 4: now + timedelta(minutes=1)}
        feed_server.set_feed("/d.xml", dated_feed(backdated))
        (ask,) = await chat.say(USER, "/resume 1")
        fake_api.press_button(USER, ask.message_id, button(ask, "📬"))
        await wait_posts(fake_api, USER, 2, "Dated post")
        got = [m.plain.split("\n")[0] for m in posts(fake_api, USER, "Dated post")]
        assert got == ["Dated post 3", "Dated post 4"]


async def test_catch_up_says_how_many_old_posts_it_left_out(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    other = USER + 1
    now = datetime.now(UTC)
    old = {1: now - timedelta(hours=3), 2: now - timedelta(hours=2)}
    feed_server.set_feed("/d.xml", dated_feed(old))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/d.xml')}")
        await chat.say(other, f"/sub {feed_server.url('/d.xml')}")
        await chat.say(USER, "/pause 1")
        # the other chat keeps the feed checked: the bot sees the post during the pause
        feed_server.set_feed("/d.xml", dated_feed({**old, 3: now - timedelta(days=3)}))
        await wait_posts(fake_api, other, 1, "Dated post")
        (ask,) = await chat.say(USER, "/resume 1")
        fake_api.press_button(USER, ask.message_id, button(ask, "📬"))
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        edited = fake_api.message(USER, ask.message_id)
        assert edited is not None and "1 post(s) dated more than a day before" in edited["text"]


# ------------------------------------------------------------ issue 12: smaller ones
async def test_an_interval_longer_than_a_day_is_refused_not_capped(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Alpha"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        (refused,) = await chat.say(USER, "/set 1 interval 3d")
        assert "longest interval is 1d" in refused.plain
        (card,) = await chat.say(USER, "/set 1")
        assert "Checked every: 1s (default)" in card.plain


async def test_set_without_a_number_uses_the_only_feed_or_asks_which(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Alpha"))
    feed_server.set_feed("/b.xml", hugo_feed(range(1, 3), title="Beta"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        (one,) = await chat.say(USER, "/set preview off")  # the only feed: applied there
        assert "1. Alpha" in one.plain and "Link preview: off" in one.plain
        await chat.say(USER, f"/sub {feed_server.url('/b.xml')}")
        (which,) = await chat.say(USER, "/set pictures off")
        assert "Which feed?" in which.plain and "/set 1 pictures off" in which.plain
        assert "1. Alpha" in which.plain and "2. Beta" in which.plain
        (untouched,) = await chat.say(USER, "/set 2")
        assert "Pictures: on" in untouched.plain


async def test_the_set_card_shows_the_custom_title(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/b.xml", hugo_feed(range(1, 3), title="Beta"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/b.xml')}")
        (named,) = await chat.say(USER, "/set 1 title My name")
        assert named.plain.startswith("⚙️ 1. My name")
        (back,) = await chat.say(USER, "/set 1 title off")
        assert back.plain.startswith("⚙️ 1. Beta")


async def test_a_member_asking_to_change_the_language_hears_about_the_language(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    async with start_bot() as chat:
        (refused,) = await chat.say(GROUP, "/lang zh", user_id=MEMBER)
        assert "only administrators can change the language" in refused.plain
        (card,) = await chat.say(GROUP, "/lang", user_id=MEMBER)
        fake_api.press_button(GROUP, card.message_id, button(card, "简体"), user_id=MEMBER)
        await fake_api.await_for(lambda: bool(fake_api.calls("answerCallbackQuery")))
        (answer,) = fake_api.calls("answerCallbackQuery")
        assert "change the language" in answer.params["text"]
