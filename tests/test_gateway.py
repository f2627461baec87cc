"""The gateway on its own: ordering, priorities, overlap, 429 scope, retries (no network).

The callbacks stand in for PTB's HTTP request (the gateway never looks inside them); the real
app against the fake Bot API is tested in tests/test_replies_e2e.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from telegram.error import NetworkError, RetryAfter

from bot.delivery.gateway import POST_CALL, GatewayLimits, Priority, TelegramGateway

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


class Server:
    """Answers after `rtt` seconds; records (chat, label, answer time); can refuse with 429s."""

    def __init__(self, rtt: float = 0.0) -> None:
        self.rtt = rtt
        self.log: list[tuple[Any, str, float]] = []
        self.refuse: dict[Any, list[float]] = {}  # chat -> retry_after of the next answers
        self.in_flight = 0
        self.most_in_flight = 0

    def call(self, chat: Any, label: str) -> Any:
        async def request() -> dict[str, Any]:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.rtt)
            finally:
                self.in_flight -= 1
            pending = self.refuse.get(chat)
            if pending:
                raise RetryAfter(int(pending.pop(0)))
            self.log.append((chat, label, time.monotonic()))
            return {"ok": True}

        return request


async def send(
    gateway: TelegramGateway, server: Server, chat: Any, label: str,
    options: Any = None, method: str = "sendMessage",
) -> Any:
    data = {} if chat is None else {"chat_id": chat}
    return await gateway.process_request(server.call(chat, label), (), {}, method, data, options)


async def test_a_reply_goes_ahead_of_posts_queued_in_the_same_chat() -> None:
    gateway, server = TelegramGateway(GatewayLimits(private_burst=1, time_scale=10)), Server()
    posts = [asyncio.create_task(send(gateway, server, 7, f"post{i}", POST_CALL))
             for i in range(4)]
    await asyncio.sleep(0.01)  # post0 is out; the rest wait for the chat's allowance
    reply = asyncio.create_task(send(gateway, server, 7, "reply"))
    await asyncio.gather(*posts, reply)
    assert [label for _, label, _ in server.log] == ["post0", "reply", "post1", "post2", "post3"]


async def test_each_chat_keeps_its_order_and_chats_overlap() -> None:
    gateway, server = TelegramGateway(), Server(rtt=0.1)
    await asyncio.gather(*(send(gateway, server, chat, f"{chat}:{k}", POST_CALL)
                           for k in range(3) for chat in range(1, 11)))
    # 30 messages, 10 private chats with bursts of 3: the limits allow all at once, so the ten
    # chats' requests are under way together, one per chat
    assert server.most_in_flight == 10
    for chat in range(1, 11):
        assert [lb for c, lb, _ in server.log if c == chat] == [f"{chat}:{k}" for k in range(3)]


async def test_overall_limit_counts_requests_in_flight() -> None:
    gateway = TelegramGateway(GatewayLimits(global_per_second=30, time_scale=10))
    server = Server(rtt=0.02)
    await asyncio.gather(*(send(gateway, server, chat, "m", POST_CALL) for chat in range(1, 91)))
    stamps = sorted(at for _, _, at in server.log)
    window = 0.1  # one second at 10x
    for i in range(len(stamps) - 30):
        assert stamps[i + 30] - stamps[i] >= window * 0.99  # never 31 answers in one window


async def test_a_429_pauses_only_its_chat_even_when_two_chats_get_one() -> None:
    gateway, server = TelegramGateway(GatewayLimits(time_scale=10)), Server()
    server.refuse = {1: [50.0], 2: [50.0]}  # 5 s at 10x
    results = await asyncio.gather(
        send(gateway, server, 1, "a", POST_CALL), send(gateway, server, 2, "b", POST_CALL),
        return_exceptions=True,
    )
    assert all(isinstance(r, RetryAfter) for r in results)  # posts get the 429 back
    paused_until = gateway.ready_at(1)
    assert paused_until > time.monotonic() + 4
    await asyncio.gather(*(send(gateway, server, chat, "c", POST_CALL) for chat in (3, 4, 5)))
    assert [c for c, _, _ in server.log] == [3, 4, 5]
    assert all(at < paused_until for _, _, at in server.log)  # not held up by the pause
    assert gateway.stats.bot_wide_pauses == 0


async def test_several_chats_refused_at_once_is_a_bot_wide_limit() -> None:
    gateway, server = TelegramGateway(GatewayLimits(time_scale=10)), Server()
    server.refuse = {c: [3.0] for c in (1, 2, 3)}
    await asyncio.gather(*(send(gateway, server, c, "x", POST_CALL) for c in (1, 2, 3)),
                         return_exceptions=True)
    assert gateway.stats.bot_wide_pauses == 1
    assert gateway.ready_at(99) > time.monotonic() + 0.2


async def test_a_429_on_a_call_without_chat_pauses_the_bot() -> None:
    gateway, server = TelegramGateway(GatewayLimits(time_scale=10)), Server()
    server.refuse = {None: [2.0]}  # 0.2 s at 10x
    started = time.monotonic()
    await send(gateway, server, None, "commands", method="setMyCommands")
    assert time.monotonic() - started >= 0.2  # waited, then was answered
    assert gateway.stats.bot_wide_pauses == 1
    assert [label for _, label, _ in server.log] == ["commands"]


async def test_an_interactive_call_waits_out_a_429_exactly_and_is_answered() -> None:
    gateway, server = TelegramGateway(GatewayLimits(time_scale=10)), Server()
    server.refuse = {5: [4.0, 2.0]}  # 0.4 s, then 0.2 s at 10x
    started = time.monotonic()
    assert await send(gateway, server, 5, "reply") == {"ok": True}
    waited = time.monotonic() - started
    assert 0.6 <= waited < 0.8
    assert gateway.stats.rate_limited == 2 and gateway.stats.retried == 2
    assert [label for _, label, _ in server.log] == ["reply"]


async def test_an_interactive_call_is_retried_after_network_errors() -> None:
    gateway = TelegramGateway(GatewayLimits(time_scale=20))
    failures = [NetworkError("connection reset"), NetworkError("Bad Gateway")]

    async def flaky() -> dict[str, Any]:
        if failures:
            raise failures.pop(0)
        return {"ok": True}

    result = await gateway.process_request(flaky, (), {}, "sendMessage", {"chat_id": 3}, None)
    assert result == {"ok": True} and gateway.stats.retried == 2


async def test_refused_attempts_do_not_use_a_groups_allowance() -> None:
    from telegram.error import BadRequest

    gateway = TelegramGateway(GatewayLimits(group_per_minute=4, time_scale=60))

    async def refused() -> dict[str, Any]:
        raise BadRequest("Bad Request: can't parse entities")

    for _ in range(10):
        with pytest.raises(BadRequest):
            await gateway.process_request(refused, (), {}, "sendMessage", {"chat_id": -5},
                                          POST_CALL)
    assert gateway.ready_at(-5) <= time.monotonic()  # nothing was counted


async def test_posts_leave_one_slot_of_a_groups_minute_to_replies() -> None:
    gateway, server = TelegramGateway(GatewayLimits(group_per_minute=5, time_scale=6)), Server()
    for i in range(4):
        await send(gateway, server, -9, f"post{i}", POST_CALL)
    window_turns = gateway.ready_at(-9)
    assert window_turns > time.monotonic() + 5  # a fifth post waits for the window (10 s)
    await send(gateway, server, -9, "reply")
    assert server.log[-1][2] < window_turns  # the reply took the slot left to replies


async def test_reads_and_button_answers_are_never_held_back() -> None:
    gateway, server = TelegramGateway(GatewayLimits(private_burst=1, time_scale=0.1)), Server()
    await send(gateway, server, 4, "m")  # the chat's allowance is used for 10 s
    next_message = gateway.ready_at(4)
    await send(gateway, server, 4, "answer", method="answerCallbackQuery")
    await send(gateway, server, 4, "member", method="getChatMember")
    assert all(at < next_message for _, _, at in server.log)
    assert gateway.stats.sent == 1  # only the message counted
    assert Priority.INTERACTIVE < Priority.POST


def test_a_message_is_stamped_no_earlier_than_its_travel_allows() -> None:
    from bot.delivery.gateway import SERVER_WORK, ServerClock

    clock = ServerClock(enough=4)
    assert clock.stamp(10.0, 10.004) == 10.004  # too few trips known: the answer itself
    for k in range(3):
        assert clock.stamp(float(k), k + 0.004) == k + 0.004  # loopback: the answer itself
    remote = ServerClock(enough=4)
    for k in range(4):
        stamp = remote.stamp(float(k), k + 0.1)
    assert stamp == pytest.approx(3.1 - (0.1 - SERVER_WORK))
    # trips that vary as much as they last: nothing is taken off
    congested = ServerClock(enough=4)
    for k, trip in enumerate([0.06, 0.09, 0.12, 0.08, 0.11]):
        stamp = congested.stamp(float(k), k + trip)
    assert stamp == pytest.approx(4.11)


async def test_an_album_counts_one_message_per_item() -> None:
    gateway = TelegramGateway(GatewayLimits(group_per_minute=5, time_scale=6))
    server = Server()
    album = {"chat_id": -3, "media": [{"type": "photo"}] * 3}
    await gateway.process_request(server.call(-3, "album"), (), {}, "sendMediaGroup", album,
                                  POST_CALL)
    assert gateway.stats.sent == 3
    # 3 of the group's 5 used, one more is left to replies: a second album of 3 must wait
    assert gateway.ready_at(-3) <= time.monotonic()  # a single post still fits
    budget = gateway._chats[-3]
    assert budget.ready_at(Priority.POST, 3) > time.monotonic() + 5


async def test_a_sender_taking_over_counts_one_more_send_per_chat_than_was_recorded() -> None:
    # the sender that died sent 3 messages to private chat 7 (its burst) and 19 to group -5
    # (all its posts may use of the group's minute); the last of each was accepted by Telegram
    # but not recorded before it died
    limits = GatewayLimits(private_burst=3, time_scale=30)  # 1/30 s a message; a 2 s minute
    gateway, server = TelegramGateway(limits), Server()
    gateway.count_earlier_sends([(7, 0.0)] * 2 + [(-5, 0.0)] * 18)
    started = time.monotonic()
    await asyncio.gather(send(gateway, server, 7, "p", POST_CALL),
                         send(gateway, server, -5, "g", POST_CALL),
                         send(gateway, server, 8, "new", POST_CALL))
    answered = {chat: at - started for chat, _, at in server.log}
    assert answered[7] >= 0.03  # waits for a token: the unrecorded send used the last one
    assert answered[-5] >= 1.9  # waits for the group's minute to move on
    # a chat with tokens to spare waits only for the bot's second, whose sends are not known
    assert 0.03 <= answered[8] < 0.06
