"""Subscriptions as a service: what the chat commands ask for, with no Telegram in sight.

Handlers parse arguments and format replies; everything they mean is done here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .config import Settings
from .diff import entry_prints, remember, seen_cap
from .discovery import find_feed_links, looks_like_html
from .errors import FeedbotError, ParseError
from .fetcher import Fetcher
from .identity import normalize_link
from .models import Chat, Feed, ParsedFeed, Subscription
from .parser import parse_feed
from .storage import Database, Store

CHAT_SEEN_CAP = 2000


@dataclass
class Probe:
    """A URL fetched and parsed (or not) on behalf of /sub."""

    url: str
    feed: ParsedFeed | None = None
    fetch_etag: str | None = None
    fetch_last_modified: str | None = None
    error: str = ""
    discovered_from: str = ""  # the web page the feed was found on
    choices: list[tuple[str, str]] = field(default_factory=list)  # (url, title) on a page


@dataclass
class SubscribeOutcome:
    url: str
    status: str  # "added" | "exists" | "failed" | "choose" | "limit"
    title: str = ""
    reason: str = ""
    page: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ListedSubscription:
    number: int
    subscription: Subscription
    feed: Feed


def clean_url(raw: str) -> str:
    url = raw.strip().strip("<>")
    if "://" not in url:
        url = "https://" + url
    return url


class SubscriptionService:
    def __init__(self, store: Store, fetcher: Fetcher, settings: Settings) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings

    # ------------------------------------------------------------------ probing
    async def probe(self, url: str, *, discover: bool = True) -> Probe:
        """Fetch and parse `url`; when it is a web page, look for its feeds."""
        probe = Probe(url=url)
        try:
            result = await self.fetcher.fetch(url)
        except FeedbotError as exc:
            probe.error = str(exc)
            return probe
        probe.url = result.permanent_url or url
        try:
            probe.feed = await parse_feed(result.body, result.url, result.content_type)
        except ParseError as exc:
            if discover and looks_like_html(result.content_type, result.body):
                return await self._discover(url, result.body, result.url)
            probe.error = str(exc)
            return probe
        probe.fetch_etag, probe.fetch_last_modified = result.etag, result.last_modified
        return probe

    async def _discover(self, page: str, body: bytes, base: str) -> Probe:
        links = find_feed_links(body, base)
        if not links:
            return Probe(url=page, error="not_feed_page")
        if len(links) > 1:
            return Probe(url=page, choices=[(link.url, link.title) for link in links])
        found = await self.probe(links[0].url, discover=False)
        found.discovered_from = page
        return found

    # ----------------------------------------------------------------- commands
    async def subscribe(
        self, chat: Chat, raw_url: str, *, thread_id: int | None = None
    ) -> SubscribeOutcome:
        url = clean_url(raw_url)
        if urlsplit(url).scheme not in ("http", "https"):
            return SubscribeOutcome(url=raw_url, status="failed", reason="only http(s) feeds")
        existing = await self.store.subscriptions_for_chat(chat.id)
        if len(existing) >= self.settings.max_subscriptions:
            return SubscribeOutcome(
                url=url, status="limit", reason=str(self.settings.max_subscriptions)
            )
        probe = await self.probe(url)
        if probe.choices:
            return SubscribeOutcome(url=url, status="choose", choices=probe.choices)
        if probe.feed is None:
            return SubscribeOutcome(url=url, status="failed", reason=probe.error)
        parsed = probe.feed
        added = await self.store.transaction(
            lambda db: _store_subscription(db, chat, probe, parsed, thread_id, self.settings)
        )
        return SubscribeOutcome(
            url=probe.url,
            status="added" if added else "exists",
            title=parsed.title,
            page=probe.discovered_from,
        )

    async def list(self, chat_id: int) -> list[ListedSubscription]:
        def read(db: Database) -> list[ListedSubscription]:
            rows = []
            for n, sub in enumerate(db.subscriptions_for_chat(chat_id), start=1):
                rows.append(
                    ListedSubscription(n, sub, db.get_feed(sub.feed_url) or Feed(sub.feed_url))
                )
            return rows

        return await self.store.read(read)

    async def resolve(self, chat_id: int, ref: str) -> ListedSubscription | None:
        """A subscription by its /list number or URL."""
        rows = await self.list(chat_id)
        ref = ref.strip()
        if ref.isdigit():
            n = int(ref)
            return rows[n - 1] if 1 <= n <= len(rows) else None
        wanted = normalize_link(clean_url(ref))
        for row in rows:
            if normalize_link(row.subscription.feed_url) == wanted:
                return row
        return None

    async def unsubscribe(self, chat_id: int, ref: str) -> ListedSubscription | None:
        row = await self.resolve(chat_id, ref)
        if row is not None:
            await self.store.remove_subscription(chat_id, row.subscription.feed_url)
        return row

    async def touch_chat(self, chat_id: int, chat_type: str, title: str) -> Chat:
        """Record the chat; a paused chat (bot was blocked or kicked) is resumed."""

        def run(db: Database) -> Chat:
            chat = db.get_chat(chat_id) or Chat(id=chat_id, type=chat_type, title=title)
            chat.type, chat.title = chat_type, title or chat.title
            chat.paused, chat.failures = False, 0
            db.save_chat(chat)
            return chat

        return await self.store.transaction(run)


def _store_subscription(
    db: Database,
    chat: Chat,
    probe: Probe,
    parsed: ParsedFeed,
    thread_id: int | None,
    settings: Settings,
) -> bool:
    """Create the feed (everything in it counts as seen) and the subscription, in one change set.
    Returns False when the chat already had it."""
    now = time.time()
    if db.get_subscription(chat.id, probe.url) is not None:
        return False
    cap = seen_cap(len(parsed.entries))
    feed = db.get_feed(probe.url)
    if feed is None:
        feed = Feed(url=probe.url, title=parsed.title, link=parsed.link)
        feed.etag, feed.last_modified = probe.fetch_etag, probe.fetch_last_modified
        feed.last_check = feed.last_success = now
        feed.next_check = now + settings.poll_interval
    feed.seen = remember(feed.seen, parsed.entries, cap)
    db.save_feed(feed)
    stored_chat = db.get_chat(chat.id) or chat
    prints = [p for e in parsed.entries for p in entry_prints(e)]
    stored_chat.seen = list(dict.fromkeys([*stored_chat.seen, *prints]))[-CHAT_SEEN_CAP:]
    db.save_chat(stored_chat)
    db.save_subscription(
        Subscription(chat_id=chat.id, feed_url=probe.url, created=now, thread_id=thread_id)
    )
    return True
