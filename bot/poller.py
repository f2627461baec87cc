"""The scheduler's tick: pick due feeds, check each once, queue what is new.

One check: fetch -> parse -> diff -> render -> commit. The commit stores the feed's new seen-set
and every resulting delivery in a single atomic write, so a crash can neither lose a post (seen
but never queued) nor queue it twice.
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from .config import Settings
from .diff import entry_prints, new_entries, oldest_first, remember, seen_cap
from .errors import FeedbotError, FetchError
from .fetcher import Fetcher
from .filters import matches
from .i18n import t
from .models import (
    ApiCall,
    Chat,
    Delivery,
    Entry,
    Feed,
    FetchResult,
    ParsedFeed,
    RenderedMessage,
    Subscription,
)
from .parser import parse_feed
from .render import RenderOptions, render_entry
from .service import CHAT_SEEN_CAP
from .storage import Database, Store

log = logging.getLogger(__name__)

DAY = 86400.0
NOTIFY_FAILING_AFTER = DAY
PAUSE_FAILING_AFTER = 7 * DAY


@dataclass
class CycleStats:
    checked: int = 0
    not_modified: int = 0
    failed: int = 0
    new_entries: int = 0
    queued: int = 0

    def take(self) -> CycleStats:
        """Return the counts so far and start again from zero."""
        snapshot = CycleStats(**{f.name: getattr(self, f.name) for f in fields(self)})
        for f in fields(self):
            setattr(self, f.name, 0)
        return snapshot

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass
class CheckPlan:
    """What one successful check changes, applied inside one storage transaction."""

    url: str
    result: FetchResult
    parsed: ParsedFeed
    fresh: list[Entry]
    #: rendered message per (subscription, entry key)
    messages: dict[tuple[int, str], RenderedMessage] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    next_check: float = 0.0


def subscription_render_options(sub: Subscription) -> RenderOptions:
    o = sub.options
    return RenderOptions(
        style=o.style, pictures=o.pictures, link_preview=o.link_preview, custom_title=o.custom_title
    )


def notice(text_html: str) -> RenderedMessage:
    """A message from the bot itself (not a post): HTML text, no preview."""
    return RenderedMessage(
        attempts=(
            ApiCall(
                "sendMessage",
                {
                    "text": text_html,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": True},
                },
            ),
        )
    )


class Poller:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        settings: Settings,
        *,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        self.on_queued = on_queued
        self.stats = CycleStats()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent_checks)

    # ------------------------------------------------------------- scheduling
    async def tick(self) -> int:
        """Start a check of every due feed not already being checked; return how many."""
        due = await self.store.due_feeds(time.time())
        started = 0
        for feed in due:
            if feed.url in self._in_flight:
                continue
            self._in_flight.add(feed.url)
            task = asyncio.create_task(self._guarded(feed.url), name=f"check {feed.url}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def run_once(self) -> CycleStats:
        """Check every due feed and wait for all of them (tools and tests)."""
        await self.tick()
        await self.wait_idle()
        return self.stats.take()

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _guarded(self, url: str) -> None:
        try:
            async with self._slots:
                await self.check(url)
        except Exception:
            log.exception("check of %s crashed; it will be retried", url)
            await self._reschedule_after_crash(url)
        finally:
            self._in_flight.discard(url)

    # ------------------------------------------------------------------ check
    async def check(self, url: str) -> None:
        feed = await self.store.get_feed(url)
        if feed is None:
            return
        self.stats.checked += 1
        try:
            result = await self.fetcher.fetch(url, etag=feed.etag, last_modified=feed.last_modified)
            if result.not_modified:
                self.stats.not_modified += 1
                await self._record_not_modified(feed, result)
                return
            parsed = await parse_feed(result.body, result.url, result.content_type)
        except FeedbotError as exc:
            self.stats.failed += 1
            await self._record_failure(feed, exc)
            return
        plan = await self._plan(feed, result, parsed)
        queued = await self.store.transaction(lambda db: self._commit(db, plan))
        self.stats.new_entries += len(plan.fresh)
        self.stats.queued += queued
        if queued:
            self.on_queued()

    def _interval(self, subs: list[Subscription]) -> float:
        chosen = [s.options.interval for s in subs if s.options.interval]
        base = min(chosen) if chosen else self.settings.poll_interval
        return float(max(base, 1))

    def _next_check(
        self, now: float, subs: list[Subscription], ttl_min: int | None, max_age: int | None
    ) -> float:
        interval = self._interval(subs)
        floor = min(max(ttl_min or 0, 0) * 60, max(max_age or 0, 0), DAY)
        wait = min(max(interval, floor), DAY)
        return now + wait + random.uniform(0, min(wait * 0.1, 60.0))

    async def _plan(self, feed: Feed, result: FetchResult, parsed: ParsedFeed) -> CheckPlan:
        subs = [s for s in await self.store.subscriptions_for_feed(feed.url) if not s.paused]
        fresh = new_entries(parsed.entries, feed.seen)
        plan = CheckPlan(
            url=feed.url, result=result, parsed=parsed, fresh=fresh, subscriptions=subs
        )
        plan.next_check = self._next_check(time.time(), subs, parsed.ttl_minutes, result.max_age)
        if fresh and subs:
            plan.messages = await asyncio.to_thread(self._render_all, feed, parsed, fresh, subs)
        return plan

    def _render_all(
        self, feed: Feed, parsed: ParsedFeed, fresh: list[Entry], subs: list[Subscription]
    ) -> dict[tuple[int, str], RenderedMessage]:
        title = parsed.title or feed.title or feed.url
        cache: dict[tuple[RenderOptions, str], RenderedMessage] = {}
        out: dict[tuple[int, str], RenderedMessage] = {}
        for sub in subs:
            options = subscription_render_options(sub)
            for entry in fresh[-self._window() :]:
                key = (options, entry.key)
                if key not in cache:
                    cache[key] = render_entry(entry, title, options)
                out[(sub.chat_id, entry.key)] = cache[key]
        return out

    def _window(self) -> int:
        """Renders needed per subscription: the backlog limit, plus slack for chat-level dedup."""
        return max(self.settings.backlog_limit, 1) * 2

    # ---------------------------------------------------------------- commits
    def _commit(self, db: Database, plan: CheckPlan) -> int:
        feed = db.get_feed(plan.url)
        if feed is None:  # unsubscribed meanwhile
            return 0
        now = time.time()
        recovered = feed.errors > 0 and feed.failure_notified
        feed.title = plan.parsed.title or feed.title
        feed.link = plan.parsed.link or feed.link
        feed.etag, feed.last_modified = plan.result.etag, plan.result.last_modified
        feed.seen = remember(
            feed.seen, oldest_first(plan.parsed.entries), seen_cap(len(plan.parsed.entries))
        )
        feed.last_check = feed.last_success = now
        feed.next_check = plan.next_check
        if plan.fresh:
            feed.last_new_entry = now
        queued = 0
        for sub in plan.subscriptions:
            chat = db.get_chat(sub.chat_id) or Chat(id=sub.chat_id)
            if chat.paused:
                continue
            deliveries = self._deliveries_for(chat, sub, feed, plan, now)
            if recovered:
                deliveries.insert(0, self._notice(sub, "feed_recovered", now, title=feed.title))
            db.enqueue(deliveries)
            db.save_chat(chat)
            queued += len(deliveries)
        feed.errors, feed.last_error, feed.last_error_kind = 0, "", ""
        feed.failing_since, feed.failure_notified = None, False
        db.save_feed(feed)
        if plan.result.permanent_url and plan.result.permanent_url != plan.url:
            log.info("feed moved permanently: %s -> %s", plan.url, plan.result.permanent_url)
            db.move_feed(plan.url, plan.result.permanent_url)
        return queued

    def _deliveries_for(
        self, chat: Chat, sub: Subscription, feed: Feed, plan: CheckPlan, now: float
    ) -> list[Delivery]:
        seen = set(chat.seen)
        wanted = [
            e
            for e in plan.fresh
            if not any(p in seen for p in entry_prints(e))
            and matches(e, sub.options.filters, chat.filters)
        ]
        for entry in plan.fresh:  # every fresh post counts as seen in the chat, sent or filtered
            chat.seen.extend(entry_prints(entry))
        chat.seen = list(dict.fromkeys(chat.seen))[-CHAT_SEEN_CAP:]
        limit = max(self.settings.backlog_limit, 1)
        skipped = max(len(wanted) - limit, 0)
        out: list[Delivery] = []
        if skipped:
            text = t(
                "backlog_skipped",
                chat.lang,
                count=skipped,
                link=html.escape(feed.link or feed.url, quote=True),
                title=html.escape(feed.title or feed.url),
            )
            out.append(self._delivery(sub, f"backlog:{now}", notice(text), now))
        for entry in wanted[skipped:]:
            message = plan.messages.get((sub.chat_id, entry.key))
            if message is None:
                continue
            out.append(self._delivery(sub, entry.key, message, now))
        return out

    def _delivery(
        self, sub: Subscription, key: str, message: RenderedMessage, now: float
    ) -> Delivery:
        return Delivery(
            id=uuid.uuid4().hex,
            chat_id=sub.chat_id,
            feed_url=sub.feed_url,
            entry_key=key,
            message=message,
            created=now,
            thread_id=sub.thread_id,
            silent=sub.options.silent,
        )

    def _notice(self, sub: Subscription, key: str, now: float, **values: object) -> Delivery:
        escaped = {k: html.escape(str(v)) for k, v in values.items()}
        return self._delivery(sub, f"notice:{key}:{now}", notice(t(key, **escaped)), now)

    async def _record_not_modified(self, feed: Feed, result: FetchResult) -> None:
        subs = await self.store.subscriptions_for_feed(feed.url)
        next_check = self._next_check(time.time(), subs, None, result.max_age)

        def update(db: Database) -> None:
            current = db.get_feed(feed.url)
            if current is None:
                return
            current.last_check = current.last_success = time.time()
            current.next_check = next_check
            current.errors, current.failing_since = 0, None
            db.save_feed(current)

        await self.store.transaction(update, durable=False)

    async def _record_failure(self, feed: Feed, exc: FeedbotError) -> None:
        log.info("check of %s failed: %s", feed.url, exc)
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        subs = await self.store.subscriptions_for_feed(feed.url)
        interval = self._interval(subs)
        queued = await self.store.transaction(
            lambda db: self._commit_failure(db, feed.url, exc, interval, retry_after)
        )
        if queued:
            self.on_queued()

    def _commit_failure(
        self,
        db: Database,
        url: str,
        exc: FeedbotError,
        interval: float,
        retry_after: float | None,
    ) -> int:
        feed = db.get_feed(url)
        if feed is None:
            return 0
        now = time.time()
        feed.errors += 1
        feed.last_check = now
        feed.last_error, feed.last_error_kind = str(exc), exc.kind
        feed.failing_since = feed.failing_since or now
        backoff = min(interval * 2 ** (feed.errors - 1), DAY)
        feed.next_check = now + max(backoff, retry_after or 0.0)
        key = self._failure_notice_key(feed, exc, now)
        queued = 0
        if key is not None:
            for sub in db.subscriptions_for_feed(url):
                message = self._notice(
                    sub,
                    key,
                    now,
                    title=feed.title or url,
                    url=url,
                    since=time.strftime("%d %b %Y %H:%M UTC", time.gmtime(feed.failing_since)),
                    reason=feed.last_error,
                )
                db.enqueue([message])
                queued += 1
                if key == "feed_paused":
                    sub.paused = True
                    db.save_subscription(sub)
        db.save_feed(feed)
        return queued

    def _failure_notice_key(self, feed: Feed, exc: FeedbotError, now: float) -> str | None:
        """Which message (if any) subscribers get about this failure; updates the feed's flags."""
        failing_for = now - (feed.failing_since or now)
        if exc.kind == "gone" and not feed.retired:
            feed.retired = True
            return "feed_gone"
        if failing_for >= PAUSE_FAILING_AFTER:
            return "feed_paused"
        if failing_for >= NOTIFY_FAILING_AFTER and feed.errors >= 3 and not feed.failure_notified:
            feed.failure_notified = True
            return "feed_failing"
        return None

    async def _reschedule_after_crash(self, url: str) -> None:
        def update(db: Database) -> None:
            feed = db.get_feed(url)
            if feed is not None:
                feed.next_check = time.time() + self.settings.poll_interval
                db.save_feed(feed)

        try:
            await self.store.transaction(update, durable=False)
        except Exception:
            log.exception("could not reschedule %s", url)
