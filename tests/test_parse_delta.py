"""bot.feeds.parse_delta against the whole parse it replaces.

The promise: for the diff, `merge(parse_changed_items(new, known=records of old))` is the same as
`parse_bytes(new)` (same entries, order, prints and dates; every parsed entry equal to the full
parse's), and feedparser sees only the items whose bytes changed. Checked on seeded random
RSS/Atom documents and mutations of them, on context changes, fallbacks, the real seeds and the
feedparser corpus. The poller end to end: tests/test_poller.py.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from bot.errors import ParseError
from bot.feeds.diff import entry_prints, new_entries, oldest_first, remember, seen_cap
from bot.feeds.identity import normalize_link
from bot.feeds.parse_delta import (
    ChangedItems,
    ItemRecord,
    check_document,
    merge,
    parse_changed_items,
)
from bot.feeds.parser import parse_bytes
from bot.models import Entry, ParsedFeed, Prints
from tests.fakes.feeds import BASE_DATE, hugo_feed, hugo_html, item, rss

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
URL = "https://blog.example.org/feed.xml"
XML = "application/xml"
Records = dict[bytes, ItemRecord]


# ------------------------------------------------------------------------------------ helpers
def delta(body: bytes, known: Records, url: str = URL, ctype: str = XML) -> ChangedItems:
    return parse_changed_items(body, url, ctype, frozenset(known))


def first_check(body: bytes, url: str = URL, ctype: str = XML) -> tuple[ParsedFeed, Records]:
    """Parse with nothing known, as a feed's first check does; and the records it leaves."""
    parsed, blob = merge(delta(body, {}, url, ctype), {})
    return parsed, {r.item_hash: r for r in ItemRecord.unpack_all(blob)}


def diff_view(feed: ParsedFeed) -> list[tuple[list[str], datetime | None]]:
    return [(entry_prints(e), e.published) for e in feed.entries]


def assert_same_for_diff(got: ParsedFeed, full: ParsedFeed) -> None:
    assert (got.title, got.link, got.ttl_minutes) == (full.title, full.link, full.ttl_minutes)
    assert diff_view(got) == diff_view(full)
    for mine, theirs in zip(got.entries, full.entries, strict=True):
        if not mine.prints:  # parsed, not a stub: the very same entry
            assert mine == theirs


def second_check(
    old: bytes, new: bytes, *, url: str = URL, ctype: str = XML, old_ctype: str | None = None
) -> tuple[ChangedItems, ParsedFeed, ParsedFeed]:
    """(worker answer, merged feed, whole parse) of `new` when `old` was the last document."""
    _, known = first_check(old, url, ctype if old_ctype is None else old_ctype)
    answer = delta(new, known, url, ctype)
    return answer, merge(answer, known)[0], parse_bytes(new, url, ctype)


# ------------------------------------------------------------------- random document model
ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"


@dataclass
class Post:
    n: int
    title: str
    link: str  # "" for none; may be relative
    guid: str | None
    permalink: bool  # RSS guid isPermaLink
    date: datetime | None
    body: str


@dataclass
class Doc:
    kind: str  # "rss" | "atom"
    title: str
    built: datetime
    posts: list[Post] = field(default_factory=list)
    prefix: str = "x"  # an extra namespace declared on the root
    base: str | None = None  # xml:base on the root

    def item_xml(self, p: Post) -> str:
        return self._rss_item(p) if self.kind == "rss" else self._atom_entry(p)

    @staticmethod
    def _rss_item(p: Post) -> str:
        parts = [f"<title>{escape(p.title)}</title>"]
        if p.link:
            parts.append(f"<link>{escape(p.link)}</link>")
        if p.guid is not None:
            flag = "" if p.permalink else ' isPermaLink="false"'
            parts.append(f"<guid{flag}>{escape(p.guid)}</guid>")
        if p.date is not None:
            parts.append(f"<pubDate>{p.date.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>")
        parts.append(f"<description>{escape(p.body)}</description>")
        return "<item>" + "".join(parts) + "</item>"

    @staticmethod
    def _atom_entry(p: Post) -> str:
        parts = [f"<id>{escape(p.guid)}</id>"] if p.guid is not None else []
        parts.append(f"<title>{escape(p.title)}</title>")
        if p.link:
            parts.append(f'<link rel="alternate" href={quoteattr(p.link)}/>')
        if p.date is not None:
            parts.append(f"<updated>{p.date.isoformat()}</updated>")
        parts.append(f'<content type="html">{escape(p.body)}</content>')
        return "<entry>" + "".join(parts) + "</entry>"

    def items(self) -> list[str]:
        return [self.item_xml(p) for p in self.posts]

    def context(self) -> tuple[str, str, str | None]:
        return self.kind, self.prefix, self.base

    def render(self) -> bytes:
        base = f" xml:base={quoteattr(self.base)}" if self.base else ""
        body = "".join(self.items())
        if self.kind == "rss":
            root = f'<rss version="2.0" xmlns:{self.prefix}="{ATOM_NS}"{base}>'
            head = (
                f"<title>{escape(self.title)}</title><link>https://blog.example.org/</link>"
                f"<description>d</description><lastBuildDate>"
                f"{self.built.strftime('%a, %d %b %Y %H:%M:%S +0000')}</lastBuildDate>"
            )
            doc = f"{root}<channel>{head}{body}</channel></rss>"
        else:
            root = f'<feed xmlns="{ATOM_NS}" xmlns:{self.prefix}="{DC_NS}"{base}>'
            head = (
                f"<id>urn:feed</id><title>{escape(self.title)}</title>"
                f"<updated>{self.built.isoformat()}</updated>"
            )
            doc = f"{root}{head}{body}</feed>"
        return ('<?xml version="1.0" encoding="utf-8"?>\n' + doc).encode()


class Gen:
    """Seeded random posts and documents."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_n = 1

    def link(self, n: int) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return ""
        if shape == 1:
            return f"p/{n}/"  # relative: resolved against the URL or xml:base
        if shape == 2:
            return f"https://Blog.Example.org/p/{n}/?utm_source=rss"
        return f"https://blog.example.org/p/{n}"

    def post(self) -> Post:
        n, rng = self.next_n, self.rng
        self.next_n += 1
        link = self.link(n)
        guid_shape = rng.randrange(4)
        guid = [None, f"tag:blog.example.org,2026:{n}", link, normalize_link(link)][guid_shape]
        if guid == "":
            guid = None
        date = None if rng.random() < 0.3 else BASE_DATE - timedelta(hours=rng.randrange(5000))
        return Post(n, f"Post {n} \u2014 topic", link, guid, rng.random() < 0.5, date, hugo_html(n))

    def doc(self) -> Doc:
        rng = self.rng
        doc = Doc(
            kind=rng.choice(["rss", "atom"]),
            title="Test Blog",
            built=BASE_DATE,
            posts=[self.post() for _ in range(rng.randrange(0, 10))],
            prefix=rng.choice(["atom", "x", "dc"]),
            base=rng.choice([None, None, "https://blog.example.org/en/"]),
        )
        self.maybe_duplicate_links(doc)
        return doc

    def maybe_duplicate_links(self, doc: Doc) -> None:
        with_link = [p for p in doc.posts if p.link]
        if len(with_link) >= 2 and self.rng.random() < 0.4:
            a, b = self.rng.sample(with_link, 2)
            a.link = b.link

    # ---------------------------------------------------------------- mutations
    def mutate(self, doc: Doc) -> list[str]:
        names = self.rng.sample(sorted(MUTATIONS), self.rng.randint(1, 3))
        for name in names:
            MUTATIONS[name](self, doc)
        return names


def _new_on_top(g: Gen, d: Doc) -> None:
    d.posts.insert(0, g.post())


def _edit(g: Gen, d: Doc) -> None:
    if d.posts:
        p = g.rng.choice(d.posts)
        if g.rng.random() < 0.5:
            p.title += " (updated)"
        else:
            p.body += "<p>Update: fixed a typo.</p>"


def _remove(g: Gen, d: Doc) -> None:
    if d.posts:
        d.posts.pop(g.rng.randrange(len(d.posts)))


def _reorder(g: Gen, d: Doc) -> None:
    g.rng.shuffle(d.posts)


def _channel_title(g: Gen, d: Doc) -> None:
    d.title += " (renamed)"


def _build_date(g: Gen, d: Doc) -> None:
    d.built += timedelta(minutes=g.rng.randint(1, 600))


def _add_duplicate_link(g: Gen, d: Doc) -> None:
    with_link = [p for p in d.posts if p.link]
    if len(with_link) >= 2:
        a, b = g.rng.sample(with_link, 2)
        a.link = b.link
    elif d.posts and with_link:
        d.posts.insert(0, replace(g.post(), link=with_link[0].link))


def _remove_duplicate_link(g: Gen, d: Doc) -> None:
    links = [p.link for p in d.posts]
    for p in d.posts:
        if p.link and links.count(p.link) > 1:
            p.link = f"https://blog.example.org/moved/{p.n}"
            return


def _namespace_prefix(g: Gen, d: Doc) -> None:
    d.prefix = g.rng.choice([p for p in ("atom", "x", "dc", "ns0") if p != d.prefix])


def _xml_base(g: Gen, d: Doc) -> None:
    bases = (None, "https://blog.example.org/en/", "https://mirror.example.net/")
    d.base = g.rng.choice([b for b in bases if b != d.base])


MUTATIONS: dict[str, Callable[[Gen, Doc], None]] = {
    "new_on_top": _new_on_top,
    "edit": _edit,
    "remove": _remove,
    "reorder": _reorder,
    "channel_title": _channel_title,
    "build_date": _build_date,
    "add_duplicate_link": _add_duplicate_link,
    "remove_duplicate_link": _remove_duplicate_link,
    "namespace_prefix": _namespace_prefix,
    "xml_base": _xml_base,
}


def _clone(doc: Doc) -> Doc:
    return replace(doc, posts=[replace(p) for p in doc.posts])


def expected_parsed(old: Doc, new: Doc) -> int:
    """Items feedparser must see: those whose bytes (in an unchanged context) are new."""
    if old.context() != new.context():
        return len(new.posts)
    before = set(old.items())
    return sum(1 for x in new.items() if x not in before)


# ------------------------------------------------------------------------- 1. the promise
@pytest.mark.parametrize("block", range(6))
def test_random_documents_and_mutations_keep_the_promise(block: int) -> None:
    for case in range(50):
        gen = Gen(seed=block * 1000 + case)
        old = gen.doc()
        new = _clone(old)
        applied = gen.mutate(new)
        old_body, new_body = old.render(), new.render()
        where = f"seed {block * 1000 + case}, {old.kind}, mutations {applied}"

        full_old = parse_bytes(old_body, URL, XML)
        first, known = first_check(old_body)
        assert first == full_old, where  # nothing known: exactly the whole parse
        answer = delta(new_body, known)
        got = merge(answer, known)[0]
        full = parse_bytes(new_body, URL, XML)

        assert answer.hashes is not None, where
        assert len(answer.parsed.entries) == expected_parsed(old, new), where
        assert_same_for_diff(got, full)
        seen = remember([], full_old.entries, seen_cap(len(full_old.entries)))
        fresh_got, fresh_full = new_entries(got.entries, seen), new_entries(full.entries, seen)
        assert [entry_prints(e) for e in fresh_got] == [entry_prints(e) for e in fresh_full]
        assert not stub_is_new(got, seen), where  # a known item's key is in the seen-set


def test_one_new_item_on_top_of_twenty_parses_one() -> None:
    old = hugo_feed(range(1, 21)).encode()
    new = hugo_feed(range(1, 22)).encode()
    answer, got, full = second_check(old, new)
    assert len(answer.parsed.entries) == 1
    assert answer.parsed.entries[0].title == full.entries[0].title
    assert answer.changed == (True,) + (False,) * 20
    assert_same_for_diff(got, full)
    assert got.entries[0] == full.entries[0] and all(e.prints for e in got.entries[1:])


def test_unchanged_document_parses_nothing_and_records_survive_a_round_trip() -> None:
    body = hugo_feed(range(1, 11)).encode()
    _, known = first_check(body)
    answer = delta(body, known)
    got, blob = merge(answer, known)
    assert answer.parsed.entries == [] and len(got.entries) == 10
    assert {r.item_hash: r for r in ItemRecord.unpack_all(blob)} == known
    assert_same_for_diff(got, parse_bytes(body, URL, XML))


# ---------------------------------------------------------------------------- 2. context
def _rss_doc(root: str, items: list[str], prologue: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prologue}{root}<channel><title>T</title>'
        f"<link>https://blog.example.org/</link>{''.join(items)}</channel></rss>"
    ).encode()


_ITEMS = [
    item(f"tag:{n}", f"Post {n}", f"posts/{n}/", BASE_DATE - timedelta(days=n), hugo_html(n))
    for n in range(1, 5)
]
_PLAIN = '<rss version="2.0">'


@pytest.mark.parametrize(
    ("old_root", "new_root", "old_ctype", "new_ctype", "prologue"),
    [
        (_PLAIN, f'<rss version="2.0" xmlns:atom="{ATOM_NS}">', XML, XML, ""),
        (
            f'<rss version="2.0" xmlns:a="{ATOM_NS}">',
            f'<rss version="2.0" xmlns:b="{ATOM_NS}">',
            XML,
            XML,
            "",
        ),
        (_PLAIN, '<rss version="2.0" xml:base="https://other.example.org/x/">', XML, XML, ""),
        (
            '<rss version="2.0" xml:base="https://a.example.org/">',
            '<rss version="2.0" xml:base="https://b.example.org/">',
            XML,
            XML,
            "",
        ),
        (_PLAIN, _PLAIN, XML, "application/rss+xml", ""),
        (_PLAIN, _PLAIN, "text/xml; charset=utf-8", "text/xml; charset=iso-8859-1", ""),
        (_PLAIN, _PLAIN, XML, XML, '<?xml-stylesheet href="s.xsl" type="text/xsl"?>'),
    ],
    ids=[
        "ns-added",
        "ns-prefix",
        "xml-base-added",
        "xml-base-changed",
        "ctype",
        "charset",
        "prologue",
    ],
)
def test_same_item_bytes_in_another_context_are_parsed_again(
    old_root: str, new_root: str, old_ctype: str, new_ctype: str, prologue: str
) -> None:
    old = _rss_doc(old_root, _ITEMS)
    new = _rss_doc(new_root, _ITEMS, prologue)
    answer, got, full = second_check(old, new, ctype=new_ctype, old_ctype=old_ctype)
    assert answer.hashes is not None and all(answer.changed)
    assert len(answer.parsed.entries) == len(_ITEMS)
    assert got == full  # everything parsed again: exactly the whole parse


def test_xml_base_change_moves_relative_links() -> None:
    """Why xml:base is context: the same bytes mean other links."""
    old = _rss_doc('<rss version="2.0" xml:base="https://a.example.org/">', _ITEMS)
    new = _rss_doc('<rss version="2.0" xml:base="https://b.example.org/">', _ITEMS)
    _, got, full = second_check(old, new)
    moved = [f"https://b.example.org/posts/{n}/" for n in range(1, 5)]
    assert [e.link for e in got.entries] == moved
    assert got == full


# --------------------------------------------------------------------------- 3. fallbacks
_GOOD = hugo_feed(range(1, 4))
_ITEM1 = item("tag:1", "One", "https://x.example/1", BASE_DATE, "<p>one</p>")
_FALLBACKS: dict[str, tuple[bytes, str]] = {
    "not-well-formed": (
        _GOOD.replace("</channel>", "<item><title>a &nbsp; b</title></item></channel>").encode(),
        XML,
    ),
    "unclosed": (_GOOD.replace("</channel></rss>", "<item><title>x</title>").encode(), XML),
    "json-feed": (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": '
        b'[{"id": "1", "url": "https://x.example/1", "title": "One"}]}',
        "application/feed+json",
    ),
    "json-feed-xml-type": (
        b'{"version": "https://jsonfeed.org/version/1", "title": "J", "items": [{"id": "1"}]}',
        XML,
    ),
    "utf-16": (_GOOD.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"), XML),
    "utf-16-no-bom": (
        _GOOD.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16-le"),
        XML,
    ),
    "empty-item": (rss("E", "https://x.example/", ["<item/>", _ITEM1]).encode(), XML),
    "empty-entry": (
        (
            f'<feed xmlns="{ATOM_NS}"><title>A</title><entry/>' + "<entry><id>1</id></entry></feed>"
        ).encode(),
        XML,
    ),
    "doctype-entity": (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY who "Ann">]><rss version="2.0"><channel>'
        b"<title>D</title><item><title>By &who;</title><guid>g1</guid></item></channel></rss>",
        XML,
    ),
    "doctype-netscape": (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
        b"<title>N</title><item><title>x</title><link>https://x.example/n</link></item>"
        b"</channel></rss>",
        XML,
    ),
    "html": (b"<!doctype html><html><body><p>hello</p></body></html>", "text/html"),
    "garbage": (b"\x00\x01not a feed at all", ""),
    "empty": (b"   ", XML),
}


@pytest.mark.parametrize("name", sorted(_FALLBACKS))
@pytest.mark.parametrize("with_known", [False, True])
def test_fallbacks_equal_the_whole_parse_or_raise_parse_error(name: str, with_known: bool) -> None:
    body, ctype = _FALLBACKS[name]
    known = first_check(_GOOD.encode())[1] if with_known else {}
    try:
        full = parse_bytes(body, URL, ctype)
    except ParseError:
        with pytest.raises(ParseError):
            delta(body, known, ctype=ctype)
        return
    answer = delta(body, known, ctype=ctype)
    got = merge(answer, known)[0]
    if answer.hashes is None:
        assert got == full
    else:
        assert_same_for_diff(got, full)


@pytest.mark.parametrize("name", ["not-well-formed", "json-feed", "utf-16", "empty-item"])
def test_documents_that_cannot_be_split_are_parsed_whole(name: str) -> None:
    body, ctype = _FALLBACKS[name]
    answer = delta(body, {}, ctype=ctype)
    assert answer.hashes is None
    assert merge(answer, {}) == (parse_bytes(body, URL, ctype), b"")


# ------------------------------------------------------------------- 4. corpus and seeds
def _shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def _corpus_content_types(root: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    with (root / "MANIFEST.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            m = re.search(
                r"content-type:\s*([^;]+(?:;\s*charset=[^;]+)?)",
                row.get("simulated_http_headers") or "",
                re.IGNORECASE,
            )
            types[row["path"]] = m.group(1).strip() if m else ""
    return types


def _real_documents() -> list[tuple[str, bytes, str]]:
    shared = _shared()
    docs = [
        (p.name, p.read_bytes(), "application/rss+xml")
        for p in sorted((shared / "seeds").glob("*.xml"))
    ]
    root = shared / "corpus" / "feedparser"
    if root.is_dir():
        types = _corpus_content_types(root)
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel in types:
                docs.append((rel, path.read_bytes(), types[rel]))
    return docs


def test_seeds_and_corpus_first_and_second_parse_match_the_whole_parse() -> None:
    checked, split = 0, 0
    for name, body, ctype in _real_documents():
        url = f"http://127.0.0.1/{name}"
        try:
            full = parse_bytes(body, url, ctype)
        except ParseError:
            continue
        first, known = first_check(body, url, ctype)
        assert first == full, name
        answer = delta(body, known, url, ctype)
        got = merge(answer, known)[0]
        assert (got.title, got.link, got.ttl_minutes) == (full.title, full.link, full.ttl_minutes)
        assert diff_view(got) == diff_view(full), name
        checked += 1
        split += answer.hashes is not None and bool(full.entries)
    assert checked >= 2 and split >= 2  # the seeds at least take the shortcut


def test_seed_with_a_new_item_on_top_parses_one() -> None:
    seed = _shared() / "seeds" / "machine-learning.xml"
    old = seed.read_bytes()
    first = re.search(rb"<item>.*?</item>", old, re.DOTALL)
    assert first is not None
    extra = (
        first.group(0)
        .replace(b"</title>", b" (part 2)</title>", 1)
        .replace(b"</guid>", b"#2</guid>", 1)
    )
    new = old.replace(first.group(0), extra + first.group(0), 1)
    answer, got, full = second_check(old, new, ctype="application/rss+xml")
    assert len(answer.parsed.entries) == 1
    assert_same_for_diff(got, full)


# ------------------------------------------------------------------- 5. stubs and memory
def stub_is_new(parsed: ParsedFeed, seen: Collection[str]) -> bool:
    """Would the diff call a stub new? (`check_document` then parses the document whole.)"""
    return any(e.prints for e in new_entries(parsed.entries, seen))


def _stub(print_: str) -> Entry:
    return Entry(key="", title="", link="", prints=(print_,))


def test_stub_is_new_only_when_its_print_left_the_seen_set() -> None:
    entries = [Entry("k1", "One", "https://x.example/1"), _stub("aa"), _stub("bb")]
    parsed = ParsedFeed("T", "L", entries)
    fresh_print = entry_prints(parsed.entries[0])[0]
    assert stub_is_new(parsed, ["aa", "bb"]) is False  # only the parsed entry is new
    assert stub_is_new(parsed, ["aa", "bb", fresh_print]) is False
    assert stub_is_new(parsed, ["aa"]) is True
    assert stub_is_new(parsed, []) is True


def test_check_document_decides_in_one_trip_what_the_check_would() -> None:
    """The worker's whole step: new entries (parsed whole, oldest first) and the prints the
    seen-set remembers, as the whole parse and the diff give them."""
    old, new = hugo_feed(range(1, 21)).encode(), hugo_feed(range(1, 23)).encode()
    first, known = first_check(old)
    seen = remember([], first.entries, seen_cap(len(first.entries)))
    blob = b"".join(r.pack() for r in known.values())
    checked = check_document(new, URL, XML, blob, Prints(seen).packed)
    full = parse_bytes(new, URL, XML)
    assert checked.items_parsed == 2 and checked.entries == 22
    assert checked.fresh == new_entries(full.entries, seen)  # the very entries, parsed whole
    assert [e.title for e in checked.fresh] == [full.entries[1].title, full.entries[0].title]
    assert Prints(checked.prints) == remember([], oldest_first(full.entries), 0)
    assert checked.parsed.entries == [] and checked.parsed.title == full.title
    assert ItemRecord.unpack_all(checked.records)[2:] == ItemRecord.unpack_all(blob)


def test_check_document_parses_whole_when_a_known_item_left_the_seen_set() -> None:
    old = hugo_feed(range(1, 21)).encode()
    first, known = first_check(old)
    blob = b"".join(r.pack() for r in known.values())
    forgotten = remember([], first.entries[1:], 0)  # the newest item's print is gone
    checked = check_document(old, URL, XML, blob, Prints(forgotten).packed)
    full = parse_bytes(old, URL, XML)
    assert checked.items_parsed == 20  # the cheap way found nothing it could deliver
    assert checked.fresh == [full.entries[0]]


def test_records_pack_and_unpack_without_loss() -> None:
    records = [
        ItemRecord(b"\x01" * 8, "00" * 8, "", False, None),
        ItemRecord(b"\x02" * 8, "ab" * 8, "cd" * 8, True, 1_770_000_000.0),
        ItemRecord(b"\x03" * 8, "ef" * 8, "01" * 8, False, -86_400.0),
    ]
    assert ItemRecord.unpack_all(b"".join(r.pack() for r in records)) == records


# --------------------------------------------- cases review found breaking the promise (fixed)
def test_known_items_fetched_from_another_url_resolve_relative_links_again() -> None:
    """A feed answered once at its URL, then through a temporary redirect (result.url differs,
    the records are kept with the feed, under its URL): its relative links now resolve elsewhere."""
    items = [item("", f"Post {n}", f"/posts/{n}/", BASE_DATE, "<p>x</p>") for n in (1, 2)]
    old = _rss_doc(_PLAIN, items)
    new = _rss_doc(_PLAIN, [item("", "Post 3", "/posts/3/", BASE_DATE, "<p>y</p>"), *items])
    _, known = first_check(old, "https://a.example.org/feed.xml")
    answer = delta(new, known, "https://cdn.example.net/feed.xml")
    got = merge(answer, known)[0]
    assert_same_for_diff(got, parse_bytes(new, "https://cdn.example.net/feed.xml", XML))


@pytest.mark.parametrize(
    "root",
    [
        ("<channel><title>C</title>", "</channel>"),
        (
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><channel>'
            "<title>R</title></channel>",
            "</rdf:RDF>",
        ),
    ],
    ids=["channel-root", "rdf-without-rss1-namespace"],
)
def test_unchanged_feed_with_a_root_feedparser_has_no_version_for(root: tuple[str, str]) -> None:
    body = (root[0] + "".join(_ITEMS) + root[1]).encode()
    full = parse_bytes(body, URL, XML)  # a usable feed: feedparser finds its items
    assert len(full.entries) == len(_ITEMS) and not full.title.startswith("http")
    _, known = first_check(body)
    got = merge(delta(body, known), known)[0]  # the same bytes again: all items cut out
    assert_same_for_diff(got, full)


_UNBOUND = (
    "<item><title>B</title><link>https://x.example/b</link><dc:creator>Ann</dc:creator></item>"
)


def test_known_item_with_an_undeclared_prefix_does_not_change_how_new_items_parse() -> None:
    """An item using an undeclared prefix sends feedparser's whole-document parse to its loose
    parser; cut out as known, the new item is parsed by the strict parser instead: its body
    says `<br/>`, not `<br />`, and a post without guid or link (keyed by a hash of its body)
    gets another identity than the whole parse gives it. So such a document is never split."""
    new_item = "<item><title>C</title><description><![CDATA[<p>x<br/>y</p>]]></description></item>"
    old = _rss_doc(_PLAIN, [_UNBOUND, _ITEMS[0]])
    new = _rss_doc(_PLAIN, [new_item, _UNBOUND, _ITEMS[0]])
    answer, got, full = second_check(old, new)
    assert answer.hashes is None  # parsed whole, as feedparser would
    assert_same_for_diff(got, full)
    assert got.entries == full.entries


def test_entry_count_check_is_not_fooled_by_items_feedparser_counts_elsewhere() -> None:
    """`<foo:item>` (unknown namespace) is spanned but is no entry for feedparser; an `<item>`
    nested in another element is an entry but is not spanned. With one of each among the
    changed items the counts would agree and entries would be matched to the wrong items: so an
    item-named element anywhere but a feed item's place means no split."""
    a = "<item><title>A</title><link>https://x.example/a</link></item>"
    nested = "<x><item><title>N</title><link>https://x.example/n</link></item></x>"
    foreign = '<foo:item xmlns:foo="urn:foo"><guid>f1</guid></foo:item>'
    old = _rss_doc(_PLAIN, [a, nested, foreign])
    new = _rss_doc(_PLAIN, [foreign.replace("f1", "f2"), a, nested, foreign])
    answer, got, full = second_check(old, new)
    assert answer.hashes is None
    assert_same_for_diff(got, full)
    assert got.entries == full.entries
