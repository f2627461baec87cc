"""Coordination for a storage that only one process opens (TinyDB): seats are always this
process's, announcements stay in the process, leases and relayed calls live in memory.

The same operations on PostgreSQL coordinate several processes (bot.storage.postgres); here
they keep one process's behaviour identical, so the poller, the sender and the relay need no
second path for the embedded backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from bot.storage.base import CallAnswer, RelayedCall


class LocalCoordination:
    def __init__(self) -> None:
        self._leases: dict[str, float] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._calls: dict[str, RelayedCall] = {}
        self._taken: dict[str, float] = {}
        self._answers: dict[str, CallAnswer] = {}

    # ------------------------------------------------------------------ leases
    def leased(self, now: float) -> set[str]:
        """The feeds whose lease has not run out (the rest are forgotten)."""
        for url in [u for u, until in self._leases.items() if until <= now]:
            del self._leases[url]
        return set(self._leases)

    def lease(self, urls: Iterable[str], now: float, lease_s: float) -> None:
        for url in urls:
            self._leases[url] = now + lease_s

    def release(self, *urls: str | None) -> None:
        for url in urls:
            if url is not None:
                self._leases.pop(url, None)

    # ------------------------------------------------------------ announcements
    def watch(self, topic: str) -> asyncio.Event:
        return self._events.setdefault(topic, asyncio.Event())

    def announce(self, topic: str) -> None:
        event = self._events.get(topic)
        if event is not None:
            event.set()

    # ------------------------------------------------------------- relayed calls
    def relay(self, call: RelayedCall) -> None:
        self._calls[call.id] = call

    def take(self, limit: int, lease_s: float) -> list[RelayedCall]:
        now = time.monotonic()
        free = [c for c in self._calls.values()
                if c.id not in self._answers and self._taken.get(c.id, -1.0) <= now]
        free.sort(key=lambda c: (c.priority, c.created))
        for call in free[:limit]:
            self._taken[call.id] = now + lease_s
        return free[:limit]

    def answer(self, call_id: str, answer: CallAnswer) -> None:
        if call_id in self._calls:
            self._answers[call_id] = answer

    def collect(self, call_id: str) -> CallAnswer | None:
        answer = self._answers.pop(call_id, None)
        if answer is not None:
            self._calls.pop(call_id, None)
            self._taken.pop(call_id, None)
        return answer
