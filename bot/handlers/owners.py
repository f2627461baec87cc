"""What the bot keeps for its owners: alerts about errors that need a human, and the count of
messages sent today (for /stats).

Alerts go straight to each owner's private chat (not through the outbox: the outbox or the store
may be what is broken), at most one per kind per hour, so a crash loop cannot flood anyone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telegram import Bot, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.delivery.gateway import NOTICE_CALL
from bot.errors import StorageWriteError
from bot.i18n import DEFAULT_LANG, t

log = logging.getLogger(__name__)

ALERT_EVERY = 3600.0
MAX_DETAIL = 600


class OwnerAlerts:
    """Messages to the owners, rate-limited per kind (e.g. `check:KeyError`)."""

    def __init__(
        self,
        bot: Bot,
        owners: tuple[int, ...],
        *,
        every: float = ALERT_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot, self.owners, self.every, self.clock = bot, owners, every, clock
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        #: an owner's chat language (their stored private chat's); set once the store is open
        self.lang_of: Callable[[int], Awaitable[str]] | None = None

    async def _lang(self, owner: int) -> str:
        if self.lang_of is None:
            return DEFAULT_LANG
        try:
            return await self.lang_of(owner)
        except Exception:  # the store may be what is broken: an alert must still go out
            log.exception("could not read owner %s's language", owner)
            return DEFAULT_LANG

    def _due(self, kind: str) -> bool:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            return False
        self._last[kind] = now
        return True

    async def alert(self, kind: str, detail: str) -> bool:
        """Tell every owner; False when there are none or this kind was reported lately."""
        if not self.owners or not self._due(kind):
            return False
        for owner in self.owners:
            text = t(
                "owner_alert",
                await self._lang(owner),
                kind=html.escape(kind),
                detail=html.escape(detail[:MAX_DETAIL]),
            )
            try:
                await self.bot.send_message(
                    owner,
                    text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                    rate_limit_args=NOTICE_CALL,  # type: ignore[call-arg]
                )
            except TelegramError as exc:
                log.warning("could not alert owner %s: %s", owner, exc)
        return True

    def alert_soon(self, kind: str, detail: str) -> None:
        """From synchronous code (the poller's crash path): send in the background."""
        task = asyncio.get_running_loop().create_task(self.alert(kind, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def check_crashed(self, url: str, exc: Exception) -> None:
        name = type(exc).__name__
        self.alert_soon(alert_kind("check", exc), f"{url}\n{name}: {exc}")

    async def handler_failed(self, update: object, error: BaseException | None) -> None:
        name = type(error).__name__ if error is not None else "unknown"
        where = ""
        if isinstance(update, Update) and update.effective_message is not None:
            words = (update.effective_message.text or "").split()
            where = words[0] if words and words[0].startswith("/") else ""
        await self.alert(alert_kind("handler", error), f"{where} {name}: {error}".strip())


def alert_kind(where: str, error: BaseException | None) -> str:
    """`where:ErrorName`; a database that cannot be written is one kind wherever it shows, so
    the owners hear of it once (an hour), not once per check and once per command."""
    if isinstance(error, StorageWriteError):
        return "storage"
    return f"{where}:{type(error).__name__ if error is not None else 'unknown'}"


@dataclass
class SentToday:
    """Messages sent since 00:00 UTC (or since start): the sender's running total minus the
    total at the last midnight."""

    day: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    base: int = 0

    def roll(self, total: int, today: dt.date) -> None:
        if today != self.day:
            self.day, self.base = today, total

    def count(self, total: int) -> int:
        return max(total - self.base, 0)
