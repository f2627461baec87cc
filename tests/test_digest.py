"""Digests (issue 18): the schedule and the message are pure; end to end, a digest subscriber's
posts are held back and arrive as one message at the digest's time, in the chat's zone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from bot.app import running
from bot.config import Settings
from bot.digest import DigestSchedule, next_digest, parse_digest
from bot.errors import OptionError
from bot.hours import zone as zone_of
from bot.models import DigestItem
from bot.render.cut import measure
from bot.render.digest import ENTITY_LIMIT, LINK_BUDGET, digest_messages, digest_page, fits_one
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import BLOG, hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error
from tests.fakes.telegraph import FakeTelegraph
from tests.test_channels import button_data

USER = 7007
BERLIN = "Europe/Berlin"


def at(text: str, tz: str = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone_of(tz)).timestamp()


def local(moment: float, tz: str = BERLIN) -> str:
    return datetime.fromtimestamp(moment, zone_of(tz)).strftime("%Y-%m-%d %H:%M")


# ------------------------------------------------------------------- schedule
def test_schedules_are_read_and_written_back() -> None:
    assert parse_digest("daily 08:00") == DigestSchedule("daily", 480)
    assert parse_digest("Daily 7") == DigestSchedule("daily", 420)
    assert parse_digest("daily") == DigestSchedule("daily", 480)  # in the morning
    assert parse_digest("21:30") == DigestSchedule("daily", 21 * 60 + 30)
    assert parse_digest("hourly") == DigestSchedule("hourly")
    assert parse_digest("off") is None and parse_digest("") is None
    assert DigestSchedule("daily", 65).text() == "daily 01:05"
    for bad in ("weekly", "daily 25:00", "daily 8:75", "daily at noon"):
        with pytest.raises(OptionError) as refused:
            parse_digest(bad)
        assert refused.value.reason.key == "digest_bad"


def test_a_daily_digest_is_at_its_time_in_the_chats_zone() -> None:
    daily = DigestSchedule("daily", 480)
    assert local(next_digest(at("2026-12-03T07:59"), daily, BERLIN)) == "2026-12-03 08:00"
    assert local(next_digest(at("2026-12-03T08:00"), daily, BERLIN)) == "2026-12-04 08:00"
    tokyo = next_digest(at("2026-12-03T07:00", "Asia/Tokyo"), daily, "Asia/Tokyo")
    assert local(tokyo, "Asia/Tokyo") == "2026-12-03 08:00"  # 08:00 there, not in Berlin
    # across the change to summer time the digest is still at 08:00 on the wall clock
    spring = next_digest(at("2026-03-28T09:00"), daily, BERLIN)
    assert local(spring) == "2026-03-29 08:00" and spring - at("2026-03-28T09:00") == 22 * 3600


def test_an_hourly_digest_is_on_the_chats_full_hour() -> None:
    hourly = DigestSchedule("hourly")
    assert local(next_digest(at("2026-12-03T10:20"), hourly, BERLIN)) == "2026-12-03 11:00"
    kolkata = next_digest(at("2026-12-03T10:20", "Asia/Kolkata"), hourly, "Asia/Kolkata")
    assert local(kolkata, "Asia/Kolkata") == "2026-12-03 11:00"  # a zone half an hour off


# -------------------------------------------------------------------- message
def items(n: int, feeds: int = 2, title: str = "Post") -> list[DigestItem]:
    return [
        DigestItem(
            id=f"i{k}", chat_id=1, feed_url=f"https://f{k % feeds}.test/feed",
            feed_title=f"Feed <{k % feeds}>", title=f"{title} {k} & more",
            link=f"https://f{k % feeds}.test/posts/{k}?utm=x&y=1", due=0.0, created=float(k),
        )
        for k in range(n)
    ]


def check_sendable(message: Any) -> None:
    for call in message.attempts:
        assert api_call_error(call.method, call.params) is None
    text = message.attempts[0].params["text"]
    assert measure(text) <= 4096
    assert text.count("<a ") + text.count("<b>") <= ENTITY_LIMIT
    hrefs = [part.split('"', 1)[0] for part in text.split('href="')[1:]]
    assert sum(len(h) for h in hrefs) <= LINK_BUDGET


def test_a_digest_is_one_message_of_linked_titles_grouped_by_feed() -> None:
    now = at("2026-12-03T08:00")
    (message,) = digest_messages(items(5), "en", BERLIN, now)
    check_sendable(message)
    html = message.attempts[0].params["text"]
    assert html.startswith("🗞 <b>Digest</b> · 5 new posts")
    first = '<b>Feed &lt;0&gt;</b>\n• <a href="https://f0.test/posts/0?utm=x&amp;y=1">Post 0'
    assert first in html
    assert html.index("Post 0") < html.index("Post 2") < html.index("Feed &lt;1&gt;")
    assert html.index("Feed &lt;1&gt;") < html.index("Post 1") < html.index("Post 3")
    assert message.attempts[0].params["link_preview_options"] == {"is_disabled": True}
    plain = message.attempts[1].params["text"]  # the fallback keeps each post's address
    assert "https://f1.test/posts/3?utm=x&y=1" in plain
    (zh,) = digest_messages(items(2), "zh", BERLIN, now)
    assert "摘要" in zh.attempts[0].params["text"]


def test_a_long_digest_without_a_page_is_cut_into_messages_and_loses_nothing() -> None:
    collected = items(260, feeds=3, title="A rather long title of a post " * 3)
    assert not fits_one(collected, "en", "UTC", 0.0)
    messages = digest_messages(collected, "en", "UTC", 0.0)
    assert len(messages) > 2
    for message in messages:
        check_sendable(message)
    text = "\n".join(m.attempts[0].params["text"] for m in messages)
    for k in range(260):
        assert f"/posts/{k}?" in text
    assert "(continued)" in messages[1].attempts[0].params["text"]


def test_a_long_digest_with_a_page_is_one_message_linking_the_whole_list() -> None:
    collected = items(150)
    page = "https://telegra.ph/Digest-12-03"
    (message,) = digest_messages(collected, "en", "UTC", 0.0, page)
    check_sendable(message)
    html = message.attempts[0].params["text"]
    assert f'<a href="{page}">📖 All 150 posts in Instant View</a>' in html
    shown = html.count("• <a ")
    assert f"… and {150 - shown} more" in html
    draft = digest_page(collected, "en", "UTC", 0.0)
    assert not draft.trimmed
    listed = [li for group in draft.content if group["tag"] == "ul" for li in group["children"]]
    assert len(listed) == 150


# ----------------------------------------------------------------- end to end
async def test_a_daily_digest_holds_posts_and_sends_them_as_one_message_at_its_time(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Blog A"))
    feed_server.set_feed("/b.xml", hugo_feed(range(101, 103), title="Blog B"))
    shift = [at("2030-01-15T07:30") - time.time()]  # a clock that runs, ahead of any feed
    chat = Conversation(fake_api)
    async with running(bot_settings) as app:
        runtime = app.bot_data.runtime
        runtime.poller.clock = runtime.sender.clock = runtime.digests.clock = (
            lambda: time.time() + shift[0]
        )
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        await chat.say(USER, f"/sub {feed_server.url('/b.xml')}")
        await chat.say(USER, "/set timezone Europe/Berlin")
        (card,) = await chat.say(USER, "/set digest daily 08:00")  # both feeds, later ones too
        assert "Digest: daily 08:00" in card.plain and "all 2 feeds" in card.plain
        (bad,) = await chat.say(USER, "/set digest weekly")
        assert "weekly" in bad.plain and "daily 08:00" in bad.plain
        feed_server.set_feed("/a.xml", hugo_feed(range(1, 5), title="Blog A"))
        feed_server.set_feed("/b.xml", hugo_feed(range(101, 104), title="Blog B"))

        async def collected() -> int:
            return len(await runtime.store.due_digests(at("2030-01-15T08:00"), 10))

        await wait_until(collected, 3, 15)
        (status,) = await chat.say(USER, "/status")
        assert "Posts collected for the digest: 3 (the next goes out 15 Jan 08:00" in status.plain
        assert await chat.silence(USER, 1.5) == []  # held for the digest
        before = len(fake_api.delivered(USER))
        shift[0] = at("2030-01-15T08:00:01") - time.time()
        (digest,) = (await fake_api.await_delivered(before + 1, USER, timeout=15))[before:]
        assert await chat.silence(USER, 1.0) == []  # one message, nothing else
        assert await collected() == 0
    assert digest.plain.startswith("🗞 Digest · 3 new posts")
    sections = dict(part.split("\n", 1) for part in digest.plain.split("\n\n")[1:])
    assert set(sections) == {"Blog A", "Blog B"}  # grouped by feed
    assert "Topic 103" in sections["Blog B"] and "Topic 3 " not in sections["Blog B"]
    assert sections["Blog A"].index("Topic 3 ") < sections["Blog A"].index("Topic 4 ")
    links = {e.get("url") for e in digest.entities}
    assert {f"{BLOG}/series/03-topic/", f"{BLOG}/series/04-topic/"} <= links


async def wait_until(read: Callable[[], Any], want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await read() >= want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {want} in {timeout}s")


async def test_a_long_digest_links_its_whole_list_in_instant_view(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer,
    telegraph: FakeTelegraph,
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 2), title="Blog A"))
    chat = Conversation(fake_api)
    settings = replace(bot_settings, telegraph_url=telegraph.url)
    shift = [at("2030-01-15T10:10") - time.time()]
    async with running(settings) as app:
        runtime = app.bot_data.runtime
        runtime.poller.clock = runtime.digests.clock = lambda: time.time() + shift[0]
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        await chat.say(USER, "/set 1 digest hourly")
        feed_server.set_feed("/a.xml", hugo_feed(range(1, 152), title="Blog A"))

        async def collected() -> int:
            return len(await runtime.store.due_digests(at("2030-01-15T11:00"), 10))

        await wait_until(collected, 150, 20)
        shift[0] = at("2030-01-15T11:00:01") - time.time()
        before = len(fake_api.delivered(USER))
        (digest,) = (await fake_api.await_delivered(before + 1, USER, timeout=15))[before:]
    (page,) = telegraph.pages
    assert "All 150 posts in Instant View" in digest.plain
    assert any(e.get("url") == page.url for e in digest.entities)
    for n in range(2, 152):
        assert f"Topic {n} " in page.text


async def test_the_cards_digest_button_goes_daily_then_hourly_then_off(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/a.xml", hugo_feed(range(1, 3), title="Blog A"))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/a.xml')}")
        (card,) = await chat.say(USER, "/set 1")
        assert "Digest: off" in card.plain
        seen = []
        for presses in range(1, 4):
            message = fake_api.message(USER, card.message_id) or card.params
            fake_api.press_button(USER, card.message_id, button_data(message, "🗞"))
            await fake_api.await_for(
                lambda n=presses: len(fake_api.calls("editMessageText")) == n, 10)
            edited = fake_api.message(USER, card.message_id)
            assert edited is not None
            seen.append(next(line for line in edited["text"].split("\n") if "Digest" in line))
    assert seen == ["🗞 Digest: daily 08:00", "🗞 Digest: hourly", "🗞 Digest: off"]
