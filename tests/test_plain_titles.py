"""Plain-text titles keep their < > & (issue 12): "Why Vec<T> beats [T; N]" is not "Why Vec beats
[T; N]". A title that is HTML still loses its tags. Parsed by the real parser, rendered by the real
renderer and checked against the fake Bot API's HTML rules."""

from __future__ import annotations

import pytest

from bot.feeds.parser import parse_bytes
from bot.render import plain_text, render_entry
from tests.fakes.telegram_rules import api_call_error

PLAIN_TITLES = ["Why Vec<T> beats [T; N]", "if a < b && b > c", "Tom & Jerry <3", "<script> tags"]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def rss_with_title(title_xml: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        f"<link>https://b.test/</link><item><title>{title_xml}</title>"
        "<link>https://b.test/1</link><guid>1</guid><description>Body.</description></item>"
        "</channel></rss>"
    ).encode()


def atom_with_title(title_xml: str, kind: str) -> bytes:
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>'
        '<id>urn:b</id><updated>2026-11-21T14:05:00Z</updated>'
        f'<entry><title type="{kind}">{title_xml}</title><id>urn:b:1</id>'
        '<link href="https://b.test/1"/><updated>2026-11-21T14:05:00Z</updated>'
        "<content type=\"html\">Body.</content></entry></feed>"
    ).encode()


def rendered_title(body: bytes) -> tuple[str, str]:
    """(the entry's title, the text a reader sees in the first line of the rendered post)."""
    (entry,) = parse_bytes(body, "https://b.test/feed").entries
    call = render_entry(entry, "Blog").attempts[0]
    assert api_call_error(call.method, call.params) is None, call.params
    first_line = plain_text(call.params["text"]).splitlines()[0]
    return entry.title, first_line.removesuffix(" (https://b.test/1)")


@pytest.mark.parametrize("title", PLAIN_TITLES)
def test_rss_plain_title_keeps_angle_brackets(title: str) -> None:
    assert rendered_title(rss_with_title(_xml(title))) == (title, title)


@pytest.mark.parametrize("title", PLAIN_TITLES)
def test_atom_text_title_keeps_angle_brackets(title: str) -> None:
    assert rendered_title(atom_with_title(_xml(title), "text")) == (title, title)


def test_html_titles_still_lose_their_tags() -> None:
    rss_html = rss_with_title(_xml("<b>Bold</b> news &amp; more"))
    assert rendered_title(rss_html) == ("Bold news & more", "Bold news & more")
    atom_html = atom_with_title(_xml("<i>Vec&lt;T&gt;</i> explained"), "html")
    assert rendered_title(atom_html) == ("Vec<T> explained", "Vec<T> explained")


def test_atom_feed_title_and_json_feed_titles_are_plain_text() -> None:
    atom = atom_with_title("x", "text").replace(b">Blog<", b">C&lt;T&gt;<")
    assert parse_bytes(atom, "https://b.test/feed").title == "C<T>"
    json_feed = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "Rust <3",'
        b' "items": [{"id": "1", "title": "Option<T> & you", "content_text": "x"}]}'
    )
    parsed = parse_bytes(json_feed, "https://b.test/feed.json")
    assert (parsed.title, parsed.entries[0].title) == ("Rust <3", "Option<T> & you")


def test_identity_of_a_post_is_unchanged_by_the_title_fix() -> None:
    """Entries without guid and link are keyed by their title: the key stays the tag-stripped
    one it was before, so no post comes back as new after the upgrade."""
    body = rss_with_title(_xml("Why Vec<T> beats")).replace(b"<guid>1</guid>", b"").replace(
        b"<link>https://b.test/1</link>", b""
    )
    without = rss_with_title("Why Vec beats").replace(b"<guid>1</guid>", b"").replace(
        b"<link>https://b.test/1</link>", b""
    )
    key = parse_bytes(body, "https://b.test/feed").entries[0].key
    assert key == parse_bytes(without, "https://b.test/feed").entries[0].key
