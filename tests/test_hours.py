"""A chat's hours (issue 18): its time zone (`/set timezone Europe/Berlin`: dates in posts and in
/status) and quiet hours. The window math is pure (bot.hours), tested without I/O; then end to end
against the fake Bot API and feed server."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from bot.app import running
from bot.config import Settings
from bot.delivery.sender import Sender
from bot.errors import OptionError
from bot.hours import Quiet, find_zone, held_until, is_quiet, parse_quiet, quiet_end, silenced
from bot.hours import zone as zone_of
from bot.render.message import format_date
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import BASE_DATE, hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 7007
BERLIN = "Europe/Berlin"


def at(text: str, tz: str = BERLIN) -> float:
    """An epoch second from a local wall-clock time in `tz`."""
    return datetime.fromisoformat(text).replace(tzinfo=zone_of(tz)).timestamp()


# ------------------------------------------------------------------------ pure
def test_zones_are_found_whatever_their_case_and_unknown_ones_are_not() -> None:
    assert find_zone("europe/berlin") == BERLIN
    assert find_zone("Asia/Shanghai") == "Asia/Shanghai"
    assert find_zone("utc") == find_zone("GMT") == "UTC"
    assert find_zone("Mars/Olympus") is None and find_zone("../etc/passwd") is None


def test_quiet_windows_are_read_and_written_back() -> None:
    assert parse_quiet("23:00-07:00") == Quiet(23 * 60, 7 * 60, "hold")
    assert parse_quiet("22-6 silent") == Quiet(22 * 60, 6 * 60, "silent")
    assert parse_quiet("23:00 - 07:30 silent").text() == "23:00-07:30 silent"
    assert parse_quiet("off") is None and parse_quiet("") is None
    for bad in ("late", "25:00-07:00", "23:61-07:00", "7:00-7:00"):
        with pytest.raises(OptionError):
            parse_quiet(bad)


def test_a_window_that_wraps_midnight_holds_until_its_end_the_next_morning() -> None:
    window = parse_quiet("23:00-07:00")
    assert is_quiet(at("2026-12-03T23:30"), window, BERLIN)
    assert is_quiet(at("2026-12-04T06:59"), window, BERLIN)
    assert not is_quiet(at("2026-12-04T07:00"), window, BERLIN)
    assert not is_quiet(at("2026-12-03T22:59"), window, BERLIN)
    assert quiet_end(at("2026-12-03T23:30"), window, BERLIN) == at("2026-12-04T07:00")
    assert quiet_end(at("2026-12-04T03:00"), window, BERLIN) == at("2026-12-04T07:00")
    assert held_until(at("2026-12-03T12:00"), window, BERLIN) == 0.0
    # the same instant is outside the window in another zone
    assert not is_quiet(at("2026-12-03T23:30"), window, "America/New_York")


def test_a_window_within_one_day_and_silent_mode() -> None:
    window = parse_quiet("12:00-13:00 silent")
    assert silenced(at("2026-12-03T12:15"), window, BERLIN)
    assert not silenced(at("2026-12-03T13:15"), window, BERLIN)
    assert held_until(at("2026-12-03T12:15"), window, BERLIN) == 0.0  # sent, without a sound


def test_across_a_daylight_saving_change_the_window_ends_at_local_seven() -> None:
    window = parse_quiet("23:00-07:00")
    # the night of 28 to 29 March 2026: Berlin's clocks go from 02:00 to 03:00
    end = quiet_end(at("2026-03-28T23:30"), window, BERLIN)
    assert end == at("2026-03-29T07:00")
    assert end is not None and end - at("2026-03-28T23:30") == timedelta(hours=6.5).seconds


# ------------------------------------------------------------------------ end to end
async def test_a_chats_time_zone_dates_its_posts_and_status(
    start_bot: object, fake_api: FakeBotApi, feed_server: FeedServer, bot_settings: Settings
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:  # type: ignore[operator]
        chat: Conversation
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        (shown,) = await chat.say(USER, "/set timezone")
        assert "<code>UTC</code>" in shown.text_or_caption
        assert "/set timezone Europe/Berlin" in shown.plain
        (bad,) = await chat.say(USER, "/set timezone Mars/Olympus")
        assert "Mars/Olympus" in bad.plain and "Europe/Berlin" in bad.plain
        (ok,) = await chat.say(USER, "/set timezone asia/tokyo")
        assert "Asia/Tokyo" in ok.plain and "JST" in ok.plain
        (now,) = await chat.say(USER, "/set timezone")
        assert "Asia/Tokyo" in now.plain
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_delivered(len(fake_api.delivered(USER)) + 1, USER, timeout=15)
        post = fake_api.delivered(USER)[-1]
        (status,) = await chat.say(USER, "/status")
    published = BASE_DATE - timedelta(days=997)
    assert "Topic 3" in post.plain
    assert format_date(published, "Asia/Tokyo", "en") in post.plain
    assert format_date(published, "UTC", "en") not in post.plain
    assert "JST" in status.plain and "UTC" not in status.plain


async def test_quiet_hours_hold_posts_until_the_window_ends_and_replies_are_not_held(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    shift = [at("2030-01-15T23:30") - time.time()]  # a clock that runs, from 23:30 in Berlin
    chat = Conversation(fake_api)
    async with running(bot_settings) as app:
        runtime = app.bot_data.runtime
        runtime.poller.clock = runtime.sender.clock = lambda: time.time() + shift[0]
        runtime.sender.hold_recheck = 0.2
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        await chat.say(USER, "/set timezone Europe/Berlin")
        (card,) = await chat.say(USER, "/set quiet 23:00-07:00")
        assert "23:00-07:00" in card.plain
        (bad,) = await chat.say(USER, "/set quiet late")
        assert "23:00-07:00" in bad.plain and "late" in bad.plain
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(runtime.sender.stats.outbox), 15)
        assert await chat.silence(USER, 1.5) == []  # held: nothing arrives in the night
        (status,) = await chat.say(USER, "/status")  # a reply is never held
        shift[0] = at("2030-01-16T07:00:01") - time.time()
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), 15
        )
    assert "Topic 3" not in status.plain


async def test_silent_quiet_hours_send_at_once_without_a_sound(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    chat = Conversation(fake_api)
    async with running(bot_settings) as app:
        runtime = app.bot_data.runtime
        shift = at("2030-01-15T23:30") - time.time()
        runtime.poller.clock = runtime.sender.clock = lambda: time.time() + shift
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        await chat.say(USER, "/set timezone Europe/Berlin")
        await chat.say(USER, "/set 1 quiet 23:00-07:00 silent")
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), 15
        )
    post = next(m for m in fake_api.delivered(USER) if "Topic 3" in m.plain)
    assert post.params.get("disable_notification") in (True, "true", "True")


async def test_a_held_post_survives_a_restart_and_goes_out_when_the_window_ends(
    bot_settings: Settings, fake_api: FakeBotApi, feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Sender, "hold_recheck", 0.2)
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    shift = at("2030-01-15T23:30") - time.time()
    chat = Conversation(fake_api)
    async with running(bot_settings) as app:
        runtime = app.bot_data.runtime
        runtime.poller.clock = runtime.sender.clock = lambda: time.time() + shift
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        await chat.say(USER, "/set timezone Europe/Berlin")
        await chat.say(USER, "/set quiet 23:00-07:00")
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(runtime.sender.stats.outbox), 15)
        assert await chat.silence(USER, 1.5) == []  # held
    assert not any("Topic 3" in m.plain for m in fake_api.delivered(USER))
    morning = at("2030-01-16T07:00:01") - time.time()
    async with running(bot_settings) as app:
        runtime = app.bot_data.runtime
        runtime.poller.clock = runtime.sender.clock = lambda: time.time() + shift
        assert await chat.silence(USER, 1.0) == []  # still night: still held
        shift = morning
        await fake_api.await_for(
            lambda: any("Topic 3" in m.plain for m in fake_api.delivered(USER)), 15
        )
    assert sum("Topic 3" in m.plain for m in fake_api.delivered(USER)) == 1
