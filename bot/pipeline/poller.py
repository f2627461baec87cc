"""The scheduler's tick: pick due feeds, check each once, queue what is new.

One check: fetch -> parse -> diff -> render -> commit. The commit stores the feed's new seen-set
and every resulting delivery in a single durable write, so a crash can neither lose a post (seen
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
from dataclasses import dataclass, field, fields, replace

from bot.config import Settings
from bot.errors import FeedbotError, FetchError, Reason, StorageWriteError
from bot.feeds.diff import entry_prints, new_entries, oldest_first, remember, seen_cap
from bot.feeds.fetcher import Fetcher
from bot.feeds.filters import matches
from bot.feeds.parse_delta import (
    ChangedItems,
    ItemMemory,
    ItemRecord,
    merge,
    parse_changed_items,
    stub_is_new,
)
from bot.feeds.parse_pool import ParsePool, parse_feed
from bot.i18n import DEFAULT_LANG, format_time, t
from bot.models import (
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
from bot.pipeline.schedule import DAY, effective_interval, owed_on_resume
from bot.pipeline.store_batch import Coalescer
from bot.render import RenderOptions, render_entry
from bot.render.message import MEDIA_URL_LIMIT
from bot.service import CHAT_SEEN_CAP
from bot.storage import Database, Store

log = logging.getLogger(__name__)

NOTIFY_FAILING_AFTER = DAY
PAUSE_FAILING_AFTER = 7 * DAY
#: consecutive failures needed (besides time) before subscribers hear a feed is failing
FAILURES_BEFORE_NOTICE = 3


@dataclass
class CycleStats:
    checked: int = 0
    not_modified: int = 0
    failed: int = 0
    new_entries: int = 0
    queued: int = 0
    #: items feedparser parsed (those unchanged since the last check are not parsed again)
    items_parsed: int = 0

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


def subscription_render_options(
    sub: Subscription, lang: str = DEFAULT_LANG, media_url_limit: int = MEDIA_URL_LIMIT
) -> RenderOptions:
    return RenderOptions.for_subscription(sub.options, lang, media_url_limit)


@dataclass(frozen=True)
class Moment:
    """A notice value shown as a date in the receiving chat's language."""

    stamp: float


def localized(value: object, lang: str) -> str:
    """A notice value as Telegram HTML in `lang`: reasons and moments translated, the rest
    escaped."""
    if isinstance(value, Reason):
        return value.text(lang)
    if isinstance(value, Moment):
        return html.escape(format_time(value.stamp, lang, "long"))
    return html.escape(str(value))


def chat_languages(db: Database, subs: list[Subscription]) -> dict[int, str]:
    langs = {}
    for sub in subs:
        chat = db.get_chat(sub.chat_id)
        langs[sub.chat_id] = chat.lang if chat else DEFAULT_LANG
    return langs


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
        parse_pool: ParsePool | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        #: parses in worker processes when given (the bot), else in threads
        self.parse_pool = parse_pool
        self.on_queued = on_queued
        #: told when a check crashes (a bug, not a feed failure): operator alerts
        self.on_crash: Callable[[str, Exception], None] | None = None
        self.stats = CycleStats()
        #: per feed, what its last committed document's items mean (to skip parsing them again)
        self.items = ItemMemory()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_concurrent_checks)
        # Concurrent checks share store trips for their first read and their 304 updates.
        self._reads = Coalescer(store.read)
        self._lazy_writes = Coalescer(lambda fn: store.transaction(fn, durable=False))
        # Feed-health thresholds and the clock are attributes so tests can shrink a day to seconds.
        self.clock: Callable[[], float] = time.time
        self.notify_after = NOTIFY_FAILING_AFTER
        self.pause_after = PAUSE_FAILING_AFTER
        self.max_backoff = DAY
        self.failures_before_notice = FAILURES_BEFORE_NOTICE

    # ------------------------------------------------------------- scheduling
    async def tick(self, lookahead: float | None = None) -> int:
        """Start a check of every feed due now or before the next tick (those wait until their
        time, so a check is not late by up to a whole tick); return how many were started."""
        if lookahead is None:
            lookahead = self.settings.tick_seconds
        now = self.clock()
        due = await self.store.due_feeds(now + lookahead)
        started = 0
        for feed in due:
            if feed.url in self._in_flight:
                continue
            self._in_flight.add(feed.url)
            wait = min(max(feed.next_check - now, 0.0), lookahead)
            task = asyncio.create_task(self._guarded(feed.url, wait), name=f"check {feed.url}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def run_once(self) -> CycleStats:
        """Check every due feed and wait for all of them (tools and tests)."""
        await self.tick(lookahead=0.0)
        await self.wait_idle()
        return self.stats.take()

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._reads.close()
        await self._lazy_writes.close()

    async def _guarded(self, url: str, wait: float = 0.0) -> None:
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._slots:
                await self.check(url)
        except StorageWriteError as exc:  # the check was undone: it runs again later
            log.warning("check of %s could not be stored (%s); it will be retried", url, exc)
            if self.on_crash is not None:
                self.on_crash(url, exc)
            await self._reschedule_after_crash(url)
        except Exception as exc:
            log.exception("check of %s crashed; it will be retried", url)
            if self.on_crash is not None:
                self.on_crash(url, exc)
            await self._reschedule_after_crash(url)
        finally:
            self._in_flight.discard(url)

    # ------------------------------------------------------------------ check
    async def check(self, url: str) -> None:
        feed, subs = await self._reads.run(
            lambda db: (db.get_feed(url), db.subscriptions_for_feed(url))
        )
        if feed is None:
            return
        self.stats.checked += 1
        # the next check counts from this one's start: a slow fetch must not stretch the period
        started = self.clock()
        try:
            result = await self.fetcher.fetch(url, etag=feed.etag, last_modified=feed.last_modified)
            if result.not_modified:
                self.stats.not_modified += 1
                await self._record_not_modified(feed, subs, result, started)
                return
            parsed, records = await self._parse(feed, result)
        except FeedbotError as exc:
            self.stats.failed += 1
            await self._record_failure(feed, exc, subs)
            return
        plan = await self._plan(feed, result, parsed, started)
        queued = await self.store.transaction(lambda db: self._commit(db, plan))
        # only now: an item is skipped next time because this commit stored what it means
        self.items.remember(result.permanent_url or feed.url, records)
        self.stats.new_entries += len(plan.fresh)
        self.stats.queued += queued
        if queued:
            self.on_queued()

    async def _parse(self, feed: Feed, result: FetchResult) -> tuple[ParsedFeed, bytes]:
        """The fetched document, parsing only items that changed since the last commit; and
        the records of its items (see bot.feeds.parse_delta)."""
        known = self.items.known(feed.url)
        answer = await parse_changed(result, known, self.parse_pool)
        parsed, records = merge(answer, known)
        if known and stub_is_new(parsed, feed.seen):  # the seen-set no longer has a known item
            answer = await parse_changed(result, {}, self.parse_pool)
            parsed, records = merge(answer, {})
        self.stats.items_parsed += len(answer.parsed.entries)
        return parsed, records

    def _interval(self, subs: list[Subscription]) -> float:
        return effective_interval(subs, self.settings.poll_interval)

    def _next_check(
        self, now: float, subs: list[Subscription], ttl_min: int | None, max_age: int | None
    ) -> float:
        """The chat's interval, raised to the feed's <ttl> / the server's max-age, never past a
        day; plus jitter so feeds on one host, subscribed together, drift apart."""
        interval = self._interval(subs)
        floor = max(max(ttl_min or 0, 0) * 60, max(max_age or 0, 0))
        wait = min(max(interval, floor), DAY)
        jitter = random.uniform(0, min(wait * 0.1, 60.0))
        return now + min(wait + jitter, DAY)

    async def _plan(
        self, feed: Feed, result: FetchResult, parsed: ParsedFeed, started: float
    ) -> CheckPlan:
        # read again: a chat may have subscribed, paused or left while the feed was fetched
        current = await self._reads.run(lambda db: db.subscriptions_for_feed(feed.url))
        subs = [s for s in current if not s.paused]
        fresh = new_entries(parsed.entries, feed.seen)
        plan = CheckPlan(
            url=feed.url, result=result, parsed=parsed, fresh=fresh, subscriptions=subs
        )
        plan.next_check = self._next_check(started, subs, parsed.ttl_minutes, result.max_age)
        if fresh and subs:
            plan.messages = await self._render_all(feed, parsed, fresh, subs)
        return plan

    async def _render_all(
        self, feed: Feed, parsed: ParsedFeed, fresh: list[Entry], subs: list[Subscription]
    ) -> dict[tuple[int, str], RenderedMessage]:
        """Each post for each subscriber, in the subscriber's chat language (in a thread)."""
        langs = await self._reads.run(lambda db: chat_languages(db, subs))
        return await asyncio.to_thread(self._render_for, feed, parsed, fresh, subs, langs)

    def _render_for(
        self,
        feed: Feed,
        parsed: ParsedFeed,
        fresh: list[Entry],
        subs: list[Subscription],
        langs: dict[int, str],
    ) -> dict[tuple[int, str], RenderedMessage]:
        title = parsed.title or feed.title or feed.url
        cache: dict[tuple[RenderOptions, str], RenderedMessage] = {}
        out: dict[tuple[int, str], RenderedMessage] = {}
        for sub in subs:
            lang = langs.get(sub.chat_id, DEFAULT_LANG)
            options = subscription_render_options(sub, lang, self.settings.media_url_limit)
            for entry in fresh:
                key = (options, entry.key)
                if key not in cache:
                    cache[key] = render_entry(entry, title, options)
                out[(sub.chat_id, entry.key)] = cache[key]
        return out

    # ---------------------------------------------------------------- commits
    def _commit(self, db: Database, plan: CheckPlan) -> int:
        feed = db.get_feed(plan.url)
        if feed is None:  # unsubscribed meanwhile
            return 0
        now = self.clock()
        recovered = mark_healthy(feed, now)
        feed.title = plan.parsed.title or feed.title  # a renamed feed is followed quietly
        feed.link = plan.parsed.link or feed.link
        feed.etag, feed.last_modified = plan.result.etag, plan.result.last_modified
        feed.seen = remember(
            feed.seen, oldest_first(plan.parsed.entries), seen_cap(len(plan.parsed.entries))
        )
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
                deliveries.insert(
                    0, self._notice(sub, "feed_recovered", now, chat.lang, title=feed.title)
                )
            db.enqueue(deliveries)
            db.save_chat(chat)
            queued += len(deliveries)
        db.save_feed(feed)
        follow_move(db, plan.url, plan.result)
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
            message = plan.messages[(sub.chat_id, entry.key)]  # every fresh entry was rendered
            out.append(self._delivery(sub, entry.key, message, now))
            if message.follow_up is not None:  # next in the chat's order: nothing comes between
                follow_up = self._delivery(sub, entry.key, message.follow_up, now)
                out.append(replace(follow_up, reply_to_previous=True))
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

    def _notice(
        self, sub: Subscription, key: str, now: float, lang: str = "en", **values: object
    ) -> Delivery:
        shown = {k: localized(v, lang) for k, v in values.items()}
        return self._delivery(sub, f"notice:{key}:{now}", notice(t(key, lang, **shown)), now)

    async def _record_not_modified(
        self, feed: Feed, subs: list[Subscription], result: FetchResult, started: float
    ) -> None:
        next_check = self._next_check(started, subs, None, result.max_age)

        def update(db: Database) -> int:
            current = db.get_feed(feed.url)
            if current is None:
                return 0
            now = self.clock()
            queued = 0
            if mark_healthy(current, now):
                queued = self._tell(db, current, "feed_recovered", now, {"title": current.title})
            current.next_check = next_check
            db.save_feed(current)
            follow_move(db, feed.url, result)
            return queued

        # durable only when something user-visible (a notice, a move) changed
        if feed.failure_notified or result.permanent_url:
            queued = await self.store.transaction(update)
        else:
            queued = await self._lazy_writes.run(update)
        if queued:
            self.on_queued()

    async def _record_failure(
        self, feed: Feed, exc: FeedbotError, subs: list[Subscription]
    ) -> None:
        log.info("check of %s failed: %s", feed.url, exc)
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
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
        now = self.clock()
        feed.errors += 1
        feed.last_check = now
        feed.last_error, feed.last_error_kind = str(exc), exc.kind
        feed.last_reason = exc.reason.to_dict()
        feed.failing_since = feed.failing_since or now
        feed.next_check = now + self._backoff(feed.errors, interval, retry_after)
        queued = self._failure_notices(db, feed, exc, now)
        db.save_feed(feed)
        return queued

    def _backoff(self, errors: int, interval: float, retry_after: float | None) -> float:
        """Exponential in consecutive errors, capped; a server's Retry-After (itself capped at a
        day, the longest a feed ever waits) is a floor."""
        backoff = min(interval * 2 ** min(errors - 1, 32), self.max_backoff)
        return max(backoff, min(retry_after or 0.0, DAY))

    def _failure_notices(self, db: Database, feed: Feed, exc: FeedbotError, now: float) -> int:
        """Tell subscribers what they need to know about this failure; updates the feed's flags.

        410 Gone retires the feed at once. Otherwise: one "failing" notice after `notify_after`
        of consecutive failures, then the subscriptions pause after `pause_after` (counted again
        from the last pause, so a resumed feed gets a fresh window)."""
        if exc.kind == "gone":
            if feed.retired:
                return 0
            feed.retired = True
            title = feed.title or feed.url
            return self._tell(db, feed, "feed_gone", now, {"title": title, "url": feed.url})
        failing_since = feed.failing_since or now
        window_start = max(failing_since, feed.last_paused or 0.0)
        values: dict[str, object] = {
            "title": feed.title or feed.url,
            "since": Moment(failing_since),
            "reason": feed.failure_reason(),
        }
        if now - window_start >= self.pause_after:
            feed.last_paused, feed.failure_notified = now, True
            return self._tell(db, feed, "feed_paused", now, values, pause=True)
        if (
            now - failing_since >= self.notify_after
            and feed.errors >= self.failures_before_notice
            and not feed.failure_notified
        ):
            feed.failure_notified = True
            return self._tell(db, feed, "feed_failing", now, values)
        return 0

    def _tell(
        self,
        db: Database,
        feed: Feed,
        key: str,
        now: float,
        values: dict[str, object],
        *,
        pause: bool = False,
    ) -> int:
        """Queue notice `key` for every active subscriber of `feed`; with pause=True their
        subscriptions are paused too. Returns how many notices were queued."""
        queued = 0
        for sub in db.subscriptions_for_feed(feed.url):
            chat = db.get_chat(sub.chat_id)
            if sub.paused or (chat is not None and chat.paused):
                continue
            db.enqueue([self._notice(sub, key, now, lang=chat.lang if chat else "en", **values)])
            queued += 1
            if pause:
                sub.paused, sub.paused_at = True, now
                db.save_subscription(sub)
        return queued

    async def _reschedule_after_crash(self, url: str) -> None:
        def update(db: Database) -> None:
            feed = db.get_feed(url)
            if feed is not None:
                feed.next_check = self.clock() + self.settings.poll_interval
                db.save_feed(feed)

        try:
            await self.store.transaction(update, durable=False)
        except Exception:
            log.exception("could not reschedule %s", url)

    # ------------------------------------------------------- resume (issue 6, part B)
    async def resume(self, chat_id: int, feed_url: str, *, catch_up: bool) -> Resumed | None:
        """Unpause one subscription; its feed is checked soon. Posts that arrived before the
        pause and never reached the chat are queued either way; catch_up also queues those
        from the pause (see bot.pipeline.schedule.owed_on_resume; filters and backlog limit apply).
        Everything else in the feed now counts as seen in the chat. None when the feed could
        not be read (resumed all the same)."""
        sub = await self.store.read(lambda db: db.get_subscription(chat_id, feed_url))
        feed = await self.store.get_feed(feed_url)
        if sub is None or feed is None:
            return Resumed()
        try:
            result = await self.fetcher.fetch(feed_url)
            parsed = await parse_feed(
                result.body, result.url, result.content_type, pool=self.parse_pool
            )
        except FeedbotError as exc:
            log.info("resume of %s: feed not readable now: %s", feed_url, exc)
            await self.store.transaction(lambda db: self._commit_resume(db, chat_id, feed_url))
            return None
        chat = await self.store.get_chat(chat_id) or Chat(id=chat_id)
        since = sub.paused_at or feed.last_success
        owed = owed_on_resume(parsed.entries, chat.seen, feed.seen, since, catch_up=catch_up)
        plan = CheckPlan(feed_url, result, parsed, owed.send, subscriptions=[sub])
        if owed.send:
            plan.messages = await self._render_all(feed, parsed, owed.send, [sub])
        queued = await self.store.transaction(
            lambda db: self._commit_resume(db, chat_id, feed_url, plan)
        )
        if queued:
            self.on_queued()
        return Resumed(queued, owed.too_old)

    def _commit_resume(
        self, db: Database, chat_id: int, feed_url: str, plan: CheckPlan | None = None
    ) -> int:
        sub, feed = db.get_subscription(chat_id, feed_url), db.get_feed(feed_url)
        if sub is None or feed is None:
            return 0
        sub.paused, sub.paused_at = False, None
        db.save_subscription(sub)
        feed.next_check = min(feed.next_check, self.clock())
        db.save_feed(feed)
        if plan is None:
            return 0
        chat = db.get_chat(chat_id) or Chat(id=chat_id)
        deliveries = self._deliveries_for(chat, sub, feed, plan, self.clock()) if plan.fresh else []
        current = [p for e in plan.parsed.entries for p in entry_prints(e)]
        chat.seen = list(dict.fromkeys([*chat.seen, *current]))[-CHAT_SEEN_CAP:]
        db.enqueue(deliveries)
        db.save_chat(chat)
        return len(deliveries)


@dataclass(frozen=True)
class Resumed:
    """One resumed subscription: deliveries queued, and posts catch-up left out as too old."""

    queued: int = 0
    too_old: int = 0


async def parse_changed(
    result: FetchResult, known: dict[bytes, ItemRecord], pool: ParsePool | None
) -> ChangedItems:
    """`parse_changed_items` in the pool's worker processes, else in a thread."""
    args = (result.body, result.url, result.content_type, frozenset(known))
    if pool is not None:
        return await pool.parse_changed_items(*args)
    return await asyncio.to_thread(parse_changed_items, *args)


def mark_healthy(feed: Feed, now: float) -> bool:
    """Clear a feed's failure state after a good check (200 or 304). True when its subscribers
    were told it was failing, and so should now hear it is back."""
    recovered = feed.failure_notified
    feed.errors, feed.last_error, feed.last_error_kind, feed.last_reason = 0, "", "", {}
    feed.failing_since, feed.failure_notified, feed.last_paused = None, False, None
    feed.last_check = feed.last_success = now
    return recovered


def follow_move(db: Database, url: str, result: FetchResult) -> None:
    """Every redirect hop was permanent: the feed (state, seen-set, subscriptions) moves."""
    if result.permanent_url and result.permanent_url != url:
        log.info("feed moved permanently: %s -> %s", url, result.permanent_url)
        db.move_feed(url, result.permanent_url)
