"""The nouns of feedbot: plain dataclasses shared by every stage of the pipeline.

Data flows one way: config -> tick -> fetch -> parse -> diff -> render -> deliver -> store.
Each stage takes and returns these types; none of them does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, overload

from bot.errors import Reason
from bot.options import SubscriptionOptions as SubscriptionOptions  # declared with the registry

#: the longest a feed-supplied name may be wherever it reaches a reply or a post (characters;
#: post titles have their own, longer cut in bot.render)
MAX_FEED_TITLE = 200
MAX_AUTHOR = 200
MAX_CATEGORY = 100
MAX_CATEGORIES = 30


def capped(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


#: bytes per identity print (bot.feeds.identity.fingerprint: 8-byte blake2b, 16 hex digits)
PRINT_BYTES = 8


def pack_print(item: str) -> bytes:
    """One print as its 8 bytes; anything that is not 16 hex digits is taken as a key and
    stands for its print (records from versions that kept keys, and tests, stay meaningful)."""
    if len(item) == 2 * PRINT_BYTES:
        try:
            return bytes.fromhex(item)
        except ValueError:
            pass
    return hashlib.blake2b(item.encode(), digest_size=PRINT_BYTES).digest()


def pack_prints(items: Iterable[str]) -> bytes:
    if isinstance(items, Prints):
        return items.packed
    listed = list(items)
    if all(len(p) == 2 * PRINT_BYTES for p in listed):
        try:  # the usual case, in one C call
            return bytes.fromhex("".join(listed))
        except ValueError:
            pass
    return b"".join(pack_print(p) for p in listed)


def as_prints(seen: Sequence[str]) -> Prints:
    """`seen` as packed prints (itself when it is packed already)."""
    return seen if isinstance(seen, Prints) else Prints(seen)


class Prints(Sequence[str]):
    """A seen-set: identity prints, oldest first, packed 8 bytes each.

    A seen-set of 2,000 prints is 16 KB here against about 140 KB as a list of strings, and
    storage hands it over without unpacking: a check that finds nothing new never looks
    inside. It reads as a sequence of 16-hex-digit prints; membership is a set lookup (built
    on first use). Immutable: a changed seen-set is a new list or a new Prints."""

    __slots__ = ("_members", "packed")

    def __init__(self, items: Iterable[str] | bytes = b"") -> None:
        if isinstance(items, bytes | bytearray | memoryview):
            packed = bytes(items)
            if len(packed) % PRINT_BYTES:
                raise ValueError("packed prints must be a multiple of 8 bytes long")
        else:
            packed = pack_prints(items)
        self.packed: bytes = packed
        self._members: frozenset[bytes] | None = None

    def __len__(self) -> int:
        return len(self.packed) // PRINT_BYTES

    def __iter__(self) -> Iterator[str]:
        digits, step = self.packed.hex(), 2 * PRINT_BYTES
        return (digits[i : i + step] for i in range(0, len(digits), step))

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return list(self)[index]
        at = range(len(self))[index] * PRINT_BYTES
        return self.packed[at : at + PRINT_BYTES].hex()

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        if self._members is None:
            self._members = frozenset(self._chunks())
        return pack_print(item) in self._members

    def holds(self, packed_print: bytes) -> bool:
        """Whether one packed print is here: a scan of the packed bytes in C, cheaper than the
        member set for the few lookups of a chat's seen-set during a fan-out."""
        packed = self.packed
        at = packed.find(packed_print)
        while at > 0 and at % PRINT_BYTES:
            at = packed.find(packed_print, at + 1)
        return at >= 0

    def with_added(self, items: Iterable[str], cap: int) -> Prints:
        """This seen-set with `items` added after it, those already here staying put (a chat's
        seen-set), the newest `cap` kept (0: no bound). Stays packed: no print is unpacked."""
        listed = [pack_print(item) for item in items]
        if len(listed) > 64:  # many lookups: the member set pays for itself
            self._members = self._members or frozenset(self._chunks())
        taken: set[bytes] = set()
        added = bytearray()
        for packed_print in listed:
            known = packed_print in self._members if self._members else self.holds(packed_print)
            if not known and packed_print not in taken:
                taken.add(packed_print)
                added += packed_print
        if not added and (cap <= 0 or len(self) <= cap):
            return self
        merged = self.packed + bytes(added)
        return Prints(merged[-cap * PRINT_BYTES :] if cap > 0 else merged)

    def with_newest(self, items: Iterable[str], cap: int) -> Prints:
        """This seen-set with `items` as its newest, in their order (one already here moves up
        to its new place: a feed's seen-set), the newest `cap` kept (0: no bound). Stays
        packed: no print is unpacked."""
        merged = dict.fromkeys(self._chunks())
        for packed_print in Prints(items)._chunks():
            merged.pop(packed_print, None)
            merged[packed_print] = None
        keys = list(merged)
        return Prints(b"".join(keys[-cap:] if cap > 0 else keys))

    def _chunks(self) -> Iterator[bytes]:
        packed, step = self.packed, PRINT_BYTES
        return (packed[i : i + step] for i in range(0, len(packed), step))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Prints):
            return self.packed == other.packed
        if isinstance(other, list | tuple):
            return self.packed == pack_prints(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.packed)

    def __repr__(self) -> str:
        return f"Prints({list(self)!r})"


@dataclass(frozen=True)
class Enclosure:
    url: str
    type: str = ""
    length: int | None = None


@dataclass(frozen=True)
class Entry:
    """One post of a feed, as parsed; `key` is its stable identity (see bot.feeds.identity)."""

    key: str
    title: str
    link: str
    published: datetime | None = None
    author: str = ""
    #: the richest HTML body the feed gives (content:encoded / atom content, else summary)
    content_html: str = ""
    #: first picture of the post: media:content / media:thumbnail / image enclosure / first <img>
    image_url: str | None = None
    enclosures: tuple[Enclosure, ...] = ()
    categories: tuple[str, ...] = ()
    #: other identities of the same post (e.g. its normalised link) used to survive guid wobble
    alt_keys: tuple[str, ...] = ()
    #: identity prints carried over from an earlier check, for an item not parsed again (see
    #: bot.feeds.parse_delta); such a stub has no key or text. Empty: prints come from the keys.
    prints: tuple[str, ...] = ()
    #: every meaningful picture of the post, best first (`image_url` among them when set): 2-10
    #: of them make an album. Filled by the parser; junk filtering belongs to whoever fills it
    images: tuple[str, ...] = ()
    #: the episode's own artwork (per-item itunes:image), for audio and video posts
    artwork_url: str | None = None
    #: itunes:duration in seconds, when the feed gives it
    duration: int | None = None

    def __post_init__(self) -> None:
        # a feed may say anything, at any length: names are cut where the feed is read
        object.__setattr__(self, "author", capped(self.author, MAX_AUTHOR))
        categories = tuple(capped(c, MAX_CATEGORY) for c in self.categories[:MAX_CATEGORIES])
        object.__setattr__(self, "categories", categories)


@dataclass(frozen=True)
class ParsedFeed:
    """What one feed document says right now."""

    title: str
    link: str
    entries: list[Entry]
    #: RSS <ttl> in minutes, when given
    ttl_minutes: int | None = None
    #: feedparser's bozo exception text for ill-formed but still usable feeds
    warning: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", capped(self.title, MAX_FEED_TITLE))


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one successful HTTP exchange for a feed (errors raise bot.errors.FetchError)."""

    url: str  # the URL finally answered (after redirects)
    status: int  # 200 or 304
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    #: set when every redirect hop was permanent (301/308): the feed moved here
    permanent_url: str | None = None
    #: seconds the server asks us to wait before the next request (Cache-Control max-age)
    max_age: int | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @cached_property
    def body_digest(self) -> str:
        """What `Feed.body_digest` compares: computed once per fetch."""
        return hashlib.blake2b(self.body, digest_size=16).hexdigest()


@dataclass
class Feed:
    """Stored state of one feed URL, shared by all its subscribers."""

    url: str
    title: str = ""
    link: str = ""
    etag: str | None = None
    last_modified: str | None = None
    #: prints of the most recent entries, newest last, bounded (see bot.feeds.diff.SEEN_MIN)
    seen: Sequence[str] = field(default_factory=Prints)
    next_check: float = 0.0
    last_check: float | None = None
    last_success: float | None = None
    last_new_entry: float | None = None
    errors: int = 0  # consecutive failed checks
    last_error: str = ""  # English, for the log (and the reason of records from older versions)
    last_error_kind: str = ""
    #: the last error's Reason.to_dict(): shown to users in their language
    last_reason: dict[str, Any] = field(default_factory=dict)
    failing_since: float | None = None
    #: set once subscribers were told the feed is failing (so recovery can be announced)
    failure_notified: bool = False
    retired: bool = False  # 410 Gone
    #: when the subscriptions were last paused for failing (a resumed feed gets a fresh window)
    last_paused: float | None = None
    #: digest of the last document a check committed: the same bytes again (a server that
    #: ignores conditional GET) are handled like a 304, with nothing parsed
    body_digest: str = ""
    #: the feed's own <ttl> in minutes at its last committed check (a floor for the next check,
    #: kept for the checks that parse nothing: 304s and unchanged bodies)
    ttl_minutes: int | None = None
    #: what each item of the last committed document means (bot.feeds.parse_delta.ItemRecord,
    #: packed): the next check parses only items whose bytes changed, after a restart too
    item_records: bytes = b""
    #: the request headers this feed record is fetched with (the subscription's own, basic
    #: auth among them: bot.feeds.request_headers); such a feed's URL carries a marker that
    #: keys it apart from the plain feed's record (bot.feeds.urls.with_marker)
    request_headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def failure_reason(self) -> Reason:
        """Why the last check failed; an old record without a reason key gives its English."""
        if self.last_reason.get("key"):
            return Reason.from_dict(self.last_reason)
        return Reason.legacy(self.last_error or self.last_error_kind)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feed:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Subscription:
    chat_id: int
    feed_url: str
    created: float = 0.0
    #: forum topic the subscription posts into
    thread_id: int | None = None
    paused: bool = False
    options: SubscriptionOptions = field(default_factory=SubscriptionOptions)
    #: when /pause paused it: /resume's catch-up sends only posts from about then on
    paused_at: float | None = None
    #: the web page the feed was found on, when /sub was given a page (so /unsub knows it too)
    page: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["options"] = self.options.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subscription:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        options = SubscriptionOptions.from_dict(known.pop("options", None) or {})
        return cls(options=options, **known)


@dataclass
class Chat:
    id: int
    type: str = "private"  # private | group | supergroup | channel
    title: str = ""
    paused: bool = False  # bot blocked / kicked: deliveries stop until /start or re-add
    failures: int = 0  # consecutive "forbidden / not found" answers
    lang: str = "en"
    #: prints of recent entries delivered (or marked seen) in this chat, newest last, bounded:
    #: a post reaching the chat through two feeds is sent once
    seen: Sequence[str] = field(default_factory=Prints)
    filters: str = ""  # chat-wide filter terms
    defaults: dict[str, Any] = field(default_factory=dict)
    #: feed-choice cards still open in this chat: token -> PendingChoice.to_dict() (bot.service)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: where the bot's notices about this chat's feeds go (failing, recovered, gone, paused): a
    #: chat id (`/set @channel notices me`); None: into this chat itself
    notices: int | None = None
    #: the chat's IANA time zone (`/set timezone Europe/Berlin`): dates in its posts and
    #: replies, quiet hours
    timezone: str = "UTC"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chat:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class ApiCall:
    """One Bot API request exactly as sent, minus chat_id (and message_thread_id)."""

    method: str  # "sendMessage" | "sendPhoto" | "sendAudio" | "sendVideo" | "sendMediaGroup"
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiCall:
        return cls(method=data["method"], params=dict(data["params"]))


@dataclass(frozen=True)
class RenderedMessage:
    """A post rendered for Telegram: the calls to try, in order.

    `attempts[0]` is the best form (a photo with caption, or rich HTML text). Each later one is a
    safer fallback (text instead of a photo, plain text instead of HTML) that the sender tries when
    Telegram rejects the content of the previous one. Never empty.

    `follow_up` is a second message the post needs right after this one (the text of a post sent
    as an album or as media whose caption could not hold it): the poller queues it as its own
    Delivery, next in the chat's order. It is not part of the stored form of this message.
    """

    attempts: tuple[ApiCall, ...]
    follow_up: RenderedMessage | None = None

    def to_list(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.attempts]

    @classmethod
    def from_list(cls, data: list[dict[str, Any]]) -> RenderedMessage:
        return cls(attempts=tuple(ApiCall.from_dict(d) for d in data))


@dataclass
class Delivery:
    """One pending message for one chat, kept in the outbox until Telegram accepted it."""

    id: str
    chat_id: int
    feed_url: str
    entry_key: str
    message: RenderedMessage
    created: float
    thread_id: int | None = None
    silent: bool = False
    #: per-chat monotonically increasing order; the sender serves a chat's deliveries in this order
    seq: int = 0
    attempts: int = 0
    #: the rest of a post whose first message could not hold it all: sent as a reply to the
    #: delivery before it in the chat (same entry), when the sender still knows that message
    reply_to_previous: bool = False
    #: the epoch second before which the sender may not send it (quiet hours, bot.hours); 0:
    #: at once. The chat's later deliveries wait behind it (a chat's order is kept)
    not_before: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        held = {"not_before": self.not_before} if self.not_before else {}  # older records: none
        return {
            "id": self.id,
            "chat_id": self.chat_id,
            "feed_url": self.feed_url,
            "entry_key": self.entry_key,
            "message": self.message.to_list(),
            "created": self.created,
            "thread_id": self.thread_id,
            "silent": self.silent,
            "seq": self.seq,
            "attempts": self.attempts,
            "reply_to_previous": self.reply_to_previous,
            **held,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            id=data["id"],
            chat_id=int(data["chat_id"]),
            feed_url=data["feed_url"],
            entry_key=data["entry_key"],
            message=RenderedMessage.from_list(data["message"]),
            created=float(data["created"]),
            thread_id=data.get("thread_id"),
            silent=bool(data.get("silent", False)),
            seq=int(data.get("seq", 0)),
            attempts=int(data.get("attempts", 0)),
            reply_to_previous=bool(data.get("reply_to_previous", False)),
            not_before=float(data.get("not_before") or 0.0),
        )


@dataclass
class DigestItem:
    """A post collected for a chat's digest (the subscription's `digest` option, bot.digest):
    kept until the digest it belongs to is queued (`due`, an epoch second), then rendered with
    the chat's other due items into one message (bot.render.digest)."""

    id: str
    chat_id: int
    feed_url: str
    #: the feed's name as the subscriber sees it (its custom title, else the feed's)
    feed_title: str
    title: str
    link: str
    due: float
    created: float
    thread_id: int | None = None
    entry_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DigestItem:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
