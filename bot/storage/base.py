"""The storage protocol: everything the rest of the bot knows about persistence.

Operations are named for what the bot does; none takes a callable, so a backend can be an
in-process engine (bot.storage.tinydb) or a database server shared by several processes.

Deciding and writing are apart. A use case that decides on stored state (a check deciding what
each chat is sent, /sub deciding whether a chat follows a feed already, /pause rescheduling a
feed) reads that state with `load_feed` / `load_chat` / `read_chat`, which return it with a
`Stamp`: the versions of every record the decision read. It decides with pure functions and hands
the result, with the stamp, to one write operation. The backend applies the whole result
atomically, or, when any record named in the stamp changed since the read, applies nothing and
raises `StorageConflict`; the use case then reads again and decides again (`retry_on_conflict`).
With SQL this is one transaction per write that checks the version columns of the stamped rows
(`SELECT ... FOR UPDATE`, compare, write, bump), so it holds across processes; in one process
with one storage thread it is a comparison of in-memory counters.

Durability is each operation's own business: a check's commit, a delivery's completion and every
command's change are on disk when the call returns; a 304's next-check time or a delivery's
attempt count may ride along with the next durable write (losing them is harmless).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from bot.models import Chat, Delivery, DigestItem, Feed, Prints, Subscription, as_prints

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how often a use case reads and decides again after a conflict before giving up
CONFLICT_RETRIES = 8


class StorageConflict(Exception):
    """A record the decision was based on changed before the write: nothing was written."""


@dataclass(frozen=True)
class Stamp:
    """The versions of the records a decision read (opaque to callers: only the backend that
    issued it reads it). Stamps of several reads combine with `|`."""

    versions: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __or__(self, other: Stamp) -> Stamp:
        return Stamp(MappingProxyType({**self.versions, **other.versions}))


# The records a stamp names, the same in every backend.
def feed_key(url: str) -> str:
    return f"feed:{url}"


def chat_key(chat_id: int) -> str:
    return f"chat:{chat_id}"


def sub_key(chat_id: int, url: str) -> str:
    return f"sub:{chat_id}:{url}"


#: the name the Telegraph account's token is stored under (`Storage.telegraph_token`)
TELEGRAPH_TOKEN = "telegraph_token"


def chat_subs_key(chat_id: int) -> str:
    """The set of a chat's subscriptions (a new one, or one gone, changes it)."""
    return f"subs-of:{chat_id}"


@dataclass
class FeedState:
    """A feed with its subscriptions and their chats, as a check or a notice decides on them."""

    feed: Feed
    #: by chat id
    subscriptions: list[Subscription]
    #: the subscribers' chats that exist (a missing one is a fresh `Chat(id)`)
    chats: dict[int, Chat]
    stamp: Stamp


@dataclass
class SubscriptionRow:
    subscription: Subscription
    feed: Feed


@dataclass
class ChatState:
    """A chat with its subscriptions (in /list order) and their feeds."""

    chat: Chat | None
    rows: list[SubscriptionRow]
    stamp: Stamp


@dataclass
class ChatRecord:
    chat: Chat | None
    stamp: Stamp


@dataclass
class FeedCommit:
    """What a check (or a failure, a 304, a /resume) changes, applied as one atomic write."""

    #: the feed's new state
    feed: Feed
    expected: Stamp
    #: chats whose state changed (their seen-sets)
    chats: list[Chat] = field(default_factory=list)
    #: subscriptions whose state changed (paused by a failing feed, resumed)
    subscriptions: list[Subscription] = field(default_factory=list)
    #: in each chat's order; the backend numbers them (`Delivery.seq`)
    deliveries: list[Delivery] = field(default_factory=list)
    #: every redirect hop was permanent: the feed (state, subscriptions, outbox) moves here
    moved_to: str | None = None
    #: posts collected for digests (the chats' seen-sets above count them as seen)
    digest_items: list[DigestItem] = field(default_factory=list)


@dataclass
class NewSubscription:
    """A subscription to create. Its feed and chat are created as given when the bot has none;
    either way everything in the feed now (`prints`, oldest first) counts as seen by both: see
    `remember_in_feed` and `remember_in_chat`. These merges are the backend's, on the stored
    records, so that chats subscribing to one feed at once do not conflict."""

    subscription: Subscription
    feed: Feed
    chat: Chat
    prints: list[str] = field(default_factory=list)
    #: how many prints the feed's and the chat's seen-sets keep (0: no bound)
    feed_cap: int = 0
    chat_cap: int = 0


@dataclass
class SubscriptionMove:
    """One chat's subscription moving to another feed record: its fetch settings changed
    (request headers, basic auth: part of the feed's identity, bot.service.change_fetch).
    `subscription` is at its new `feed_url`, everything else of it kept; `feed` is the new
    feed's record, stored as given when the bot has none (a stored one is kept as it is)."""

    chat_id: int
    old_url: str
    subscription: Subscription
    feed: Feed


def remember_in_feed(seen: Sequence[str], prints: Sequence[str], cap: int) -> Prints:
    """A feed's seen-set with `prints` as its newest (those already there move up; packed:
    no print is unpacked to text)."""
    return as_prints(seen).with_newest(prints, cap)


def remember_in_chat(seen: Sequence[str], prints: list[str], cap: int) -> Prints:
    """A chat's seen-set with `prints` added after it (those already there stay put)."""
    return as_prints(seen).with_added(prints, cap)


@dataclass(frozen=True)
class StorageStats:
    chats: int
    feeds: int
    subscriptions: int
    paused: int
    outbox: int
    failing: int
    retired: int


@dataclass
class RelayedCall:
    """A Bot API call (a reply, an edit, an alert) that a process without the sender's seat
    hands to the active sender, so that one process owns Telegram's limits (bot.delivery.relay).
    `params` are JSON-ready (PTB's request parameters as they would go on the wire)."""

    id: str
    endpoint: str
    params: dict[str, Any]
    priority: int
    created: float


@dataclass
class CallAnswer:
    """What Telegram answered a relayed call: its JSON result, or the error it raised."""

    ok: bool
    result: Any = None
    #: the exception's class name (BadRequest, Forbidden, TimedOut, ...) and message
    error: str = ""
    message: str = ""


#: the topics `Storage.watch` knows: new deliveries queued, a call relayed, a call answered
TOPIC_OUTBOX, TOPIC_CALLS, TOPIC_ANSWERS = "outbox", "calls", "answers"


@dataclass
class StoredState:
    """Everything a storage holds, as it is (`export_all`, `import_all`: moving a bot's state
    from one backend to another). Records in a fixed order: feeds by URL, chats by id,
    subscriptions by chat then URL, deliveries by chat then seq (each keeps its seq)."""

    feeds: list[Feed] = field(default_factory=list)
    chats: list[Chat] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    #: by chat, topic, then when collected
    digest_items: list[DigestItem] = field(default_factory=list)

    def sorted(self) -> StoredState:
        return StoredState(
            sorted(self.feeds, key=lambda f: f.url),
            sorted(self.chats, key=lambda c: c.id),
            sorted(self.subscriptions, key=lambda s: (s.chat_id, s.feed_url)),
            sorted(self.deliveries, key=lambda d: (d.chat_id, d.seq)),
            sorted(self.digest_items, key=digest_order),
        )

    @property
    def empty(self) -> bool:
        return not (
            self.feeds or self.chats or self.subscriptions or self.deliveries
            or self.digest_items
        )


def digest_order(item: DigestItem) -> tuple[int, int, float, str]:
    """Digest items by chat, topic, then when collected (how `due_digests` returns them)."""
    return (item.chat_id, item.thread_id or 0, item.created, item.id)


class Storage(Protocol):
    # ------------------------------------------------------------------ feeds
    async def due_feeds(self, now: float) -> list[Feed]:
        """Feeds with an active subscriber, not retired, due by `now`; soonest first."""
        ...

    async def get_feed(self, url: str) -> Feed | None: ...

    async def save_feed(self, feed: Feed) -> None: ...

    async def load_feed(self, url: str) -> FeedState | None:
        """The feed, its subscriptions and their chats, stamped; None when there is no feed."""
        ...

    async def commit_check(self, commit: FeedCommit) -> None:
        """A successful check: feed state, seen-sets, deliveries (and a move), durably, in one
        write; StorageConflict when a stamped record changed."""
        ...

    async def record_not_modified(self, commit: FeedCommit) -> None:
        """A 304: like commit_check, but durable only when it tells or moves something."""
        ...

    async def record_failure(self, commit: FeedCommit) -> None:
        """A failed check with its notices and pauses: like commit_check."""
        ...

    async def postpone_check(self, url: str, next_check: float) -> None:
        """Set a feed's next check (after a crash of its check); harmless to lose."""
        ...

    async def claim_due_feeds(self, now: float, limit: int, lease_s: float) -> list[FeedState]:
        """Up to `limit` of `due_feeds(now)`, soonest first, leased to this storage for
        `lease_s` seconds: until the lease ends no other storage on the same data (another
        process) claims them. A check's commit (200, 304, failure, postponement) ends the lease;
        a checker that dies leaves it to run out, and its feeds fall due again. Each comes as
        `load_feed` reads it, stamped, so a check needs no read of its own (a change after the
        claim makes its commit conflict, and the check decides again on a fresh read)."""
        ...

    async def resume_subscription(self, commit: FeedCommit) -> None:
        """/resume: the subscription unpaused, the feed due, what the chat is owed; durable."""
        ...

    # ---------------------------------------------------------- subscriptions
    async def subscriptions_for_chat(self, chat_id: int) -> list[Subscription]:
        """In /list order: by creation time, then URL."""
        ...

    async def subscriptions_for_feed(self, url: str) -> list[Subscription]:
        """By chat id."""
        ...

    async def save_subscription(self, sub: Subscription) -> None: ...

    async def remove_subscription(self, chat_id: int, url: str) -> bool:
        """False when there was none; a feed left without subscribers is removed with it."""
        ...

    async def remove_subscriptions(self, chat_id: int, urls: Sequence[str]) -> None:
        """Several of one chat's subscriptions, in one write."""
        ...

    async def add_subscriptions(self, new: Sequence[NewSubscription], expected: Stamp) -> None:
        """Create subscriptions with their feeds and chats in one write (StorageConflict)."""
        ...

    async def update_subscriptions(
        self, subs: Sequence[Subscription], feeds: Sequence[Feed], expected: Stamp
    ) -> None:
        """Options, filters or pauses changed, and the feeds rescheduled (StorageConflict)."""
        ...

    async def move_subscription(self, move: SubscriptionMove, expected: Stamp) -> None:
        """In one write: the new feed created (unless stored), the subscription moved there
        (the chat's queued deliveries of the old feed name the new one), the old feed removed
        when nobody follows it any more. StorageConflict when a stamped record changed."""
        ...

    # ------------------------------------------------------------------ chats
    async def get_chat(self, chat_id: int) -> Chat | None: ...

    async def read_chat(self, chat_id: int) -> ChatRecord: ...

    async def load_chat(self, chat_id: int) -> ChatState:
        """The chat, its subscriptions and their feeds, stamped."""
        ...

    async def save_chat(self, chat: Chat, expected: Stamp | None = None) -> None:
        """Durable; with `expected`, StorageConflict when the chat changed since the read."""
        ...

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: the chat, its subscriptions and its outbox move."""
        ...

    # ----------------------------------------------------------------- outbox
    async def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        """Queue deliveries (numbered in order) durably."""
        ...

    async def pending(self) -> list[Delivery]:
        """Every delivery not yet completed, by chat, then seq."""
        ...

    async def outbox_depth(self, chat_id: int | None = None) -> int:
        """Deliveries waiting, in all or in one chat."""
        ...

    async def complete(self, delivery_id: str) -> None:
        """Telegram accepted it: removed durably before the chat's next message goes out."""
        ...

    async def record_attempt(self, delivery: Delivery) -> None:
        """A delivery's attempt count; harmless to lose."""
        ...

    async def drop_chat_deliveries(self, chat_id: int) -> int:
        """Remove a chat's whole queue (and the posts collected for its digests); returns how
        many deliveries went."""
        ...

    # ---------------------------------------------------------------- digests
    async def due_digests(self, now: float, chats: int) -> list[DigestItem]:
        """The collected posts (`FeedCommit.digest_items`) due by `now` of up to `chats` chats,
        each chat's due ones all, in `digest_order`."""
        ...

    async def digest_waiting(self, chat_id: int) -> list[DigestItem]:
        """The posts a chat has collected for its digests, due or not, in `digest_order`."""
        ...

    async def commit_digest(self, taken: Sequence[str], deliveries: Sequence[Delivery]) -> None:
        """A digest made: the items `taken` (by id) removed and `deliveries` queued, durably,
        in one write; StorageConflict, writing nothing, when any of them is gone (another
        process made that digest first)."""
        ...

    # ------------------------------------------- several processes, one bot
    async def try_lead(self, seat: str) -> bool:
        """Hold the seat named `seat` (one holder among every process on the same data), or
        confirm it is still held: True while this storage holds it. Held until `step_down`,
        `close`, or the process's death (then another may take it at once)."""
        ...

    async def step_down(self, seat: str) -> None: ...

    async def watch(self, topic: str) -> asyncio.Event:
        """An event set whenever `topic` is announced by any process on the same data (new
        deliveries queued, a call relayed or answered). The watcher clears it before it looks
        for work, so no announcement is missed."""
        ...

    async def record_sends(self, chat_ids: Sequence[int]) -> None:
        """Messages just sent to these chats, outside the outbox (replies, alerts): what a
        sender taking over counts against each chat's allowance. Harmless to lose. A
        delivery's `complete` records its own."""
        ...

    async def recent_sends(self, within_s: float) -> list[tuple[int, float]]:
        """(chat id, seconds ago) of every message sent in the last `within_s` seconds by any
        process, oldest first."""
        ...

    async def relay_call(self, call: RelayedCall) -> None:
        """Queue a call for the active sender (announced on TOPIC_CALLS); durable."""
        ...

    async def take_calls(self, limit: int, lease_s: float) -> list[RelayedCall]:
        """Relayed calls not yet answered nor taken (or whose taker's lease ran out), by
        priority then age, taken for `lease_s` seconds."""
        ...

    async def answer_call(self, call_id: str, answer: CallAnswer) -> None:
        """Telegram's answer to a relayed call (announced on TOPIC_ANSWERS)."""
        ...

    async def collect_answer(self, call_id: str) -> CallAnswer | None:
        """The answer to a call this process relayed, removing the call; None while there
        is none yet."""
        ...

    # -------------------------------------------------------- the bot's own
    async def telegraph_token(self) -> str | None:
        """The token of the Telegraph account Instant View pages are published with; None
        until one is kept."""
        ...

    async def keep_telegraph_token(self, token: str) -> str:
        """Keep a new account's token, durably, unless one is kept already (another process
        made one first): returns the token kept, which every page is then published with."""
        ...

    # ------------------------------------------------------------ the whole
    async def stats(self) -> StorageStats: ...

    async def export_all(self) -> StoredState:
        """Every record, as stored (one consistent read)."""
        ...

    async def import_all(self, state: StoredState) -> None:
        """Replace everything stored with `state`, as it is (deliveries keep their seq; later
        ones are numbered after them), durably, in one write."""
        ...

    async def flush_due(self) -> None:
        """Housekeeping the bot runs now and then (write changes that may wait)."""
        ...

    async def close(self) -> None:
        """Everything on disk; the storage is not used after."""
        ...


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a read-decide-write `attempt` again while its write meets a conflict (bounded)."""
    for tries in range(CONFLICT_RETRIES):
        try:
            return await attempt()
        except StorageConflict:
            log.debug(
                "%s: stored state changed meanwhile (try %d); deciding again", what, tries + 1
            )
            await asyncio.sleep(random.uniform(0, 0.005 * 2**tries))  # writers drift apart
    return await attempt()
