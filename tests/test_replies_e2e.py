"""Every reply arrives: the real app against a fake Bot API that enforces Telegram's limits.

Replies, posts, edits and alerts all leave through the gateway (bot/delivery/gateway.py), so flood
control delays them and never drops them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.delivery.sender import DeliverySettings
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

#: the busy-group scenario runs Telegram's clock (and the bot's limits) this much faster
SCALE = 6.0
OWNER = 4242
ADMIN = 2002
GROUP = -100777


@pytest.fixture
def fake_api(
    make_fake_api: Callable[..., FakeBotApi], request: pytest.FixtureRequest
) -> FakeBotApi:
    """Telegram's limits (30/s, 1/s per private chat, 20/min a group), on the real clock or
    on one sped up by the parameter's factor."""
    scale = getattr(request, "param", 1.0)
    return make_fake_api(enforce_limits=True, clock=scaled_clock(scale))


def scaled_clock(scale: float) -> Callable[[], float]:
    origin = time.monotonic()
    return lambda: origin + (time.monotonic() - origin) * scale


def current_texts(api: FakeBotApi, chat_id: int) -> list[str]:
    """Each bot message of the chat as it reads now, after any edits."""
    out = []
    for sent in api.delivered(chat_id):
        now = api.message(chat_id, sent.message_id)
        out.append(str(now.get("text") or now.get("caption") or "") if now else sent.plain)
    return out


async def test_sixty_chats_sending_sub_at_once_all_get_their_answer(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 6)))
    url = feed_server.url("/ml.xml")
    users = [5000 + i for i in range(60)]
    async with start_bot():
        for user in users:
            fake_api.send_text(user, f"/sub {url}")
        answered = "Subscribed to Machine Learning on Test Blog"
        await fake_api.await_for(  # a slow answer is a "checking…" message edited into it
            lambda: all(answered in "".join(current_texts(fake_api, u)) for u in users),
            timeout=30,
        )
        await asyncio.sleep(0.5)
    assert fake_api.count_429 == 0
    for user in users:
        (answer,) = current_texts(fake_api, user)  # one message each
        assert answered in answer


async def test_a_sub_with_twelve_urls_subscribes_and_reports_all_twelve(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    urls = []
    for n in range(12):
        feed_server.set_feed(f"/f{n}.xml", hugo_feed(range(1, 3), title=f"Feed number {n}"))
        urls.append(feed_server.url(f"/f{n}.xml"))
    user = 6001
    async with start_bot() as chat:
        fake_api.send_text(user, "/sub " + " ".join(urls))

        def all_reported() -> bool:
            text = "\n".join(current_texts(fake_api, user))
            return all(f"Feed number {n}" in text for n in range(12))

        await fake_api.await_for(all_reported, timeout=30)
        assert len(fake_api.delivered(user)) == 1  # one message, edited as each was checked
        await asyncio.sleep(1.2)  # the private chat's allowance refills for /list
        (listing,) = await chat.say(user, "/list", timeout=15)
    assert fake_api.count_429 == 0
    assert all(f"Feed number {n}" in listing.plain for n in range(12))


@pytest.mark.parametrize("fake_api", [SCALE], indirect=True)
async def test_a_busy_group_still_answers_its_admin_at_once(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    fake_api.add_chat(GROUP, type="supergroup", admins=(ADMIN,))
    feed_server.set_feed("/busy.xml", hugo_feed(range(1, 3)))
    feed_server.set_feed("/other.xml", hugo_feed(range(1, 3), title="Other Blog"))
    async with start_bot(delivery=DeliverySettings(time_scale=SCALE), backlog_limit=40) as chat:
        await chat.say(GROUP, f"/sub {feed_server.url('/busy.xml')}", user_id=ADMIN)
        feed_server.set_feed("/busy.xml", hugo_feed(range(1, 33)))  # 30 new posts at once
        # the group's minute fills up with posts (19 of 20; the rest must wait a minute)
        await fake_api.await_for(lambda: len(fake_api.delivered(GROUP)) >= 19, timeout=15)
        before = len(fake_api.delivered(GROUP))
        fake_api.send_text(GROUP, "/list", user_id=ADMIN)
        await fake_api.await_for(
            lambda: any("follows 1 feed" in m.plain for m in fake_api.delivered(GROUP)),
            timeout=3,
        )
        fake_api.send_text(GROUP, f"/sub {feed_server.url('/other.xml')}", user_id=ADMIN)
        # a second reply in the same minute waits for the window (10 s here), and is not lost
        await asyncio.sleep(1.0)
        assert len(fake_api.delivered(GROUP)) == before + 1
        await fake_api.await_for(
            lambda: any("Other Blog" in m.plain for m in fake_api.delivered(GROUP)), timeout=15
        )
        # and the posts that had to wait follow
        await fake_api.await_for(lambda: len(fake_api.delivered(GROUP)) >= 30 + 3, timeout=15)
    assert fake_api.count_429 == 0
    assert not [c for c in fake_api.calls() if c.status == 429]


async def test_stats_counts_replies_as_well_as_posts(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    async with start_bot(owners=(OWNER,)) as chat:
        await chat.say(OWNER, "/start")
        await chat.say(OWNER, "/help")
        await asyncio.sleep(1.1)
        (stats,) = await chat.say(OWNER, "/stats")
    # /start and /help were sent before /stats counted: 2 so far (the posts: none)
    assert "posts and replies: 2" in stats.plain
