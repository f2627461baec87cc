"""Find the feeds an HTML page advertises (pure: no I/O).

A user often sends a blog's home page instead of its feed; the page names its feeds with
<link rel="alternate" type="application/rss+xml" href="..."> (or rel="feed").
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

FEED_TYPES = frozenset({
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/json",
})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_BYTES = 1024


@dataclass(frozen=True)
class FeedLink:
    url: str
    title: str
    type: str  # lower-case media type without parameters; "" for rel="feed" without type


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base_href: str | None = None
        self.links: list[tuple[str, str, str]] = []  # (href, title, type) in document order

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: (value or "") for name, value in attrs}
        if tag == "base" and self.base_href is None and values.get("href", "").strip():
            self.base_href = values["href"].strip()
        elif tag == "link":
            self._maybe_feed(values)

    handle_startendtag = handle_starttag

    def _maybe_feed(self, values: dict[str, str]) -> None:
        rels = values.get("rel", "").lower().split()
        kind = _media_type(values.get("type", ""))
        href = values.get("href", "").strip()
        if not href:
            return
        if ("alternate" in rels and kind in FEED_TYPES) or (
            "feed" in rels and (not kind or kind in FEED_TYPES)
        ):
            self.links.append((href, values.get("title", "").strip(), kind))


def _decode(html: bytes | str) -> str:
    if isinstance(html, str):
        return html
    if html.startswith((b"\xff\xfe", b"\xfe\xff")):
        return html.decode("utf-16", errors="replace")
    return html.decode("utf-8", errors="replace")


def find_feed_links(html: bytes | str, base_url: str) -> list[FeedLink]:
    """The feeds `html` links to, as absolute http(s) URLs, deduplicated, in document order.

    Relative hrefs resolve against the document's first <base href> (itself resolved against
    `base_url`), as browsers do, wherever the <base> element appears.
    """
    parser = _LinkCollector()
    parser.feed(_decode(html))
    parser.close()
    base = urljoin(base_url, parser.base_href) if parser.base_href else base_url
    found: dict[str, FeedLink] = {}
    for href, title, kind in parser.links:
        url = urljoin(base, href)
        if urlsplit(url).scheme.lower() in ("http", "https") and url not in found:
            found[url] = FeedLink(url=url, title=title, type=kind)
    return list(found.values())


def looks_like_html(content_type: str, body: bytes) -> bool:
    """True when a response is a web page rather than a feed.

    The body decides when it is clear (servers often label feeds text/html or pages text/xml);
    otherwise the Content-Type does.
    """
    start = body[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return True
    if start.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf", b"{")):
        return False
    return _media_type(content_type) in HTML_TYPES
