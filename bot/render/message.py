"""Entry -> RenderedMessage: header, body, cut to Telegram's limits, and the fallback chain."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.i18n import DEFAULT_LANG, format_time, t
from bot.models import ApiCall, Entry, RenderedMessage
from bot.render.convert import escape, html_to_telegram
from bot.render.cut import TRIM, Cut, measure, plain_text, truncate, utf16_len
from bot.render.tree import clean_text

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
TITLE_MAX = 300  # UTF-16 units; hostile feeds send megabyte titles
NAME_MAX = 80
MAX_HASHTAGS = 5
#: a caption is worth it when its cut summary keeps at least this much body text
MIN_CAPTION_BODY = 200


@dataclass(frozen=True)
class RenderOptions:
    style: str = "full"  # "full" | "title" (title + link only)
    pictures: bool = True
    link_preview: bool = True
    custom_title: str = ""  # replaces the feed name in the header when set
    timezone: str = "UTC"
    #: the language of the chat the post is for: its date and "Read more" link
    lang: str = DEFAULT_LANG


@dataclass(frozen=True)
class _Parts:
    header: str
    body: str
    tags: str
    link: str
    read_more: str  # the "Read more →" link's text


def render_entry(
    entry: Entry, feed_title: str, options: RenderOptions | None = None
) -> RenderedMessage:
    opts = options or RenderOptions()
    parts = _parts(entry, feed_title, opts)
    preview = _preview(parts.link, opts)
    text, _ = _compose(parts, TEXT_LIMIT)
    text_call = ApiCall(
        "sendMessage", {"text": text, "parse_mode": "HTML", "link_preview_options": preview}
    )
    plain_call = ApiCall(
        "sendMessage", {"text": _plain(parts, TEXT_LIMIT), "link_preview_options": preview}
    )
    photo = _photo_url(entry, opts)
    if photo:
        caption, cut = _compose(parts, CAPTION_LIMIT)
        if _caption_is_sensible(parts, cut):
            photo_call = ApiCall(
                "sendPhoto", {"photo": photo, "caption": caption, "parse_mode": "HTML"}
            )
            return RenderedMessage(attempts=(photo_call, text_call, plain_call))
    return RenderedMessage(attempts=(text_call, plain_call))


def _parts(entry: Entry, feed_title: str, opts: RenderOptions) -> _Parts:
    link = _safe_link(entry.link)
    header = _header(entry, feed_title, link, opts)
    if opts.style == "title":
        return _Parts(header, "", "", link, t("read_more", opts.lang))
    body = html_to_telegram(entry.content_html or "", base_url=link, lang=opts.lang)
    return _Parts(header, body, _hashtags(entry.categories), link, t("read_more", opts.lang))


def _compose(parts: _Parts, limit: int) -> tuple[str, Cut | None]:
    """The message HTML within `limit`; the Cut is None when the body was not cut."""
    full = _join(parts.header, parts.body, parts.tags)
    if measure(full) <= limit:
        return full, None
    more = f'<a href="{escape(parts.link, quote=True)}">{parts.read_more}</a>' if parts.link else ""
    budget = limit - measure(_join(parts.header, "x", parts.tags, more)) + 1
    tags = parts.tags
    if budget < 100 and tags:
        tags = ""
        budget = limit - measure(_join(parts.header, "x", more)) + 1
    for _ in range(5):
        cut = truncate(parts.body, max(budget, 0))
        body = cut.html + ("…" if cut.boundary in ("word", "hard") else "")
        html = _join(parts.header, body, tags, more)
        excess = measure(html) - limit
        if excess <= 0:
            return html, cut
        budget -= excess
    return truncate(html, limit).html, cut  # unreachable in practice: belt and braces


def _plain(parts: _Parts, limit: int) -> str:
    target = limit
    for _ in range(6):
        text = plain_text(_compose(parts, target)[0])
        excess = utf16_len(text) - limit
        if excess <= 0 and text:
            return text
        target -= excess
        if target <= 0:
            break
    # links spelled out can make the plain text far longer than the HTML, and the steps above
    # then swing past the answer: search the budget instead
    low, high, best = 0, limit, ""
    while low <= high:
        middle = (low + high) // 2
        text = plain_text(_compose(parts, middle)[0])
        if utf16_len(text) <= limit:
            low, best = middle + 1, text
        else:
            high = middle - 1
    return best


def _caption_is_sensible(parts: _Parts, cut: Cut | None) -> bool:
    if cut is None:
        return True
    return cut.boundary in ("paragraph", "sentence", "line") and cut.kept >= MIN_CAPTION_BODY


def _join(*blocks: str) -> str:
    return "\n\n".join(b for b in blocks if b.strip(TRIM))


def _header(entry: Entry, feed_title: str, link: str, opts: RenderOptions) -> str:
    title = _short(entry.title, TITLE_MAX)
    if title:
        first = f'<b><a href="{escape(link, quote=True)}">{escape(title)}</a></b>' if link else (
            f"<b>{escape(title)}</b>"
        )
    elif link and not entry.content_html.strip():
        first = escape(link)
    else:
        first = ""
    meta = [
        _short(opts.custom_title or feed_title, NAME_MAX),
        _short(entry.author, NAME_MAX),
        format_date(entry.published, opts.timezone, opts.lang),
    ]
    second = escape(" · ".join(m for m in meta if m))
    header = "\n".join(line for line in (first, second) if line)
    if not title and not entry.content_html.strip() and not link and not second:
        return t("post_untitled", opts.lang)
    return header or t("post_untitled", opts.lang)


def format_date(when: datetime | None, timezone: str = "UTC", lang: str = DEFAULT_LANG) -> str:
    """"21 Nov 2026, 14:05 UTC" (in `lang`) in the given IANA zone (UTC when it is unknown)."""
    if when is None:
        return ""
    return format_time(when, lang, "post", timezone)


def _short(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", clean_text(text or "")).strip()
    if utf16_len(text) <= limit:
        return text
    cut = truncate(escape(text), limit - 1)
    return plain_text(cut.html).rstrip(" ,;:-") + "…"


def _hashtags(categories: tuple[str, ...]) -> str:
    tags: list[str] = []
    for cat in categories:
        tag = re.sub(r"\W+", "_", cat).strip("_")[:40]
        if tag and not tag.isdigit() and tag.lower() not in {t.lower() for t in tags}:
            tags.append(tag)
    return " ".join("#" + t for t in tags[:MAX_HASHTAGS])


def _safe_link(link: str) -> str:
    link = re.sub(r"[\x00-\x20\x7f]", "", link or "")
    scheme = link.split(":", 1)[0].lower() if ":" in link else ""
    return link if scheme in ("http", "https") and "//" in link else ""


def _photo_url(entry: Entry, opts: RenderOptions) -> str:
    if not opts.pictures or opts.style == "title" or not entry.image_url:
        return ""
    url = entry.image_url.strip()
    return url if re.match(r"https?://[^\s/]", url, re.I) else ""


def _preview(link: str, opts: RenderOptions) -> dict[str, Any]:
    if not opts.link_preview or not link:
        return {"is_disabled": True}
    size = "prefer_large_media" if opts.pictures else "prefer_small_media"
    return {"url": link, size: True}
