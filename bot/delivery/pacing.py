"""Pure pacing and scheduling for the sender: rate limiters and a fair per-chat queue (no I/O).

Timestamps given to `record()` are the moment Telegram's *answer* arrived. The server counted the
message somewhere between our request and its answer, so pacing from the answer time can never
be earlier than the server's own view, whatever the network jitter: we stay under the limits
without padding them.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from bot.models import Delivery


class RateLimit(Protocol):
    def ready_at(self, spare: int = 0) -> float:
        """Earliest time the next message may start (may be in the past), leaving `spare`
        messages of the allowance unused (where the limit has such a notion)."""

    def record(self, at: float) -> None:
        """A message was counted by the server no later than `at`."""

    def idle_since(self) -> float:
        """Time after which this limiter remembers nothing (its state can be dropped)."""


class SlidingWindow:
    """At most `limit` messages in any `window` seconds (Telegram's per-group and global rule)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._times: deque[float] = deque(maxlen=self.limit)

    def ready_at(self, spare: int = 0) -> float:
        room = max(1, self.limit - spare)
        if len(self._times) < room:
            return -math.inf
        return self._times[-room] + self.window

    def record(self, at: float) -> None:
        self._times.append(at)

    def idle_since(self) -> float:
        return self._times[-1] + self.window if self._times else -math.inf


class TokenBucket:
    """`rate` messages per second on average with bursts of `burst` (GCRA form).

    The bucket is full when `tat` (theoretical arrival time) is in the past; each message pushes
    `tat` one interval further; a message may go when `tat` is at most `burst - 1` intervals ahead.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.burst = max(1, burst)
        self._tat = -math.inf

    def ready_at(self, spare: int = 0) -> float:
        return self._tat - (self.burst - 1) * self.interval

    def record(self, at: float) -> None:
        self._tat = max(self._tat, at) + self.interval

    def idle_since(self) -> float:
        return self._tat


@dataclass
class Lane:
    """One chat's queue and pacing state."""

    chat_id: int
    limit: RateLimit
    queue: deque[Delivery] = field(default_factory=deque)
    #: no send before this time (429 retry_after, backoff after errors)
    blocked_until: float = -math.inf
    #: consecutive transient failures of the head delivery (drives exponential backoff)
    transient_failures: int = 0
    #: Chat.failures as last read/written (so success only touches the store when needed)
    chat_failures: int = 0
    version: int = 0
    scheduled: bool = False

    def eligible_at(self) -> float:
        return max(self.limit.ready_at(), self.blocked_until)


class FairScheduler:
    """Chats take turns: a chat that just sent queues up behind every chat already waiting.

    Heap key is (time the lane becomes eligible, arrival order). A lane that sends is re-pushed
    with key max(its own readiness, now), so it goes behind all lanes that were ready before it:
    round robin when the global limit is the bottleneck, earliest-ready-first otherwise.
    Stale heap entries are skipped by version.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int]] = []
        self._order = itertools.count()
        self.lanes: dict[int, Lane] = {}

    def schedule(self, lane: Lane, now: float) -> None:
        if not lane.queue:
            lane.scheduled = False
            return
        lane.version += 1
        lane.scheduled = True
        key = max(lane.eligible_at(), now)
        heapq.heappush(self._heap, (key, next(self._order), lane.chat_id, lane.version))

    def peek(self) -> tuple[Lane | None, float]:
        """The lane to serve next and when it may send; (None, inf) if nothing is queued."""
        while self._heap:
            at, _, chat_id, version = self._heap[0]
            lane = self.lanes.get(chat_id)
            if lane is None or lane.version != version or not lane.queue or not lane.scheduled:
                heapq.heappop(self._heap)
                continue
            return lane, at
        return None, math.inf

    def pop(self, lane: Lane) -> None:
        """Take `lane` (the one `peek` returned) out of the heap while it is being served."""
        heapq.heappop(self._heap)
        lane.scheduled = False
        lane.version += 1

    def queued(self) -> int:
        return sum(len(lane.queue) for lane in self.lanes.values())

    def prune(self, now: float) -> None:
        """Forget lanes with nothing queued whose limiter no longer constrains anything."""
        idle = [
            cid
            for cid, lane in self.lanes.items()
            if not lane.queue
            and lane.limit.idle_since() <= now
            and lane.blocked_until <= now
            and not lane.chat_failures
        ]
        for cid in idle:
            del self.lanes[cid]


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - 1, 60))


def minimum_duration(
    per_chat: dict[int, int],
    *,
    global_per_second: float,
    private_per_second: float,
    private_burst: int,
    group_per_minute: int,
) -> float:
    """Least time (first send to last send) Telegram's limits allow for these message counts."""
    total = sum(per_chat.values())
    # the global limit is a sliding window of one second: full windows back to back
    bound = max(0.0, (math.ceil(total / global_per_second) - 1)) if total else 0.0
    for chat_id, count in per_chat.items():
        if count <= 0:
            continue
        if chat_id > 0:
            chat = max(0, count - private_burst) / private_per_second
        else:
            chat = (math.ceil(count / group_per_minute) - 1) * 60.0
        bound = max(bound, chat)
    return float(bound)
