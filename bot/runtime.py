"""The running bot's long-lived parts, created once at start-up and shared by handlers and jobs."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Bot

from bot import heap
from bot.config import TELEGRAPH_OFF, Settings
from bot.delivery.sender import DeliverySettings, Sender
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.feeds.parse_pool import ParsePool
from bot.pipeline.digest import DigestMaker
from bot.pipeline.poller import Poller, Resumed
from bot.service import SubscriptionService
from bot.storage import open_storage
from bot.storage.base import Storage
from bot.telegraph import PagePublisher, TelegraphClient


def fetch_settings(settings: Settings) -> FetchSettings:
    return FetchSettings(
        max_bytes=settings.max_feed_bytes,
        total_timeout=settings.fetch_timeout,
        allow_private=settings.allow_private,
        max_connections=max(settings.max_concurrent_checks, 1),
        proxy=settings.feed_proxy,
    )


def page_publisher(settings: Settings, store: Storage) -> PagePublisher | None:
    """Instant View pages on the Telegraph at FEEDBOT_TELEGRAPH_URL; None when it is off."""
    if settings.telegraph_url.lower() in TELEGRAPH_OFF:
        return None
    return PagePublisher(TelegraphClient(settings.telegraph_url), store)


@dataclass
class Runtime:
    settings: Settings
    store: Storage
    fetcher: Fetcher
    sender: Sender
    poller: Poller
    service: SubscriptionService
    parse_pool: ParsePool
    digests: DigestMaker
    publisher: PagePublisher | None = None

    @classmethod
    async def start(
        cls, settings: Settings, bot: Bot, delivery: DeliverySettings | None = None
    ) -> Runtime:
        parse_pool = ParsePool()
        await parse_pool.start()
        try:
            store = await open_storage(settings.db_path, database_url=settings.database_url)
        except BaseException:
            await parse_pool.close()
            raise
        fetcher = Fetcher(fetch_settings(settings))
        sender = Sender(bot, store, delivery or DeliverySettings())
        publisher = page_publisher(settings, store)
        poller = Poller(
            store,
            fetcher,
            settings,
            on_queued=sender.wake,
            parse_pool=parse_pool,
            publisher=publisher,
        )
        service = SubscriptionService(
            store, fetcher, settings, parse_pool=parse_pool, publisher=publisher
        )
        digests = DigestMaker(store, publisher, on_queued=sender.wake)
        heap.settle()  # the store is read: what is alive now lives as long as the bot
        return cls(
            settings, store, fetcher, sender, poller, service, parse_pool, digests, publisher
        )

    def messages_sent(self) -> int:
        """Every message Telegram accepted since start: posts, replies and notices."""
        return self.sender.gateway.stats.sent

    async def stop(self) -> None:
        await self.poller.close()
        await self.parse_pool.close()
        await self.sender.stop()
        await self.fetcher.aclose()
        if self.publisher is not None:
            await self.publisher.aclose()
        await self.store.close()
        heap.unsettle()

    async def resume(self, chat_id: int, feed_url: str, *, catch_up: bool) -> Resumed | None:
        """/resume for one subscription (Poller.resume); None when its feed could not be read."""
        return await self.poller.resume(chat_id, feed_url, catch_up=catch_up)
