"""Feed bytes -> ParsedFeed. RSS/Atom/RDF through feedparser, JSON Feed 1.x by hand.

feedparser is CPU-bound and synchronous: `parse_feed` runs it in a worker process of a
`ParsePool` (bot.parse_pool) when given one, else in a worker thread.
"""

from __future__ import annotations

import asyncio
import calendar
import html
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import feedparser

from .errors import ParseError
from .identity import (
    BY_LINK,
    NO_SECOND,
    entry_key,
    normalize_link,
    second_identities,
    title_date_link_key,
)
from .models import Enclosure, Entry, ParsedFeed

if TYPE_CHECKING:
    from .parse_pool import ParsePool

_TAG = re.compile(r"<[^>]*>")
_IMG_SRC = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*([\"'])(.*?)\1", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
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
    return plain_title(value) if kind == "text/plain" else text_of(value)


async def parse_feed(
    body: bytes, url: str, content_type: str = "", *, pool: ParsePool | None = None
) -> ParsedFeed:
    if pool is not None:
        return await pool.parse(body, url, content_type)
    return await asyncio.to_thread(parse_bytes, body, url, content_type)


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
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # The renderer is a strict whitelist (tags, attributes, URL schemes): feedparser's own
    # sanitizer would only repeat that work, at about a sixth of the parse time. It also resolves
    # links against the post's URL (and `_image` pictures too), so feedparser's pass over every
    # HTML body (about a third of the parse time) is needed only where xml:base says otherwise.
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
    contents = entry.get("content") or []
    for item in contents:
        if "html" in (item.get("type") or ""):
            return str(item.get("value") or "")
    if contents:
        return html.escape(str(contents[0].get("value") or ""))
    detail = entry.get("summary_detail") or {}
    summary = str(entry.get("summary") or "")
    if detail and "html" not in (detail.get("type") or "text/html"):
        return html.escape(summary)
    return summary


def _image(entry: Any, body_html: str, base: str) -> str | None:
    candidates: list[str] = []
    for media in entry.get("media_content") or []:
        kind = media.get("type", "") or media.get("medium", "")
        if "image" in kind and media.get("url"):
            candidates.append(media["url"])
    candidates += [m.get("url", "") for m in entry.get("media_thumbnail") or []]
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            candidates.append(link.get("href", ""))
    match = _IMG_SRC.search(body_html)
    if match:
        candidates.append(html.unescape(match.group(2)))
    for url in candidates:
        absolute = urljoin(base, url.strip()) if url else ""
        if absolute.startswith(("http://", "https://")):
            return absolute
    return None


def _images(entry: Any, body_html: str, base: str, first: str | None) -> tuple[str, ...]:
    """The post's own pictures, best first: the chosen picture, media:content images, then the
    body's <img>s; junk skipped, one per picture (sizes of one image count once)."""
    urls: list[str] = [first] if first else []
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
        stem = image_stem(url)
        if stem not in chosen or (_is_original(url, stem) and not _is_original(chosen[stem], stem)):
            chosen[stem] = url  # the full-size picture wins over its resized copies
    return tuple(chosen.values())[:MAX_IMAGES]


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
    title = title_of(raw)
    link = str(raw.get("link") or "")
    published = _date(raw)
    body = _content_html(raw)
    # the identity keeps the tag-stripped title it always had: no post is new because of this
    stripped = text_of(raw.get("title", ""))
    key = entry_key(raw.get("id") or raw.get("guid"), link, stripped, published, body)
    image = _image(raw, body, link or feed_url)
    return Entry(
        key=key,
        title=title,
        link=link,
        published=published,
        author=text_of(raw.get("author", "")),
        content_html=body,
        image_url=image,
        enclosures=_enclosures(raw),
        categories=tuple(t.get("term", "") for t in raw.get("tags") or [] if t.get("term")),
        images=_images(raw, body, link or feed_url, image),
        artwork_url=_artwork(raw, link or feed_url),
        duration=_duration(raw.get("itunes_duration")),
    )


def link_key(entry: Entry) -> str:
    """The identity an entry's link gives it ("" without a link): its alt key where unique."""
    return f"link:{normalize_link(entry.link)}" if entry.link else ""


def tdl_key(entry: Entry) -> str:
    """The identity an entry's title, date and link give it ("" without all three)."""
    return title_date_link_key(entry.title, entry.published, entry.link)


def add_alt_keys(entries: list[Entry]) -> None:
    """Each entry's second identity (bot.identity.second_identities), so a post whose guid
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
    if not version.startswith("https://jsonfeed.org/version/"):
        raise ParseError("not a feed: JSON without a jsonfeed.org version",
                         key="error_json_not_feed")
    items = data.get("items") if isinstance(data.get("items"), list) else []
    entries = [_json_entry(item, url) for item in items if isinstance(item, dict)]
    return ParsedFeed(
        title=plain_title(str(data.get("title") or "")) or url,
        link=str(data.get("home_page_url") or url),
        entries=entries,
    )


def _json_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_entry(item: dict[str, Any], feed_url: str) -> Entry:
    link = urljoin(feed_url, str(item.get("url") or item.get("external_url") or ""))
    title = plain_title(str(item.get("title") or ""))  # JSON Feed titles are plain text
    if item.get("content_html"):
        body = str(item["content_html"])
    else:
        body = html.escape(str(item.get("content_text") or item.get("summary") or ""))
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
    key = entry_key(str(item.get("id") or "") or None, link, stripped, published, body)
    picture = str(image) if image else _image({}, body, link or feed_url)
    durations = [_int(a.get("duration_in_seconds")) for a in item.get("attachments") or []
                 if isinstance(a, dict)]
    return Entry(
        key=key,
        title=title,
        link=link,
        published=published,
        author=text_of(author),
        content_html=body,
        image_url=picture,
        enclosures=attachments,
        categories=tuple(str(t) for t in item.get("tags") or []),
        images=_images({}, body, link or feed_url, picture),
        duration=next((d for d in durations if d), None),
    )
