"""Operator features end to end: allow-list, per-chat limit, /stats, alerts to the owners."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.handlers.owners import OwnerAlerts, SentToday
from bot.pipeline import poller as poller_module
from bot.service import SubscriptionService
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
STRANGER = 4004
OWNER = 9009
GROUP = -100800


def alerts(api: FakeBotApi) -> list[str]:
    return [m.plain for m in api.delivered(OWNER) if "needs attention" in m.plain]


async def test_allow_list_admits_listed_users_and_owners_only(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Allowed group", admins=(STRANGER,))
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot(allowed_chats=(USER, GROUP), owners=(OWNER,)) as chat:
        (ok,) = await chat.say(USER, "/list")
        assert "follows no feeds" in ok.plain
        (refused,) = await chat.say(STRANGER, f"/sub {feed_server.url('/ml.xml')}")
        assert "This bot is private" in refused.plain
        (refused_set,) = await chat.say(STRANGER, "/status")
        assert "This bot is private" in refused_set.plain
        (owner,) = await chat.say(OWNER, "/list")
        assert "follows no feeds" in owner.plain
        # a listed group admits its members, even unlisted users
        (in_group,) = await chat.say(GROUP, f"/sub {feed_server.url('/ml.xml')}", user_id=STRANGER)
        assert "Subscribed" in in_group.plain
    assert feed_server.hits("/ml.xml") == 1  # only the allowed /sub fetched anything


async def test_per_chat_subscription_limit(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    for n in range(3):
        feed_server.set_feed(f"/f{n}.xml", hugo_feed(range(1, 3), title=f"Feed {n}"))
    async with start_bot(max_subscriptions=2) as chat:
        urls = [feed_server.url(f"/f{n}.xml") for n in range(3)]
        (progress,) = await chat.say(USER, "/sub " + " ".join(urls))
        summary = await chat.settled(USER, progress.message_id, "Done: 2 added")
        assert summary.splitlines()[3] == (
            f"❌ {urls[2]}: this chat already follows 2 feeds, the most allowed"
        )
        await chat.say(USER, "/unsub 1")
        (again,) = await chat.say(USER, f"/sub {urls[2]}")
        assert "Subscribed" in again.plain
        (other,) = await chat.say(USER + 1, f"/sub {urls[0]}")  # the limit is per chat
        assert "Subscribed" in other.plain


async def test_stats_for_owners_only(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ok.xml", hugo_feed(range(1, 3), title="Fine"))
    feed_server.set_feed("/bad.xml", hugo_feed(range(1, 3), title="Broken"))
    async with start_bot(owners=(OWNER,)) as chat:
        (progress,) = await chat.say(
            USER, f"/sub {feed_server.url('/ok.xml')} {feed_server.url('/bad.xml')}"
        )
        await chat.settled(USER, progress.message_id, "Done: 2 added")
        await chat.say(USER + 1, f"/sub {feed_server.url('/ok.xml')}")
        await chat.say(USER + 1, "/pause 1")
        feed_server.set_response("/bad.xml", 500, "oops")
        feed_server.set_feed("/ok.xml", hugo_feed(range(1, 4), title="Fine"))
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), timeout=10
        )
        await asyncio.sleep(1.0)
        (refused,) = await chat.say(USER, "/stats")
        assert "Only the bot's operators" in refused.plain
        (stats,) = await chat.say(OWNER, "/stats")
        text = stats.plain
        assert "Chats: 2" in text  # the owner only asked for stats: not a subscriber chat
        assert "Feeds: 2 (1 failing, 0 gone)" in text
        assert "Subscriptions: 3 (1 paused)" in text
        assert "Outbox: 0" in text
        # 3 replies to the subscribers (one for the two-feed /sub), the post, the refusal
        assert "posts and replies: 5 · since start: 5" in text


def test_sent_today_restarts_at_midnight() -> None:
    import datetime as dt

    counter = SentToday(day=dt.date(2026, 1, 1), base=0)
    assert counter.count(7) == 7
    counter.roll(7, dt.date(2026, 1, 1))
    assert counter.count(9) == 9
    counter.roll(9, dt.date(2026, 1, 2))
    assert counter.count(12) == 3


async def test_alerts_are_rate_limited_per_kind(fake_api: FakeBotApi) -> None:
    from telegram.ext import ExtBot

    from bot.delivery.gateway import TelegramGateway

    now = [1000.0]
    gateway = TelegramGateway()  # as in the app: alerts leave through the gateway too
    async with ExtBot(fake_api.token, base_url=f"{fake_api.url}/bot", rate_limiter=gateway) as bot:
        owner_alerts = OwnerAlerts(bot, (OWNER, OWNER + 1), clock=lambda: now[0])
        assert await owner_alerts.alert("check:KeyError", "first")
        assert not await owner_alerts.alert("check:KeyError", "again")
        assert await owner_alerts.alert("handler:ValueError", "other kind")
        now[0] += 3601
        assert await owner_alerts.alert("check:KeyError", "an hour later")
        assert not await OwnerAlerts(bot, ()).alert("check:KeyError", "no owners")
    assert [m.plain.split("\n")[1] for m in fake_api.delivered(OWNER)] == [
        "first",
        "other kind",
        "an hour later",
    ]
    assert len(fake_api.delivered(OWNER + 1)) == 3


async def test_handler_errors_reach_the_owners_once_per_hour(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: SubscriptionService, chat_id: int) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(SubscriptionService, "listing", broken)
    async with start_bot(owners=(OWNER,)) as chat:
        (sorry,) = await chat.say(USER, "/list")
        assert "went wrong on my side" in sorry.plain
        await fake_api.await_for(lambda: len(alerts(fake_api)) == 1)
        (alert,) = alerts(fake_api)
        assert "handler:RuntimeError" in alert and "/list RuntimeError: database on fire" in alert
        (sorry_again,) = await chat.say(USER + 1, "/list")
        assert "went wrong" in sorry_again.plain
        await asyncio.sleep(0.5)
        assert len(alerts(fake_api)) == 1


async def test_poller_crash_alerts_the_owners_once(
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 3)))
    async with start_bot(owners=(OWNER,)) as chat:
        await chat.say(USER, f"/sub {feed_server.url('/ml.xml')}")

        async def crash(*args: Any, **kwargs: Any) -> Any:
            raise KeyError("bug in the parser")

        monkeypatch.setattr(poller_module, "in_pool", crash)
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: len(alerts(fake_api)) == 1, timeout=10)
        hits = feed_server.hits("/ml.xml")
        await fake_api.await_for(lambda: feed_server.hits("/ml.xml") >= hits + 2, timeout=10)
        assert len(alerts(fake_api)) == 1  # it keeps crashing; the owner heard once
        (alert,) = alerts(fake_api)
        assert "check:KeyError" in alert and feed_server.url("/ml.xml") in alert
        assert "bug in the parser" in alert
        assert fake_api.delivered(USER)[-1].plain.startswith("✅ Subscribed")  # users: nothing
