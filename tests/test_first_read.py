"""bot.feeds.first_read against the whole parse it stands in for.

The promise: for any document, `first_read` either declines (None) or gives the feed's title, link
and ttl and, entry by entry in document order, the very identity prints `parse_bytes` gives.
Checked on seeded random RSS 2.0 / RSS 1.0 / Atom documents full of the details feedparser treats
in its own way (guid as link, relative links and xml:base, titles with markup, character
references, encodings, image and textinput blocks, titles after the items, ttl oddities), on the
seeds and on both corpora (../shared, skipped when absent). The hit rate is checked too, so that a
fast path that declines everything does not pass.

`python -m tests.test_first_read` prints the hit rate and the time per feed of both paths.
"""

from __future__ import annotations

import csv
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from bot.config import Settings
from bot.errors import ParseError
from bot.feeds import first_read as fr
from bot.feeds.diff import entry_prints
from bot.feeds.first_read import Declined, first_read, first_read_or_parse, read_identities
from bot.feeds.identity import normalize_link
from bot.feeds.parse_pool import ParsePool, first_read_feed
from bot.feeds.parser import parse_bytes
from bot.models import Chat, ParsedFeed
from tests.fakes.feedserver import FeedServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
URL = "https://blog.example.org/en/feed/index.xml"
RSS_TYPE = "application/rss+xml"


def view(feed: ParsedFeed) -> tuple[str, str, int | None, list[list[str]]]:
    return feed.title, feed.link, feed.ttl_minutes, [entry_prints(e) for e in feed.entries]


def answered(body: bytes, url: str = URL, ctype: str = RSS_TYPE) -> bool:
    """The property: declined, or the same title, link, ttl and prints as the whole parse."""
    fast = first_read(body, url, ctype)
    if fast is None:
        return False
    try:
        full = parse_bytes(body, url, ctype)
    except ParseError as exc:
        raise AssertionError(f"answered a document parse_bytes refuses: {exc}") from exc
    assert view(fast) == view(full)
    assert fast.warning == full.warning
    assert all(e.prints and not e.key and not e.content_html for e in fast.entries)
    return True


# ------------------------------------------------------------------- random document model
ATOM = "http://www.w3.org/2005/Atom"
NAMESPACES = (
    'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:x="urn:example:other"'
)
WORDS = (
    "Caf\u00e9", "na\u00efve", "\u2019quoted\u2019", "&amp;", "&lt;b&gt;bold&lt;/b&gt;", "&gt;",
    "&#195;&#169;", "&#133;", "&#150;", "&#8217;", "\u4e2d\u6587", "Vec&lt;T&gt;", "  ", "\n",
    "tab\t", "plain", "words", "&lt;p&gt;para&lt;/p&gt;", "&#38;", "\u00a0",
)


def text(rng: random.Random, words: int = 3) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, words)))


def url_like(rng: random.Random, n: int) -> str:
    return rng.choice((
        f"https://blog.example.org/en/posts/{n}/",
        f"https://Blog.Example.org/en/posts/{n}?utm_source=rss&amp;b=2",
        f"/en/posts/{n}/",
        f"posts/{n}.html",
        f"  https://blog.example.org/en/p/{n}  ",
        f"https://blog.example.org/en/a b/{n}",
        f"http:////blog.example.org/{n}",
        f"tag:blog.example.org,2026:{n}",
        f"urn:uuid:0000-{n}",
        f"{n}",
        f"https://blog.example.org/?p={n}&amp;amp;x=1",
        f"https://blog.example.org/{n}#comments",
        "",
    ))


def maybe(rng: random.Random, p: float, part: str) -> str:
    return part if rng.random() < p else ""


def rss_item(rng: random.Random, n: int) -> str:
    parts = []
    if rng.random() < 0.8:
        parts.append(f"<title>{text(rng)}</title>")
    if rng.random() < 0.85:
        parts.append(f"<link>{url_like(rng, n)}</link>")
    if rng.random() < 0.8:
        permalink = rng.choice(("", ' isPermaLink="false"', ' isPermaLink="true"',
                                ' isPermaLink="True"'))
        parts.append(f"<guid{permalink}>{url_like(rng, n)}</guid>")
    if rng.random() < 0.2:  # an alternate link where there is no <link>: a second guid order
        parts.insert(0, f'<atom:link href={quoteattr(url_like(rng, n))}/>')
    parts.append(maybe(rng, 0.3, "<pubDate>Sun, 08 Feb 2026 09:00:00 +0000</pubDate>"))
    parts.append(maybe(rng, 0.6, f"<description>{text(rng, 6)}</description>"))
    parts.append(maybe(rng, 0.3, f"<content:encoded><![CDATA[<p>{n} & more</p>]]>"
                                 "</content:encoded>"))
    parts.append(maybe(rng, 0.2, f'<source url="https://other.test/feed">{text(rng)}</source>'))
    parts.append(maybe(rng, 0.2, "<media:group><media:title>t</media:title>"
                                 '<media:content url="https://m.test/a.jpg"/></media:group>'))
    parts.append(maybe(rng, 0.1, f"<x:wrap><link>{url_like(rng, n + 1000)}</link></x:wrap>"))
    parts.append(maybe(rng, 0.1, "<image><link>https://img.test/</link></image>"))
    parts.append(maybe(rng, 0.1, '<enclosure url="https://m.test/a.mp3" type="audio/mpeg"/>'))
    parts.append(maybe(rng, 0.1, "<dc:title>dc</dc:title>"))
    rng.shuffle(parts)
    return "<item>" + "".join(parts) + "</item>"


def feed_title(rng: random.Random) -> str:
    kind = rng.choice(("", "", "", ' type="html"', ' type="text"', ' type="TEXT"', ' type="xhtml"'))
    return f"<title{kind}>{text(rng, 4)}</title>"


def channel_parts(rng: random.Random) -> list[str]:
    parts = [feed_title(rng) if rng.random() < 0.9 else ""]
    parts.append(maybe(rng, 0.8, f"<link>{url_like(rng, 0)}</link>"))
    parts.append(maybe(rng, 0.3, f'<atom:link href="{URL}" rel="self"/>'))
    parts.append(maybe(rng, 0.1, '<atom:link href="/home"/>'))
    parts.append(maybe(rng, 0.3, f"<ttl>{rng.choice(('60', ' 30 ', 'x', '', '5m'))}</ttl>"))
    parts.append(maybe(rng, 0.05, '<ttl unit="m">60</ttl>'))
    parts.append(maybe(rng, 0.2, "<image><title>Logo</title><link>https://img.test/</link>"
                                 "<url>https://img.test/l.png</url></image>"))
    parts.append(maybe(rng, 0.1, "<textInput><title>Search</title><link>https://s.test/</link>"
                                 "</textInput>"))
    parts.append(maybe(rng, 0.1, f"<dc:title>{text(rng)}</dc:title>"))
    parts.append(maybe(rng, 0.1, f"<media:title>{text(rng)}</media:title>"))
    parts.append(maybe(rng, 0.1, '<itunes:image href="https://img.test/cover.jpg"/>'))
    parts.append(maybe(rng, 0.3, f"<description>{text(rng, 5)}</description>"))
    rng.shuffle(parts)
    return parts


def rss_document(rng: random.Random) -> str:
    items = [rss_item(rng, n) for n in range(rng.randint(0, 6))]
    tail = maybe(rng, 0.1, f"<title>{text(rng)}</title>")
    base = maybe(rng, 0.15, ' xml:base="https://base.test/dir/"')
    return (f'<rss version="2.0" {NAMESPACES}{base}><channel>' + "".join(channel_parts(rng))
            + "".join(items) + tail + "</channel></rss>")


def rdf_document(rng: random.Random) -> str:
    items = "".join(
        f'<item rdf:about="{url_like(rng, n).strip() or "x"}"><title>{text(rng)}</title>'
        + maybe(rng, 0.7, f"<link>{url_like(rng, n)}</link>")
        + maybe(rng, 0.3, f"<dc:date>2026-02-0{n + 1}T09:00:00Z</dc:date>") + "</item>"
        for n in range(rng.randint(0, 5))
    )
    return (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        f'xmlns="http://purl.org/rss/1.0/" {NAMESPACES}>'
        f'<channel rdf:about="{URL}">' + "".join(channel_parts(rng)[:3]) + "</channel>"
        + maybe(rng, 0.3, "<image><title>i</title><link>https://img.test/</link></image>")
        + items + "</rdf:RDF>"
    )


def atom_entry(rng: random.Random, n: int) -> str:
    parts = [f"<title>{text(rng)}</title>" if rng.random() < 0.8 else ""]
    for _ in range(rng.choice((0, 1, 1, 2))):
        rel = rng.choice(("", ' rel="alternate"', ' rel="self"', ' rel="related"',
                          ' rel="enclosure"', ' rel="Alternate"'))
        kind = rng.choice(("", "", ' type="text/html"', ' type="application/xhtml+xml"',
                           ' type="text/plain"'))
        parts.append(f"<link{rel}{kind} href={quoteattr(url_like(rng, n))}/>")
    parts.append(maybe(rng, 0.8, f"<id>{url_like(rng, n)}</id>"))
    parts.append(maybe(rng, 0.5, "<updated>2026-02-08T09:00:00Z</updated>"))
    parts.append(maybe(rng, 0.4, f'<content type="html">{text(rng, 5)}</content>'))
    parts.append(maybe(rng, 0.2, '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                                 "<p>Hi <b>there</b></p></div></content>"))
    parts.append(maybe(rng, 0.2, f"<summary>{text(rng)}</summary>"))
    parts.append(maybe(rng, 0.2, "<source><id>urn:src</id><link href=\"https://src.test/\"/>"
                                 "<title>Src</title></source>"))
    parts.append(maybe(rng, 0.1, "<author><name>A</name><uri>/me</uri></author>"))
    rng.shuffle(parts)
    base = maybe(rng, 0.15, ' xml:base="/entries/"')
    return f"<entry{base}>" + "".join(parts) + "</entry>"


def atom_document(rng: random.Random) -> str:
    head = [feed_title(rng),
            maybe(rng, 0.7, f'<link rel="alternate" href={quoteattr(url_like(rng, 0))}/>'),
            maybe(rng, 0.5, f'<link rel="self" href="{URL}"/>'),
            maybe(rng, 0.6, f"<id>{url_like(rng, 0)}</id>"),
            maybe(rng, 0.2, '<link href="https://home.test/"/>')]
    rng.shuffle(head)
    base = maybe(rng, 0.2, ' xml:base="https://base.test/feed/"')
    entries = "".join(atom_entry(rng, n) for n in range(rng.randint(0, 6)))
    return f'<feed xmlns="{ATOM}"{base}>' + "".join(head) + entries + "</feed>"


def encoded(rng: random.Random, document: str) -> tuple[bytes, str]:
    """The document in some encoding, declared or not, with some content type."""
    encoding = rng.choice(("utf-8", "utf-8", "iso-8859-1", None))
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>\n' if encoding else ""
    if rng.random() < 0.03:
        document = document.replace("</", "<", 1)  # broken: only the loose parser reads it
    body = (declaration + document).encode(encoding or "utf-8", "xmlcharrefreplace")
    ctype = rng.choice(("", RSS_TYPE, "application/xml", "text/xml",
                        "text/xml; charset=utf-8", "application/atom+xml; charset=iso-8859-1"))
    return body, ctype


def generated(seed: int, make: Callable[[random.Random], str]) -> Iterator[tuple[bytes, str]]:
    rng = random.Random(seed)
    for _ in range(150):
        yield encoded(rng, make(rng))


@pytest.mark.parametrize("make", [rss_document, rdf_document, atom_document])
def test_generated_feeds_are_declined_or_read_as_the_whole_parse(
    make: Callable[[random.Random], str],
) -> None:
    hits = [answered(body, URL, ctype) for body, ctype in generated(16, make)]
    assert sum(hits) >= len(hits) // 5, f"{sum(hits)} of {len(hits)} answered"


def test_a_clean_feed_is_always_answered() -> None:
    """What most real feeds look like: guid or link on every item, plain titles."""
    rng = random.Random(7)
    for n in range(30):
        items = "".join(
            f"<item><title>Post {i} &amp; {rng.choice(WORDS[:3])}</title>"
            f"<link>https://blog.example.org/p/{n}/{i}/</link>"
            f"<guid isPermaLink=\"false\">id-{n}-{i}</guid>"
            f"<description>{escape('<p>body</p>')}</description></item>"
            for i in range(rng.randint(1, 8))
        )
        body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Blog {n}</title><link>https://blog.example.org/</link>"
                f"<ttl>{n}</ttl>{items}</channel></rss>").encode()
        assert answered(body), n


# ------------------------------------------------------------------------- what declines
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "JSON"),
        (b"   ", "empty"),
        (b"<rss><channel><title>x</title><item><title>a</title></item></channel></rss>",
         "every entry needs its text"),
        (b"<rss><channel><item><link>https://a.test/</link><guid isPermaLink='false'>1</guid>"
         b"</item><item><link>https://a.test/</link><guid isPermaLink='false'>2</guid></item>"
         b"</channel></rss>", "every entry needs its text"),
        (b"<rss><channel><item><guid>1</guid></item>", "not well-formed"),
        (b"<html><body><p>a page</p></body></html>", "not a feed"),
        (b"<rss><channel><title><b>x</b></title></channel></rss>", "markup inside"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="xhtml"><div>x</div></title>'
         b"</feed>", "title of type"),
        (b"<rss><channel><item><guid>1</guid><item><guid>2</guid></item></item></channel></rss>",
         "entry inside an entry"),
    ],
)
def test_what_it_cannot_promise_declines(body: bytes, reason: str) -> None:
    with pytest.raises(Declined, match=reason):
        read_identities(body, URL, "")
    assert first_read(body, URL, "") is None


def test_entries_that_need_their_text_are_parsed_alone() -> None:
    """Entries keyed by a hash of their text, or told apart by title and date (one link shared
    by several), come from feedparser, the others from the expat pass."""
    body = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><title>keyed by text</title><description>one</description></item>"
        b"<item><title>a</title><link>https://a.test/same</link><guid isPermaLink='false'>1"
        b"</guid><pubDate>Sun, 08 Feb 2026 09:00:00 +0000</pubDate></item>"
        b"<item><title>b</title><link>https://a.test/same</link><guid isPermaLink='false'>2"
        b"</guid><pubDate>Sun, 08 Feb 2026 10:00:00 +0000</pubDate></item>"
        b"<item><title>c</title><link>https://a.test/c</link></item>"
        b"</channel></rss>"
    )
    calls = []
    real = fr.parse_document

    def counting(doc: bytes, *args: object, **kwargs: object) -> ParsedFeed:
        calls.append(doc.count(b"<item>"))
        return real(doc, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fr, "parse_document", counting)
        assert answered(body)
    assert calls == [3]  # the lone item and the two sharing a link; not the fourth
    assert len(first_read(body, URL).entries[2].prints) == 2  # type: ignore[union-attr]


def test_a_feedparser_it_does_not_follow_declines_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = (SHARED / "seeds" / "neural-networks.xml").read_bytes() if SHARED.is_dir() else (
        b"<rss><channel><item><guid>1</guid></item></channel></rss>"
    )
    assert first_read(body, URL, RSS_TYPE) is not None
    monkeypatch.setattr(fr.feedparser, "__version__", "7.0.0")
    assert first_read(body, URL, RSS_TYPE) is None
    monkeypatch.undo()
    monkeypatch.setattr(fr, "SAX_IS_EXPAT", False)  # feedparser would read with libxml2
    assert first_read(body, URL, RSS_TYPE) is None


def test_the_feedparser_handlers_it_follows_are_the_ones_there() -> None:
    """The emulation names feedparser's handlers; a feedparser that routes titles, guids or
    links through other handlers, or starts content it does not end, must be noticed."""
    assert fr.CONTENT == fr.CONTENT_ENDS
    assert {"title", "description", "content_encoded", "summary", "dc_title"} <= fr.CONTENT
    for name in fr.STARTS:
        if fr._reaches("start", name, "_start_title"):
            assert name in fr.TITLES, name
        if fr._reaches("start", name, "_start_guid"):
            assert name in fr.IDS, name
        if fr._reaches("start", name, "_start_link"):
            assert name in {"link", "channel", "item", "entry"}, name  # CDF href: declined
        if fr._reaches("start", name, "_start_item"):
            assert name in fr.ITEMS, name
    for name in fr.ENDS:
        if fr._reaches("end", name, "_end_title"):
            assert name in fr.TITLES, name
        if fr._reaches("end", name, "_end_guid"):
            assert name in fr.IDS, name


def test_absolute_links_are_left_as_feedparser_s_urljoin_leaves_them() -> None:
    """The reader skips urljoin for links it recognises as coming back unchanged: it must
    recognise only those, against every kind of base. Likewise normalize_link for links it
    only lower-cases and trims."""
    rng = random.Random(3)
    pieces = ("http://", "https://", "HTTP://", "http:///", "blog.example.org", "a", "0", "/",
              "//", ".", "..", "-", ":", ":8080", "?", "?a=1", "&", ";", "#", "#x", "%20", "@",
              "~", " ", "\t", "\n", "\x00", "\u00e9", "[", "]", "[::1]", "=", "+", "!", "'")
    bases = ("", URL, "http://127.0.0.1/f/1", "https://base.test/dir/", "urn:x:y", "x",
             "http://[::1/", "https://h.test/a?q#f")
    matched = plain = 0
    for _ in range(20_000):
        uri = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.6:
            uri = rng.choice(("http://", "https://", "HTTPS://", "feed://")) + uri.lstrip(":/")
        assert fr._normalized(uri) == normalize_link(uri), uri  # its own shortcut
        plain += bool(fr._PLAIN_LINK.match(uri))
        for base in bases:
            expected = fr._urljoin(base, uri)
            if fr._ABSOLUTE.match(uri) and fr._joins(base):
                matched += 1
                assert expected == uri, (base, uri)
            assert fr._Reader(base).resolve(uri) == expected, (base, uri)
    assert matched > 1_000 and plain > 500  # the shortcuts are taken, and often


def test_the_packed_answer_is_the_first_read() -> None:
    """What a parse worker sends back (FirstRead, or the whole parse) reads as first_read."""
    packed = fr.first_read_packed(BIG_RSS, URL, RSS_TYPE)
    assert isinstance(packed, fr.FirstRead)
    assert fr.as_feed(packed) == first_read(BIG_RSS, URL, RSS_TYPE)
    no_keys = b"<rss><channel><title>T</title><item><title>a</title></item></channel></rss>"
    assert fr.first_read_packed(no_keys, URL) == parse_bytes(no_keys, URL)


# ---------------------------------------------------------------- the worker and fallback
BIG_RSS = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Big</title>'
    "<link>https://big.test/</link>"
    + "".join(f"<item><title>{i}</title><link>https://big.test/{i}</link>"
              f"<description>{'x' * 200}</description></item>" for i in range(20))
    + "</channel></rss>"
).encode()


def test_first_read_or_parse_falls_back_to_the_whole_parse() -> None:
    no_keys = b"<rss><channel><title>T</title><item><title>a</title></item></channel></rss>"
    assert first_read_or_parse(no_keys, URL) == parse_bytes(no_keys, URL)
    with pytest.raises(ParseError):
        first_read_or_parse(b"<html><body>page</body></html>", URL, "text/html")
    fast = first_read_or_parse(BIG_RSS, URL)
    assert all(e.prints for e in fast.entries) and view(fast) == view(parse_bytes(BIG_RSS, URL))


async def test_first_read_feed_runs_in_the_pool_and_in_a_thread() -> None:
    expected = view(parse_bytes(BIG_RSS, URL))
    assert view(await first_read_feed(BIG_RSS, URL)) == expected
    pool = ParsePool(1)
    try:
        got = await first_read_feed(BIG_RSS, URL, RSS_TYPE, pool=pool)
        assert pool.pids and view(got) == expected and got.entries[0].prints
    finally:
        await pool.close()
    assert view(await pool.first_read(BIG_RSS, URL)) == expected  # closed: threads


async def test_an_import_marks_what_each_feed_holds_seen_and_sends_nothing(
    bot_settings: Settings, feed_server: FeedServer
) -> None:
    """Through the OPML import path with its parse workers: each feed's seen-set holds the
    prints of the whole parse, whether the first read answered (wholly, or with feedparser on
    some entries) or declined."""
    from bot.app import build_application
    from bot.runtime import Runtime

    shared_link = (
        b'<rss version="2.0"><channel><title>T</title>'
        + b"".join(b"<item><title>%d</title><link>https://a.test/same</link>"
                   b"<guid isPermaLink='false'>%d</guid><pubDate>Sun, 08 Feb 2026 0%d:00:00 "
                   b"+0000</pubDate></item>" % (n, n, n) for n in range(3))
        + b"<item><title>c</title><link>https://a.test/c</link></item>" + b" " * 2048
        + b"</channel></rss>"
    )
    declined = BIG_RSS.replace(b"<title>Big</title>", b"<title><b>Big</b></title>")
    bodies = {"/big.xml": BIG_RSS, "/some.xml": shared_link, "/whole.xml": declined}
    bodies |= {f"/f{n}.xml": BIG_RSS.replace(b"big.test/", f"big.test/{n}/".encode())
               for n in range(20)}
    assert first_read(declined, URL) is None and first_read(shared_link, URL) is not None
    for path, body in bodies.items():
        feed_server.set_feed(path, body)
    settings = replace(bot_settings, max_subscriptions=len(bodies))
    runtime = await Runtime.start(settings, build_application(settings).bot)
    try:
        items = await runtime.service.import_feeds(
            Chat(id=4242, type="private"), [(feed_server.url(p), "") for p in bodies])
        assert [i.status for i in items] == ["added"] * len(bodies)
        for path, body in bodies.items():
            url = feed_server.url(path)
            feed = await runtime.store.get_feed(url)
            whole = parse_bytes(body, url)
            assert feed is not None and feed.title == whole.title
            assert list(feed.seen) == [p for e in whole.entries for p in entry_prints(e)]
        assert await runtime.store.outbox_depth() == 0
    finally:
        await runtime.stop()


# ------------------------------------------------------------------- the seeds and corpora
def _manifest_types(root: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    with (root / "MANIFEST.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            found = re.search(r"content-type:\s*([^;]+(?:;\s*charset=[^;]+)?)",
                              row.get("simulated_http_headers") or "", re.IGNORECASE)
            types[row["path"]] = found.group(1).strip() if found else ""
    return types


def real_documents(shared: Path) -> list[tuple[str, bytes, str]]:
    """(name, body, content type) of the seeds and both corpora."""
    docs = [(f"seeds/{p.name}", p.read_bytes(), RSS_TYPE)
            for p in sorted((shared / "seeds").glob("*.xml"))]
    hostile = shared / "corpus" / "feedparser"
    if hostile.is_dir():
        types = _manifest_types(hostile)
        docs += [(f"feedparser/{rel}", hostile.joinpath(rel).read_bytes(), ctype)
                 for rel, ctype in sorted(types.items()) if hostile.joinpath(rel).is_file()]
    real = shared / "corpus" / "realworld"
    if real.is_dir():
        for path in sorted(real.rglob("*")):
            rel = path.relative_to(real).as_posix()
            if path.is_file() and rel not in ("MANIFEST.tsv", "README.md"):
                ctype = "application/feed+json" if rel.endswith(".json") else ""
                docs.append((f"realworld/{rel}", path.read_bytes(), ctype))
    return docs


def _shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def test_the_seeds_are_answered_with_the_whole_parse_s_title_and_prints() -> None:
    for path in sorted((_shared() / "seeds").glob("*.xml")):
        body = path.read_bytes()
        url = "https://www.chenk.top/en/tags/x/index.xml"
        fast = first_read(body, url, RSS_TYPE)
        assert fast is not None and fast.entries, path.name
        full = parse_bytes(body, url, RSS_TYPE)
        assert view(fast) == view(full) and fast.title == full.title


@pytest.mark.slow
def test_corpora_are_declined_or_read_as_the_whole_parse() -> None:
    docs = real_documents(_shared())
    hits: Counter[str] = Counter()
    for name, body, ctype in docs:
        url = "http://127.0.0.1/" + name.replace(" ", "_")
        hits[name.split("/")[0]] += answered(body, url, ctype)
    counts = Counter(name.split("/")[0] for name, _, _ in docs)
    assert hits["seeds"] == counts["seeds"]
    # most of what a feed reader meets; the rest are mostly test fixtures of other parsers
    # (entries without guid or link, broken XML that only the loose parser reads)
    if counts["realworld"]:
        assert hits["realworld"] >= 0.55 * counts["realworld"], hits
    if counts["feedparser"]:
        assert hits["feedparser"] >= 0.4 * counts["feedparser"], hits


# ---------------------------------------------------------------- figures for the report
def _per_feed(fn: Callable[[bytes, str, str], object], docs: list[tuple[str, bytes, str]],
              rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for name, body, ctype in docs:
            try:
                fn(body, "http://127.0.0.1/" + name, ctype)
            except ParseError:
                pass
        best = min(best, time.perf_counter() - started)
    return best / len(docs)


def figures(shared: Path = SHARED) -> str:
    docs = real_documents(shared)
    lines = []
    reasons: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    partial: Counter[str] = Counter()
    real = fr.parse_document
    parsed_some: list[str] = []
    fr.parse_document = lambda *a, **k: parsed_some.append("") or real(*a, **k)  # type: ignore
    try:
        for name, body, ctype in docs:
            group = name.split("/")[0]
            groups[group] += 1
            parsed_some.clear()
            try:
                read_identities(body, "http://127.0.0.1/" + name, ctype)
                hits[group] += 1
                partial[group] += bool(parsed_some)
            except Declined as why:
                reasons[re.sub(r"\d+", "N", str(why)).split(":")[0]] += 1
    finally:
        fr.parse_document = real
    for group in groups:
        lines.append(f"{group}: {hits[group]}/{groups[group]} answered "
                     f"({100 * hits[group] / groups[group]:.0f}%; {partial[group]} of them "
                     "with feedparser on some entries)")
    lines.append("declined: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    for label, subset in (("seed machine-learning.xml", [d for d in docs if "machine" in d[0]]),
                          ("seed neural-networks.xml", [d for d in docs if "neural" in d[0]]),
                          ("all corpora", docs)):
        rounds = 20 if len(subset) < 5 else 2
        fast = _per_feed(first_read_or_parse, subset, rounds)
        full = _per_feed(parse_bytes, subset, rounds)
        lines.append(f"{label}: first_read_or_parse {fast * 1e3:.2f} ms/feed, "
                     f"parse_bytes {full * 1e3:.2f} ms/feed ({full / fast:.1f}x)")
    answered_docs = [d for d in docs if first_read(d[1], "http://127.0.0.1/" + d[0], d[2])]
    fast = _per_feed(first_read, answered_docs, 2)
    full = _per_feed(parse_bytes, answered_docs, 2)
    lines.append(f"answered feeds only ({len(answered_docs)}): first_read {fast * 1e3:.2f} "
                 f"ms/feed, parse_bytes {full * 1e3:.2f} ms/feed ({full / fast:.1f}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(figures())
