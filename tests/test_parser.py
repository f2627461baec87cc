import csv
import json
from pathlib import Path

import pytest

from bot.errors import ParseError
from bot.parser import parse_bytes
from bot.render import RenderOptions, render_entry

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEEDS = SHARED / "seeds"
CORPUS = SHARED / "corpus" / "feedparser"

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T &amp; Co</title>
<link>https://blog.test/</link><ttl>90</ttl>
<item><guid>g2</guid><title>Second &#8212; post</title><link>/p2</link>
<pubDate>Tue, 02 Jan 2024 10:00:00 GMT</pubDate>
<description>&lt;p&gt;Hi &lt;img src="/i.png"&gt;&lt;/p&gt;</description></item>
<item><title>No guid</title><link>https://blog.test/p1</link></item>
</channel></rss>"""


def test_rss_fields() -> None:
    feed = parse_bytes(RSS, "https://blog.test/feed.xml")
    assert (feed.title, feed.link, feed.ttl_minutes) == ("T & Co", "https://blog.test/", 90)
    first, second = feed.entries
    assert first.key == "https://blog.test/g2"  # feedparser resolves permalink guids
    assert first.title == "Second — post"
    assert first.link == "https://blog.test/p2"
    assert first.image_url == "https://blog.test/i.png"
    assert first.published is not None and first.published.year == 2024
    assert second.key == "https://blog.test/p1"


def test_json_feed() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "home_page_url": "https://j.test/",
        "items": [
            {
                "id": "1",
                "url": "/a",
                "title": "A",
                "content_text": "x < y",
                "date_published": "2024-05-01T10:00:00Z",
                "authors": [{"name": "Ann"}],
            },
            {"id": "2", "content_html": "<p>B</p>", "image": "https://j.test/b.png"},
        ],
    }
    feed = parse_bytes(
        json.dumps(doc).encode(), "https://j.test/feed.json", "application/feed+json"
    )
    a, b = feed.entries
    assert (a.key, a.link, a.author, a.content_html) == ("1", "https://j.test/a", "Ann", "x &lt; y")
    assert b.image_url == "https://j.test/b.png"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"<html><body>hello</body></html>", "not an RSS or Atom feed"),
        (b'{"hello": 1}', "JSON without a jsonfeed.org version"),
    ],
)
def test_not_a_feed_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_bytes(body, "https://x.test/")


def test_seed_feeds_share_a_post() -> None:
    if not SEEDS.is_dir():
        pytest.skip("../shared/seeds not present")
    nn = parse_bytes((SEEDS / "neural-networks.xml").read_bytes(), "https://a.test/nn.xml")
    ml = parse_bytes((SEEDS / "machine-learning.xml").read_bytes(), "https://a.test/ml.xml")
    assert (len(nn.entries), len(ml.entries)) == (4, 32)
    assert {e.key for e in nn.entries} & {e.key for e in ml.entries}
    assert all("&rsquo;" not in e.title for e in ml.entries)


def corpus_rows() -> list[list[str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(encoding="utf-8") as fh:
        return [row for row in csv.reader(fh, delimiter="\t")][1:]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_every_corpus_file_parses_or_fails_clearly() -> None:
    outcomes = {"entries": 0, "empty": 0, "error": 0}
    for row in corpus_rows():
        body = (CORPUS / row[0]).read_bytes()
        try:
            feed = parse_bytes(body, f"https://corpus.test/{row[0]}")
        except ParseError as exc:
            assert str(exc)
            outcomes["error"] += 1
            continue
        outcomes["entries" if feed.entries else "empty"] += 1
        for e in feed.entries:
            assert e.key
    assert sum(outcomes.values()) == 216
    assert outcomes["entries"] > 100


# ------------------------------------------------------------------ relative links (issue 7)
RELATIVE = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Rel</title>
<link>https://blog.test/</link>
<item><guid>https://blog.test/posts/a/</guid><title>A</title><link>https://blog.test/posts/a/</link>
<description>&lt;p&gt;See &lt;a href="../b/"&gt;the last post&lt;/a&gt;,
&lt;a href="/about"&gt;about&lt;/a&gt; and &lt;a href="#part-2"&gt;part 2&lt;/a&gt;.
&lt;img src="fig.png"&gt;&lt;/p&gt;</description></item>
</channel></rss>"""


def test_relative_links_resolve_against_the_post_in_the_message() -> None:
    """feedparser's own relative-URI pass is off (a third of the parse time): the renderer and
    the picture finder resolve against the post's URL instead, and a same-page fragment stays a
    fragment rather than becoming a link to the feed document."""
    (entry,) = parse_bytes(RELATIVE, "https://blog.test/feeds/index.xml").entries
    assert entry.image_url == "https://blog.test/posts/a/fig.png"
    text = render_entry(entry, "Rel", RenderOptions(pictures=False)).attempts[0].params["text"]
    assert '<a href="https://blog.test/posts/b/">the last post</a>' in text
    assert '<a href="https://blog.test/about">about</a>' in text
    assert "part 2" in text and "#part-2" not in text and "index.xml" not in text


def test_xml_base_is_still_honoured() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://cdn.test/blog/">
<title>B</title><id>urn:b</id><updated>2024-01-01T00:00:00Z</updated>
<entry><id>urn:b:1</id><title>One</title><updated>2024-01-01T00:00:00Z</updated>
<link href="https://www.test/posts/1/"/>
<content type="html">&lt;a href="img/x.html"&gt;x&lt;/a&gt; &lt;img src="img/x.png"&gt;</content>
</entry></feed>"""
    (entry,) = parse_bytes(atom, "https://www.test/atom.xml").entries
    assert 'href="https://cdn.test/blog/img/x.html"' in entry.content_html
    assert entry.image_url == "https://cdn.test/blog/img/x.png"


def test_podcast_fields_and_the_posts_own_pictures() -> None:
    body = (
        '<p><img src="https://secure.gravatar.com/avatar/ab?s=96" width="96"> '
        '<img src="https://b.test/smilies/smile.gif" width="16" height="16"></p>'
        '<p><img src="https://b.test/media/one-300x200.jpg"></p>'
        '<p><img src="https://b.test/media/one.jpg"><img src="https://b.test/media/two.jpg"></p>'
        '<img src="https://stats.b.test/p.php?idsite=1" width="1" height="1">'
    )
    doc = (
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
        "<title>P</title><link>https://b.test/</link><item><title>E</title><guid>e1</guid>"
        "<itunes:duration>1:02:03</itunes:duration>"
        '<itunes:image href="https://b.test/art/e1.jpg"/>'
        '<enclosure url="https://b.test/e1.mp3" type="audio/mpeg" length="123"/>'
        '<enclosure url="https://b.test/cover.jpg" type="image/jpeg" length="9"/>'
        f"<description><![CDATA[{body}]]></description></item>"
        "<item><title>F</title><guid>e2</guid><itunes:duration>95</itunes:duration></item>"
        "<item><title>G</title><guid>e3</guid><itunes:duration>soon</itunes:duration></item>"
        "</channel></rss>"
    )
    first, second, third = parse_bytes(doc.encode(), "https://b.test/feed").entries
    assert first.duration == 3723 and first.artwork_url == "https://b.test/art/e1.jpg"
    assert first.images == (
        "https://b.test/cover.jpg", "https://b.test/media/one.jpg", "https://b.test/media/two.jpg",
    )  # avatar, smiley and tracker skipped; one.jpg in two sizes counts once, at full size
    assert (second.duration, third.duration) == (95, None)
