"""Digests due now become messages: the I/O around `bot.render.digest`.

A check collects a digest subscriber's new posts (`outbox.digest_items`, in the same write as the
chat's seen-set). On each tick `DigestMaker.run_due` reads the items due, per chat and topic,
renders them in the chat's language and zone (a Telegraph page of the whole digest when it does
not fit one message) and queues the messages while removing the items, in one write
(`Storage.commit_digest`): a crash before it leaves the items for the next tick, and two
checkers making the same digest conflict, so one queues it.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from itertools import groupby

from bot.feeds.urls import is_private_url
from bot.models import Chat, Delivery, DigestItem
from bot.render.digest import digest_messages, digest_page
from bot.storage.base import Storage, StorageConflict
from bot.telegraph import PagePublisher

log = logging.getLogger(__name__)

#: chats whose digests one run makes (the rest wait for the next tick)
CHATS_PER_RUN = 200


class DigestMaker:
    def __init__(
        self,
        store: Storage,
        publisher: PagePublisher | None = None,
        *,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.on_queued = on_queued
        self.clock: Callable[[], float] = time.time
        #: digests queued since start (tools and logs)
        self.made = 0

    async def run_due(self) -> int:
        """Queue every digest due now (up to CHATS_PER_RUN chats); returns how many messages."""
        now = self.clock()
        items = await self.store.due_digests(now, CHATS_PER_RUN)
        queued = 0
        for (chat_id, thread_id), group in groupby(items, key=lambda i: (i.chat_id, i.thread_id)):
            try:
                queued += await self._make(chat_id, thread_id, list(group), now)
            except StorageConflict:
                log.debug("digest of chat %s was made elsewhere", chat_id)
        if queued:
            self.on_queued()
        return queued

    async def _make(
        self, chat_id: int, thread_id: int | None, items: list[DigestItem], now: float
    ) -> int:
        chat = await self.store.get_chat(chat_id) or Chat(id=chat_id)
        messages = digest_messages(items, chat.lang, chat.timezone, now)
        page = await self._page(chat, items, now) if len(messages) > 1 else ""
        if page:  # the whole list there: one message with what fits and the page's link
            messages = digest_messages(items, chat.lang, chat.timezone, now, page)
        key = f"digest:{now}"
        deliveries = [
            Delivery(
                id=uuid.uuid4().hex, chat_id=chat_id, feed_url=items[0].feed_url,
                entry_key=key, message=message, created=now, thread_id=thread_id,
            )
            for message in messages
        ]
        await self.store.commit_digest([i.id for i in items], deliveries)
        self.made += 1
        log.info("digest for chat %s: %d posts in %d message(s)%s", chat_id, len(items),
                 len(deliveries), " with an Instant View page" if page else "")
        return len(deliveries)

    async def _page(self, chat: Chat, items: list[DigestItem], now: float) -> str:
        """The whole digest's Telegraph page; "" when there is no Telegraph or it failed (then
        the digest goes out in several messages)."""
        if self.publisher is None or not self.publisher.available():
            return ""
        if any(is_private_url(i.feed_url) for i in items):  # a page is public: none then
            return ""
        ids = hashlib.blake2b("\0".join(i.id for i in items).encode(), digest_size=8)
        draft = digest_page(items, chat.lang, chat.timezone, now)
        return await self.publisher.publish(f"digest:{ids.hexdigest()}", draft) or ""
