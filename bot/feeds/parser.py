"""Feed bytes -> ParsedFeed. RSS/Atom/RDF through feedparser, JSON Feed 1.x by hand.

feedparser is CPU-bound and synchronous: callers run it off the event loop through
bot.feeds.parse_pool (`parse_feed`, `ParsePool`).
"""

from __future__ import annotations

import calendar
import html
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from bot.errors import ParseError
from bot.feeds.identity import (
    BY_LINK,
    NO_SECOND,
    entry_key,
    normalize_link,
    second_identities,
    title_date_link_key,
)
from bot.feeds.pictures import Picture, body_pictures, good_pictures, is_junk_picture
from bot.models import Enclosure, Entry, ParsedFeed

# feedparser's SAX parser: expat, which it falls back to anyway (bot.feeds.first_read follows
# expat's handlers). Its first choice, libxml2's driver, is never installed here, and asking
# for it cost a failed import, a scan of sys.path, on every parse (34 of 36 us a parse).
feedparser.api.PREFERRED_XML_PARSERS = []

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_SRC = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*([\"'])(.*?)\1", re.IGNORECASE | re.DOTALL)
_SIZE_ATTR = re.compile(r"\b(width|height)\s*=\s*[\"']?\s*(\d+)", re.IGNORECASE)
#: pictures that are never the post's own: trackers, ads, avatars, icons, emoji (a first guard;
#: the renderer's picture choice may know more)
_JUNK_IMAGE = re.compile(
    r"feeds\.feedburner\.com/~|feedproxy\.google\.com/~|gravatar\.com/avatar|/smilies/"
    r"|feedsportal\.com|pheedo\.com|feeds\.wordpress\.com/|stats\.wordpress\.com|pixel\.wp\.com"
    r"|/filetype/|[/.]ads?[/.?]|/adserver|/b\.gif|favicon|[/_-](logo|ad)s?[/_.-]|//stats?\."
    r"|piwik|matomo|/p\.php\?|idsite="
    r"|/emoji/|s\.w\.org/images/core/emoji|doubleclick\.net|/_/stat\b|pixel\.|/pixel|"
    r"/stat\?|[/_-](share|icon|button|badge|avatar|spacer|blank)s?[/_.-]",
    re.IGNORECASE,
)
#: an image's name without size marks ("photo_b.jpg", "photo-300x200.jpg", "photo.jpg?w=640")
_SIZE_MARK = re.compile(r"([-_](\d+x\d+|[a-z]|\d+w|thumb|small|medium|large))+$", re.IGNORECASE)
MAX_IMAGES = 10
#: something html.parser would read as markup: a tag, a closing tag, a comment or a declaration
_MARKUP = re.compile(r"<[a-zA-Z/!?]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_IMAGE_FILE = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)(?:$|[?#])", re.IGNORECASE)
#: a tag of HTML (not "Vec<T>"): what a title that still shows one was escaped twice with
_HTML_TAG = re.compile(
    r"</?(?:p|b|i|u|s|a|em|strong|span|div|br|img|code|small|sup|sub|font|h[1-6])(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});")
JSON_FEED_VERSIONS = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


def text_of(value: str) -> str:
    """Plain text from a title-like field that may carry markup or entities."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", value or ""))).strip()


def plain_title(value: str) -> str:
    """A title that is plain text already ("Why Vec<T> beats [T; N]"): its < > & are text."""
    return _SPACE.sub(" ", value or "").strip()


def title_of(item: Any, field: str = "title") -> str:
    """The text of a feedparser title: HTML (an Atom type="html"/"xhtml" title, or an RSS title
    feedparser found markup in) loses its tags; plain text (Atom type="text", an RSS title
    without markup) keeps every character."""
    value = str(item.get(field, "") or "")
    kind = str((item.get(f"{field}_detail") or {}).get("type") or "")
    return plain_title(value) if kind == "text/plain" else shown_text(value)


def shown_text(value: str) -> str:
    """`text_of` for display: markup escaped twice (`&lt;p&gt;Title&lt;/p&gt;` in an HTML field)
    loses its tags too. Identities keep `text_of`, so no post becomes new because of this."""
    text = text_of(value)
    return text_of(text) if _HTML_TAG.search(text) else text


def parse_bytes(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Parse a feed document; raise ParseError when it is not a usable feed."""
    parsed = parse_document(body, url, content_type)
    add_alt_keys(parsed.entries)
    return parsed


def parse_document(
    body: bytes, url: str, content_type: str = "", *, xml_base: bool | None = None
) -> ParsedFeed:
    """`parse_bytes` without the alt keys, which depend on every entry of the feed (a caller that
    parsed only some items adds them once it has all). `xml_base`: whether the whole document
    uses xml:base, when `body` is only part of it."""
    if not body.strip():
        raise ParseError("the document is empty", key="error_empty_document")
    if _looks_like_json(body, content_type):
        return parse_json_feed(body, url)
    # Without a content type, feedparser reads any headers given as text/plain in latin-1
    # (RFC 2616's default); a file or a server that names none gets the XML declaration's
    # encoding (UTF-8 when it has none), as application/xml does.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    # The renderer is a strict whitelist (tags, attributes, URL schemes): feedparser's own
    # sanitizer would only repeat that work, at about a sixth of the parse time. It also resolves
    # links against the post's URL (and `meaningful_images` pictures too), so feedparser's pass
    # over every HTML body (about a third of the parse time) is needed only where xml:base says
    # otherwise.
    doc = feedparser.parse(
        body,
        response_headers=headers,
        resolve_relative_uris=b"xml:base" in body if xml_base is None else xml_base,
        sanitize_html=False,
    )
    if not doc.get("version") and not doc.entries:
        raise not_a_feed(doc.get("bozo_exception"))
    feed = doc.feed
    warning = str(doc.get("bozo_exception") or "") if doc.get("bozo") else ""
    return ParsedFeed(
        title=title_of(feed) or url,
        link=feed.get("link", "") or url,
        entries=[_entry(e, url) for e in doc.entries],
        ttl_minutes=_int(feed.get("ttl")),
        warning=warning,
    )


def not_a_feed(reason: object) -> ParseError:
    """The error for a document feedparser found no feed in; an XML syntax error says where
    (its line), never the parser's own "<unknown>:2:0: syntax error"."""
    detail = f": {reason}" if reason else ""
    line = getattr(reason, "getLineNumber", None)
    if callable(line):
        return ParseError(f"not an RSS or Atom feed{detail}", key="error_not_well_formed",
                          args={"line": line()})
    return ParseError(f"not an RSS or Atom feed{detail}", key="error_not_feed_plain")


def _looks_like_json(body: bytes, content_type: str) -> bool:
    return "json" in content_type.lower() or body.lstrip()[:1] == b"{"


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _date(entry: Any) -> datetime | None:
    for field in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(field)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _content_html(entry: Any) -> str:
    """The richest body the entry gives: of its content elements (content:encoded, Atom content,
    a podcast's plain itunes:summary) and its summary (description, media:description), the one
    with the most text; HTML first among equals. Plain text keeps its lines."""
    detail = entry.get("summary_detail") or {}
    bodies = [(str(c.get("value") or ""), "html" in str(c.get("type") or ""))
              for c in entry.get("content") or []]
    bodies.append((str(entry.get("summary") or ""),
                   not detail or "html" in str(detail.get("type") or "text/html")))
    # measured alike: a plain itunes:summary often repeats the description's markup as text
    value, is_html = max(bodies, key=lambda b: (len(text_of(b[0])), b[1]))
    return body_html(value) if is_html else plain_to_html(value)


def body_html(value: str) -> str:
    """An HTML body as given, except one without any markup but with line breaks: that is plain
    text (a YouTube media:description, podcast notes) whose lines must stay lines."""
    if "\n" in value.strip() and not _MARKUP.search(value):
        return plain_to_html(html.unescape(value))
    return value


def plain_to_html(text: str) -> str:
    """Plain text -> HTML that keeps its lines (<br>) and its blank-line paragraphs (<p>)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    if "\n" not in text:
        return html.escape(text)
    paragraphs = _PARAGRAPH_BREAK.split(text)
    return "".join(
        "<p>" + "<br>".join(html.escape(line.strip()) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )


def meaningful_images(entry: Any, body: str, base: str) -> list[str]:
    """The pictures of a feedparser entry worth showing, best first: media:content images,
    media:thumbnail, the episode's itunes:image, image enclosures, then the body's <img>s; no
    tracking pixels, ads, avatars, icons or emoji (bot.feeds.pictures). Absolute http(s) URLs, once
    each."""
    candidates: list[Picture] = []
    for media in entry.get("media_content") or []:
        kind = str(media.get("type", "") or media.get("medium", ""))
        url = str(media.get("url") or "")
        if url and ("image" in kind or (not kind and _IMAGE_FILE.search(url))):
            candidates.append(Picture(url, _sizes(media)))
    candidates += [Picture(str(m.get("url") or ""), _sizes(m))
                   for m in entry.get("media_thumbnail") or []]
    artwork = entry.get("image")
    if isinstance(artwork, dict) and artwork.get("href"):
        candidates.append(Picture(str(artwork["href"])))
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            candidates.append(Picture(str(link.get("href") or "")))
    candidates += body_pictures(body)
    return good_pictures(candidates, base)


def _sizes(media: Any) -> dict[str, str]:
    return {k: str(media[k]) for k in ("width", "height") if media.get(k)}


def _images(
    entry: Any, body_html: str, base: str, first: str | None, known: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The post's own pictures, best first: the chosen picture (then `known` ones), media:content
    images, then the body's <img>s; junk skipped, one per picture (sizes of one image count
    once)."""
    urls: list[str] = [first] if first else []
    urls += known
    for media in entry.get("media_content") or []:
        kind = media.get("type", "") or media.get("medium", "")
        if "image" in kind and media.get("url"):
            urls.append(urljoin(base, str(media["url"]).strip()))
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            urls.append(urljoin(base, str(link.get("href") or "").strip()))
    for tag in _IMG_TAG.findall(body_html):
        src = _IMG_SRC.search(tag)
        if src is None or _tiny(tag):
            continue
        urls.append(urljoin(base, html.unescape(src.group(2)).strip()))
    chosen: dict[str, str] = {}  # stem -> URL, in first-seen order
    for url in urls:
        if not url.startswith(("http://", "https://")) or _JUNK_IMAGE.search(url):
            continue
        if is_junk_picture(url):
            continue
        stem = image_stem(url)
        if stem not in chosen or (_is_original(url, stem) and not _is_original(chosen[stem], stem)):
            chosen[stem] = url  # the full-size picture wins over its resized copies
    return tuple(chosen.values())[:MAX_IMAGES]


def _album(raw: Any, body: str, base: str, chosen: list[str]) -> tuple[str, ...]:
    """The pictures an album of this post would show: the chosen picture first unless it is the
    episode's artwork (that is the audio's thumbnail, not a picture of the post)."""
    first = chosen[0] if chosen else None
    if first is not None and first == _artwork(raw, base):
        first = None
    return _images(raw, body, base, first)


def article_images(entry: Entry, article_html: str) -> tuple[str, ...]:
    """The pictures of a post whose body became its web page's article (bot.feeds.article): the
    feed's own first, then the article's, chosen as a feed body's are."""
    return _images({}, article_html, entry.link, entry.image_url, entry.images)


def _tiny(img_tag: str) -> bool:
    return any(int(value) < 80 for _, value in _SIZE_ATTR.findall(img_tag))


def _is_original(url: str, stem: str) -> bool:
    """The URL names the picture itself ("one.jpg"), not a resized copy ("one-300x200.jpg")."""
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    return name.rsplit(".", 1)[0] == stem and "?" not in url


def image_stem(url: str) -> str:
    """What tells two pictures apart: the file name without extension, query or size marks."""
    name = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    name = name.rsplit(".", 1)[0] if "." in name else name
    return _SIZE_MARK.sub("", name).lower() or url


def _duration(value: Any) -> int | None:
    """itunes:duration ("3600", "61:05", "1:01:05", "3600.5") in seconds."""
    text = str(value or "").strip()
    if not re.fullmatch(r"\d+(:\d{1,2}){0,2}(\.\d+)?", text):
        return None
    seconds = 0
    for part in text.split(".", 1)[0].split(":"):
        seconds = seconds * 60 + int(part)
    return seconds or None


def _artwork(entry: Any, base: str) -> str | None:
    image = entry.get("image")
    href = str(image.get("href") or "").strip() if isinstance(image, dict) else ""
    absolute = urljoin(base, href) if href else ""
    return absolute if absolute.startswith(("http://", "https://")) else None


def _enclosures(entry: Any) -> tuple[Enclosure, ...]:
    found = []
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and link.get("href"):
            found.append(Enclosure(link["href"], link.get("type", ""), _int(link.get("length"))))
    return tuple(found)


def _entry(raw: Any, feed_url: str) -> Entry:
    raw_link = str(raw.get("link") or "")
    link = encode_spaces(raw_link)
    published = _date(raw)
    body = _content_html(raw)
    # the identity keeps the tag-stripped title it always had: no post is new because of this
    stripped = text_of(raw.get("title", ""))
    key = entry_key(raw.get("id") or raw.get("guid"), raw_link, stripped, published, body)
    images = meaningful_images(raw, body, link or feed_url)
    title, shown_body = without_repeats(title_of(raw), body)
    return Entry(
        key=key,
        title=title,
        link=link,
        published=published,
        author=shown_text(raw.get("author", "")),
        content_html=shown_body,
        image_url=images[0] if images else None,
        enclosures=_enclosures(raw),
        categories=tuple(t.get("term", "") for t in raw.get("tags") or [] if t.get("term")),
        images=_album(raw, body, link or feed_url, images),
        artwork_url=_artwork(raw, link or feed_url),
        duration=_duration(raw.get("itunes_duration")),
    )


def encode_spaces(url: str) -> str:
    """A link as written in a feed, ends trimmed and inner spaces as %20 (a browser's reading)."""
    return url.strip().replace(" ", "%20")


def without_repeats(title: str, body: str) -> tuple[str, str]:
    """(title, body) without saying the same thing twice: a body whose text is the title (or the
    start of it, as in GitHub activity feeds) is dropped; a title that is the body's start cut
    with an ellipsis (micro-posts) is dropped, the body says it whole."""
    said = _SPACE.sub(" ", text_of(body)).strip().casefold()
    heading = title.strip().casefold()
    if not said or not heading:
        return title, body
    if heading.startswith(said):
        return title, ""
    cut = heading.rstrip().removesuffix("…").removesuffix("...").removesuffix("..").rstrip()
    if cut != heading and len(cut) >= 8 and said.startswith(cut):
        return "", body
    return title, body


def link_key(entry: Entry) -> str:
    """The identity an entry's link gives it ("" without a link): its alt key where unique."""
    return f"link:{normalize_link(entry.link)}" if entry.link else ""


def tdl_key(entry: Entry) -> str:
    """The identity an entry's title, date and link give it ("" without all three)."""
    return title_date_link_key(entry.title, entry.published, entry.link)


def add_alt_keys(entries: list[Entry]) -> None:
    """Each entry's second identity (bot.feeds.identity.second_identities), so a post whose guid
    wobbles is still recognised."""
    links = [link_key(e) for e in entries]
    is_link = [e.key == link.removeprefix("link:") for e, link in zip(entries, links, strict=True)]
    tdls = [tdl_key(e) for e in entries]
    for i, choice in enumerate(second_identities(links, is_link, tdls)):
        if choice != NO_SECOND:
            second = links[i] if choice == BY_LINK else tdls[i]
            entries[i] = replace(entries[i], alt_keys=(*entries[i].alt_keys, second))


# ---------------------------------------------------------------- JSON Feed


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise ParseError(
            f"not a JSON Feed: {exc}",
            key="error_json_broken" if line else "error_not_feed_plain",
            args={"line": line} if line else {},
        ) from exc
    version = str(data.get("version", "")) if isinstance(data, dict) else ""
    if not version.startswith(JSON_FEED_VERSIONS):
        raise ParseError("not a feed: JSON without a jsonfeed.org version",
                         key="error_json_not_feed")
    items = data.get("items") if isinstance(data.get("items"), list) else []
    entries = [_json_entry(item, url) for item in items if isinstance(item, dict)]
    return ParsedFeed(
        title=plain_title(char_refs(str(data.get("title") or ""))) or url,
        link=str(data.get("home_page_url") or url),
        entries=entries,
    )


def char_refs(text: str) -> str:
    """`&#8216;`, `&amp;` and the like decoded; any other & or < stays as it is."""
    return _CHAR_REF.sub(lambda m: html.unescape(m.group(0)), text)


def _json_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_entry(item: dict[str, Any], feed_url: str) -> Entry:
    raw_link = urljoin(feed_url, str(item.get("url") or item.get("external_url") or ""))
    link = encode_spaces(raw_link)
    # JSON Feed titles are plain text, yet many generators put HTML character references in them
    title = plain_title(char_refs(str(item.get("title") or "")))
    if item.get("content_html"):
        body = body_html(str(item["content_html"]))
    else:
        body = plain_to_html(str(item.get("content_text") or item.get("summary") or ""))
    published = _json_date(item.get("date_published") or item.get("date_modified"))
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    author = ", ".join(str(a.get("name", "")) for a in authors if isinstance(a, dict))
    attachments = tuple(
        Enclosure(str(a["url"]), str(a.get("mime_type", "")), _int(a.get("size_in_bytes")))
        for a in item.get("attachments") or []
        if isinstance(a, dict) and a.get("url")
    )
    image = item.get("image") or item.get("banner_image")
    stripped = text_of(str(item.get("title") or ""))
    key = entry_key(str(item.get("id") or "") or None, raw_link, stripped, published, body)
    pictures = [Picture(str(image))] if isinstance(image, str) and image else []
    images = good_pictures(pictures + body_pictures(body), link or feed_url)
    title, shown_body = without_repeats(title, body)
    durations = [_int(a.get("duration_in_seconds")) for a in item.get("attachments") or []
                 if isinstance(a, dict)]
    return Entry(
        key=key,
        title=title,
        link=link,
        published=published,
        author=text_of(author),
        content_html=shown_body,
        image_url=images[0] if images else None,
        enclosures=attachments,
        categories=tuple(str(t) for t in item.get("tags") or []),
        images=_images({}, body, link or feed_url, images[0] if images else None),
        duration=next((d for d in durations if d), None),
    )
