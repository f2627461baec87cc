import csv
import json
from pathlib import Path

import feedparser
import pytest

from bot.errors import ParseError
from bot.feeds.parser import meaningful_images, parse_bytes
from bot.feeds.pictures import is_junk_picture
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


@pytest.mark.parametrize("content_type", ["", "application/rss+xml"])
def test_utf8_without_a_declaration_or_charset_stays_utf8(content_type: str) -> None:
    """A file, or a server naming no charset, with no XML declaration: UTF-8, not latin-1."""
    body = (
        "<rss version='2.0'><channel><title>Ünïcode 深度</title><item><title>Grüße 学习</title>"
        "<link>https://e.test/a</link><description>naïve café</description></item>"
        "</channel></rss>"
    ).encode()
    feed = parse_bytes(body, "file:///tmp/u.xml", content_type)
    assert feed.title == "Ünïcode 深度"
    (entry,) = feed.entries
    assert (entry.title, entry.content_html) == ("Grüße 学习", "naïve café")


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


# ------------------------------------------------------------------- real feeds (issue #14)

MEDIA_RSS = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>M</title>
<item><guid>junk</guid><title>Only junk pictures</title><link>https://m.test/1</link>
<description><![CDATA[<p>Text <img src="https://medium.com/_/stat?event=post.clientViewed" width="1"
 height="1"> <img src="http://feeds.feedburner.com/~a/m?i=x"> <img class="wp-smiley"
 src="https://m.test/wp-includes/images/smilies/icon_wink.gif"> <img
 src="https://secure.gravatar.com/avatar/0f?s=96"> <img src="https://m.test/icons/share.png">
 <img src="https://s.w.org/images/core/emoji/2.2.1/72x72/1f62c.png"> <img
 src="https://m.test/real.jpg" width="0" height="0"> <img src="data:image/gif;base64,R0lGOD">
 </p>]]></description></item>
<item><guid>order</guid><title>Media first</title><link>https://m.test/2</link>
<media:thumbnail url="https://m.test/thumb.jpg" width="480" height="360"/>
<media:content url="https://m.test/clip.mp4" type="video/mp4"/>
<media:content url="https://m.test/photo.jpg" medium="image"/>
<description><![CDATA[<img src="/inline.png" width="600"><img src="/tiny.gif" width="1">]]>
</description></item>
<item><guid>episode</guid><title>Episode 3</title><link>https://m.test/3</link>
<itunes:image href="https://m.test/ep3.jpg"/>
<description>Notes</description></item>
</channel></rss>"""


def test_junk_pictures_are_never_the_posts_photo() -> None:
    junk, ordered, episode = parse_bytes(MEDIA_RSS, "https://m.test/feed").entries
    assert junk.image_url is None
    assert ordered.image_url == "https://m.test/photo.jpg"
    assert episode.image_url == "https://m.test/ep3.jpg"


def test_meaningful_images_lists_the_good_ones_best_first() -> None:
    doc = feedparser.parse(MEDIA_RSS)
    raw = doc.entries[1]
    body = str(raw.get("summary") or "")
    assert meaningful_images(raw, body, "https://m.test/2") == [
        "https://m.test/photo.jpg", "https://m.test/thumb.jpg", "https://m.test/inline.png",
    ]


@pytest.mark.parametrize(
    ("url", "attrs", "junk"),
    [
        ("https://medium.com/_/stat?event=post.clientViewed&postId=1", {}, True),
        ("http://feeds.feedburner.com/~r/blog/~4/abc", {}, True),
        ("http://feeds.feedburner.com/~ff/blog?d=yIl2AUoC8zA", {}, True),
        ("https://avatars3.githubusercontent.com/u/1?s=60", {}, True),
        ("https://2.gravatar.com/avatar/24e?s=96&d=identicon", {}, True),
        ("http://x.test/wp-includes/images/smilies/icon_wink.gif", {}, True),
        ("http://feedpress.me/980/4224355.gif", {"width": "1", "height": "1"}, True),
        ("https://x.test/a.png", {"style": "width: 16px; height: 16px"}, True),
        ("https://x.test/a.png", {"class": "wp-smiley"}, True),
        ("https://x.test/photo.jpg", {"width": "640"}, False),
        ("https://www.nasa.gov/styles/1x1_cardfeed/public/image.jpg", {}, False),
        ("https://x.test/podcast-1x1@2dXL.jpg", {}, False),
    ],
)
def test_junk_picture_rules(url: str, attrs: dict[str, str], junk: bool) -> None:
    assert is_junk_picture(url, attrs) is junk


YOUTUBE = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
<title>Channel</title><entry><id>yt:video:1</id><title>A video</title>
<link rel="alternate" href="https://www.youtube.com/watch?v=1"/>
<media:group><media:title>A video</media:title>
<media:description>First line &amp; more
Second line

Links:
https://example.com/a</media:description>
<media:thumbnail url="https://i1.ytimg.com/vi/1/hqdefault.jpg" width="480" height="360"/>
</media:group></entry></feed>"""


def test_plain_text_descriptions_keep_their_lines() -> None:
    (entry,) = parse_bytes(YOUTUBE, "https://www.youtube.com/feeds/videos.xml").entries
    assert entry.image_url == "https://i1.ytimg.com/vi/1/hqdefault.jpg"
    params = render_entry(entry, "Channel").attempts[0].params  # a text: the preview plays
    caption = params.get("caption") or params["text"]
    assert caption.endswith(
        "\n\nFirst line &amp; more\nSecond line\n\nLinks:\nhttps://example.com/a"
    )


PODCAST = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
<title>P</title><item><guid>e1</guid><title>Ep 1</title><link>https://p.test/1</link>
<description>Hosts: Ann.&lt;br clear=all&gt;Guest: Bo.</description>
<itunes:summary>Hosts: Ann.&lt;br clear=all&gt;Guest: Bo.</itunes:summary></item>
<item><guid>e2</guid><title>Ep 2</title><link>https://p.test/2</link>
<description>Short.</description>
<itunes:summary>Longer notes
with their own lines</itunes:summary></item></channel></rss>"""


def test_the_richest_body_is_shown_html_first_among_equals() -> None:
    first, second = parse_bytes(PODCAST, "https://p.test/feed").entries
    assert first.content_html == "Hosts: Ann.<br clear=all>Guest: Bo."
    assert render_entry(first, "P").attempts[0].params["text"].endswith(
        "Hosts: Ann.\nGuest: Bo."
    )
    assert second.content_html == "<p>Longer notes<br>with their own lines</p>"


REPEATS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>R</title>
<item><guid>same</guid><title>alice starred bob/repo</title><link>https://r.test/1</link>
<description>alice starred bob/repo</description></item>
<item><guid>prefix</guid><title>alice pushed to main at bob/repo</title>
<link>https://r.test/2</link><description>alice pushed to main</description></item>
<item><guid>micro</guid><title>Today I learned that feeds are&#8230;</title>
<link>https://r.test/3</link><description>&lt;p&gt;Today I learned that feeds are
everywhere, and &lt;b&gt;fun&lt;/b&gt;.&lt;/p&gt;</description></item>
<item><guid>blog</guid><title>Intro</title><link>https://r.test/4</link>
<description>&lt;h1&gt;Intro&lt;/h1&gt;&lt;p&gt;Welcome.&lt;/p&gt;</description></item>
<item><guid>twice</guid><title><![CDATA[&lt;p&gt;Item Title&lt;/p&gt;]]></title>
<link>https://r.test/5</link></item>
</channel></rss>"""


def test_the_title_is_not_said_twice() -> None:
    same, prefix, micro, blog, twice = parse_bytes(REPEATS, "https://r.test/feed").entries
    assert (same.title, same.content_html) == ("alice starred bob/repo", "")
    assert (prefix.title, prefix.content_html) == ("alice pushed to main at bob/repo", "")
    assert micro.title == "" and "everywhere" in micro.content_html
    assert blog.title == "Intro" and "Welcome" in blog.content_html
    assert twice.title == "Item Title"
    text = render_entry(same, "R").attempts[0].params["text"]
    assert text.count("alice starred bob/repo") == 1


def test_link_spaces_are_percent_encoded_and_keys_stay() -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title><item>'
            b"<title>Spaced</title><link>https://s.test/a file.html</link></item>"
            b"</channel></rss>")
    (entry,) = parse_bytes(body, "https://s.test/feed").entries
    assert entry.link == "https://s.test/a%20file.html"
    assert entry.key == "https://s.test/a file.html"  # the identity it always had


def test_json_feed_http_version_and_plain_text() -> None:
    doc = {
        "version": "http://jsonfeed.org/version/1",
        "title": "Blog &#8211; Home",
        "items": [
            {"id": "1", "url": "https://j.test/1", "title": "&#8216;Jokes&#8217; &amp; more",
             "content_text": "line one\nline two"},
        ],
    }
    feed = parse_bytes(json.dumps(doc).encode(), "https://j.test/feed.json")
    assert feed.title == "Blog – Home"
    (entry,) = feed.entries
    assert entry.title == "‘Jokes’ & more"
    assert entry.content_html == "<p>line one<br>line two</p>"
