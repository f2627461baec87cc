"""Subscriptions as a service: what the chat commands ask for, with no Telegram in sight.

Handlers parse arguments and format replies; everything they mean is done here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.config import Settings
from bot.errors import FeedbotError, FetchError, OptionError, ParseError, Reason
from bot.feeds.diff import entry_prints, is_seen, oldest_first, seen_cap
from bot.feeds.discovery import find_feed_links, looks_like_html
from bot.feeds.fetcher import Fetcher
from bot.feeds.filters import PostVerdict, trial
from bot.feeds.first_read import FirstRead
from bot.feeds.identity import normalize_link
from bot.feeds.parse_pool import ParsePool, first_read_feed, first_read_packed_feed, parse_feed
from bot.feeds.request_headers import (
    basic_credentials,
    edited,
    other_headers,
    own_headers,
    with_auth,
)
from bot.feeds.urls import (
    Address,
    NotAnAddress,
    canonical,
    public_url,
    read_address,
    same_address,
    strip_punctuation,
    with_marker,
    without_credentials,
)
from bot.i18n import DEFAULT_LANG
from bot.models import (
    Chat,
    Entry,
    Feed,
    ParsedFeed,
    RenderedMessage,
    Subscription,
    SubscriptionOptions,
)
from bot.options import OPTIONS, Effect
from bot.pipeline.check import page_drafts, render_for
from bot.pipeline.outbox import CHAT_SEEN_CAP
from bot.pipeline.schedule import effective_interval, rescheduled
from bot.storage.base import (
    ChatState,
    FeedState,
    NewSubscription,
    Stamp,
    Storage,
    StorageStats,
    SubscriptionMove,
    SubscriptionRow,
    remember_in_feed,
    retry_on_conflict,
)
from bot.telegraph import PagePublisher

T = TypeVar("T")

#: what a new subscription marks seen: its entries' prints and the feed's seen-set cap
Seen = tuple[list[str], int]


def seen_of(parsed: ParsedFeed) -> Seen:
    return [p for e in parsed.entries for p in entry_prints(e)], seen_cap(len(parsed.entries))


def without_entries(found: FirstRead | ParsedFeed) -> tuple[ParsedFeed, Seen]:
    """A read feed without its entries, and what they mark seen (as `seen_of` its whole)."""
    if isinstance(found, FirstRead):
        prints = list(itertools.chain.from_iterable(found.prints))
        feed = ParsedFeed(found.title, found.link, [], found.ttl_minutes, found.warning)
        return feed, (prints, seen_cap(len(found.prints)))
    return dataclasses.replace(found, entries=[]), seen_of(found)


@dataclass
class Probe:
    """A URL fetched and parsed (or not) on behalf of /sub. `feed` may hold identity-only
    entries (bot.feeds.first_read): its title, link and prints are those of the whole parse."""

    url: str
    feed: ParsedFeed | None = None
    fetch_etag: str | None = None
    fetch_last_modified: str | None = None
    #: FetchResult.body_digest of the fetch: the same bytes at the first check parse nothing
    fetch_digest: str = ""
    error: Reason | None = None
    error_kind: str = ""  # FeedbotError.kind of `error`
    error_status: int | None = None  # the HTTP status of an HTTP error
    discovered_from: str = ""  # the web page the feed was found on
    choices: list[tuple[str, str]] = field(default_factory=list)  # (url, title) on a page
    #: a light probe's (see `SubscriptionService.probe`): what the entries mark seen; `feed`
    #: holds no entries then
    seen: Seen | None = None


@dataclass
class SubscribeOutcome:
    url: str
    status: str  # "added" | "exists" | "failed" | "choose" | "limit"
    title: str = ""
    reason: Reason | None = None  # why it failed ("failed", "limit")
    page: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PreviewOutcome:
    """/preview URL: the feed's newest post rendered as the chat would get it, or why not."""

    url: str
    status: str  # "ok" | "empty" (a feed without posts) | "exists" | "failed" | "choose"
    title: str = ""
    message: RenderedMessage | None = None
    entry_key: str = ""
    silent: bool = False  # the chat's default: its posts arrive without a sound
    reason: Reason | None = None  # why it failed
    page: str = ""  # the web page the feed was found on
    choices: list[tuple[str, str]] = field(default_factory=list)  # a page's feeds
    known: bool = False  # the chat follows this feed already


@dataclass
class ListedSubscription:
    number: int
    subscription: Subscription
    feed: Feed


def limit_reason(limit: int) -> Reason:
    return Reason("import_reason_limit", {"limit": limit})


@dataclass
class PendingChoice:
    """A card of feed buttons waiting for a press: which chat the feed is for, and where."""

    target: int  # the chat to subscribe (the card's own chat, or a channel)
    page: str
    options: list[tuple[str, str]]  # (feed url, title)
    thread_id: int | None = None
    created: float = 0.0
    #: the options are addresses sent as plain text (pages allowed), not feeds found on a page
    discover: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "discover": self.discover,
            "target": self.target,
            "page": self.page,
            "options": [list(o) for o in self.options],
            "thread_id": self.thread_id,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingChoice:
        return cls(
            target=int(data["target"]),
            page=str(data.get("page", "")),
            options=[(str(u), str(t)) for u, t in data.get("options", [])],
            thread_id=data.get("thread_id"),
            created=float(data.get("created", 0.0)),
            discover=bool(data.get("discover", False)),
        )


OPEN_CHOICES = 20  # per chat; the oldest card is forgotten first
CHOICE_TTL_S = 7 * 24 * 3600
#: fetch failures after which a URL typed without a scheme is tried again over http
HTTP_RETRY_KINDS = frozenset({"tls", "connect", "timeout", "bad_url"})


def clean_url(raw: str) -> str:
    """The first URL worth trying for a typed word (https for one typed without a scheme)."""
    address = read_address(raw)
    if isinstance(address, NotAnAddress):
        url = strip_punctuation(raw)
        return url if "://" in url else "https://" + url
    return canonical(address.candidates[0])


class SubscriptionService:
    def __init__(
        self,
        store: Storage,
        fetcher: Fetcher,
        settings: Settings,
        parse_pool: ParsePool | None = None,
        publisher: PagePublisher | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        #: Instant View pages for /preview, the poller's publisher (None: no pages)
        self.publisher = publisher
        #: where a probe reads the feed (None: in a thread)
        self.parse_pool = parse_pool
        #: one subscribing write per chat at a time in this process: concurrent probes of one
        #: /sub would otherwise keep invalidating each other's read (the storage's stamps still
        #: catch writers in other processes)
        self.chat_writes = ChatLocks()

    # ------------------------------------------------------------------ probing
    async def probe(
        self,
        url: str,
        *,
        discover: bool = True,
        whole: bool = False,
        headers: Mapping[str, str] | None = None,
        light: bool = False,
    ) -> Probe:
        """Fetch and parse `url`; when it is a web page, look for its feeds. `whole`: parse
        the entries whole (to render them), not only their identities. `headers`: a feed
        record's own (Feed.request_headers). `light`: keep only what marks the entries seen
        (`Probe.seen`), no Entry objects: an OPML import holds hundreds of probes at once, and
        their entries would keep the garbage collector scanning the whole heap."""
        probe = Probe(url=url)
        try:
            result = await self.fetcher.fetch(url, headers=headers)
        except FetchError as exc:
            probe.error, probe.error_kind, probe.error_status = exc.reason, exc.kind, exc.status
            return probe
        except FeedbotError as exc:
            probe.error, probe.error_kind = exc.reason, exc.kind
            return probe
        probe.url = canonical(result.permanent_url or url)
        read = parse_feed if whole else first_read_feed
        args = (result.body, result.url, result.content_type)
        try:
            # a new subscription delivers nothing: the entries' identities are enough
            if light and not whole:
                found = await first_read_packed_feed(*args, pool=self.parse_pool)
                probe.feed, probe.seen = without_entries(found)
            else:
                probe.feed = await read(*args, pool=self.parse_pool)
        except ParseError as exc:
            if discover and looks_like_html(result.content_type, result.body):
                return await self._discover(
                    url, result.body, result.url, whole=whole, light=light
                )
            probe.error, probe.error_kind = exc.reason, exc.kind
            return probe
        probe.fetch_etag, probe.fetch_last_modified = result.etag, result.last_modified
        probe.fetch_digest = result.body_digest
        return probe

    async def probe_address(self, address: Address, *, whole: bool = False) -> Probe:
        """Probe the address's URLs in turn: one typed without a scheme is tried over http when
        https does not answer at all."""
        probe = Probe(url=address.word)
        for url in address.candidates:
            probe = await self.probe(canonical(url), whole=whole)
            retry = probe.feed is None and not probe.choices and (
                probe.error_kind in HTTP_RETRY_KINDS
                or (probe.error_kind == "http" and probe.error_status is None)
            )
            if not retry:
                break
        return probe

    async def _discover(
        self, page: str, body: bytes, base: str, *, whole: bool = False, light: bool = False
    ) -> Probe:
        links = find_feed_links(body, base)
        if not links:
            return Probe(url=page, error=Reason("error_not_feed_page"), error_kind="not_feed_page")
        if len(links) > 1:
            return Probe(url=page, choices=[(link.url, link.title) for link in links])
        found = await self.probe(links[0].url, discover=False, whole=whole, light=light)
        found.discovered_from = canonical(page)
        return found

    # ----------------------------------------------------------------- commands
    async def subscribe(
        self, chat: Chat, raw_url: str, *, thread_id: int | None = None, chosen: bool = False
    ) -> SubscribeOutcome:
        """Follow the feed at `raw_url` (a feed, or a page that names one) in `chat`.
        `chosen`: the URL is a feed picked from a page's list, not a page to look into."""
        (outcome,) = await self.subscribe_many(chat, [raw_url], thread_id=thread_id, chosen=chosen)
        return outcome

    async def subscribe_many(
        self,
        chat: Chat,
        raw_urls: Sequence[str],
        *,
        thread_id: int | None = None,
        chosen: bool = False,
        concurrency: int = 4,
        on_done: Callable[[int, SubscribeOutcome], None] | None = None,
    ) -> list[SubscribeOutcome]:
        """Follow several addresses, `concurrency` checked at a time; `on_done(n, outcome)` as
        each one is settled. Addresses the chat follows already are answered without a fetch;
        the chat's room is shared out in the order they were typed, and so is the /list order."""
        addresses = [read_address(raw) for raw in raw_urls]
        found = _sub_precheck(await self.store.load_chat(chat.id), addresses)
        gate, started = asyncio.Semaphore(max(concurrency, 1)), time.time()
        room = self.settings.max_subscriptions - found.count
        plan: list[SubscribeOutcome | Address] = []
        for address, known in zip(addresses, found.known, strict=True):
            if isinstance(address, NotAnAddress):
                reason = Reason(f"error_{address.reason}")
                plan.append(SubscribeOutcome(address.word, "failed", reason=reason))
            elif known is not None:
                plan.append(SubscribeOutcome(known.url, "exists", title=known.title))
            elif room <= 0:
                limit = limit_reason(self.settings.max_subscriptions)
                plan.append(SubscribeOutcome(address.word, "limit", reason=limit))
            else:
                room -= 1
                plan.append(address)

        async def one(n: int, step: SubscribeOutcome | Address) -> SubscribeOutcome:
            if isinstance(step, SubscribeOutcome):
                outcome = step
            else:
                async with gate:
                    outcome = await self._follow(chat, step, thread_id, chosen, started + n / 1000)
            if on_done is not None:
                on_done(n, outcome)
            return outcome

        return list(await asyncio.gather(*(one(n, step) for n, step in enumerate(plan))))

    async def _follow(
        self, chat: Chat, address: Address, thread_id: int | None, chosen: bool, created: float
    ) -> SubscribeOutcome:
        """Probe a new address and store the subscription (`created` orders the chat's list)."""
        probe = (
            await self.probe(canonical(address.candidates[0]), discover=False)
            if chosen
            else await self.probe_address(address)
        )
        if probe.choices:
            return SubscribeOutcome(url=probe.url, status="choose", choices=probe.choices)
        if probe.feed is None:
            return SubscribeOutcome(url=probe.url, status="failed", reason=probe.error)
        parsed, settings = probe.feed, self.settings

        async def attempt() -> tuple[str, Feed]:
            state = await self.store.load_chat(chat.id)
            status, feed, new = _add_subscription(
                state, chat, probe, parsed, thread_id, settings, created
            )
            if new is not None:
                await self.store.add_subscriptions([new], state.stamp)
            return status, feed

        async with self.chat_writes.hold(chat.id):
            status, feed = await retry_on_conflict(attempt, f"subscribe {chat.id}")
        if status == "limit":
            return SubscribeOutcome(url=probe.url, status="limit",
                                    reason=limit_reason(settings.max_subscriptions))
        return SubscribeOutcome(
            url=feed.url,
            status=status,
            title=(feed.title or parsed.title) if status == "exists" else parsed.title,
            page=probe.discovered_from,
        )

    async def subscribe_fetching(
        self,
        chat: Chat,
        raw_url: str,
        changes: Mapping[str, Any],
        *,
        thread_id: int | None = None,
    ) -> SubscribeOutcome:
        """`/sub URL header Name: value` or `/sub URL auth user:password`: follow a feed that
        answers only with these fetch settings (Effect.FETCH changes, as `change_fetch` takes
        them). The feed record is the subscription's own (the URL plus a fresh marker, the
        headers on it), so no other chat is ever fetched with them. The address must be the
        feed's own (no page is looked into with credentials)."""
        address = read_address(raw_url)
        if isinstance(address, NotAnAddress):
            reason = Reason(f"error_{address.reason}")
            return SubscribeOutcome(address.word, "failed", reason=reason)
        plain = canonical(address.candidates[0])
        wanted = own_headers(plain, {})
        if "headers" in changes:
            wanted = edited(wanted, changes["headers"])
        if "auth" in changes:
            wanted = with_auth(wanted, changes["auth"])
        plain = without_credentials(plain)
        probe = await self.probe(plain, discover=False, headers=wanted)
        if probe.feed is None:
            return SubscribeOutcome(url=public_url(plain), status="failed", reason=probe.error)
        parsed, settings, created = probe.feed, self.settings, time.time()
        marked = dataclasses.replace(probe, url=with_marker(plain, secrets.token_urlsafe(8)))
        if not wanted:
            marked.url = plain

        async def attempt() -> tuple[str, Feed]:
            state = await self.store.load_chat(chat.id)
            for row in state.rows:
                if canonical(without_credentials(row.subscription.feed_url)) == plain:
                    return "exists", row.feed
            if len(state.rows) >= settings.max_subscriptions:
                return "limit", Feed(plain)
            new = _new_subscription(state, chat, marked, parsed, thread_id, settings, created)
            if new is None:
                return "exists", Feed(plain)
            new.feed.request_headers = wanted
            await self.store.add_subscriptions([new], state.stamp)
            return "added", new.feed

        async with self.chat_writes.hold(chat.id):
            status, feed = await retry_on_conflict(attempt, f"subscribe {chat.id}")
        if status == "limit":
            return SubscribeOutcome(url=plain, status="limit",
                                    reason=limit_reason(settings.max_subscriptions))
        return SubscribeOutcome(url=plain, status=status, title=feed.title or parsed.title)

    async def preview(self, chat: Chat, raw_url: str) -> PreviewOutcome:
        """/preview: the newest post of the feed at `raw_url` (a feed, or a page naming one),
        rendered the way the poller renders it for `chat` (its language and default options,
        its Instant View page when it would get one); nothing is stored. Fails with the reasons
        /sub gives."""
        address = read_address(raw_url)
        if isinstance(address, NotAnAddress):
            return PreviewOutcome(raw_url, "failed", reason=Reason(f"error_{address.reason}"))
        state = await self.store.load_chat(chat.id)
        known = _known_subscription(state.rows, address) is not None
        probe = await self.probe_address(address, whole=True)
        if probe.choices:
            return PreviewOutcome(probe.url, "choose", choices=probe.choices)
        if probe.feed is None:
            return PreviewOutcome(probe.url, "failed", reason=probe.error)
        parsed, stored = probe.feed, state.chat or chat
        known = known or any(canonical(r.subscription.feed_url) == probe.url for r in state.rows)
        outcome = PreviewOutcome(
            probe.url, "ok", title=parsed.title, page=probe.discovered_from, known=known
        )
        if not parsed.entries:
            outcome.status = "empty"
            return outcome
        newest = oldest_first(parsed.entries)[-1]
        sub = Subscription(
            chat_id=chat.id,
            feed_url=probe.url,
            options=SubscriptionOptions.from_dict(stored.defaults),
        )
        # the chat as a post finds it, but with nothing seen and no filter: the preview shows
        # the newest post whatever the chat's filters would say
        viewer = Chat(id=chat.id, type=stored.type, lang=stored.lang, timezone=stored.timezone)
        feed = Feed(url=probe.url, title=parsed.title, link=parsed.link)
        pages = await self._preview_pages(feed, parsed, newest, sub, viewer)
        messages = await asyncio.to_thread(
            render_for, feed, parsed, [newest], [sub], {chat.id: viewer.lang},
            self.settings.media_url_limit, pages, None, {chat.id: viewer.timezone},
        )
        outcome.message, outcome.entry_key = messages[(chat.id, newest.key)], newest.key
        outcome.silent = sub.options.silent
        return outcome

    async def _preview_pages(
        self, feed: Feed, parsed: ParsedFeed, entry: Entry, sub: Subscription, viewer: Chat
    ) -> dict[str, str]:
        """The post's Instant View page, when the chat would get it as one (as the poller
        decides and publishes it: once per post, shared with the chats that follow it)."""
        if self.publisher is None or not self.publisher.available():
            return {}
        drafts = await asyncio.to_thread(
            page_drafts, feed, parsed, [entry], [sub], {viewer.id: viewer}, 1,
            self.settings.media_url_limit,
        )
        pages = {}
        for key, draft in drafts.items():
            url = await self.publisher.publish(key, draft)
            if url is not None:
                pages[key] = url
        return pages

    async def listing(self, chat_id: int) -> list[ListedSubscription]:
        return listed((await self.store.load_chat(chat_id)).rows)

    async def resolve(self, chat_id: int, ref: str) -> ListedSubscription | None:
        """A subscription by its /list number, its feed's URL, or the page it was found on."""
        return find_row(await self.listing(chat_id), ref)

    async def unsubscribe(self, chat_id: int, ref: str) -> ListedSubscription | None:
        ((_, row),) = await self.unsubscribe_many(chat_id, [ref])
        return row

    async def unsubscribe_many(
        self, chat_id: int, refs: Sequence[str]
    ) -> list[tuple[str, ListedSubscription | None]]:
        """Remove the subscriptions `refs` name. Numbers all refer to the list as it was before
        any is removed: "/unsub 1 2" removes the first two, not the first and the third."""
        rows = await self.listing(chat_id)
        found = [(ref, find_row(rows, ref)) for ref in refs]
        urls = list(dict.fromkeys(r.subscription.feed_url for _, r in found if r is not None))

        if urls:
            await self.store.remove_subscriptions(chat_id, urls)
        return found

    # ------------------------------------------------------------ choice cards
    async def open_choice(self, chat_id: int, choice: PendingChoice) -> str:
        """Remember a card of feed buttons sent to `chat_id`; returns its token."""
        token = secrets.token_urlsafe(6)
        choice.created = choice.created or time.time()

        def change(stored: Chat | None) -> tuple[Chat, None]:
            chat = stored or Chat(id=chat_id)
            cutoff = time.time() - CHOICE_TTL_S
            kept = {k: v for k, v in chat.choices.items() if v.get("created", 0) >= cutoff}
            kept[token] = choice.to_dict()
            chat.choices = dict(list(kept.items())[-OPEN_CHOICES:])
            return chat, None

        await self._change_chat(chat_id, change, "open a choice")
        return token

    async def peek_choice(self, chat_id: int, token: str) -> PendingChoice | None:
        chat = await self.store.get_chat(chat_id)
        data = chat.choices.get(token) if chat else None
        return PendingChoice.from_dict(data) if data else None

    async def take_choice(self, chat_id: int, token: str) -> PendingChoice | None:
        """The open card `token`, closed by this call: a second press finds nothing."""

        def change(chat: Chat | None) -> tuple[Chat | None, PendingChoice | None]:
            if chat is None or token not in chat.choices:
                return None, None
            choices = dict(chat.choices)
            data = choices.pop(token)
            chat.choices = choices
            return chat, PendingChoice.from_dict(data)

        return await self._change_chat(chat_id, change, "take a choice")

    async def touch_chat(
        self, chat_id: int, chat_type: str, title: str, *, lang: str | None = None
    ) -> Chat:
        """Record the chat; a paused chat (bot was blocked or kicked) is resumed. A chat seen
        for the first time starts in `lang` (the language of whoever brought the bot there)."""

        def change(stored: Chat | None) -> tuple[Chat, Chat]:
            chat = stored or Chat(
                id=chat_id, type=chat_type, title=title, lang=lang or DEFAULT_LANG
            )
            chat.type, chat.title = chat_type, title or chat.title
            chat.paused, chat.failures = False, 0
            return chat, chat

        return await self._change_chat(chat_id, change, "touch a chat")

    # ------------------------------ options, filters, pause, status, stats (issue 6, part B)
    async def update_options(
        self, chat_id: int, feed_url: str, changes: dict[str, Any]
    ) -> Subscription | None:
        """Change a subscription's options (SubscriptionOptions field -> value). A changed
        interval (set, lengthened, shortened or reset) reschedules the feed's next check."""

        async def attempt() -> Subscription | None:
            state = await self.store.load_feed(feed_url)
            sub = _subscription_in(state, chat_id)
            if state is None or sub is None:
                return None
            sub.options.update(changes)
            rescheduled = OPTIONS.changes_affect(changes, Effect.SCHEDULE)
            feeds = [self._rescheduled(state)] if rescheduled else []
            await self.store.update_subscriptions([sub], feeds, state.stamp)
            return show_fetch_settings(sub, state.feed)

        return await retry_on_conflict(attempt, f"options of {feed_url}")

    async def change_fetch(
        self, chat_id: int, feed_url: str, changes: Mapping[str, Any]
    ) -> FetchChange:
        """Change how a subscription's feed is fetched (Effect.FETCH options: `headers` a
        HeaderEdit, `auth` `user:password` or ""). Fetch settings are part of the feed's
        identity, so the subscription moves to the feed record fetched with them: keyed by its
        URL plus a fresh marker (never sent) and holding the headers, or the plain URL's record
        when none are left. The feed is fetched with new credentials first: when it does not
        answer with them, nothing changes (`error` says why); when it does, everything in it
        now counts as seen, as after /sub, on top of the old record's seen-set. The old record
        goes when nobody follows it any more; the subscription keeps its options."""
        state = await self.store.load_feed(feed_url)
        sub = _subscription_in(state, chat_id)
        if state is None or sub is None:
            return FetchChange(None)
        current = own_headers(state.feed.url, state.feed.request_headers)
        wanted = dict(current)
        if "headers" in changes:
            wanted = edited(wanted, changes["headers"])
        if "auth" in changes:
            wanted = with_auth(wanted, changes["auth"])
        base = without_credentials(state.feed.url)
        if wanted == current and (wanted or state.feed.url == base):
            return FetchChange(await self._row(chat_id, feed_url))
        target = with_marker(base, secrets.token_urlsafe(8)) if wanted else base
        probe = await self.probe(base, discover=False, headers=wanted) if wanted else None
        if probe is not None and probe.feed is None:
            return FetchChange(await self._row(chat_id, feed_url), error=probe.error)
        settings = self.settings

        async def attempt() -> bool:
            chat = await self.store.load_chat(chat_id)
            old = await self.store.load_feed(feed_url)
            moving = _subscription_in(old, chat_id)
            if old is None or moving is None:
                return False
            if any(r.subscription.feed_url == target for r in chat.rows):
                raise OptionError("set_fetch_exists")
            feed = _moved_feed(old.feed, target, wanted, probe, settings, moving)
            moved = dataclasses.replace(moving, feed_url=target)
            move = SubscriptionMove(chat_id, feed_url, moved, feed)
            await self.store.move_subscription(move, chat.stamp | old.stamp)
            return True

        async with self.chat_writes.hold(chat_id):
            done = await retry_on_conflict(attempt, f"fetch settings of {public_url(feed_url)}")
        return FetchChange(await self._row(chat_id, target if done else feed_url))

    async def _row(self, chat_id: int, feed_url: str) -> ListedSubscription | None:
        rows = await self.listing(chat_id)
        return next((r for r in rows if r.subscription.feed_url == feed_url), None)

    def _rescheduled(self, state: FeedState) -> Feed:
        """The feed with its next check from its subscribers' effective interval, as changed
        in `state`."""
        interval = effective_interval(state.subscriptions, self.settings.poll_interval)
        state.feed.next_check = rescheduled(state.feed, interval, time.time())
        return state.feed

    async def _change_chat(
        self,
        chat_id: int,
        change: Callable[[Chat | None], tuple[Chat | None, T]],
        what: str,
    ) -> T:
        """`change(stored chat)` -> (chat to save or None, result), decided again when the
        chat changed before it was saved."""

        async def attempt() -> T:
            record = await self.store.read_chat(chat_id)
            chat, result = change(record.chat)
            if chat is not None:
                await self.store.save_chat(chat, record.stamp)
            return result

        return await retry_on_conflict(attempt, f"{what} in {chat_id}")

    async def update_chat_wide(self, chat_id: int, changes: dict[str, Any]) -> int:
        """An option of the chat's own (`Option.chat_wide`: quiet hours, digest) for every
        feed it follows and those it adds later; returns how many feeds it follows."""

        async def attempt() -> int:
            state = await self.store.load_chat(chat_id)
            subs = [row.subscription for row in state.rows]
            for sub in subs:
                sub.options.update(changes)
            if subs:
                await self.store.update_subscriptions(subs, [], state.stamp)
            return len(subs)

        changed = await retry_on_conflict(attempt, f"options of chat {chat_id}")
        await self.update_defaults(chat_id, changes)
        return changed

    async def update_defaults(self, chat_id: int, changes: dict[str, Any]) -> SubscriptionOptions:
        """Change the options new subscriptions of this chat start with; None = built-in."""

        def change(stored: Chat | None) -> tuple[Chat, SubscriptionOptions]:
            chat = stored or Chat(id=chat_id)
            merged = {**chat.defaults, **changes}
            chat.defaults = {k: v for k, v in merged.items() if v is not None}
            return chat, SubscriptionOptions.from_dict(chat.defaults)

        return await self._change_chat(chat_id, change, "defaults")

    async def set_notices(self, chat_id: int, notices: int | None) -> Chat:
        """Where the notices about this chat's feeds go: a chat id, or None (into the chat
        itself, as before). Which chats are fit is for the caller to check (the user is there,
        the bot may write there)."""

        def change(stored: Chat | None) -> tuple[Chat, Chat]:
            chat = stored or Chat(id=chat_id)
            chat.notices = notices if notices != chat_id else None
            return chat, chat

        return await self._change_chat(chat_id, change, "notices")

    async def set_timezone(self, chat_id: int, timezone: str) -> Chat:
        """The chat's time zone, an IANA name already checked (bot.hours.find_zone)."""

        def change(stored: Chat | None) -> tuple[Chat, Chat]:
            chat = stored or Chat(id=chat_id)
            chat.timezone = timezone
            return chat, chat

        return await self._change_chat(chat_id, change, "timezone")

    async def chat_defaults(self, chat_id: int) -> SubscriptionOptions:
        chat = await self.store.get_chat(chat_id)
        return SubscriptionOptions.from_dict(chat.defaults if chat else {})

    async def set_filter(self, chat_id: int, feed_url: str | None, spec: str) -> bool:
        """The filter of one subscription, or (feed_url=None) of the whole chat."""

        if feed_url is None:

            def change(stored: Chat | None) -> tuple[Chat, bool]:
                chat = stored or Chat(id=chat_id)
                chat.filters = spec
                return chat, True

            return await self._change_chat(chat_id, change, "chat filter")
        url = feed_url

        async def attempt() -> bool:
            state = await self.store.load_feed(url)
            sub = _subscription_in(state, chat_id)
            if state is None or sub is None:
                return False
            sub.options.filters = spec
            await self.store.update_subscriptions([sub], [], state.stamp)
            return True

        return await retry_on_conflict(attempt, f"filter of {url}")

    async def chat_filter(self, chat_id: int) -> str:
        chat = await self.store.get_chat(chat_id)
        return chat.filters if chat else ""

    async def try_filter(
        self, chat_id: int, feed_url: str, feed_spec: str | None = None
    ) -> FilterTrial:
        """The feed's current posts, fetched now, each with what the subscription's filter (or
        `feed_spec`, a stored form not saved) and the chat's filter say of it."""
        state = await self.store.load_feed(feed_url)
        if feed_spec is None:
            sub = _subscription_in(state, chat_id)
            feed_spec = sub.options.filters if sub else ""
        chat_spec = await self.chat_filter(chat_id)
        own = state.feed.request_headers if state is not None else {}
        try:
            result = await self.fetcher.fetch(feed_url, headers=own)
            parsed = await parse_feed(
                result.body, result.url, result.content_type, pool=self.parse_pool
            )
        except FeedbotError as exc:
            return FilterTrial(feed_spec, chat_spec, error=exc.reason)
        return FilterTrial(feed_spec, chat_spec, trial(parsed.entries, feed_spec, chat_spec))

    async def pause(self, chat_id: int, feed_urls: Sequence[str]) -> tuple[str, ...]:
        """Pause these subscriptions (not checked, nothing sent); returns the ones newly paused."""

        async def attempt() -> tuple[str, ...]:
            now, changed, subs, feeds, stamp = time.time(), [], [], [], Stamp()
            for url in dict.fromkeys(feed_urls):
                state = await self.store.load_feed(url)
                sub = _subscription_in(state, chat_id)
                if state is not None and sub is not None and not sub.paused:
                    sub.paused, sub.paused_at = True, now
                    subs.append(sub)
                    feeds.append(self._rescheduled(state))  # others may have relied on it
                    changed.append(url)
                    stamp |= state.stamp
            if subs:
                await self.store.update_subscriptions(subs, feeds, stamp)
            return tuple(changed)

        return await retry_on_conflict(attempt, f"pause in {chat_id}")

    async def status(self, chat_id: int) -> ChatStatus:
        rows = listed((await self.store.load_chat(chat_id)).rows)
        collected = await self.store.digest_waiting(chat_id)
        soonest = min((item.due for item in collected), default=None)
        return ChatStatus(rows, await self.store.outbox_depth(chat_id), len(collected), soonest)

    async def operator_stats(self) -> StorageStats:
        return await self.store.stats()

    # ------------------------------------------------ languages, OPML import (issue 6)
    async def set_language(self, chat_id: int, chat_type: str, lang: str) -> Chat:
        def change(stored: Chat | None) -> tuple[Chat, Chat]:
            chat = stored or Chat(id=chat_id, type=chat_type)
            chat.lang = lang
            return chat, chat

        return await self._change_chat(chat_id, change, "language")

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

    # ------------------------------------------------ chats, for the handlers (issue 15)
    async def chat(self, chat_id: int) -> Chat | None:
        """The chat as stored, or None for a chat the bot never heard from."""
        return await self.store.get_chat(chat_id)

    async def chat_language(self, chat_id: int) -> str:
        """The language the bot speaks in the chat (the default for an unknown chat)."""
        chat = await self.store.get_chat(chat_id)
        return chat.lang if chat else DEFAULT_LANG


IMPORT_BATCH = 25


class ChatLocks:
    """An asyncio lock per chat id, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users <= 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)


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
        self.batch: list[tuple[ImportItem, Probe, ParsedFeed, Seen]] = []

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
        known = normalize_link(url)
        if known in self.known:
            return ImportItem(url, "exists", title)
        self.known.add(known)
        if self.room <= 0:  # full already: no need to fetch
            limit = limit_reason(self.service.settings.max_subscriptions)
            return ImportItem(url, "limit", title, limit)
        async with self.gate:
            probe = await self.service.probe(url, light=True)
        if probe.feed is None or probe.seen is None:
            reason = Reason("import_reason_several_feeds") if probe.choices else probe.error
            return ImportItem(url, "failed", title, reason)
        # a slot is taken only by a feed that answered: dead outlines never crowd out good ones
        if self.room <= 0:
            limit = limit_reason(self.service.settings.max_subscriptions)
            return ImportItem(url, "limit", title, limit)
        self.room -= 1
        item = ImportItem(probe.url, "added", title)
        self.batch.append((item, probe, probe.feed, probe.seen))
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
        store = self.service.store

        async def attempt() -> list[bool]:
            state = await store.load_chat(chat.id)
            news = [
                _imported(state, chat, probe, parsed, thread_id, settings, item.title, seen)
                for item, probe, parsed, seen in taken
            ]
            added = [new for new in news if new is not None]
            if added:
                await store.add_subscriptions(added, state.stamp)
            return [new is not None for new in news]

        async with self.service.chat_writes.hold(chat.id):
            results = await retry_on_conflict(attempt, f"import into {chat.id}")
        for (item, _, parsed, _), added in zip(taken, results, strict=True):
            item.status = "added" if added else "exists"
            item.title = item.title or parsed.title


def _imported(
    state: ChatState,
    chat: Chat,
    probe: Probe,
    parsed: ParsedFeed,
    thread_id: int | None,
    settings: Settings,
    title: str,
    seen: Seen | None = None,
) -> NewSubscription | None:
    """One imported feed as a new subscription (kept in `state` for the next one), or None
    when the chat has it already. A title other than the feed's becomes its custom title.
    `seen`: what `seen_of(parsed)` would give (when parsed holds no entries any more)."""
    new = _new_subscription(state, chat, probe, parsed, thread_id, settings, seen=seen)
    if new is None:
        return None
    if title.strip() and title.strip() != parsed.title:
        new.subscription.options.custom_title = title.strip()
    state.rows.append(SubscriptionRow(new.subscription, new.feed))
    return new


@dataclass(frozen=True)
class KnownFeed:
    url: str
    title: str


@dataclass
class _Precheck:
    count: int  # the chat's subscriptions
    known: list[KnownFeed | None]  # per address: the subscription it names already


def _sub_precheck(state: ChatState, addresses: Sequence[Address | NotAnAddress]) -> _Precheck:
    known = [
        _known_subscription(state.rows, a) if isinstance(a, Address) else None
        for a in addresses
    ]
    return _Precheck(len(state.rows), known)


def _known_subscription(rows: list[SubscriptionRow], address: Address) -> KnownFeed | None:
    """The chat's subscription that `address` names already (its feed or the page it was found
    on), found without any network call."""
    wanted = {canonical(u) for u in address.candidates}
    for row in rows:
        sub = row.subscription
        if canonical(sub.feed_url) in wanted or (sub.page and canonical(sub.page) in wanted):
            return KnownFeed(sub.feed_url, row.feed.title)
    return None


def listed(rows: list[SubscriptionRow]) -> list[ListedSubscription]:
    """A chat's subscriptions numbered as /list shows them, each with its feed's fetch
    settings in its options (Effect.FETCH: the card shows them, masked)."""
    for row in rows:
        show_fetch_settings(row.subscription, row.feed)
    return [ListedSubscription(n, r.subscription, r.feed) for n, r in enumerate(rows, start=1)]


def show_fetch_settings(sub: Subscription, feed: Feed) -> Subscription:
    """`sub` with its feed record's fetch settings in its options (Effect.FETCH: kept on the
    feed, shown on the card masked)."""
    own = own_headers(feed.url, feed.request_headers)
    sub.options.auth, sub.options.headers = basic_credentials(own), other_headers(own)
    return sub


@dataclass
class FetchChange:
    """/set N header|auth: the subscription as it is now (None: not followed any more), and
    why nothing changed when the feed did not answer with the new settings."""

    row: ListedSubscription | None
    error: Reason | None = None


def _moved_feed(
    old: Feed,
    url: str,
    headers: dict[str, str],
    probe: Probe | None,
    settings: Settings,
    sub: Subscription,
) -> Feed:
    """The record a subscription moves to (used only when the bot has none at `url`): the old
    record's title, link and seen-set, the new headers, and what the probe read (everything
    in the feed now counts as seen; its validators make the first check cheap)."""
    now = time.time()
    feed = Feed(url=url, title=old.title, link=old.link, seen=old.seen, request_headers=headers)
    feed.next_check = now  # checked soon: the first check with the new settings
    if probe is not None and probe.feed is not None:
        parsed = probe.feed
        prints = [p for e in parsed.entries for p in entry_prints(e)]
        feed.seen = remember_in_feed(old.seen, prints, seen_cap(len(parsed.entries)))
        feed.title, feed.link = parsed.title or old.title, parsed.link or old.link
        feed.etag, feed.last_modified = probe.fetch_etag, probe.fetch_last_modified
        feed.body_digest, feed.ttl_minutes = probe.fetch_digest, parsed.ttl_minutes
        feed.last_check = feed.last_success = now
        feed.next_check = now + effective_interval([sub], settings.poll_interval)
    return feed


def _subscription_in(state: FeedState | None, chat_id: int) -> Subscription | None:
    if state is None:
        return None
    return next((s for s in state.subscriptions if s.chat_id == chat_id), None)


def same_feed(feed: Feed, parsed: ParsedFeed) -> bool:
    """True when `parsed`, fetched under some other URL, is the stored `feed` (the same server
    under another name, say): same title and site link, and every entry already seen there."""
    if not parsed.entries or (feed.title, feed.link) != (parsed.title, parsed.link):
        return False
    seen = set(feed.seen)
    return all(is_seen(entry, seen) for entry in parsed.entries)


def _add_subscription(
    state: ChatState,
    chat: Chat,
    probe: Probe,
    parsed: ParsedFeed,
    thread_id: int | None,
    settings: Settings,
    created: float | None = None,
) -> tuple[str, Feed, NewSubscription | None]:
    """("added" | "exists" | "limit", the feed, what to store): the chat's feeds are compared by
    URL, by the page they were found on, and by content, so one feed is never followed twice."""
    for row in state.rows:
        sub, feed = row.subscription, row.feed
        found_on_same_page = bool(sub.page) and canonical(sub.page) == probe.discovered_from
        if canonical(sub.feed_url) == probe.url or found_on_same_page or same_feed(feed, parsed):
            return "exists", feed, None
    if len(state.rows) >= settings.max_subscriptions:
        return "limit", Feed(probe.url), None
    new = _new_subscription(state, chat, probe, parsed, thread_id, settings, created)
    return "added", new.feed if new is not None else Feed(probe.url), new


def find_row(rows: Sequence[ListedSubscription], ref: str) -> ListedSubscription | None:
    """The row `ref` names: its /list number, its feed's URL or the page the feed was found on
    (compared without tracking parameters, default port, case of the host, trailing slash)."""
    ref = strip_punctuation(ref)
    if ref.isdigit():
        n = int(ref)
        return rows[n - 1] if 1 <= n <= len(rows) else None
    address = read_address(ref)
    if isinstance(address, NotAnAddress):
        return None
    for url in address.candidates:
        for row in rows:
            sub = row.subscription
            if same_address(sub.feed_url, url) or (sub.page and same_address(sub.page, url)):
                return row
    return None


def _new_subscription(
    state: ChatState,
    chat: Chat,
    probe: Probe,
    parsed: ParsedFeed,
    thread_id: int | None,
    settings: Settings,
    created: float | None = None,
    seen: Seen | None = None,
) -> NewSubscription | None:
    """The feed (everything in it counts as seen, for the feed and the chat) and the
    subscription to store together; None when the chat already has it. `seen`: as in
    `_imported`."""
    now = time.time()
    if any(row.subscription.feed_url == probe.url for row in state.rows):
        return None
    feed = Feed(url=probe.url, title=parsed.title, link=parsed.link)  # if the bot has none
    feed.etag, feed.last_modified = probe.fetch_etag, probe.fetch_last_modified
    feed.body_digest, feed.ttl_minutes = probe.fetch_digest, parsed.ttl_minutes
    feed.last_check = feed.last_success = now
    feed.next_check = now + settings.poll_interval
    stored_chat = state.chat or chat
    subscription = Subscription(
        chat_id=chat.id,
        feed_url=probe.url,
        created=now if created is None else created,
        thread_id=thread_id,
        options=SubscriptionOptions.from_dict(stored_chat.defaults),
        page=probe.discovered_from,
    )
    prints, cap = seen if seen is not None else seen_of(parsed)
    return NewSubscription(subscription, feed, stored_chat, prints, cap, CHAT_SEEN_CAP)


# ------------------------------------------ options, filters, pause, status (issue 6, part B)
@dataclass
class FilterTrial:
    """/filter N test: the filters tried (stored forms) and the verdict on each current post,
    or why the feed could not be read."""

    feed_spec: str
    chat_spec: str
    posts: list[PostVerdict] = field(default_factory=list)
    error: Reason | None = None


@dataclass
class ChatStatus:
    rows: list[ListedSubscription]
    pending: int  # deliveries waiting in the outbox for this chat
    #: posts collected for the chat's digests, and when the first of them goes out
    collected: int = 0
    next_digest: float | None = None



