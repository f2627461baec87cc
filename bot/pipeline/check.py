"""What one check decides, as pure functions: the plan of a successful check (what is new,
rendered per subscriber), the commit it makes (feed state, seen-sets, deliveries), and when the
feed is checked next. The poller (bot.pipeline.poller) does the I/O around them."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.feeds.diff import document_prints, oldest_first, seen_cap
from bot.feeds.parse_delta import CheckedDocument, check_document
from bot.feeds.urls import is_private_url, moved_feed_url, public_url
from bot.i18n import DEFAULT_LANG
from bot.models import Chat, Entry, Feed, FetchResult, ParsedFeed, RenderedMessage, Subscription
from bot.pipeline.health import mark_healthy
from bot.pipeline.outbox import (
    collects_digest,
    digest_items,
    post_deliveries,
    posts_sent,
    subscriber_notices,
    unknown_chat,
)
from bot.pipeline.schedule import DAY
from bot.render import RenderOptions, render_entry
from bot.render.message import MEDIA_URL_LIMIT, wants_page
from bot.render.telegraph import PageDraft, page_draft
from bot.storage.base import FeedCommit, FeedState, remember_in_feed

log = logging.getLogger(__name__)


@dataclass
class CheckPlan:
    """What one successful check found: the posts that are new, rendered per subscriber."""

    url: str
    result: FetchResult
    parsed: ParsedFeed
    fresh: list[Entry]
    #: rendered message per (subscription, entry key)
    messages: dict[tuple[int, str], RenderedMessage] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    next_check: float = 0.0
    #: the packed records of the document's items (bot.feeds.parse_delta), stored with the feed
    item_records: bytes = b""
    #: every entry's prints, oldest first (what the feed's seen-set remembers), and how many
    #: entries the document has; from `parsed.entries` when not given
    prints: Sequence[str] | None = None
    entries: int = 0

    def __post_init__(self) -> None:
        if self.prints is None:
            self.prints = document_prints(oldest_first(self.parsed.entries))
            self.entries = len(self.parsed.entries)


def next_check_after(
    now: float, interval: float, ttl_min: int | None, max_age: int | None
) -> float:
    """The subscribers' interval, raised to the feed's <ttl> / the server's max-age, never past a
    day; plus jitter so feeds on one host, subscribed together, drift apart."""
    floor = max(max(ttl_min or 0, 0) * 60, max(max_age or 0, 0))
    wait = min(max(interval, floor), DAY)
    jitter = random.uniform(0, min(wait * 0.1, 60.0))
    return now + min(wait + jitter, DAY)


#: appended to an entry key: the Instant View page of the post's full text (`shown_entry`)
FULL_TEXT_PAGE = "\0fulltext"


def render_for(
    feed: Feed,
    parsed: ParsedFeed,
    fresh: list[Entry],
    subs: list[Subscription],
    langs: dict[int, str],
    media_url_limit: int = MEDIA_URL_LIMIT,
    pages: Mapping[str, str] | None = None,
    full_texts: Mapping[str, Entry] | None = None,
    zones: Mapping[int, str] | None = None,
) -> dict[tuple[int, str], RenderedMessage]:
    """Each post for each subscriber; `pages`: the Instant View page URL of posts (by page key,
    see `shown_entry`) that have one (see `page_drafts`); `full_texts`: posts whose page's
    article was fetched (bot.fulltext), by entry key; `zones`: each chat's time zone (UTC when
    missing)."""
    title = feed_title(feed, parsed)
    pages = pages or {}
    zones = zones or {}
    cache: dict[tuple[RenderOptions, str], RenderedMessage] = {}
    out: dict[tuple[int, str], RenderedMessage] = {}
    for sub in subs:
        options = _options_of(sub, langs, media_url_limit, zones)
        for entry in fresh:
            key = (options, entry.key)
            if key not in cache:
                shown, page_key = shown_entry(entry, options, full_texts)
                cache[key] = render_entry(shown, title, options, pages.get(page_key, ""))
            out[(sub.chat_id, entry.key)] = cache[key]
    return out


@dataclass(frozen=True)
class RenderJob:
    """`render_for`'s inputs, for the parse worker to render a check's new posts right after
    the diff (`check_and_render`), off the bot's process. Only for a check whose rendering
    waits on no I/O: no subscriber has `fulltext on` (pages fetched first). When Instant View
    pages can be published (`pages`), a post that wants one is left to the bot."""

    feed: Feed  #: its URL and title only
    subs: list[Subscription]
    langs: dict[int, str]
    zones: dict[int, str]
    media_url_limit: int
    pages: bool


@dataclass(frozen=True)
class CheckedPosts:
    """A parse worker's answer to a check: the document diffed, and its new posts rendered per
    subscriber when it was asked to and could (else None: the bot renders them)."""

    document: CheckedDocument
    messages: dict[tuple[int, str], RenderedMessage] | None = None


def check_and_render(
    body: bytes, url: str, content_type: str, records: bytes, seen: bytes,
    job: RenderJob | None,
) -> CheckedPosts:
    """Worker: `check_document`, then `job`'s rendering of what is new."""
    document = check_document(body, url, content_type, records, seen)
    if job is None or not document.fresh:
        return CheckedPosts(document)
    title = feed_title(job.feed, document.parsed)
    if job.pages:
        renderings = {_options_of(s, job.langs, job.media_url_limit, job.zones) for s in job.subs}
        if any(wants_page(e, title, o) for o in renderings for e in document.fresh):
            return CheckedPosts(document)
    messages = render_for(
        job.feed, document.parsed, document.fresh, job.subs, job.langs, job.media_url_limit,
        zones=job.zones,
    )
    return CheckedPosts(document, messages)


def _options_of(
    sub: Subscription, langs: Mapping[int, str], media_url_limit: int, zones: Mapping[int, str]
) -> RenderOptions:
    """How `sub`'s posts are rendered: its options in its chat's language and time zone."""
    return RenderOptions.for_subscription(
        sub.options, langs.get(sub.chat_id, DEFAULT_LANG), media_url_limit,
        zones.get(sub.chat_id, "UTC"),
    )


def shown_entry(
    entry: Entry, options: RenderOptions, full_texts: Mapping[str, Entry] | None
) -> tuple[Entry, str]:
    """The post as a subscriber's message shows it, and the key of its Instant View page: its
    page's article as the body when the subscription has `fulltext on` and the article was
    fetched, else the feed's own."""
    full = full_texts.get(entry.key) if options.fulltext and full_texts else None
    return (full, entry.key + FULL_TEXT_PAGE) if full is not None else (entry, entry.key)


def full_text_wanted(
    fresh: list[Entry],
    subs: list[Subscription],
    chats: Mapping[int, Chat],
    backlog_limit: int,
) -> list[Entry]:
    """The new posts at least one subscriber with `fulltext on` is sent (not seen there, let
    through by its filters, which read the feed's text, within the backlog cap): the pages worth
    fetching, each once."""
    wanted: dict[str, Entry] = {}
    for sub in subs:
        if not sub.options.fulltext:
            continue
        chat = chats.get(sub.chat_id) or Chat(id=sub.chat_id)
        for entry in posts_sent(chat, sub, fresh, backlog_limit)[0]:
            wanted.setdefault(entry.key, entry)
    return [e for e in fresh if e.key in wanted]


def page_drafts(
    feed: Feed,
    parsed: ParsedFeed,
    fresh: list[Entry],
    subs: list[Subscription],
    chats: Mapping[int, Chat],
    backlog_limit: int,
    media_url_limit: int = MEDIA_URL_LIMIT,
    full_texts: Mapping[str, Entry] | None = None,
) -> dict[str, PageDraft]:
    """The Telegraph page of every new post that at least one subscriber is sent as an Instant
    View link (bot.render.message.wants_page), by page key (`shown_entry`: the post's full text
    has a page of its own): each published once for all. Posts no chat is sent (seen there,
    filtered out, past the backlog cap) get none, and so do the posts of a feed fetched with
    credentials (a password, a cookie, a token: `is_private_url`), since anyone with a page's
    address can read it: they are cut as without Telegraph."""
    if is_private_url(feed.url):  # a page is public: a private feed's posts get none
        return {}
    title = feed_title(feed, parsed)
    wanted: dict[str, Entry] = {}
    decided: set[tuple[RenderOptions, str]] = set()
    for sub in subs:
        chat = chats.get(sub.chat_id) or Chat(id=sub.chat_id)
        options = RenderOptions.for_subscription(
            sub.options, chat.lang, media_url_limit, chat.timezone
        )
        for entry in posts_sent(chat, sub, fresh, backlog_limit)[0]:
            shown, page_key = shown_entry(entry, options, full_texts)
            if page_key in wanted or (options, entry.key) in decided:
                continue
            decided.add((options, entry.key))
            if wants_page(shown, title, options):
                wanted[page_key] = shown
    return {key: page_draft(entry, title) for key, entry in wanted.items()}


def feed_title(feed: Feed, parsed: ParsedFeed) -> str:
    """The feed's name in its posts; an untitled feed is named by its address, without the
    credentials it may carry (posts go to channels too)."""
    return parsed.title or feed.title or public_url(feed.url)


def check_commit(state: FeedState, plan: CheckPlan, now: float, backlog_limit: int) -> FeedCommit:
    """What a successful check stores (pure, on the state it read)."""
    feed = state.feed
    recovered = mark_healthy(feed, now)
    feed.title = plan.parsed.title or feed.title  # a renamed feed is followed quietly
    feed.link = plan.parsed.link or feed.link
    feed.etag, feed.last_modified = plan.result.etag, plan.result.last_modified
    feed.body_digest = plan.result.body_digest
    feed.item_records = plan.item_records
    feed.ttl_minutes = plan.parsed.ttl_minutes
    feed.seen = remember_in_feed(feed.seen, plan.prints or (), seen_cap(plan.entries))
    feed.next_check = plan.next_check
    if plan.fresh:
        feed.last_new_entry = now
    commit = FeedCommit(feed, state.stamp, moved_to=moved_to(plan.url, plan.result))
    active = {s.chat_id: s for s in state.subscriptions if not s.paused}
    told: list[tuple[Subscription, Chat]] = []
    for planned in plan.subscriptions:
        sub = active.get(planned.chat_id)
        chat = state.chats.get(planned.chat_id) or unknown_chat(planned.chat_id)
        if sub is None or chat.paused:  # left, or paused, since the feed was fetched
            continue
        if collects_digest(planned):  # as planned: a digest subscriber's posts are not rendered
            title = feed_title(feed, plan.parsed)
            commit.digest_items += digest_items(chat, sub, title, plan.fresh, now)
        else:
            commit.deliveries += post_deliveries(
                chat, sub, feed, plan.fresh, plan.messages, now, backlog_limit
            )
        commit.chats.append(chat)
        told.append((sub, chat))
    if recovered:  # before the posts, wherever each chat's notices go
        values: dict[str, object] = {"title": feed.title or feed.url}
        commit.deliveries[:0] = subscriber_notices(told, "feed_recovered", now, values)
    return commit


def same_document(feed: Feed, result: FetchResult) -> bool:
    """A 200 with exactly the bytes the last committed check had: nothing in it can be new."""
    return bool(feed.body_digest) and result.body_digest == feed.body_digest


def moved_to(url: str, result: FetchResult) -> str | None:
    """Where the feed moved, when every redirect hop was permanent (its state, seen-set and
    subscriptions follow it there). A feed fetched with credentials keeps them on its own
    origin only (bot.feeds.urls.moved_feed_url)."""
    if not result.permanent_url:
        return None
    target = moved_feed_url(url, result.permanent_url)
    if target is None:
        log.info("feed with credentials redirected permanently to another origin, not moved: "
                 "%s -> %s", public_url(url), public_url(result.permanent_url))
        return None
    if target != url:
        log.info("feed moved permanently: %s -> %s", public_url(url), public_url(target))
        return target
    return None
