"""Subscriptions as a service: what the chat commands ask for, with no Telegram in sight.

Handlers parse arguments and format replies; everything they mean is done here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .config import Settings
from .diff import entry_prints, remember, seen_cap
from .discovery import find_feed_links, looks_like_html
from .errors import FeedbotError, ParseError, Reason
from .fetcher import Fetcher
from .i18n import DEFAULT_LANG
from .identity import normalize_link
from .models import Chat, Feed, ParsedFeed, Subscription, SubscriptionOptions
from .parser import parse_feed
from .schedule import effective_interval, rescheduled
from .storage import Database, Store

CHAT_SEEN_CAP = 2000


@dataclass
class Probe:
    """A URL fetched and parsed (or not) on behalf of /sub."""

    url: str
    feed: ParsedFeed | None = None
    fetch_etag: str | None = None
    fetch_last_modified: str | None = None
    error: Reason | None = None
    discovered_from: str = ""  # the web page the feed was found on
    choices: list[tuple[str, str]] = field(default_factory=list)  # (url, title) on a page


@dataclass
class SubscribeOutcome:
    url: str
    status: str  # "added" | "exists" | "failed" | "choose" | "limit"
    title: str = ""
    reason: Reason | None = None  # why it failed ("failed", "limit")
    page: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ListedSubscription:
    number: int
    subscription: Subscription
    feed: Feed


def limit_reason(limit: int) -> Reason:
    return Reason("import_reason_limit", {"limit": limit})


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
            probe.error = exc.reason
            return probe
        probe.url = result.permanent_url or url
        try:
            probe.feed = await parse_feed(result.body, result.url, result.content_type)
        except ParseError as exc:
            if discover and looks_like_html(result.content_type, result.body):
                return await self._discover(url, result.body, result.url)
            probe.error = exc.reason
            return probe
        probe.fetch_etag, probe.fetch_last_modified = result.etag, result.last_modified
        return probe

    async def _discover(self, page: str, body: bytes, base: str) -> Probe:
        links = find_feed_links(body, base)
        if not links:
            return Probe(url=page, error=Reason("error_not_feed_page"))
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
            return SubscribeOutcome(url=raw_url, status="failed", reason=Reason("error_not_http"))
        existing = await self.store.subscriptions_for_chat(chat.id)
        if len(existing) >= self.settings.max_subscriptions:
            limit = limit_reason(self.settings.max_subscriptions)
            return SubscribeOutcome(url=url, status="limit", reason=limit)
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

    async def listing(self, chat_id: int) -> list[ListedSubscription]:
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
        rows = await self.listing(chat_id)
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

    async def touch_chat(
        self, chat_id: int, chat_type: str, title: str, *, lang: str | None = None
    ) -> Chat:
        """Record the chat; a paused chat (bot was blocked or kicked) is resumed. A chat seen
        for the first time starts in `lang` (the language of whoever brought the bot there)."""

        def run(db: Database) -> Chat:
            chat = db.get_chat(chat_id) or Chat(
                id=chat_id, type=chat_type, title=title, lang=lang or DEFAULT_LANG
            )
            chat.type, chat.title = chat_type, title or chat.title
            chat.paused, chat.failures = False, 0
            db.save_chat(chat)
            return chat

        return await self.store.transaction(run)

    # ------------------------------ options, filters, pause, status, stats (issue 6, part B)
    async def update_options(
        self, chat_id: int, feed_url: str, changes: dict[str, Any]
    ) -> Subscription | None:
        """Change a subscription's options (SubscriptionOptions field -> value). A changed
        interval (set, lengthened, shortened or reset) reschedules the feed's next check."""

        def run(db: Database) -> Subscription | None:
            sub = db.get_subscription(chat_id, feed_url)
            if sub is None:
                return None
            apply_options(sub.options, changes)
            db.save_subscription(sub)
            if "interval" in changes:
                self._reschedule(db, feed_url)
            return sub

        return await self.store.transaction(run)

    def _reschedule(self, db: Database, feed_url: str) -> None:
        """The feed's next check, from its subscribers' effective interval as it is now."""
        feed = db.get_feed(feed_url)
        if feed is None:
            return
        interval = effective_interval(
            db.subscriptions_for_feed(feed_url), self.settings.poll_interval
        )
        feed.next_check = rescheduled(feed, interval, time.time())
        db.save_feed(feed)

    async def update_defaults(self, chat_id: int, changes: dict[str, Any]) -> SubscriptionOptions:
        """Change the options new subscriptions of this chat start with; None = built-in."""

        def run(db: Database) -> SubscriptionOptions:
            chat = db.get_chat(chat_id) or Chat(id=chat_id)
            merged = {**chat.defaults, **changes}
            chat.defaults = {k: v for k, v in merged.items() if v is not None}
            db.save_chat(chat)
            return options_from_defaults(chat.defaults)

        return await self.store.transaction(run)

    async def chat_defaults(self, chat_id: int) -> SubscriptionOptions:
        chat = await self.store.get_chat(chat_id)
        return options_from_defaults(chat.defaults if chat else {})

    async def set_filter(self, chat_id: int, feed_url: str | None, spec: str) -> bool:
        """The filter of one subscription, or (feed_url=None) of the whole chat."""

        def run(db: Database) -> bool:
            if feed_url is None:
                chat = db.get_chat(chat_id) or Chat(id=chat_id)
                chat.filters = spec
                db.save_chat(chat)
                return True
            sub = db.get_subscription(chat_id, feed_url)
            if sub is None:
                return False
            sub.options.filters = spec
            db.save_subscription(sub)
            return True

        return await self.store.transaction(run)

    async def chat_filter(self, chat_id: int) -> str:
        chat = await self.store.get_chat(chat_id)
        return chat.filters if chat else ""

    async def pause(self, chat_id: int, feed_urls: Sequence[str]) -> tuple[str, ...]:
        """Pause these subscriptions (not checked, nothing sent); returns the ones newly paused."""

        def run(db: Database) -> tuple[str, ...]:
            now, changed = time.time(), []
            for url in feed_urls:
                sub = db.get_subscription(chat_id, url)
                if sub is not None and not sub.paused:
                    sub.paused, sub.paused_at = True, now
                    db.save_subscription(sub)
                    changed.append(url)
                    self._reschedule(db, url)  # the others may have relied on its interval
            return tuple(changed)

        return await self.store.transaction(run)

    async def status(self, chat_id: int) -> ChatStatus:
        def read(db: Database) -> ChatStatus:
            rows = [
                ListedSubscription(n, sub, db.get_feed(sub.feed_url) or Feed(sub.feed_url))
                for n, sub in enumerate(db.subscriptions_for_chat(chat_id), start=1)
            ]
            pending = sum(1 for d in db.pending() if d.chat_id == chat_id)
            return ChatStatus(rows, pending)

        return await self.store.read(read)

    async def operator_stats(self) -> OperatorStats:
        def read(db: Database) -> OperatorStats:
            feeds, subs = db.all_feeds(), db.all_subscriptions()
            return OperatorStats(
                chats=len(db.all_chats()),
                feeds=len(feeds),
                subscriptions=len(subs),
                paused=sum(1 for s in subs if s.paused),
                outbox=db.outbox_depth(),
                failing=sum(1 for f in feeds if f.errors and not f.retired),
                retired=sum(1 for f in feeds if f.retired),
            )

        return await self.store.read(read)

    # ------------------------------------------------ languages, OPML import (issue 6)
    async def set_language(self, chat_id: int, chat_type: str, lang: str) -> Chat:
        def run(db: Database) -> Chat:
            chat = db.get_chat(chat_id) or Chat(id=chat_id, type=chat_type)
            chat.lang = lang
            db.save_chat(chat)
            return chat

        return await self.store.transaction(run)

    async def import_feeds(
        self,
        chat: Chat,
        feeds: Sequence[tuple[str, str]],
        *,
        thread_id: int | None = None,
        concurrency: int = 8,
        on_checked: Callable[[], None] | None = None,
    ) -> list[ImportItem]:
        """Subscribe `chat` to every (url, title) of an OPML file: at most `concurrency` fetches at
        a time, stored in change sets of IMPORT_BATCH. A title that differs from the feed's own
        is kept as the subscription's custom title."""
        run = _Import(self, chat, thread_id, asyncio.Semaphore(max(concurrency, 1)), on_checked)
        await run.prepare()
        items = await asyncio.gather(*(run.one(url, title) for url, title in feeds))
        await run.commit()
        return list(items)


IMPORT_BATCH = 25


@dataclass
class ImportItem:
    url: str
    status: str  # "added" | "exists" | "failed" | "limit"
    title: str = ""
    reason: Reason | None = None


class _Import:
    """One OPML import in progress: the chat's limit, concurrent probes, batched commits."""

    def __init__(
        self,
        service: SubscriptionService,
        chat: Chat,
        thread_id: int | None,
        gate: asyncio.Semaphore,
        on_checked: Callable[[], None] | None,
    ) -> None:
        self.service, self.chat, self.thread_id, self.gate = service, chat, thread_id, gate
        self.on_checked = on_checked
        self.known: set[str] = set()
        self.room = 0
        self.batch: list[tuple[ImportItem, Probe, ParsedFeed]] = []

    async def prepare(self) -> None:
        subs = await self.service.store.subscriptions_for_chat(self.chat.id)
        self.known = {normalize_link(s.feed_url) for s in subs}
        self.room = self.service.settings.max_subscriptions - len(subs)

    async def one(self, raw_url: str, title: str) -> ImportItem:
        try:
            return await self._one(raw_url, title)
        finally:
            if self.on_checked is not None:
                self.on_checked()

    async def _one(self, raw_url: str, title: str) -> ImportItem:
        url = clean_url(raw_url)
        if urlsplit(url).scheme not in ("http", "https"):
            return ImportItem(raw_url, "failed", title, Reason("error_not_http"))
        if normalize_link(url) in self.known:
            return ImportItem(url, "exists", title)
        self.known.add(normalize_link(url))
        if self.room <= 0:  # full already: no need to fetch
            limit = limit_reason(self.service.settings.max_subscriptions)
            return ImportItem(url, "limit", title, limit)
        async with self.gate:
            probe = await self.service.probe(url)
        if probe.feed is None:
            reason = Reason("import_reason_several_feeds") if probe.choices else probe.error
            return ImportItem(url, "failed", title, reason)
        # a slot is taken only by a feed that answered: dead outlines never crowd out good ones
        if self.room <= 0:
            limit = limit_reason(self.service.settings.max_subscriptions)
            return ImportItem(url, "limit", title, limit)
        self.room -= 1
        item = ImportItem(probe.url, "added", title)
        self.batch.append((item, probe, probe.feed))
        if len(self.batch) >= IMPORT_BATCH:
            await self.commit()
        return item

    async def commit(self) -> None:
        """Store the feeds checked so far in one change set; a feed the chat got meanwhile (a
        concurrent /sub) turns its item into "exists"."""
        taken, self.batch = self.batch, []
        if not taken:
            return
        chat, thread_id, settings = self.chat, self.thread_id, self.service.settings

        def run(db: Database) -> list[bool]:
            return [
                _store_imported(db, chat, probe, parsed, thread_id, settings, item.title)
                for item, probe, parsed in taken
            ]

        results = await self.service.store.transaction(run)
        for (item, _, parsed), added in zip(taken, results, strict=True):
            item.status = "added" if added else "exists"
            item.title = item.title or parsed.title


def _store_imported(
    db: Database,
    chat: Chat,
    probe: Probe,
    parsed: ParsedFeed,
    thread_id: int | None,
    settings: Settings,
    title: str,
) -> bool:
    added = _store_subscription(db, chat, probe, parsed, thread_id, settings)
    sub = db.get_subscription(chat.id, probe.url)
    if added and sub is not None and title.strip() and title.strip() != parsed.title:
        sub.options.custom_title = title.strip()
        db.save_subscription(sub)
    return added


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
    feed.retired = False  # it answered just now: a feed once gone (410) is back
    feed.seen = remember(feed.seen, parsed.entries, cap)
    db.save_feed(feed)
    stored_chat = db.get_chat(chat.id) or chat
    prints = [p for e in parsed.entries for p in entry_prints(e)]
    stored_chat.seen = list(dict.fromkeys([*stored_chat.seen, *prints]))[-CHAT_SEEN_CAP:]
    db.save_chat(stored_chat)
    db.save_subscription(
        Subscription(
            chat_id=chat.id,
            feed_url=probe.url,
            created=now,
            thread_id=thread_id,
            options=options_from_defaults(stored_chat.defaults),
        )
    )
    return True


# ------------------------------------------ options, filters, pause, status (issue 6, part B)
OPTION_FIELDS = frozenset(f.name for f in fields(SubscriptionOptions))


@dataclass
class ChatStatus:
    rows: list[ListedSubscription]
    pending: int  # deliveries waiting in the outbox for this chat


@dataclass
class OperatorStats:
    chats: int
    feeds: int
    subscriptions: int
    paused: int
    outbox: int
    failing: int
    retired: int


def options_from_defaults(defaults: dict[str, Any]) -> SubscriptionOptions:
    """A chat's stored defaults (SubscriptionOptions field -> value) as options; unknown keys,
    left by older versions, are ignored."""
    return SubscriptionOptions(**{k: v for k, v in defaults.items() if k in OPTION_FIELDS})


def apply_options(options: SubscriptionOptions, changes: dict[str, Any]) -> None:
    unknown = set(changes) - OPTION_FIELDS
    if unknown:
        raise ValueError(f"unknown subscription option(s): {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(options, name, value)

