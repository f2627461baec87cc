"""Shared fixtures: the fake Bot API, the loopback feed server, and the real bot running on them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.app import running
from bot.config import Settings, load
from bot.delivery.sender import DeliverySettings
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.fixtures import fake_api, feed_server, make_fake_api, telegraph  # noqa: F401

# Tests talk to loopback only: Instant View pages are off unless a test names the fake Telegraph
# (bot processes started by tests inherit this)
os.environ.setdefault("FEEDBOT_TELEGRAPH_URL", "off")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def bot_settings(tmp_path: Path, fake_api: FakeBotApi) -> Settings:  # noqa: F811
    """Settings for the real bot talking to the fake API, with loopback feeds allowed."""
    base = load(environ={})
    return replace(
        base,
        token=fake_api.token,
        api_url=fake_api.url,
        db_path=str(tmp_path / "feedbot.json"),
        poll_interval=1,
        allow_private=True,
        telegraph_url="off",  # tests/test_instant_view.py names the fake Telegraph
    )


class Conversation:
    """A user talking to the running bot through the fake Bot API."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    async def say(
        self, chat_id: int, text: str, *, replies: int = 1, timeout: float = 10.0, **kw: Any
    ) -> list[SentMessage]:
        before = len(self.api.delivered(chat_id))
        self.api.send_text(chat_id, text, **kw)
        got = await self.api.await_delivered(before + replies, chat_id, timeout=timeout)
        return got[before:]

    async def settled(
        self, chat_id: int, message_id: int, marker: str, timeout: float = 10.0
    ) -> str:
        """The text of a message the bot keeps editing, once it contains `marker`."""

        def text() -> str:
            return str((self.api.message(chat_id, message_id) or {}).get("text", ""))

        await self.api.await_for(lambda: marker in text(), timeout=timeout)
        return text()

    async def silence(self, chat_id: int, seconds: float) -> list[SentMessage]:
        """What arrives in `seconds` (used to show that nothing does)."""
        import asyncio

        before = len(self.api.delivered(chat_id))
        await asyncio.sleep(seconds)
        return self.api.delivered(chat_id)[before:]


@pytest.fixture
def start_bot(
    fake_api: FakeBotApi,  # noqa: F811
    bot_settings: Settings,
) -> Callable[..., contextlib.AbstractAsyncContextManager[Conversation]]:
    @contextlib.asynccontextmanager
    async def start(
        delivery: DeliverySettings | None = None, **overrides: Any
    ) -> AsyncIterator[Conversation]:
        if delivery is None and not fake_api.enforce_limits:
            # the fake does not enforce Telegram's limits: pace 4x faster so conversations
            # with many replies take seconds (tests of pacing use an enforcing fake)
            delivery = DeliverySettings(time_scale=4.0)
        async with running(replace(bot_settings, **overrides), delivery=delivery):
            yield Conversation(fake_api)

    return start
