"""Parse only the items that changed since a feed's last check.

A feed that changed usually differs from its last fetch by one new item on top; its other items
are the same bytes as before. feedparser costs about 10 ms per 40 KB feed, nearly all of it in the
items, so re-parsing 29 known items to find 1 new one is most of a poll cycle's CPU.

`split_items` finds each item's bytes with expat (C, about 0.3 ms for 40 KB). An item whose bytes,
read in the same context (the document's prologue, root and channel start tags and namespaces, its
URL and content type), hash the same as an item of the last committed document needs no parsing: its
`ItemRecord` (identity prints, link identity, date) is all the diff needs. The rest is parsed by
feedparser as before, with the known items cut out of the document, and `merge` puts the feed back
together in document order: parsed entries for changed items, record-backed stubs for the others
(`Entry.prints` set, no text). A stub is never delivered: when the diff would call one new
(its prints are gone from the seen-set), the caller parses the whole document instead.

Documents that expat cannot split (not well-formed, JSON, UTF-16, items feedparser counts
differently) are parsed whole, as before. The result is the same as `parse_bytes` either way;
tests/test_parse_delta.py compares the two on generated feeds, the seeds and the corpus.
"""

from __future__ import annotations

import hashlib
import math
import struct
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot.errors import ParseError
from bot.feeds.diff import document_prints, new_entries, oldest_first
from bot.feeds.identity import BY_LINK, NO_SECOND, fingerprint, second_identities
from bot.feeds.parser import link_key, parse_bytes, parse_document, tdl_key
from bot.models import Entry, ParsedFeed, Prints, pack_prints

_ITEMS = frozenset({"item", "entry"})
#: where an item/entry element is a feed's item: RSS 0.9x/2.0, RSS 0.90, RSS 1.0, Atom 1.0, 0.3
_FEED_NAMESPACES = frozenset({
    "",
    "http://my.netscape.com/rdf/simple/0.9/",
    "http://purl.org/rss/1.0/",
    "http://www.w3.org/2005/Atom",
    "http://purl.org/atom/ns#",
})
#: item hash, key print, link-key print (zeros: no link), key is the link, published (NaN: none),
#: title-date-link print (zeros: none)
_RECORD = struct.Struct("<8s8s8s?d8s")
_NO_LINK = bytes(8)


@dataclass(frozen=True)
class ItemRecord:
    """What the diff needs of an item parsed on an earlier check."""

    item_hash: bytes
    key_print: str
    link_print: str  # "" when the entry has no link
    key_is_link: bool
    published: float | None
    tdl_print: str = ""  # "" when the entry lacks a title, a date or a link

    def pack(self) -> bytes:
        link = bytes.fromhex(self.link_print) if self.link_print else _NO_LINK
        tdl = bytes.fromhex(self.tdl_print) if self.tdl_print else _NO_LINK
        when = math.nan if self.published is None else self.published
        return _RECORD.pack(
            self.item_hash, bytes.fromhex(self.key_print), link, self.key_is_link, when, tdl
        )

    @classmethod
    def unpack_all(cls, blob: bytes) -> list[ItemRecord]:
        """The records of `blob` (none when it is not whole records: they are only a shortcut)."""
        if len(blob) % _RECORD.size:
            return []
        return [
            cls(h, key.hex(), "" if link == _NO_LINK else link.hex(), is_link,
                None if math.isnan(when) else when, "" if tdl == _NO_LINK else tdl.hex())
            for h, key, link, is_link, when, tdl in _RECORD.iter_unpack(blob)
        ]


@dataclass(frozen=True)
class ChangedItems:
    """A worker's answer: the parsed changed items, and every item's hash in document order."""

    #: entries of the changed items only (document order, no alt keys); every entry when
    #: `hashes` is None (the document could not be split; alt keys added)
    parsed: ParsedFeed
    hashes: tuple[bytes, ...] | None
    #: which of `hashes` were parsed (the others were known)
    changed: tuple[bool, ...] = ()


# ------------------------------------------------------------------ worker side
def split_items(body: bytes) -> tuple[bytes, list[tuple[int, int]]] | None:
    """(context, item byte spans) of an RSS/RDF/Atom document; None when there is no safe split.

    Items are `item`/`entry` elements of a feed namespace, children of the root or its channel.
    No split for what namespace-aware expat (feedparser's strict parser) rejects: feedparser
    would read the whole document with its loose parser, and a cut one perhaps not. Nor when
    an item-named element sits anywhere else, or an item is an empty element."""
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:64]:
        return None  # UTF-16/32: byte spans are fine, but not worth the risk
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    stack: list[str] = []
    spans: list[tuple[int, int]] = []
    context: list[str] = []
    start = -1
    ok = True

    def on_namespace(prefix: str | None, uri: str) -> None:
        if start < 0:  # declared on the root or the channel (or an item's own start tag)
            context.append(f"xmlns:{prefix}={uri}")

    def on_start(name: str, attrs: dict[str, str]) -> None:
        nonlocal start, ok
        stack.append(name)
        if len(stack) == 1:  # the prologue (a DOCTYPE may declare entities) and the root
            context.append(body[: parser.CurrentByteIndex].decode("latin-1"))
        if len(stack) == 1 or (len(stack) == 2 and _local(name) == "channel"):
            context.append(repr((name, attrs)))  # xml:base, xml:lang, version
        elif _local(name) in _ITEMS:
            if start >= 0 or not _is_item_position(stack):
                ok = False
            start = parser.CurrentByteIndex

    def on_end(name: str) -> None:
        nonlocal start, ok
        stack.pop()
        if start >= 0 and _local(name) in _ITEMS and len(stack) in (1, 2):
            at = parser.CurrentByteIndex
            if body[at : at + 2] != b"</":
                ok = False  # an empty element: expat points past it, no span to cut
            spans.append((start, body.find(b">", at) + 1))
            start = -1

    parser.StartNamespaceDeclHandler = on_namespace
    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    try:
        parser.Parse(body, True)
    except (xml.parsers.expat.ExpatError, ValueError, LookupError):  # also: odd encodings
        return None
    return ("\x00".join(context).encode("utf-8", "replace"), spans) if ok else None


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def _is_item_position(stack: list[str]) -> bool:
    namespace = stack[-1].rpartition(" ")[0]
    if namespace not in _FEED_NAMESPACES:
        return False
    return len(stack) == 2 or (len(stack) == 3 and _local(stack[1]) == "channel")


def item_hasher(context: bytes) -> Callable[[bytes], bytes]:
    """Hash of an item's bytes read in `context`: the same bytes in another context differ."""
    key = hashlib.blake2b(context, digest_size=32).digest()
    return lambda item: hashlib.blake2b(item, digest_size=8, key=key).digest()


def parse_changed_items(
    body: bytes, url: str, content_type: str, known: frozenset[bytes]
) -> ChangedItems:
    """Worker: split, hash, and parse only the items whose hash is not `known`."""
    split = None if body.lstrip()[:1] == b"{" else split_items(body)
    if split is None:
        return ChangedItems(parse_bytes(body, url, content_type), None)
    context, spans = split
    # the URL is the base of relative links; the content type may name the charset
    item_hash = item_hasher(b"\x00".join((context, url.encode(), content_type.encode())))
    hashes = tuple(item_hash(body[a:b]) for a, b in spans)
    changed = tuple(h not in known for h in hashes)
    cut = [span for span, is_new in zip(spans, changed, strict=True) if not is_new]
    try:
        parsed = parse_document(
            _without(body, cut), url, content_type, xml_base=b"xml:base" in body
        )
    except ParseError:  # e.g. a root feedparser only recognises by its items
        parsed = None
    if parsed is None or len(parsed.entries) != sum(changed):  # no shortcut, then
        return ChangedItems(parse_bytes(body, url, content_type), None)
    return ChangedItems(parsed, hashes, changed)


def _without(body: bytes, spans: list[tuple[int, int]]) -> bytes:
    if not spans:
        return body
    parts, last = [], 0
    for a, b in spans:
        parts.append(body[last:a])
        last = b
    parts.append(body[last:])
    return b"".join(parts)


# -------------------------------------------------------------------- main side
def merge(answer: ChangedItems, known: dict[bytes, ItemRecord]) -> tuple[ParsedFeed, bytes]:
    """The whole feed, in document order, from a worker's answer and the records of the known
    items; and the packed records of this document (stored with the feed: `Feed.item_records`)."""
    if answer.hashes is None:
        return answer.parsed, b""
    parsed_entries = iter(answer.parsed.entries)
    new: dict[int, Entry] = {}  # position -> parsed entry of a changed item
    records: list[ItemRecord] = []
    for i, (h, is_new) in enumerate(zip(answer.hashes, answer.changed, strict=True)):
        if is_new:
            new[i] = next(parsed_entries)
            records.append(_record(h, new[i]))
        else:
            records.append(known[h])
    choices = second_identities(
        [r.link_print for r in records],
        [r.key_is_link for r in records],
        [r.tdl_print for r in records],
    )
    entries = [
        _with_second(new[i], choice) if i in new else _stub(record, choice)
        for i, (record, choice) in enumerate(zip(records, choices, strict=True))
    ]
    blob = b"".join(r.pack() for r in records)
    return replace(answer.parsed, entries=entries), blob


def _with_second(entry: Entry, choice: int) -> Entry:
    """A parsed entry with its second identity (bot.feeds.identity) as an alt key."""
    if choice == NO_SECOND:
        return entry
    second = link_key(entry) if choice == BY_LINK else tdl_key(entry)
    return replace(entry, alt_keys=(*entry.alt_keys, second))


def _record(h: bytes, entry: Entry) -> ItemRecord:
    link, tdl = link_key(entry), tdl_key(entry)
    return ItemRecord(
        item_hash=h,
        key_print=fingerprint(entry.key),
        link_print=fingerprint(link) if link else "",
        key_is_link=bool(link) and entry.key == link.removeprefix("link:"),
        published=entry.published.timestamp() if entry.published else None,
        tdl_print=fingerprint(tdl) if tdl else "",
    )


def _stub(record: ItemRecord, choice: int) -> Entry:
    """A known item's entry: its identity prints (the second one as `choice` says), its date."""
    published = (
        None if record.published is None else datetime.fromtimestamp(record.published, tz=UTC)
    )
    if choice == NO_SECOND:
        prints: tuple[str, ...] = (record.key_print,)
    else:
        prints = (record.key_print, record.link_print if choice == BY_LINK else record.tdl_print)
    return Entry(key="", title="", link="", published=published, prints=prints)


# ------------------------------------------------------------- the whole step
@dataclass(frozen=True)
class CheckedDocument:
    """A changed document as a check needs it: parsed (only its changed items), merged with
    the records of the others and diffed against the feed's seen-set, all in one trip to a
    parse worker, so the bot's process receives only what is new."""

    #: the feed's own fields; `entries` is left empty (see `fresh` and `prints`)
    parsed: ParsedFeed
    #: the entries not in the seen-set, oldest first, each parsed whole
    fresh: list[Entry]
    #: every entry's identity prints, oldest first, packed: what the seen-set remembers
    prints: bytes
    #: how many entries the document has
    entries: int
    #: the packed records of the document's items (`Feed.item_records`)
    records: bytes
    #: items feedparser parsed for it
    items_parsed: int


def check_document(
    body: bytes, url: str, content_type: str, records: bytes, seen: bytes
) -> CheckedDocument:
    """Worker: `parse_changed_items` against the items of `records`, `merge`, and the diff
    against `seen` (packed prints); the document is parsed whole when a known item would be
    new (its print left the seen-set: a stub cannot be delivered)."""
    known = {r.item_hash: r for r in ItemRecord.unpack_all(records)}
    seen_set = Prints(seen)
    answer = parse_changed_items(body, url, content_type, frozenset(known))
    parsed, blob = merge(answer, known)
    fresh = new_entries(parsed.entries, seen_set)
    if known and any(e.prints for e in fresh):  # a stub would be delivered
        answer = parse_changed_items(body, url, content_type, frozenset())
        parsed, blob = merge(answer, {})
        fresh = new_entries(parsed.entries, seen_set)
    prints = pack_prints(document_prints(oldest_first(parsed.entries)))
    return CheckedDocument(
        replace(parsed, entries=[]), fresh, prints, len(parsed.entries), blob,
        len(answer.parsed.entries),
    )
