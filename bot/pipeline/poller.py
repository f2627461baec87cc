"""The scheduler's tick: pick due feeds, check each once, queue what is new.

One check: fetch -> parse -> diff -> render -> commit. The commit stores the feed's new seen-set
and every resulting delivery in a single durable write, so a crash can neither lose a post (seen
but never queued) nor queue it twice. What a check commits is decided by pure functions
(bot.pipeline.outbox, bot.pipeline.health) on the state read before it (`Storage.load_feed`);
when that state changed meanwhile the storage refuses the commit and the check decides again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import TypeVar

from bot.config import Settings
from bot.errors import FeedbotError, FetchError, StorageWriteError
from bot.feeds.diff import entry_prints
from bot.feeds.fetcher import Fetcher
from bot.feeds.parse_pool import ParsePool, in_pool, parse_feed
from bot.feeds.urls import is_private_url
from bot.fulltext import ArticleSource
from bot.i18n import DEFAULT_LANG
from bot.models import (
    Chat,
    Entry,
    Feed,
    FetchResult,
    ParsedFeed,
    Prints,
    RenderedMessage,
    Subscription,
    pack_prints,
)
from bot.pipeline.check import (
    CheckedPosts,
    CheckPlan,
    RenderJob,
    check_and_render,
    check_commit,
    full_text_wanted,
    moved_to,
    next_check_after,
    page_drafts,
    render_for,
    same_document,
)
from bot.pipeline.health import (
    FAILURES_BEFORE_NOTICE,
    NOTIFY_FAILING_AFTER,
    PAUSE_FAILING_AFTER,
    HealthPolicy,
    mark_healthy,
)
from bot.pipeline.outbox import (
    collects_digest,
    merge_chat_seen,
    notify_subscribers,
    post_deliveries,
)
from bot.pipeline.schedule import DAY, effective_interval, owed_on_resume
from bot.storage.base import FeedCommit, FeedState, Storage, retry_on_conflict
from bot.telegraph import PagePublisher

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class CycleStats:
    checked: int = 0
    not_modified: int = 0
    #: 200s whose body was the last committed one, byte for byte: handled like a 304
    same_body: int = 0
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


class Poller:
    def __init__(
        self,
        store: Storage,
        fetcher: Fetcher,
        settings: Settings,
        *,
        on_queued: Callable[[], None] = lambda: None,
        parse_pool: ParsePool | None = None,
        publisher: PagePublisher | None = None,
    ) -> None:
        self.store = store
        #: publishes Instant View pages of long posts (bot.telegraph); None: no pages
        self.publisher = publisher
        self.fetcher = fetcher
        #: the articles of new posts' pages, for subscriptions with `fulltext on`
        self.articles = ArticleSource(fetcher)
        self.settings = settings
        #: parses in worker processes when given (the bot), else in threads
        self.parse_pool = parse_pool
        self.on_queued = on_queued
        #: told when a check crashes (a bug, not a feed failure): operator alerts
        self.on_crash: Callable[[str, Exception], None] | None = None
        self.stats = CycleStats()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._batch_full = False
        self._closing = False
        self._refilling: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.max_concurrent_checks)
        # Feed-health thresholds and the clock are attributes so tests can shrink a day to seconds.
        self.clock: Callable[[], float] = time.time
        self.notify_after = NOTIFY_FAILING_AFTER
        self.pause_after = PAUSE_FAILING_AFTER
        self.max_backoff = DAY
        self.failures_before_notice = FAILURES_BEFORE_NOTICE

    # ------------------------------------------------------------- scheduling
    async def tick(self) -> int:
        """Start a check of every feed due now (up to `claim_batch` at a time); return how
        many were started. They start together, as one batch: their reads and lazy writes
        share store trips, and checks of one host reuse its kept-alive connections (bounded by
        `max_concurrent_checks`). The feeds are claimed with a lease (`claim_due_feeds`), so
        checkers sharing one database never check a feed at once; when a batch was full, more
        are claimed while checks still wait for a slot (`refill_at`), not a tick later. A
        check is late by at most a tick and never early (a server's Retry-After is kept to the
        second)."""
        room = self.claim_batch - len(self._in_flight)
        if room <= 0:
            return 0
        due = await self.store.claim_due_feeds(self.clock(), room, self.lease_seconds)
        self._batch_full = len(due) >= room
        started = 0
        for state in due:
            url = state.feed.url
            if url in self._in_flight:
                continue
            self._in_flight.add(url)
            task = asyncio.create_task(self._guarded(url, state), name=f"check {url}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    @property
    def claim_batch(self) -> int:
        """How many feeds are claimed at most (running and waiting for a slot): enough to keep
        every check slot busy until the next claim, few enough to leave the rest to other
        checkers."""
        return 2 * self.settings.max_concurrent_checks

    @property
    def refill_at(self) -> int:
        """Claim more when no more than this many claimed feeds are left: with half a slot's
        worth still waiting, the slots stay busy while the claim is made (claiming only when
        none waited left up to half of them idle meanwhile)."""
        slots = self.settings.max_concurrent_checks
        return slots + max(slots // 2, 1)

    @property
    def lease_seconds(self) -> float:
        """A claimed feed's lease: its check may wait for a slot behind the claimed checks
        ahead of it (fewer than `max_concurrent_checks`), then fetch, parse and commit (each
        check's fetch is capped at `fetch_timeout`). Should a check outlast it, another
        checker may check the feed too: the stamped commit still sends nothing twice."""
        return self.settings.fetch_timeout * 3 + 10

    def _refill(self) -> None:
        """After a full claim, claim more once few enough are left (one claim at a time)."""
        if not self._batch_full or self._closing or len(self._in_flight) > self.refill_at:
            return
        if self._refilling is not None and not self._refilling.done():
            return
        self._batch_full = False
        self._refilling = asyncio.create_task(self._refill_now(), name="claim due feeds")
        self._tasks.add(self._refilling)  # wait_idle waits for the checks it starts too
        self._refilling.add_done_callback(self._tasks.discard)

    async def _refill_now(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("claiming due feeds failed; the next tick tries again")

    async def run_once(self) -> CycleStats:
        """Check every due feed and wait for all of them (tools and tests)."""
        await self.tick()
        await self.wait_idle()
        return self.stats.take()

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.articles.aclose()

    async def _guarded(self, url: str, claimed: FeedState) -> None:
        try:
            async with self._slots:
                await self.check(url, claimed)
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
            self._refill()

    # ------------------------------------------------------------------ check
    async def check(self, url: str, claimed: FeedState | None = None) -> None:
        """Check one feed: as `claimed` (`Storage.claim_due_feeds`), else as stored now."""
        state = claimed if claimed is not None else await self.store.load_feed(url)
        if state is None:
            return
        feed = state.feed
        self.stats.checked += 1
        # the next check counts from this one's start: a slow fetch must not stretch the period
        started = self.clock()
        try:
            result = await self.fetcher.fetch(
                url, etag=feed.etag, last_modified=feed.last_modified,
                headers=feed.request_headers,
            )
            if result.not_modified:
                self.stats.not_modified += 1
                await self._record_not_modified(state, result, started)
                return
            if same_document(feed, result):
                self.stats.same_body += 1
                await self._record_not_modified(state, result, started)
                return
            checked = await in_pool(
                self.parse_pool, check_and_render, result.body, result.url,
                result.content_type, feed.item_records, pack_prints(feed.seen),
                self._render_job(state),
            )
        except FeedbotError as exc:
            self.stats.failed += 1
            await self._record_failure(state, exc)
            return
        self.stats.items_parsed += checked.document.items_parsed
        fresh, queued = await self._commit_check(state, result, checked, started)
        self.stats.new_entries += fresh
        self.stats.queued += queued
        if queued:
            self.on_queued()

    def _interval(self, subs: list[Subscription]) -> float:
        return effective_interval(subs, self.settings.poll_interval)

    def _health(self) -> HealthPolicy:
        return HealthPolicy(
            self.notify_after, self.pause_after, self.max_backoff, self.failures_before_notice
        )

    async def _decided(
        self,
        url: str,
        state: FeedState,
        decide: Callable[[FeedState], Awaitable[T]],
        what: str,
    ) -> T | None:
        """`decide(state)`: decide on the state read and commit. When the storage reports that
        the state changed meanwhile, read the feed again and decide again; None when the feed
        is gone by then."""
        current: FeedState | None = state

        async def attempt() -> T | None:
            nonlocal current
            if current is None:
                current = await self.store.load_feed(url)
                if current is None:  # unsubscribed meanwhile
                    return None
            taken, current = current, None  # a retry reads afresh
            return await decide(taken)

        return await retry_on_conflict(attempt, f"{what} of {url}")

    async def _commit_check(
        self,
        state: FeedState,
        result: FetchResult,
        checked: CheckedPosts,
        started: float,
    ) -> tuple[int, int]:
        """Commit a successful check; returns (new posts, deliveries queued). What is new is
        decided on the feed as it was fetched; who gets it (chat dedup, filters, pauses) on the
        state at the commit, decided again if that changed meanwhile."""
        plan = await self._plan(state, result, checked)
        parsed = checked.document.parsed

        async def decide(current: FeedState) -> int:
            # the interval as it is now: a /set interval during the fetch is not undone
            plan.next_check = next_check_after(
                started, self._interval(current.subscriptions), parsed.ttl_minutes,
                result.max_age,
            )
            commit = check_commit(current, plan, self.clock(), self.settings.backlog_limit)
            await self.store.commit_check(commit)
            return len(commit.deliveries)

        queued = await self._decided(state.feed.url, state, decide, "check")
        return len(plan.fresh), queued or 0

    def _render_job(self, state: FeedState) -> RenderJob | None:
        """The rendering the parse worker can do with the diff (`check.RenderJob`): none when
        a subscriber's posts need a page fetched first (`fulltext on`)."""
        subs = [s for s in state.subscriptions if not s.paused and not collects_digest(s)]
        if not subs or any(s.options.fulltext for s in subs):
            return None
        feed = state.feed
        pages = (self.publisher is not None and self.publisher.available()
                 and not is_private_url(feed.url))
        langs, zones = _languages_and_zones(subs, state.chats)
        return RenderJob(Feed(feed.url, title=feed.title), subs, langs, zones,
                         self.settings.media_url_limit, pages)

    async def _plan(
        self, state: FeedState, result: FetchResult, checked: CheckedPosts
    ) -> CheckPlan:
        """What is new was decided with the parse (bot.feeds.parse_delta.check_document), on
        the feed as it was fetched; here it is rendered per subscriber, unless the parse
        worker did that already."""
        document = checked.document
        feed, parsed, fresh = state.feed, document.parsed, document.fresh
        subs = [s for s in state.subscriptions if not s.paused]
        plan = CheckPlan(
            url=feed.url, result=result, parsed=parsed, fresh=fresh, subscriptions=subs,
            prints=Prints(document.prints), entries=document.entries,
            item_records=document.records,
        )
        shown = [s for s in subs if not collects_digest(s)]  # a digest renders its own lines
        if checked.messages is not None:
            plan.messages = checked.messages
        elif fresh and shown:
            plan.messages = await self._render_all(feed, parsed, fresh, shown, state.chats)
        return plan

    async def _render_all(
        self,
        feed: Feed,
        parsed: ParsedFeed,
        fresh: list[Entry],
        subs: list[Subscription],
        chats: dict[int, Chat],
    ) -> dict[tuple[int, str], RenderedMessage]:
        """Each post for each subscriber, in the subscriber's chat language and time zone (in a
        thread)."""
        langs, zones = _languages_and_zones(subs, chats)
        limit = self.settings.media_url_limit
        full_texts = await self._full_texts(fresh, subs, chats)
        pages = await self._publish(feed, parsed, fresh, subs, chats, full_texts)
        return await asyncio.to_thread(
            render_for, feed, parsed, fresh, subs, langs, limit, pages, full_texts, zones
        )

    async def _full_texts(
        self, fresh: list[Entry], subs: list[Subscription], chats: dict[int, Chat]
    ) -> dict[str, Entry]:
        """The new posts that some subscriber with `fulltext on` gets, with their page's
        article as the body (bot.fulltext), fetched once for all of them; a post whose page
        failed is absent and keeps the feed's text."""
        wanted = full_text_wanted(fresh, subs, chats, self.settings.backlog_limit)
        return await self.articles.full_texts(wanted) if wanted else {}

    async def _publish(
        self,
        feed: Feed,
        parsed: ParsedFeed,
        fresh: list[Entry],
        subs: list[Subscription],
        chats: dict[int, Chat],
        full_texts: dict[str, Entry] | None = None,
    ) -> dict[str, str]:
        """The Instant View page of each new post some subscriber gets as a link to one,
        published once for all of them (by page key: the feed's text and the full text are
        two pages); a post whose page failed has none and goes out as a message."""
        if self.publisher is None or not self.publisher.available():
            return {}
        settings = self.settings
        drafts = await asyncio.to_thread(
            page_drafts, feed, parsed, fresh, subs, chats, settings.backlog_limit,
            settings.media_url_limit, full_texts,
        )
        pages: dict[str, str] = {}
        for key, draft in drafts.items():
            # by the post's identity: a post that two feeds carry is one page
            url = await self.publisher.publish(key, draft)
            if url is not None:
                pages[key] = url
        return pages

    # ---------------------------------------------------------------- commits
    async def _record_not_modified(
        self, state: FeedState, result: FetchResult, started: float
    ) -> None:
        async def decide(current: FeedState) -> int:
            feed, now = current.feed, self.clock()
            interval = self._interval(current.subscriptions)  # as it is now
            next_check = next_check_after(started, interval, feed.ttl_minutes, result.max_age)
            commit = FeedCommit(feed, current.stamp, moved_to=moved_to(feed.url, result))
            if mark_healthy(feed, now):
                commit.deliveries, _ = notify_subscribers(
                    current.subscriptions, current.chats, "feed_recovered", now,
                    {"title": feed.title or feed.url},
                )
            feed.next_check = next_check
            await self.store.record_not_modified(commit)
            return len(commit.deliveries)

        if await self._decided(state.feed.url, state, decide, "not-modified"):
            self.on_queued()

    async def _record_failure(self, state: FeedState, exc: FeedbotError) -> None:
        log.info("check of %s failed: %s", state.feed.url, exc)
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        async def decide(current: FeedState) -> int:
            feed, now = current.feed, self.clock()
            interval = self._interval(current.subscriptions)  # as it is now
            feed.errors += 1
            feed.last_check = now
            feed.last_error, feed.last_error_kind = str(exc), exc.kind
            feed.last_reason = exc.reason.to_dict()
            feed.failing_since = feed.failing_since or now
            health = self._health()
            feed.next_check = now + health.backoff(feed.errors, interval, retry_after)
            commit = FeedCommit(feed, current.stamp)
            told = health.failure_notice(feed, exc.kind, now)
            if told is not None:
                commit.deliveries, commit.subscriptions = notify_subscribers(
                    current.subscriptions, current.chats, told.key, now, told.values,
                    pause=told.pause,
                )
            await self.store.record_failure(commit)
            return len(commit.deliveries)

        if await self._decided(state.feed.url, state, decide, "failure"):
            self.on_queued()

    async def _reschedule_after_crash(self, url: str) -> None:
        try:
            await self.store.postpone_check(url, self.clock() + self.settings.poll_interval)
        except Exception:
            log.exception("could not reschedule %s", url)

    # ------------------------------------------------------- resume (issue 6, part B)
    async def resume(self, chat_id: int, feed_url: str, *, catch_up: bool) -> Resumed | None:
        """Unpause one subscription; its feed is checked soon. Posts that arrived before the
        pause and never reached the chat are queued either way; catch_up also queues those
        from the pause (see bot.pipeline.schedule.owed_on_resume; filters and backlog limit apply).
        Everything else in the feed now counts as seen in the chat. None when the feed could
        not be read (resumed all the same)."""
        state = await self.store.load_feed(feed_url)
        if state is None or _subscription(state, chat_id) is None:
            return Resumed()
        try:
            result = await self.fetcher.fetch(feed_url, headers=state.feed.request_headers)
            parsed = await parse_feed(
                result.body, result.url, result.content_type, pool=self.parse_pool
            )
        except FeedbotError as exc:
            log.info("resume of %s: feed not readable now: %s", feed_url, exc)
            await self._decided(
                feed_url, state, lambda current: self._commit_resume(current, chat_id), "resume"
            )
            return None

        # what is owed is decided on the state before the fetch (a check committing meanwhile
        # must not make the missed posts look known); the chat's dedup at the commit
        sub = _subscription(state, chat_id) or Subscription(chat_id, feed_url)
        chat = state.chats.get(chat_id) or Chat(id=chat_id)
        since = sub.paused_at or state.feed.last_success
        owed = owed_on_resume(parsed.entries, chat.seen, state.feed.seen, since, catch_up=catch_up)
        plan = CheckPlan(feed_url, result, parsed, owed.send, subscriptions=[sub])
        if owed.send:
            plan.messages = await self._render_all(state.feed, parsed, owed.send, [sub],
                                                   state.chats)
        queued = await self._decided(
            feed_url, state, lambda current: self._commit_resume(current, chat_id, plan), "resume"
        )
        if queued:
            self.on_queued()
        return Resumed(queued or 0, owed.too_old)

    async def _commit_resume(
        self, state: FeedState, chat_id: int, plan: CheckPlan | None = None
    ) -> int:
        sub, feed = _subscription(state, chat_id), state.feed
        if sub is None:
            return 0
        sub.paused, sub.paused_at = False, None
        feed.next_check = min(feed.next_check, self.clock())
        commit = FeedCommit(feed, state.stamp, subscriptions=[sub])
        if plan is not None:
            chat = state.chats.get(chat_id) or Chat(id=chat_id)
            if plan.fresh:
                commit.deliveries = post_deliveries(
                    chat, sub, feed, plan.fresh, plan.messages, self.clock(),
                    self.settings.backlog_limit,
                )
            current = [p for e in plan.parsed.entries for p in entry_prints(e)]
            chat.seen = merge_chat_seen(chat.seen, current)
            commit.chats.append(chat)
        await self.store.resume_subscription(commit)
        return len(commit.deliveries)

def _languages_and_zones(
    subs: list[Subscription], chats: dict[int, Chat]
) -> tuple[dict[int, str], dict[int, str]]:
    """Each subscriber chat's language (the default for a chat without a record) and time
    zone (only those with a record: UTC otherwise), as `check.render_for` takes them."""
    langs = {s.chat_id: chats[s.chat_id].lang if s.chat_id in chats else DEFAULT_LANG
             for s in subs}
    zones = {s.chat_id: chats[s.chat_id].timezone for s in subs if s.chat_id in chats}
    return langs, zones


@dataclass(frozen=True)
class Resumed:
    """One resumed subscription: deliveries queued, and posts catch-up left out as too old."""

    queued: int = 0
    too_old: int = 0


def _subscription(state: FeedState, chat_id: int) -> Subscription | None:
    return next((s for s in state.subscriptions if s.chat_id == chat_id), None)
