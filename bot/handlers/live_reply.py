"""One answer to a command that takes a while: shown once the work outlasts a moment, edited as
it goes (at most once a second, always with the latest state), and finally edited into the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError

from bot.render.cut import split_reply

log = logging.getLogger(__name__)

MAX_TEXT = 4000  # a reply is split below Telegram's 4096 limit
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a reply so each part stays under Telegram's limit (see render.cut.split_reply:
    by visible UTF-16 length, over-long lines included)."""
    return split_reply(text, limit)


async def answer(message: Message, text: str, **kwargs: Any) -> Message | None:
    """Reply to `message`: HTML, no link preview, split below Telegram's limit. In groups the
    answer quotes the command it answers (it may have been deleted meanwhile: then it does not)."""
    quote = message.chat.type != ChatType.PRIVATE
    markup = kwargs.pop("reply_markup", None)
    parts = split_text(text)
    sent: Message | None = None
    for n, part in enumerate(parts):
        sent = await message.reply_text(
            part,
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            do_quote=quote and n == 0,
            allow_sending_without_reply=True if quote and n == 0 else None,
            reply_markup=markup if n == len(parts) - 1 else None,
            **kwargs,
        )
    return sent


class LiveReply:
    """The one message that answers a long command: `update()` records the latest state, a
    ticker shows it (first after `delay` seconds, then at most every `every`), `finish()` puts
    the result in its place (or sends it as a plain reply when nothing was shown yet)."""

    def __init__(self, command: Message, *, delay: float, every: float = 1.0) -> None:
        self.command = command
        self.every = every
        self.latest = ""
        self.shown = ""
        self.message: Message | None = None
        self.closed = False
        self.lock = asyncio.Lock()
        self.ticker = asyncio.create_task(self._tick(delay))

    def update(self, text: str) -> None:
        self.latest = text

    async def _tick(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            async with self.lock:
                if self.closed:
                    return
                if self.latest and self.latest != self.shown:
                    await self._show(self.latest)
            await asyncio.sleep(self.every)

    async def _show(self, text: str) -> None:
        text = split_text(text)[0] if text.strip() else text
        try:
            if self.message is None:
                self.message = await answer(self.command, text)
            else:
                await self.message.edit_text(
                    text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
                )
            self.shown = text
        except TelegramError as exc:  # progress is best effort; the result is not
            log.debug("progress message failed: %s", exc)

    async def close(self) -> None:
        """Stop showing progress (nothing more is sent); safe to call more than once."""
        async with self.lock:
            self.closed = True
        self.ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.ticker

    async def finish(self, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
        await self.close()
        parts = split_text(text)
        if self.message is None or not parts:
            await answer(self.command, text, reply_markup=markup)
            return
        first, rest = parts[0], "\n".join(parts[1:])
        try:
            await self.message.edit_text(
                first,
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                reply_markup=markup if not rest else None,
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():  # gone: the result comes as a new reply
                await answer(self.command, text, reply_markup=markup)
                return
        if rest:
            await answer(self.command, rest, reply_markup=markup)
