"""End to end: Sender -> PTB -> HTTP on loopback -> FakeBotApi, with a real Store on disk."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import telegram

from bot.delivery import DeliverySettings, Sender, on_bot_membership, on_chat_migrated
from bot.models import ApiCall, Chat, Delivery, RenderedMessage
from bot.storage import Store
from tests.fakes.botapi import TOKEN, FakeBotApi

_ids = itertools.count(1)

#: every limit 10x faster, so the scenarios take seconds; the fake runs on a 10x clock
SCALE = 10.0
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
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi(enforce_limits=True, clock=scaled_clock(SCALE)) as fake:
        yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    st = await Store.open(tmp_path / "db.json")
    yield st
    await st.close()


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=f"{api.url}/bot") as b:
        yield b


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
