"""What one process does (`feedbot run --role`, FEEDBOT_ROLE), and the seats it keeps.

- `checker`: the poller's tick (claims due feeds by lease, queues deliveries).
- `sender`: drains the outbox, only while it holds the sender's seat for the bot's token; then it
  also sends the calls other processes relay (replies, edits, alerts) and is woken by NOTIFY.
- `updates`: receives chat commands; with long polling only the holder of the updates seat polls
  (Telegram allows one getUpdates at a time), with a webhook every such process serves.
- `all`: a checker, plus the sender and the updates receiver whenever it holds their seats.

Every process without the sender's seat relays what counts against Telegram's limits to the
seat holder (bot.delivery.relay), so one process owns the limits. With TinyDB there is one process
(`all`), which holds every seat at once: nothing is relayed and nothing is announced elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram.ext import Updater

from bot.config import Settings
from bot.delivery.relay import RelayClient, RelayServer
from bot.runtime import Runtime
from bot.seats import SeatKeeper, seat_name
from bot.storage.base import TOPIC_OUTBOX

log = logging.getLogger(__name__)

#: how often the replies sent from here are recorded for a sender that takes over (seconds)
SENDS_FLUSH_S = 1.0
#: the longest a sender waits for news of the outbox before looking anyway (a lost NOTIFY)
OUTBOX_LOOK_S = 5.0


def checks_feeds(settings: Settings) -> bool:
    return settings.role in ("all", "checker")


def receives_updates(settings: Settings) -> bool:
    return settings.role in ("all", "updates")


def sends(settings: Settings) -> bool:
    return settings.role in ("all", "sender")


class Roles:
    def __init__(
        self,
        runtime: Runtime,
        updater: Updater | None,
        start_polling: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """`start_polling`: starts `updater` polling (None: this process does not poll)."""
        self.runtime = runtime
        self.settings = runtime.settings
        self.updater = updater
        self.start_polling = start_polling
        self.shared = bool(self.settings.database_url)
        self.relay_client = RelayClient(runtime.store) if self.shared else None
        self.sender_seat: SeatKeeper | None = None
        self.updates_seat: SeatKeeper | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: list[asyncio.Task[None]] = []
        self.relay_server = RelayServer(runtime.sender.bot, runtime.store)

    async def start(self) -> None:
        gateway = self.runtime.sender.gateway
        gateway.keep_sends = self.shared
        gateway.relay = self.relay_client
        token = self.settings.token
        store = self.runtime.store
        if sends(self.settings):
            self.sender_seat = SeatKeeper(
                store, seat_name("sender", token), self._sender_gained, self._sender_lost
            )
            self._spawn(self.sender_seat.run(), "sender seat")
        if self.start_polling is not None:
            self.updates_seat = SeatKeeper(
                store, seat_name("updates", token), self._updates_gained, self._updates_lost
            )
            self._spawn(self.updates_seat.run(), "updates seat")
        if self.shared:
            self._spawn(self._flush_sends(), "record sends")

    async def stop(self) -> None:
        for task in reversed(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.relay_client is not None:
            await self.relay_client.close()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    # ------------------------------------------------------------------ sender
    async def _sender_gained(self) -> None:
        runtime = self.runtime
        gateway = runtime.sender.gateway
        if self.shared:
            window = 60.0 / max(runtime.sender.settings.time_scale, 1e-9)
            gateway.count_earlier_sends(await runtime.store.recent_sends(window))
        gateway.relay = None
        self._sending = [asyncio.create_task(runtime.sender.run(), name="sender")]
        if self.shared:
            self._sending += [
                asyncio.create_task(self.relay_server.run(), name="relayed calls"),
                asyncio.create_task(self._watch_outbox(), name="outbox news"),
            ]

    async def _sender_lost(self) -> None:
        sending, self._sending = self._sending, []
        for task in sending[1:]:  # the relayed calls and the outbox news
            task.cancel()
        await asyncio.gather(*sending[1:], return_exceptions=True)
        await self.runtime.sender.stop()  # lets the requests under way finish
        await asyncio.gather(*sending[:1], return_exceptions=True)
        self.runtime.sender.gateway.relay = self.relay_client

    async def _watch_outbox(self) -> None:
        """Deliveries queued by other processes wake the sender (NOTIFY, else every 5 s)."""
        event = await self.runtime.store.watch(TOPIC_OUTBOX)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), OUTBOX_LOOK_S)
            event.clear()
            self.runtime.sender.wake()
            await asyncio.sleep(0.05)  # a burst of commits is one reload

    async def _flush_sends(self) -> None:
        gateway, store = self.runtime.sender.gateway, self.runtime.store
        while True:
            await asyncio.sleep(SENDS_FLUSH_S)
            sent = gateway.take_sends()
            try:
                await store.record_sends(sent)
            except Exception as exc:  # harmless to lose; said once a flush
                log.debug("could not record %d sends: %s", len(sent), exc)

    # ----------------------------------------------------------------- updates
    async def _updates_gained(self) -> None:
        assert self.start_polling is not None
        await self.start_polling()

    async def _updates_lost(self) -> None:
        if self.updater is not None and self.updater.running:
            await self.updater.stop()
