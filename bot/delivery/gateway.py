"""The one way out to Telegram: every Bot API call the bot makes passes through `TelegramGateway`.

It is plugged into python-telegram-bot as the bot's rate limiter (`BaseRateLimiter`), because PTB
routes every request through that one hook: command replies (`message.reply_text`), edits, button
answers, documents, owner alerts and the outbox sender's posts alike, so nothing can go around it.
PTB's own `AIORateLimiter` does not fit: it knows only an overall and a per-group limit (no
private-chat limit, no priorities, so a reply queues behind a chat's backlog of posts), it counts
every call that names a chat (reads such as `getChatMember` included) when it starts rather than
when Telegram answers, and any 429 pauses every request of the bot.

What it owns
- Telegram's limits for the whole bot: at most `global_per_second` messages in any second, per
  private chat `private_per_second` with bursts of `private_burst`, per group or channel
  `group_per_minute`. Only calls that post or change a message count (`MESSAGE_METHODS`); reads
  (`getChatMember`, ...) and `answerCallbackQuery` go straight through.
- Order and priority: each chat has one request in flight at a time, taken in (priority, arrival)
  order, so a user's reply goes ahead of queued posts in the same chat and each chat's order is
  kept; different chats overlap, so 30 msg/s is reached even with a 100 ms round trip.
- 429: `retry_after` is honoured exactly, for the chat it was answered for (bot-wide only when the
  call names no chat, or when several chats are refused at once). Interactive calls are retried
  (also after network errors); the sender's posts get the `RetryAfter` back, since the outbox
  retries them itself without tying up a request slot.

Pacing is measured from the moment Telegram's answer arrived: the server counted the message
somewhere between our request and its answer, so our view can never be ahead of the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, cast

from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter

from bot.delivery.outcome import read_retry_after
from bot.delivery.pacing import RateLimit, SlidingWindow, TokenBucket, backoff_delay

log = logging.getLogger(__name__)

#: calls that put or change something in a chat: these count against Telegram's message limits
MESSAGE_METHODS = frozenset(
    {
        "sendMessage", "sendPhoto", "sendAudio", "sendVideo", "sendDocument", "sendAnimation",
        "sendVoice", "sendVideoNote", "sendMediaGroup", "sendLocation", "sendVenue",
        "sendContact", "sendPoll", "sendDice", "sendSticker", "copyMessage", "copyMessages",
        "forwardMessage", "forwardMessages", "editMessageText", "editMessageCaption",
        "editMessageMedia", "editMessageReplyMarkup",
    }
)
#: several chats refused within this many seconds means the limit hit is the bot's own
BOT_WIDE_WINDOW = 1.0
BOT_WIDE_CHATS = 3
#: interactive calls: retries after network errors / 5xx before the error reaches the handler
INTERACTIVE_NETWORK_RETRIES = 4
#: a group's or channel's per-minute allowance that posts leave to replies, so an admin's
#: command in a busy group is answered at once instead of after the window turns over
REPLY_RESERVE = 1


class Priority(enum.IntEnum):
    """Lower goes first within a chat's budget and for the bot's overall budget."""

    INTERACTIVE = 0  # replies, edits and answers to something a user did
    NOTICE = 1  # the bot's own messages to owners
    POST = 2  # outbox deliveries


class Relay(Protocol):
    """Where a process without the sender's seat sends what counts against the bot's limits
    (bot.delivery.relay.RelayClient)."""

    def params_for(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The call's wire parameters; None when it cannot be relayed (a file upload)."""
        ...

    async def call(self, endpoint: str, params: dict[str, Any], priority: int) -> Any: ...


class CallOptions(TypedDict, total=False):
    """`rate_limit_args` understood by the gateway (PTB passes them through untouched)."""

    priority: Priority
    #: False: a 429 is raised to the caller (after the chat's pause is recorded) instead of
    #: being waited out and retried here
    retry: bool


POST_CALL: CallOptions = {"priority": Priority.POST, "retry": False}
NOTICE_CALL: CallOptions = {"priority": Priority.NOTICE}


@dataclass(frozen=True)
class GatewayLimits:
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    private_burst: int = 3
    group_per_minute: int = 20  # groups, supergroups, channels (negative chat ids, @usernames)
    #: >1 speeds every limit (and the server's retry_after) up by this factor: tests and
    #: benchmarks against a fake Bot API whose clock runs that much faster
    time_scale: float = 1.0


@dataclass
class GatewayStats:
    sent: int = 0  # new messages Telegram accepted (every priority; edits are not counted)
    sent_posts: int = 0
    rate_limited: int = 0  # 429 answers received
    retried: int = 0  # interactive calls sent again after a 429 or a network error
    bot_wide_pauses: int = 0


@dataclass(order=True)
class _Ticket:
    priority: int
    seq: int
    chat: ChatBudget = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)
    #: messages the call makes (an album: one per item, as Telegram counts them)
    weight: int = field(default=1, compare=False)


@dataclass(eq=False)
class ChatBudget:
    """One chat's allowance: its limiter, a 429 pause, the one request in flight, the waiters."""

    key: int | str
    limit: RateLimit
    blocked_until: float = -math.inf
    busy: bool = False
    waiting: list[_Ticket] = field(default_factory=list)  # a heap

    def ready_at(self, priority: int = Priority.INTERACTIVE, weight: int = 1) -> float:
        spare = (REPLY_RESERVE if priority >= Priority.POST else 0) + weight - 1
        return max(self.limit.ready_at(spare), self.blocked_until)


class _OverallBudget:
    """The bot's messages per second: a sliding window of answers plus the requests in flight."""

    def __init__(self, per_second: float, time_scale: float) -> None:
        self.limit = max(1, round(per_second))
        self.window = self.limit / per_second / time_scale
        self.answers: deque[float] = deque()
        self.in_flight = 0
        self.blocked_until = -math.inf

    def _forget(self, now: float) -> None:
        while self.answers and self.answers[0] <= now - self.window:
            self.answers.popleft()

    def ready_at(self, now: float, weight: int = 1) -> float:
        """When a request of `weight` messages may start; inf while only an answer can free
        enough room."""
        self._forget(now)
        weight = min(weight, self.limit)
        if len(self.answers) + self.in_flight + weight <= self.limit:
            return max(now, self.blocked_until)
        if self.in_flight + weight > self.limit:
            return math.inf
        # the oldest answers must leave the window to make room
        k = len(self.answers) + self.in_flight + weight - self.limit - 1
        return max(self.answers[k] + self.window, self.blocked_until)


#: the most time Telegram's own work on the fastest call is assumed to take (the rest of that
#: round trip is travel); see ServerClock
SERVER_WORK = 0.025


class ServerClock:
    """When Telegram counted a message, as far as the limits are concerned.

    The server counts a message somewhere between our request and its answer. Stamping it at the
    answer is always safe but makes every slot last a round trip longer than the limit (at 100 ms:
    30 messages per 1.1 s). A request's way there and its answer's way back together take at
    least the fastest round trip seen lately, less the server's own work on that call (assumed at
    most SERVER_WORK) and less the round trips' spread (the 90th percentile minus the fastest: how
    much one way can be quicker than it was on the fastest trip), so a message is stamped that
    much before its answer and the next request still reaches the server no sooner after it than
    the limit allows. Until 16 trips are known, on loopback, or when trips vary by more than a
    quarter of the fastest (a busy machine's own delays), the stamp is the answer itself.
    """

    def __init__(self, memory: int = 64, *, enough: int = 16) -> None:
        self._trips: deque[float] = deque(maxlen=memory)
        self._enough = enough

    def stamp(self, started: float, answered: float) -> float:
        self._trips.append(max(0.0, answered - started))
        if len(self._trips) < self._enough:
            return answered  # too few trips to know how they vary
        trips = sorted(self._trips)
        fastest, usual = trips[0], trips[(len(trips) * 9) // 10]
        spread = usual - fastest
        if spread > fastest / 4:
            return answered  # trips this uneven are the machine's own delays, not travel
        return answered - max(0.0, fastest - SERVER_WORK - spread)


def message_count(endpoint: str, data: dict[str, Any]) -> int:
    """How many messages Telegram counts for this call: an album is one per item."""
    if endpoint == "sendMediaGroup":
        media = data.get("media")
        return max(1, min(len(media), 10)) if isinstance(media, list | tuple) else 1
    return 1


def chat_key(data: dict[str, Any]) -> int | str | None:
    raw = data.get("chat_id")
    if raw is None:
        return None
    if isinstance(raw, int):
        return raw
    text = str(raw)
    return int(text) if text.lstrip("-").isdigit() else text.lower()


class TelegramGateway(BaseRateLimiter[CallOptions]):
    def __init__(self, limits: GatewayLimits | None = None) -> None:
        self.limits = limits or GatewayLimits()
        self.stats = GatewayStats()
        self._overall = _OverallBudget(self.limits.global_per_second, self.limits.time_scale)
        self._clock = ServerClock()
        self._chats: dict[int | str, ChatBudget] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._refusals: deque[tuple[float, int | str]] = deque()
        #: chats with tickets waiting (the only ones a dispatch looks at)
        self._waiting: set[ChatBudget] = set()
        self._pruned_at = time.monotonic()
        #: set while another process holds the sender's seat: counted calls go through it
        self.relay: Relay | None = None
        #: with several processes: the chats of replies, edits and alerts sent from here (a
        #: post's completion records its own), for a sender that takes over (`take_sends`)
        self.keep_sends = False
        self._sends: list[int] = []
        #: when this gateway took over from a sender that died (`count_earlier_sends`)
        self._unrecorded_at: float | None = None

    # ------------------------------------------------------------ BaseRateLimiter
    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: CallOptions | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        options = rate_limit_args or {}
        priority = Priority(options.get("priority", Priority.INTERACTIVE))
        retry = options.get("retry", priority is not Priority.POST)
        key = chat_key(data)
        counted = endpoint in MESSAGE_METHODS and key is not None
        relay = self.relay
        if counted and relay is not None:
            params = relay.params_for(data)
            if params is not None:
                return cast(Any, await relay.call(endpoint, params, priority))
        weight = message_count(endpoint, data)
        attempt = 0
        seq = next(self._seq)  # kept across retries: a retried reply keeps its place
        while True:
            if counted:
                budget: ChatBudget | None = await self._acquire(key, priority, seq, weight)
            else:
                budget = None
                await self._wait_bot_wide_pause()
            try:
                started = time.monotonic()
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                self._release(budget, answered=False, weight=weight)
                self._rate_limited(key, exc)
                if not retry:
                    raise
            except (BadRequest, Forbidden, InvalidToken):
                self._release(budget, answered=False, weight=weight)
                raise
            except NetworkError:
                # counted: a request that timed out may still have been delivered
                self._release(budget, answered=True, started=started, weight=weight)
                attempt += 1
                if not retry or attempt > INTERACTIVE_NETWORK_RETRIES:
                    raise
                await asyncio.sleep(backoff_delay(attempt, 1.0 / self.limits.time_scale, 8.0))
            except BaseException:
                self._release(budget, answered=False, weight=weight)
                raise
            else:
                self._release(budget, answered=True, started=started, weight=weight)
                if counted and self.keep_sends and priority is not Priority.POST:
                    self._sends.extend([key] * weight if isinstance(key, int) else [])
                if counted and not endpoint.startswith("edit"):
                    self.stats.sent += weight
                    self.stats.sent_posts += weight if priority is Priority.POST else 0
                return result
            self.stats.retried += 1

    async def _wait_bot_wide_pause(self) -> None:
        """Calls that are not paced still wait out a 429 that concerns the whole bot."""
        wait = self._overall.blocked_until - time.monotonic()
        if wait > 0:  # a pause is only ever extended by an answer that waited for it
            await asyncio.sleep(wait)

    def take_sends(self) -> list[int]:
        """The chats sent to from here (not posts) since the last call (`keep_sends`)."""
        sends, self._sends = self._sends, []
        return sends

    def count_earlier_sends(self, sends: list[tuple[int, float]]) -> None:
        """A sender taking over: the messages the bot sent lately from any process, (chat
        id, seconds ago) oldest first, count against each chat's allowance and the bot's as
        if this gateway had sent them."""
        now = time.monotonic()
        overall = self._overall
        self._unrecorded_at = None
        for chat_id, ago in sends:
            stamp = now - ago
            self._budget(chat_id).limit.record(stamp)
            if ago < overall.window:
                overall.answers.append(stamp)
        overall.answers = deque(sorted(overall.answers))
        # The sender that died may have had one request per chat under way (never more: one
        # per chat at a time), accepted by Telegram but not yet recorded; the post is sent
        # again from here too. So every chat counts one more send, made now: for chats known
        # here at once, for the others when they first send (a chat's window ends after a
        # minute at the most, and so does this).
        self._unrecorded_at = now
        for budget in self._chats.values():
            budget.limit.record(now)
        # Those requests (one per chat, many chats) count against the bot's second too, and
        # how many there were is not known: the first sends wait until that second is over.
        overall.blocked_until = max(overall.blocked_until, now + overall.window)
        self._pump()

    # ------------------------------------------------------------ what the sender asks
    def ready_at(self, chat_id: int | str, priority: Priority = Priority.POST) -> float:
        """Earliest monotonic time a message to this chat may start (may be in the past)."""
        budget = self._chats.get(chat_id)
        chat_ready = budget.ready_at(priority) if budget is not None else -math.inf
        return max(chat_ready, self._overall.blocked_until)

    # ------------------------------------------------------------------- budgets
    def _budget(self, key: int | str) -> ChatBudget:
        budget = self._chats.get(key)
        if budget is None:
            s = self.limits
            limit: RateLimit
            if isinstance(key, int) and key > 0:
                limit = TokenBucket(s.private_per_second * s.time_scale, s.private_burst)
            else:
                limit = SlidingWindow(s.group_per_minute, 60.0 / s.time_scale)
            budget = self._chats[key] = ChatBudget(key, limit)
            if self._unrecorded_at is not None:
                if time.monotonic() - self._unrecorded_at < 60.0 / s.time_scale:
                    limit.record(self._unrecorded_at)
                else:
                    self._unrecorded_at = None
        return budget

    async def _acquire(
        self, key: int | str | None, priority: Priority, seq: int, weight: int
    ) -> ChatBudget:
        assert key is not None
        budget = self._budget(key)
        future = asyncio.get_running_loop().create_future()
        ticket = _Ticket(int(priority), seq, budget, future, weight)
        heapq.heappush(budget.waiting, ticket)
        self._waiting.add(budget)
        self._pump()
        try:
            await ticket.granted
        except asyncio.CancelledError:
            if ticket.granted.done() and not ticket.granted.cancelled():
                # granted, then cancelled before use
                self._release(budget, answered=False, weight=weight)
            else:
                budget.waiting.remove(ticket)
                heapq.heapify(budget.waiting)
                if not budget.waiting:
                    self._waiting.discard(budget)
                self._pump()
            raise
        return budget

    def _release(
        self, budget: ChatBudget | None, *, answered: bool, started: float = 0.0, weight: int = 1
    ) -> None:
        if budget is None:
            return
        budget.busy = False
        self._overall.in_flight -= weight
        if answered:
            stamp = self._clock.stamp(started, time.monotonic())
            for _ in range(weight):
                budget.limit.record(stamp)
                self._overall.answers.append(stamp)
        self._pump()
        self._prune()

    def _rate_limited(self, key: int | str | None, exc: RetryAfter) -> None:
        self.stats.rate_limited += 1
        wait = read_retry_after(exc) / self.limits.time_scale
        now = time.monotonic()
        if key is None or self._many_chats_refused(now, key):
            self._overall.blocked_until = max(self._overall.blocked_until, now + wait)
            self.stats.bot_wide_pauses += 1
            log.info("429 (%s): every chat waits %.1fs", key or "no chat", wait)
        else:
            budget = self._budget(key)
            budget.blocked_until = max(budget.blocked_until, now + wait)
            log.info("429 for chat %s: it waits %.1fs", key, wait)
        self._pump()

    def _many_chats_refused(self, now: float, key: int | str) -> bool:
        self._refusals.append((now, key))
        while self._refusals and self._refusals[0][0] < now - BOT_WIDE_WINDOW:
            self._refusals.popleft()
        return len({k for _, k in self._refusals}) >= BOT_WIDE_CHATS

    def _prune(self) -> None:
        """Forget chats whose limiter no longer constrains anything (bounded memory)."""
        now = time.monotonic()
        if len(self._chats) < 1024 or now - self._pruned_at < 60.0:
            return
        self._pruned_at = now
        for key in [
            k for k, b in self._chats.items()
            if not b.busy and not b.waiting and b.ready_at() <= now
            and b.limit.idle_since() <= now
        ]:
            del self._chats[key]

    # ----------------------------------------------------------------- dispatching
    def _pump(self) -> None:
        """Grant every ticket that may go now; arm a timer for the next one that may."""
        now = time.monotonic()
        while True:
            best, wake = self._best_ticket(now)
            if best is None:
                break
            overall_at = self._overall.ready_at(now, best.weight)
            if overall_at > now:
                wake = overall_at  # inf: only an answer frees a slot, and answers pump
                break
            self._grant(best)
        if wake < math.inf:
            self._arm(wake)

    def _best_ticket(self, now: float) -> tuple[_Ticket | None, float]:
        """The first ticket (priority, arrival) whose chat may send now; else when one may."""
        best: _Ticket | None = None
        next_at = math.inf
        for budget in self._waiting:
            if budget.busy:
                continue
            head = budget.waiting[0]
            at = budget.ready_at(head.priority, head.weight)
            if at > now:
                next_at = min(next_at, at)
            elif best is None or head < best:
                best = head
        return best, next_at

    def _grant(self, ticket: _Ticket) -> None:
        budget = ticket.chat
        heapq.heappop(budget.waiting)
        if not budget.waiting:
            self._waiting.discard(budget)
        budget.busy = True
        self._overall.in_flight += ticket.weight
        if not ticket.granted.done():
            ticket.granted.set_result(None)

    def _arm(self, at: float) -> None:
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, at - time.monotonic())
        self._timer_at = at
        self._timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        with contextlib.suppress(RuntimeError):  # loop closing
            self._pump()
