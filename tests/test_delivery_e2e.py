"""End to end: Sender -> PTB -> HTTP on loopback -> FakeBotApi, with a real Store on disk."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import telegram
from telegram.ext import ExtBot

from bot.delivery.gateway import TelegramGateway
from bot.delivery.sender import DeliverySettings, Sender
from bot.models import ApiCall, Chat, Delivery, RenderedMessage
from bot.storage.base import Storage
from bot.storage.tinydb.backend import TinyDBStorage
from tests.fakes.botapi import TOKEN, FakeBotApi

_ids = itertools.count(1)

# PTB builds RetryAfter(int), which warns about its int -> timedelta migration
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

#: every limit 5x faster, so the scenarios take seconds; the fake runs on a 5x clock
SCALE = 5.0
FAST = DeliverySettings(time_scale=SCALE, min_backoff=1.0, max_backoff=2.0)


def html_message(text: str, photo: str | None = None) -> RenderedMessage:
    attempts: list[ApiCall] = []
    if photo:
        attempts.append(ApiCall("sendPhoto", {"photo": photo, "caption": text,
                                              "parse_mode": "HTML"}))
    attempts.append(ApiCall("sendMessage", {"text": text, "parse_mode": "HTML",
                                            "link_preview_options": {"is_disabled": True}}))
    plain = text.replace("<b>", "").replace("</b>", "")
    attempts.append(ApiCall("sendMessage", {"text": plain}))
    return RenderedMessage(tuple(attempts))


def delivery(chat_id: int, text: str, **kw: Any) -> Delivery:
    n = next(_ids)
    return Delivery(
        id=f"d{n}", chat_id=chat_id, feed_url="https://example.org/feed.xml",
        entry_key=f"https://example.org/post/{n}", message=kw.pop("message", None)
        or html_message(text), created=time.time(), **kw,
    )


def scaled_clock(scale: float) -> Any:
    origin = time.monotonic()
    return lambda: origin + (time.monotonic() - origin) * scale


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[FakeBotApi]:
    """The fake with Telegram's limits on a clock sped up SCALE times (or the param's factor)."""
    scale = getattr(request, "param", SCALE)
    with FakeBotApi(enforce_limits=True, clock=scaled_clock(scale)) as fake:
        yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TinyDBStorage]:
    st = await TinyDBStorage.open(tmp_path / "db.json")
    yield st
    await st.close()


BotFactory = Callable[..., Awaitable[ExtBot[Any]]]


def gateway_bot(api: FakeBotApi, settings: DeliverySettings, **kw: Any) -> ExtBot[Any]:
    """A bot whose every request goes through the gateway, as in the running app."""
    return ExtBot(TOKEN, base_url=f"{api.url}/bot",
                  rate_limiter=TelegramGateway(settings.limits()), **kw)


@pytest.fixture
async def bots(api: FakeBotApi) -> AsyncIterator[BotFactory]:
    """bots(settings) -> an initialised bot with a fresh gateway on those limits (a restart)."""
    made: list[ExtBot[Any]] = []

    async def make(settings: DeliverySettings | None = None) -> ExtBot[Any]:
        bot = gateway_bot(api, settings or DeliverySettings())
        await bot.initialize()
        made.append(bot)
        return bot

    yield make
    for bot in made:
        await bot.shutdown()


class Running:
    """A Sender running as a task for the duration of a test."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sender:
        self.task = asyncio.create_task(self.sender.run())
        return self.sender

    async def __aexit__(self, *exc: object) -> None:
        await self.sender.stop()
        assert self.task is not None
        await self.task


def texts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m.plain for m in api.delivered(chat_id)]


def add_groups(api: FakeBotApi, ids: list[int]) -> None:
    for chat_id in ids:
        if chat_id < 0:
            api.add_chat(chat_id, type="supergroup")


# ---------------------------------------------------------------------------- pacing
async def test_600_messages_to_60_chats_in_order_fair_and_without_429(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    chats = [(i + 1 if i % 2 else -(i + 1)) for i in range(60)]
    add_groups(api, chats)
    await store.enqueue([delivery(c, f"<b>post {k}</b> for {c}") for k in range(10) for c in chats])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(40)
    assert api.count_429 == 0
    for c in chats:
        assert texts(api, c) == [f"post {k} for {c}" for k in range(10)]
    order = api.delivered()
    last_first = max(next(i for i, m in enumerate(order) if m.chat_id == c) for c in chats)
    seen: dict[int, int] = {}
    first_fifth = None
    for i, m in enumerate(order):
        seen[m.chat_id] = seen.get(m.chat_id, 0) + 1
        if seen[m.chat_id] == 5 and first_fifth is None:
            first_fifth = i
    assert first_fifth is not None and last_first < first_fifth
    assert sender.stats.sent == 600 and sender.stats.rate_limited == 0
    assert await store.pending() == []


@pytest.mark.parametrize("api", [1.0], indirect=True)
async def test_429_is_honoured_exactly_and_pauses_only_that_chat(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", chat_id=11,
                  retry_after=2)
    await store.enqueue([delivery(c, f"m{k}") for c in (11, 12) for k in range(3)])
    sender = Sender(await bots(), store)
    async with Running(sender):
        assert await sender.drain(15)
    limited = [c for c in api.calls("sendMessage") if c.status == 429]
    assert len(limited) == 1
    first_retry = api.delivered(11)[0].at
    assert limited[0].at + 2.0 <= first_retry <= limited[0].at + 2.5
    assert texts(api, 11) == ["m0", "m1", "m2"]
    assert texts(api, 12) == ["m0", "m1", "m2"]
    assert all(m.at < first_retry for m in api.delivered(12))  # the other chat went on
    assert sender.stats.rate_limited == 1


async def test_real_429s_from_a_stricter_server_lose_nothing(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    # we believe private chats allow bursts of 6; the server allows 3: it answers 429s
    optimistic = DeliverySettings(time_scale=SCALE, private_burst=6)
    await store.enqueue([delivery(21, f"m{k}") for k in range(8)])
    sender = Sender(await bots(optimistic), store, optimistic)
    async with Running(sender):
        assert await sender.drain(20)
    assert api.count_429 >= 1
    assert texts(api, 21) == [f"m{k}" for k in range(8)]
    assert sender.stats.rate_limited == api.count_429


# ---------------------------------------------------------------------------- chats
async def test_blocked_chat_is_paused_others_unaffected_and_resumes(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.add_chat(-13, type="group")
    api.block(12, "blocked")
    await store.enqueue([delivery(c, f"m{k}") for c in (11, 12, -13) for k in range(3)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(15)
        assert texts(api, 11) == texts(api, -13) == ["m0", "m1", "m2"]
        assert texts(api, 12) == []
        tries = [c for c in api.calls("sendMessage") if c.params.get("chat_id") == 12]
        assert len(tries) == FAST.pause_after_failures
        chat = await store.get_chat(12)
        assert chat is not None and chat.paused and chat.failures == 3
        assert sender.stats.paused_chats == 1 and sender.stats.dropped == 3

        # paused: new posts are not sent
        await store.enqueue([delivery(12, "while paused")])
        sender.wake()
        assert await sender.drain(5)
        assert texts(api, 12) == []

        # the user unblocks and presses /start (or the bot is re-added)
        api.unblock(12)
        await sender.bot_membership_changed(12, "member")
        chat = await store.get_chat(12)
        assert chat is not None and not chat.paused and chat.failures == 0
        await store.enqueue([delivery(12, "welcome back")])
        sender.wake()
        await api.await_delivered(1, 12, timeout=5)
        assert texts(api, 12) == ["welcome back"]


async def test_a_blip_does_not_pause(api: FakeBotApi, bots: BotFactory, store: Storage) -> None:
    api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=31)
    await store.enqueue([delivery(31, f"m{k}") for k in range(2)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
    assert texts(api, 31) == ["m0", "m1"]
    chat = await store.get_chat(31)
    assert chat is not None and not chat.paused and chat.failures == 0


async def test_kicked_pauses_at_once(api: FakeBotApi, bots: BotFactory, store: Storage) -> None:
    api.add_chat(-33, type="supergroup")
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        await sender.bot_membership_changed(-33, "kicked")
        await store.enqueue([delivery(-33, "nobody will read this")])
        sender.wake()
        assert await sender.drain(5)
    assert api.calls("sendMessage") == []
    chat = await store.get_chat(-33)
    assert chat is not None and chat.paused


async def test_group_upgraded_to_supergroup_loses_nothing(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.add_chat(-20, type="group")
    await store.save_chat(Chat(id=-20, type="group", title="Club", lang="de"))
    await store.enqueue([delivery(-20, f"m{k}") for k in range(3)])
    api.migrate(-20, -10020)
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
        # the update handler hears about it too, later: must not clobber the moved chat
        await sender.chat_migrated(-20, -10020)
    assert texts(api, -10020) == ["m0", "m1", "m2"]
    assert await store.get_chat(-20) is None
    moved = await store.get_chat(-10020)
    assert moved is not None and moved.title == "Club" and moved.lang == "de"
    assert moved.type == "supergroup"
    assert sender.stats.migrated == 1


async def test_migration_announced_before_sending(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.add_chat(-30, type="group")
    await store.enqueue([delivery(-30, f"m{k}") for k in range(2)])
    api.migrate(-30, -10030)
    sender = Sender(await bots(FAST), store, FAST)
    await sender.chat_migrated(-30, -10030)
    assert {d.chat_id for d in await store.pending()} == {-10030}
    async with Running(sender):
        assert await sender.drain(10)
    assert texts(api, -10030) == ["m0", "m1"]
    assert [c for c in api.calls("sendMessage") if c.params.get("chat_id") == -30] == []


# ---------------------------------------------------------------------------- content
async def test_parse_error_falls_back_to_plain_text(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    message = RenderedMessage((
        ApiCall("sendMessage", {"text": "<p>Hello &rsquo;world&rsquo;</p>", "parse_mode": "HTML"}),
        ApiCall("sendMessage", {"text": "Hello ’world’"}),
    ))
    await store.enqueue([delivery(41, "", message=message), delivery(41, "<b>next</b>")])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
    sent = api.delivered(41)
    assert [m.plain for m in sent] == ["Hello ’world’", "next"]
    assert "parse_mode" not in sent[0].params
    assert sender.stats.fallbacks == 1 and len(api.rejected()) == 1


async def test_rejected_photo_falls_back_to_text(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.reject_photo_urls("bad.example")
    msg = html_message("<b>Title</b> body", photo="https://bad.example/x.png")
    await store.enqueue([delivery(42, "", message=msg)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
    (sent,) = api.delivered(42)
    assert sent.method == "sendMessage" and sent.params["parse_mode"] == "HTML"
    assert sent.plain == "Title body"
    assert sent.params["link_preview_options"] == {"is_disabled": True}  # nested dict intact


async def test_every_form_rejected_still_sends_a_cut_text(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    huge = "Big post https://blog.example/big\n" + "word " * 2000
    message = RenderedMessage((ApiCall("sendMessage", {"text": huge}),))
    await store.enqueue([delivery(43, "", message=message)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
    (sent,) = api.delivered(43)
    assert sent.plain.startswith("Big post https://blog.example/big")
    assert len(sent.plain) <= 4096
    assert sender.stats.failed_permanent == 0


async def test_deleted_forum_topic_posts_to_the_main_thread(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.add_chat(-44, type="supergroup", is_forum=True)
    api.delete_topic(-44, 7)
    await store.enqueue([delivery(-44, "topic post", thread_id=7, silent=True)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(10)
    (sent,) = api.delivered(-44)
    assert sent.plain == "topic post" and sent.thread_id is None
    assert str(sent.params["disable_notification"]).lower() == "true"


# ---------------------------------------------------------------------------- network
async def test_server_errors_are_retried_while_other_chats_go_on(
    api: FakeBotApi, bots: BotFactory, store: Storage
) -> None:
    api.fail_next("sendMessage", 502, "Bad Gateway", times=3, chat_id=50)
    await store.enqueue([delivery(c, f"m{k}") for c in (50, 51) for k in range(2)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        assert await sender.drain(15)
    assert texts(api, 50) == texts(api, 51) == ["m0", "m1"]
    assert api.delivered(51)[-1].at < api.delivered(50)[0].at
    assert sender.stats.retried == 3
    assert api.count_429 == 0


async def test_timeout_is_retried(api: FakeBotApi, store: Storage) -> None:
    api.fail_next("sendMessage", None, delay=1.0, chat_id=52)  # answers after our timeout
    request = telegram.request.HTTPXRequest(read_timeout=0.3)
    async with gateway_bot(api, FAST, request=request) as bot:
        await store.enqueue([delivery(52, "m0")])
        sender = Sender(bot, store, FAST)
        async with Running(sender):
            assert await sender.drain(10)
    # the server did get the first try: a timeout is ambiguous, so one duplicate is expected
    assert texts(api, 52) in (["m0"], ["m0", "m0"])
    assert sender.stats.retried >= 1


async def test_stop_ends_a_send_still_under_way_after_the_grace_and_leaves_no_task(
    api: FakeBotApi, store: Storage
) -> None:
    # the answer takes longer than the stop's grace: the send is cancelled, not left pending
    # (it was: the sender task was cancelled while it waited for its sends, and the loop closed
    # on them, "Task was destroyed but it is pending!")
    api.fail_next("sendMessage", None, delay=5.0, chat_id=53)
    settings = replace(FAST, stop_grace=0.5)
    async with gateway_bot(api, settings) as bot:
        await store.enqueue([delivery(53, "m0")])
        sender = Sender(bot, store, settings)
        task = asyncio.create_task(sender.run())
        await api.await_for(lambda: bool(api.calls("sendMessage")), timeout=10)
        started = time.monotonic()
        await sender.stop()
        stopped_in = time.monotonic() - started
        left = [t for t in asyncio.all_tasks() if t.get_name().startswith("send:")]
        await asyncio.wait({task}, timeout=5)
    assert left == []
    assert task.done() and stopped_in < 3
    assert [d.chat_id for d in await store.pending()] == [53]  # kept for the next run


# ---------------------------------------------------------------------------- crash safety
def assert_complete_with_few_duplicates(
    api: FakeBotApi, expected: dict[int, list[str]], interruptions: int
) -> int:
    """Every chat got its posts in order; a repeat may only be of the post just before it, and
    each interruption repeats at most one post per chat (those that were in flight: at most
    DeliverySettings.max_in_flight)."""
    extra = 0
    in_flight = DeliverySettings().max_in_flight
    for chat_id, want in expected.items():
        got = texts(api, chat_id)
        collapsed = [t for i, t in enumerate(got) if i == 0 or t != got[i - 1]]
        assert collapsed == want, f"chat {chat_id}"
        assert len(got) - len(collapsed) <= interruptions, f"chat {chat_id}"
        extra += len(got) - len(collapsed)
    assert extra <= interruptions * in_flight
    return extra


@pytest.mark.parametrize("api", [20.0], indirect=True)
async def test_cancelled_at_random_points_loses_nothing(
    api: FakeBotApi, bots: BotFactory, tmp_path: Path
) -> None:
    rng = random.Random(7)
    path = tmp_path / "crash.json"
    chats = [101 + i for i in range(8)] + [-201, -202]
    add_groups(api, chats)
    expected = {c: [f"{c}:{k}" for k in range(20)] for c in chats}
    store = await TinyDBStorage.open(path)
    await store.enqueue([delivery(c, expected[c][k]) for k in range(20) for c in chats])
    settings = DeliverySettings(time_scale=20.0)
    interruptions = 0
    for _ in range(15):  # windows short enough that even a fast store cannot finish in them
        sender = Sender(await bots(settings), store, settings)
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(rng.uniform(0.002, 0.03))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        interruptions += 1
        await store.close()  # as after a crash: only what reached the disk counts
        store = await TinyDBStorage.open(path)
    assert len(api.delivered()) < 200  # the interruptions did cut the work short
    sender = Sender(await bots(settings), store, settings)
    async with Running(sender):
        assert await sender.drain(30)
    await store.close()
    assert_complete_with_few_duplicates(api, expected, interruptions)
    # a fresh Sender does not know what its predecessor sent a moment ago, so a few 429s
    # right after a restart are expected (and honoured): no assertion on count_429 here


# ---------------------------------------------------------------------------- throughput
async def test_with_a_round_trip_several_chats_are_served_at_once_each_in_order(
    make_fake_api: Callable[..., FakeBotApi], store: Storage
) -> None:
    api = make_fake_api(enforce_limits=True, latency=0.15)
    chats = list(range(301, 321))
    await store.enqueue([delivery(c, f"{c}:{k}") for k in range(3) for c in chats])
    async with gateway_bot(api, DeliverySettings()) as bot:
        sender = Sender(bot, store)
        async with Running(sender):
            assert await sender.drain(30)
    assert api.most_in_flight >= 10  # one request at a time could not keep 30 msg/s going
    assert api.most_in_flight_per_chat == 1  # never two for one chat
    assert api.count_429 == 0
    for c in chats:
        assert texts(api, c) == [f"{c}:{k}" for k in range(3)]


async def test_refused_forms_do_not_use_up_a_groups_minute(
    bots: BotFactory, api: FakeBotApi, store: Storage
) -> None:
    """Each post's photo is refused and its text form sent: the group still gets 19 posts in
    its first minute (one slot is left to replies), not half as many."""
    api.add_chat(-77, type="supergroup")
    api.reject_photo_urls("/refused/")
    await store.enqueue([
        delivery(-77, f"post {k}", message=html_message(f"post {k}", "https://x.example/refused/p"))
        for k in range(25)
    ])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        await api.await_for(lambda: len(api.delivered(-77)) >= 19, timeout=10)
        first = api.delivered(-77)[0].at
        in_first_minute = [m for m in api.delivered(-77) if m.at < first + 60.0]
    assert len(in_first_minute) == 19
    assert api.count_429 == 0


async def test_two_chats_flooded_do_not_stall_the_others(
    bots: BotFactory, api: FakeBotApi, store: Storage
) -> None:
    """Issue 13: a second chat's 429 during the first one's pause is still about that chat."""
    for chat in (11, 12):
        api.fail_next("sendMessage", 429, "Too Many Requests: retry after 10", chat_id=chat,
                      retry_after=10)
    await store.enqueue([delivery(c, f"m{k}") for k in range(2) for c in (11, 12)])
    sender = Sender(await bots(FAST), store, FAST)
    async with Running(sender):
        await api.await_for(lambda: api.count_429 == 2, timeout=5)
        flooded_at = api.clock()
        await store.enqueue([delivery(c, f"m{k}") for k in range(3) for c in (13, 14, 15)])
        sender.wake()
        assert await sender.drain(15)
    for chat in (13, 14, 15):
        assert texts(api, chat) == ["m0", "m1", "m2"]
        assert all(m.at < flooded_at + 10 for m in api.delivered(chat))  # not after the pause
    for chat in (11, 12):
        assert texts(api, chat) == ["m0", "m1"]
        assert api.delivered(chat)[0].at >= flooded_at + 10 - 1  # each waited its retry_after
