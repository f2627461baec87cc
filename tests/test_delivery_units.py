"""Pure tests of the sender's pacing, scheduling, error classification and fallbacks."""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta

import pytest
from telegram import InputMediaPhoto
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.delivery.outcome import (
    Verdict,
    api_kwargs,
    call_for_stage,
    classify,
)
from bot.delivery.pacing import (
    FairScheduler,
    Lane,
    SlidingWindow,
    TokenBucket,
    backoff_delay,
    minimum_duration,
)
from bot.models import ApiCall, Delivery, RenderedMessage
from bot.render.fallback import cut_utf16, title_and_link
from tests.fakes.botapi import RateLimiter

# RetryAfter(int) itself warns about PTB's int -> timedelta migration
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def make(chat_id: int, n: int, message: RenderedMessage | None = None) -> Delivery:
    msg = message or RenderedMessage((ApiCall("sendMessage", {"text": f"m{n}"}),))
    return Delivery(f"{chat_id}:{n}", chat_id, "https://f.example/rss", f"k{n}", msg, 0.0, seq=n)


# ------------------------------------------------------------------------------ limiters
def test_token_bucket_allows_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(rate=1.0, burst=3)
    t = 100.0
    for _ in range(3):
        assert bucket.ready_at() <= t
        bucket.record(t)
    assert bucket.ready_at() == pytest.approx(t + 1.0)
    bucket.record(t + 1.0)
    assert bucket.ready_at() == pytest.approx(t + 2.0)
    # the bucket is full again (state can be forgotten) once tat has passed
    assert bucket.idle_since() == pytest.approx(t + 4.0)


def test_sliding_window_blocks_until_oldest_leaves() -> None:
    window = SlidingWindow(limit=20, window=60.0)
    for i in range(20):
        assert window.ready_at() <= i
        window.record(float(i))
    assert window.ready_at() == 60.0
    window.record(60.0)
    assert window.ready_at() == 61.0


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_delay(n, 1.0, 10.0) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff_delay(10_000, 1.0, 300.0) == 300.0


# ------------------------------------------------------------------------------ scheduler
def simulate(
    per_chat: dict[int, int], *, latency: float = 0.004, jitter: float = 0.003, seed: int = 1
) -> tuple[list[tuple[float, Delivery]], int]:
    """Drive FairScheduler + limiters the way Sender does, against the fake's own limiter as
    the judge (server stamps at a random moment inside each request). -> (sends, 429 count)."""
    rng = random.Random(seed)
    clock = [0.0]
    judge = RateLimiter(lambda: clock[0])
    sched = FairScheduler()
    glob = SlidingWindow(30, 1.0)
    for chat_id, count in per_chat.items():
        limit = TokenBucket(1.0, 3) if chat_id > 0 else SlidingWindow(20, 60.0)
        lane = sched.lanes[chat_id] = Lane(chat_id, limit)
        lane.queue.extend(make(chat_id, n) for n in range(count))
        sched.schedule(lane, 0.0)
    sent: list[tuple[float, Delivery]] = []
    rejected = 0
    while True:
        lane, at = sched.peek()
        if lane is None:
            return sent, rejected
        clock[0] = max(clock[0], at, glob.ready_at())
        sched.pop(lane)
        start = clock[0]
        clock[0] = start + rng.uniform(0, latency)  # request reaches the server
        if judge.acquire(lane.chat_id, lane.chat_id > 0) is None:
            sent.append((clock[0], lane.queue.popleft()))
        else:
            rejected += 1
        clock[0] += rng.uniform(0, jitter)  # the answer comes back
        lane.limit.record(clock[0])
        glob.record(clock[0])
        sched.schedule(lane, clock[0])


def mixed_chats(n_chats: int, per_chat: int) -> dict[int, int]:
    return {(i + 1 if i % 2 else -(i + 1)): per_chat for i in range(n_chats)}


def test_schedule_never_trips_the_limits_and_stays_near_the_minimum() -> None:
    per_chat = mixed_chats(60, 10)
    sent, rejected = simulate(per_chat)
    assert rejected == 0
    assert len(sent) == 600
    span = sent[-1][0] - sent[0][0]
    floor = minimum_duration(per_chat, global_per_second=30, private_per_second=1,
                             private_burst=3, group_per_minute=20)
    assert floor <= span <= floor * 1.1 + 0.5


def test_schedule_is_fair_and_ordered_per_chat() -> None:
    per_chat = mixed_chats(60, 10)
    sent, _ = simulate(per_chat)
    nth: Counter[int] = Counter()
    first_round_done_at = max(next(i for i, (_, d) in enumerate(sent) if d.chat_id == c)
                              for c in per_chat)
    fifth_at = min(i for i, (_, d) in enumerate(sent) if d.seq == 4)
    assert first_round_done_at < fifth_at
    for _, d in sent:
        assert d.seq == nth[d.chat_id]
        nth[d.chat_id] += 1


def test_big_backlog_in_one_chat_does_not_delay_the_others() -> None:
    per_chat = {-1: 200, **{i: 1 for i in range(1, 30)}}
    sent, rejected = simulate(per_chat)
    assert rejected == 0
    first_of_others = [t for t, d in sent if d.chat_id > 0]
    assert max(first_of_others) < 2.0  # not after the group's 200 posts (10 minutes)


def test_group_limit_is_used_fully() -> None:
    sent, rejected = simulate({-5: 45})
    assert rejected == 0
    times = [t for t, _ in sent]
    assert times[19] < 1.0 and 60.0 <= times[20] < 61.0 and 120.0 <= times[40] < 121.0


def test_private_limit_is_used_fully() -> None:
    sent, rejected = simulate({7: 10})
    assert rejected == 0
    times = [t for t, _ in sent]
    assert times[2] < 0.1
    assert times[-1] == pytest.approx(7.0, abs=0.1)


def test_minimum_duration() -> None:
    kw = dict(global_per_second=30, private_per_second=1, private_burst=3, group_per_minute=20)
    assert minimum_duration({1: 3}, **kw) == 0.0
    assert minimum_duration({1: 10}, **kw) == 7.0
    assert minimum_duration({-1: 41}, **kw) == 120.0
    assert minimum_duration({i: 1 for i in range(1, 601)}, **kw) == 19.0


def test_stale_heap_entries_are_skipped() -> None:
    sched = FairScheduler()
    lane = sched.lanes[1] = Lane(1, TokenBucket(1.0, 3))
    lane.queue.append(make(1, 0))
    sched.schedule(lane, 0.0)
    lane.blocked_until = 50.0  # e.g. a 429
    sched.schedule(lane, 0.0)
    got, at = sched.peek()
    assert got is lane and at == 50.0
    lane.queue.clear()
    assert sched.peek() == (None, float("inf"))


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (RetryAfter(7), Verdict.RATE_LIMITED),
        (ChatMigrated(-100123), Verdict.MIGRATED),
        (Forbidden("Forbidden: bot was blocked by the user"), Verdict.CHAT_GONE),
        (Forbidden("Forbidden: user is deactivated"), Verdict.CHAT_GONE),
        (BadRequest("Chat not found"), Verdict.CHAT_GONE),
        (BadRequest("Need administrator rights in the channel chat"), Verdict.CHAT_GONE),
        (BadRequest("Message thread not found"), Verdict.NO_THREAD),
        (BadRequest("Can't parse entities: unsupported start tag \"p\""), Verdict.CONTENT),
        (BadRequest("Message is too long"), Verdict.CONTENT),
        (BadRequest("Wrong file identifier/http url specified"), Verdict.CONTENT),
        (BadRequest("Failed to get http url content"), Verdict.CONTENT),
        (BadRequest("Wrong type of the web page content"), Verdict.CONTENT),
        (TimedOut(), Verdict.TRANSIENT),
        (NetworkError("Bad Gateway"), Verdict.TRANSIENT),
        (RuntimeError("boom"), Verdict.TRANSIENT),
    ],
)
def test_classify(exc: Exception, verdict: Verdict) -> None:
    assert classify(exc).verdict is verdict


def test_retry_after_int_or_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    assert classify(RetryAfter(7)).retry_after == 7.0
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    assert classify(RetryAfter(timedelta(seconds=2.5))).retry_after == 2.5
    assert classify(ChatMigrated(-100123)).new_chat_id == -100123


# ------------------------------------------------------------------------------ fallbacks
def rendered() -> RenderedMessage:
    return RenderedMessage((
        ApiCall("sendPhoto", {"photo": "https://img.example/a.png", "caption": "<b>T</b>",
                              "parse_mode": "HTML"}),
        ApiCall("sendMessage", {"text": "<b>Title</b>\n<a href=\"https://blog.example/p\">x</a>",
                                "parse_mode": "HTML",
                                "link_preview_options": {"url": "https://blog.example/p"}}),
        ApiCall("sendMessage", {"text": "Title &amp; more\n\nbody " + "x" * 5000}),
    ))


def test_stages_walk_the_rendered_attempts_then_emergency_forms() -> None:
    d = make(1, 0, rendered())
    methods = [call_for_stage(d, s) for s in range(6)]
    assert [c.method for c in methods[:5] if c] == ["sendPhoto", "sendMessage", "sendMessage",
                                                     "sendMessage", "sendMessage"]
    cut, last = methods[3], methods[4]
    assert cut is not None and last is not None
    assert len(cut.params["text"]) <= 4096 and cut.params["text"].endswith("…")
    assert "parse_mode" not in cut.params
    assert last.params["text"] == "Title &amp; more\nhttps://blog.example/p"
    assert methods[5] is None


def test_title_and_link_never_empty() -> None:
    d = make(1, 0, RenderedMessage((ApiCall("sendMessage", {"text": "   "}),)))
    d.entry_key = "https://blog.example/post"
    assert title_and_link(d.message, d.entry_key, d.feed_url) == "https://blog.example/post"
    d.entry_key = "guid-123"
    assert title_and_link(d.message, d.entry_key, d.feed_url)


def test_title_and_link_takes_the_posts_link_not_a_picture_preview() -> None:
    picture = {"url": "https://img.example/a.png", "prefer_large_media": True,
               "show_above_text": True}
    text = '<b><a href="https://blog.example/p">Title</a></b>\nbody'
    d = make(1, 0, RenderedMessage((
        ApiCall("sendMessage", {"text": text, "parse_mode": "HTML",
                                "link_preview_options": picture}),
    )))
    assert title_and_link(d.message, d.entry_key, d.feed_url) == "Title\nhttps://blog.example/p"


def test_album_items_go_to_ptb_as_input_media() -> None:
    album = ApiCall("sendMediaGroup", {"media": [
        {"type": "photo", "media": "https://img.example/1.jpg", "caption": "<b>T</b>",
         "parse_mode": "HTML"},
        {"type": "photo", "media": "https://img.example/2.jpg"},
    ]})
    kwargs = api_kwargs(album, make(1, 0, RenderedMessage((album,))))
    first, second = kwargs["media"]
    assert isinstance(first, InputMediaPhoto) and isinstance(second, InputMediaPhoto)
    assert (first.media, first.caption, first.parse_mode) == (
        "https://img.example/1.jpg", "<b>T</b>", "HTML")
    assert second.caption is None
    assert isinstance(album.params["media"][0], dict)  # the stored call is not changed


def test_cut_counts_utf16_units() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    cut = cut_utf16(text, 4096)
    assert len(cut.encode("utf-16-le")) // 2 <= 4096
    assert cut_utf16("short", 10) == "short"


def test_api_kwargs_adds_target_and_keeps_params() -> None:
    d = make(-100, 0, rendered())
    d.thread_id, d.silent = 42, True
    call = d.message.attempts[1]
    kwargs = api_kwargs(call, d)
    assert kwargs == {**call.params, "chat_id": -100, "message_thread_id": 42,
                      "disable_notification": True}
    assert "message_thread_id" not in api_kwargs(call, d, with_thread=False)
    assert "chat_id" not in call.params  # the stored call is not mutated


def test_simulation_is_fast() -> None:
    t0 = time.process_time()
    simulate(mixed_chats(60, 10))
    assert time.process_time() - t0 < 2.0
