"""Seats: the one process among several on one database that does a job (bot.roles).

A seat is held through the storage (`Storage.try_lead`: a PostgreSQL advisory lock on a
connection, so it is freed the moment its holder dies); with TinyDB the only process always holds
it. A keeper checks every `SEAT_CHECK_S` seconds: a standby takes a freed seat within that (the
issue's bound is 20 s), a holder that lost its connection learns it within that and stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from bot.storage.base import Storage

log = logging.getLogger(__name__)

#: how often a keeper tries to take its seat, or confirms it still holds it
SEAT_CHECK_S = 2.0


def seat_name(job: str, token: str) -> str:
    """The seat of `job` for one bot: keyed by the token (whichever API URL a process uses),
    never showing it."""
    return f"{job}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"


class SeatKeeper:
    """Runs `gained()` when this process takes the seat and `lost()` when it no longer holds
    it (or is stopping), for as long as `run()` runs."""

    def __init__(
        self,
        store: Storage,
        seat: str,
        gained: Callable[[], Awaitable[None]],
        lost: Callable[[], Awaitable[None]],
        *,
        every: float = SEAT_CHECK_S,
    ) -> None:
        self.store, self.seat, self.every = store, seat, every
        self._gained, self._lost = gained, lost
        self.held = False
        self.terms = 0  # how many times the seat was taken
        self._told = False

    async def run(self) -> None:
        try:
            while True:
                await self._check()
                await asyncio.sleep(self.every)
        finally:
            if self.held:
                await asyncio.shield(self._release())

    async def _check(self) -> None:
        try:
            holds = await self.store.try_lead(self.seat)
        except Exception:
            log.exception("could not check the %s seat", self.job)
            holds = False
        if holds and not self.held:
            self.held, self.terms = True, self.terms + 1
            log.info("%s: this process holds the seat now", self.job)
            await self._gained()
        elif not holds and self.held:
            self.held = False
            log.warning("%s: this process lost the seat; standing by", self.job)
            await self._lost()
        elif not holds and not self._told:
            self._told = True
            log.info("%s: another process holds the seat; standing by", self.job)

    async def _release(self) -> None:
        self.held = False
        try:
            await self._lost()
        finally:
            await self.store.step_down(self.seat)

    @property
    def job(self) -> str:
        return self.seat.split(":", 1)[0]
