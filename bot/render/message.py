"""Entry -> RenderedMessage: header, body, cut to Telegram's limits, and the fallback chain."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.hashtags import hashtag_line, hashtags
from bot.i18n import DEFAULT_LANG, format_time, t
from bot.models import ApiCall, Entry, RenderedMessage
from bot.options import OPTIONS, Effect, SubscriptionOptions
from bot.render.convert import escape, html_to_telegram
from bot.render.cut import TRIM, Cut, escape_text, measure, plain_text, truncate, utf16_len
from bot.render.media import (
    Playable,
    album_images,
    enclosure_lines,
    is_video_page,
    playable,
    too_big_picture,
)
from bot.render.template import fill_within
from bot.render.tree import clean_text
from bot.template import Template, template_for

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
TITLE_MAX = 300  # UTF-16 units; hostile feeds send megabyte titles
NAME_MAX = 80
#: a cut caption is worth it only when it keeps at least this share of the body's text; else
#: the post goes out as a text message with the picture as its large link preview
MIN_CAPTION_SHARE = 2 / 3
#: the largest file Telegram fetches by URL on the public Bot API (photos: 5 MB)
MEDIA_URL_LIMIT = 20 * 1024 * 1024


@dataclass(frozen=True)
class RenderOptions:
    #: "full" | "title" (title + link only) | a built-in template's name | a template's text
    style: str = "full"
    pictures: bool = True
    hashtags: bool = True  # the entry's categories as hashtags
    tags: str = ""  # the subscription's own hashtags, space-separated, without "#"
    link_preview: bool = True
    custom_title: str = ""  # replaces the feed name in the header when set
    #: "auto" (a post too long for one message) | "always" | "off": when a post is sent as a
    #: link to its Instant View page (given to `render_entry` as `page`)
    instant_view: str = "auto"
    #: the post's body is its web page's article when one was fetched (bot.fulltext); read
    #: by bot.pipeline.check.shown_entry, which gives `render_entry` that entry
    fulltext: bool = False
    #: the chat's time zone (Chat.timezone): the post's date
    timezone: str = "UTC"
    #: the language of the chat the post is for: its date and "Read more" link
    lang: str = DEFAULT_LANG
    #: audio and video enclosures declared larger than this (bytes) get a link line instead
    media_url_limit: int = MEDIA_URL_LIMIT
    #: (field, value) of the render options registered at run time without a field here
    #: (bot.options.OPTIONS.add); read them with `value`
    added: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def for_subscription(
        cls,
        options: SubscriptionOptions,
        lang: str = DEFAULT_LANG,
        media_url_limit: int = MEDIA_URL_LIMIT,
        timezone: str = "UTC",
    ) -> RenderOptions:
        """What a subscription's options that affect rendering (bot.options) make of its posts:
        each goes to the field of its name, or to `added` when there is none. `lang` and
        `timezone` are the chat's."""
        chosen = {o.field: options.get(o) for o in OPTIONS.affecting(Effect.RENDER)}
        own = {name: value for name, value in chosen.items() if name in _RENDER_FIELDS}
        added = tuple((name, value) for name, value in chosen.items() if name not in own)
        return cls(
            **own, lang=lang, media_url_limit=media_url_limit, timezone=timezone or "UTC",
            added=added,
        )

    def value(self, name: str) -> Any:
        """A render option by field name, its own field or one in `added` (else KeyError)."""
        if name in _RENDER_FIELDS:
            return getattr(self, name)
        return dict(self.added)[name]


_RENDER_FIELDS = frozenset(RenderOptions.__dataclass_fields__) - {"added"}


@dataclass(frozen=True)
class _Parts:
    header: str
    body: str
    tags: str
    link: str
    read_more: str  # the "Read more →" link's text
    #: "🎧 Listen" / "▶ Watch" / "📎" lines for enclosures not sent as media (never cut)
    lines: str = ""
    #: the subscription's template and the values of its plain placeholders (escaped);
    #: None: the message is the header, body, lines and tags
    template: Template | None = None
    values: tuple[tuple[str, str], ...] = ()


def render_entry(
    entry: Entry, feed_title: str, options: RenderOptions | None = None, page: str = ""
) -> RenderedMessage:
    """The post as a message. `page`: the URL of its Instant View page (bot.telegraph), when
    one was published: the post is then sent as a link to it if `wants_page` says so."""
    opts = options or RenderOptions()
    parts = _parts(entry, feed_title, opts)
    if page and _wants_page(entry, parts, opts):
        return _instant_view_post(entry, feed_title, parts, opts, page)
    media = playable(entry, opts.media_url_limit) if not _bodiless(opts) else None
    if media is not None and media.sendable:
        performer = _short(entry.author or opts.custom_title or feed_title, 64)
        return _media_post(media, entry, parts, opts, performer)
    images = _album(entry, opts)
    if images:
        return _album_post(images, _with_lines(parts, entry, opts, set(images)), opts)
    photo = _photo_url(entry, opts)
    if photo:
        parts = _with_lines(parts, entry, opts, {photo})
        caption, cut = _compose(parts, CAPTION_LIMIT)
        if _caption_is_sensible(parts, cut):
            photo_call = ApiCall(
                "sendPhoto", {"photo": photo, "caption": caption, "parse_mode": "HTML"}
            )
            return RenderedMessage(attempts=(photo_call, *_text_calls(parts, opts)))
        # a cut caption would lose too much: the text, with the picture as its large preview
        return RenderedMessage(attempts=_text_calls(parts, opts, picture=photo))
    picture = _no_link_picture(entry, parts, opts)
    parts = _with_lines(parts, entry, opts, {picture})
    return RenderedMessage(attempts=_text_calls(parts, opts, picture=picture))


def _bodiless(opts: RenderOptions) -> bool:
    """The title style, and a template without {summary}: no body, so no pictures or media."""
    if opts.style == "title":
        return True
    template = template_for(opts.style)
    return template is not None and "summary" not in template.slots


def wants_page(entry: Entry, feed_title: str, options: RenderOptions | None = None) -> bool:
    """Whether the post goes out as a link to its Instant View page: always, or (auto) when
    its text would be cut to fit one message."""
    opts = options or RenderOptions()
    if opts.instant_view != "auto" or _no_room_for_page(opts):
        return opts.instant_view == "always" and not _no_room_for_page(opts)
    return _wants_page(entry, _parts(entry, feed_title, opts), opts)


def _no_room_for_page(opts: RenderOptions) -> bool:
    """A template without {summary}: the page's link (shown where the text goes) has no place."""
    return opts.style != "title" and _bodiless(opts)


def _wants_page(entry: Entry, parts: _Parts, opts: RenderOptions) -> bool:
    if _no_room_for_page(opts):
        return False
    if opts.instant_view != "auto" or not parts.body:
        return opts.instant_view == "always"
    text_form = _with_lines(parts, entry, opts, set())
    return _compose(text_form, TEXT_LIMIT)[1] is not None


def _instant_view_post(
    entry: Entry, feed_title: str, parts: _Parts, opts: RenderOptions, page: str
) -> RenderedMessage:
    """The header, a link to the post's Instant View page and the footer (tags, enclosure
    lines). The page's link preview is what shows Telegram's Instant View button, so it is on
    even where the subscription turned previews off. Audio and video still go as media, the
    link in their caption."""
    label = t("instant_view_link", opts.lang)
    link_line = f'<a href="{escape(page, quote=True)}">{label}</a>'
    shown = {*entry.images, entry.image_url or ""}
    short = replace(parts, body=link_line)
    media = playable(entry, opts.media_url_limit) if not _bodiless(opts) else None
    if media is not None and media.sendable:
        performer = _short(entry.author or opts.custom_title or feed_title, 64)
        with_media = replace(short, lines=enclosure_lines(entry, opts.lang, shown | {media.url}))
        caption, _ = _compose(with_media, CAPTION_LIMIT)
        call = _media_call(media, entry, caption, performer)
        text = replace(short, lines=enclosure_lines(entry, opts.lang, shown))
        return RenderedMessage(attempts=(call, *_page_calls(text, page)))
    short = replace(short, lines=enclosure_lines(entry, opts.lang, shown, pictures=False))
    return RenderedMessage(attempts=_page_calls(short, page))


def _page_calls(parts: _Parts, page: str) -> tuple[ApiCall, ApiCall]:
    preview = {"url": page, "prefer_large_media": True}
    text, _ = _compose(parts, TEXT_LIMIT)
    html_params = {"text": text, "parse_mode": "HTML", "link_preview_options": preview}
    plain = _plain(parts, TEXT_LIMIT)
    if page not in plain:  # the plain form names the page (its link text is gone)
        plain = f"{plain}\n\n{page}"
    plain_params = {"text": plain, "link_preview_options": preview}
    return ApiCall("sendMessage", html_params), ApiCall("sendMessage", plain_params)


def _with_lines(parts: _Parts, entry: Entry, opts: RenderOptions, shown: set[str]) -> _Parts:
    """`parts` with a link line for every enclosure the message does not carry (`shown`)."""
    pictures = opts.pictures and not _bodiless(opts)
    return replace(parts, lines=enclosure_lines(entry, opts.lang, shown, pictures=pictures))


def _no_link_picture(entry: Entry, parts: _Parts, opts: RenderOptions) -> str:
    """A post without a link has no preview: its episode artwork is shown as one instead."""
    if parts.link or not opts.pictures or _bodiless(opts):
        return ""
    return entry.artwork_url or ""


def _text_calls(parts: _Parts, opts: RenderOptions, picture: str = "") -> tuple[ApiCall, ApiCall]:
    """The text message (HTML, then plain); `picture` becomes its large link preview."""
    preview = _picture_preview(picture) if picture and opts.pictures else _preview(parts.link, opts)
    text, _ = _compose(parts, TEXT_LIMIT)
    html_params = {"text": text, "parse_mode": "HTML", "link_preview_options": preview}
    plain_params = {"text": _plain(parts, TEXT_LIMIT), "link_preview_options": preview}
    return ApiCall("sendMessage", html_params), ApiCall("sendMessage", plain_params)


def _media_post(
    media: Playable, entry: Entry, parts: _Parts, opts: RenderOptions, performer: str
) -> RenderedMessage:
    """Audio or video by URL, the text as its caption when it fits, else right after it. Refused,
    it becomes the text message with the "🎧 Listen" / "▶ Watch" line."""
    picture = _no_link_picture(entry, parts, opts)
    refused = _with_lines(parts, entry, opts, {picture})  # the text form: every enclosure
    parts = _with_lines(parts, entry, opts, {media.url})
    caption, cut = _compose(parts, CAPTION_LIMIT)
    if cut is None:
        call = _media_call(media, entry, caption, performer)
        return RenderedMessage(attempts=(call, *_text_calls(refused, opts, picture)))
    short = replace(parts, body="", tags="")
    call = _media_call(media, entry, _compose(short, CAPTION_LIMIT)[0], performer)
    refused_short = _text_calls(replace(refused, body="", tags=""), opts, picture)
    follow = RenderedMessage(attempts=_text_calls(replace(parts, lines=""), opts, picture))
    return RenderedMessage(attempts=(call, *refused_short), follow_up=follow)


def _media_call(media: Playable, entry: Entry, caption: str, performer: str) -> ApiCall:
    params: dict[str, Any] = {media.kind: media.url, "caption": caption, "parse_mode": "HTML"}
    if media.kind == "audio":
        title = _short(entry.title, 64)
        params.update({k: v for k, v in (("title", title), ("performer", performer)) if v})
    else:
        params["supports_streaming"] = True
    if entry.duration:
        params["duration"] = entry.duration
    thumbnail = entry.artwork_url or entry.image_url
    if thumbnail and re.match(r"https?://[^\s/]", thumbnail, re.I):
        params["thumbnail"] = thumbnail
    return ApiCall("send" + media.kind.capitalize(), params)


def _album_post(images: tuple[str, ...], parts: _Parts, opts: RenderOptions) -> RenderedMessage:
    """2-10 pictures as one album: the text as the first item's caption when it fits (only the
    first item's caption is shown under an album), else the album, then the text."""
    caption, cut = _compose(parts, CAPTION_LIMIT)
    follow: RenderedMessage | None = None
    text_parts = parts
    if cut is not None:
        caption = _compose(replace(parts, body="", tags=""), CAPTION_LIMIT)[0]
        # the album has just shown the pictures: no preview repeats them above the text
        follow = RenderedMessage(attempts=_text_calls(parts, replace(opts, link_preview=False)))
        text_parts = replace(parts, body="", tags="")
    media = [{"type": "photo", "media": url} for url in images]
    media[0].update({"caption": caption, "parse_mode": "HTML"})
    album = ApiCall("sendMediaGroup", {"media": media})
    photo = ApiCall("sendPhoto", {"photo": images[0], "caption": caption, "parse_mode": "HTML"})
    return RenderedMessage(
        attempts=(album, photo, *_text_calls(text_parts, opts, picture=images[0])),
        follow_up=follow,
    )


def _album(entry: Entry, opts: RenderOptions) -> tuple[str, ...]:
    if not opts.pictures or _bodiless(opts) or is_video_page(entry.link):
        return ()
    return album_images(entry)


def _parts(entry: Entry, feed_title: str, opts: RenderOptions, lines: str = "") -> _Parts:
    link = _safe_link(entry.link)
    header = _header(entry, feed_title, link, opts)
    own = opts.tags.split()
    if opts.style == "title":  # the post's categories belong with its body
        return _Parts(header, "", hashtag_line(hashtags(own)), link, t("read_more", opts.lang))
    body = html_to_telegram(entry.content_html or "", base_url=link, lang=opts.lang)
    tags = hashtag_line(hashtags(own, entry.categories if opts.hashtags else ()))
    template = template_for(opts.style)
    values = _template_values(entry, feed_title, link, opts) if template else ()
    return _Parts(header, body, tags, link, t("read_more", opts.lang), lines, template, values)


def _template_values(
    entry: Entry, feed_title: str, link: str, opts: RenderOptions
) -> tuple[tuple[str, str], ...]:
    """The placeholders' values but the summary, tags and enclosure lines (bot.template)."""
    return (
        ("title", escape(_short(entry.title, TITLE_MAX))),
        ("link", escape(link, quote=True)),
        ("author", escape(_short(entry.author, NAME_MAX))),
        ("feed", escape(_short(opts.custom_title or feed_title, NAME_MAX))),
        ("date", escape(format_date(entry.published, opts.timezone, opts.lang))),
    )


def _compose(parts: _Parts, limit: int) -> tuple[str, Cut | None]:
    """The message HTML within `limit`; the Cut is None when the body was not cut."""
    more = f'<a href="{escape(parts.link, quote=True)}">{parts.read_more}</a>' if parts.link else ""
    if parts.template is not None:
        values = {**dict(parts.values), "summary": parts.body, "tags": parts.tags}
        html, cut = fill_within(parts.template, {**values, "enclosure": parts.lines}, limit, more)
        if html.strip(TRIM):
            return html, cut
        parts = replace(parts, template=None)  # nothing to show for this post: the usual form
    full = _join(parts.header, parts.body, parts.lines, parts.tags)
    if measure(full) <= limit:
        return full, None
    budget = limit - measure(_join(parts.header, "x", more, parts.lines, parts.tags)) + 1
    tags = parts.tags
    if budget < 100 and tags:
        tags = ""
        budget = limit - measure(_join(parts.header, "x", more, parts.lines)) + 1
    for _ in range(5):
        cut = truncate(parts.body, max(budget, 0))
        body = cut.html + ("…" if cut.boundary in ("word", "hard") else "")
        html = _join(parts.header, body, more, parts.lines, tags)
        excess = measure(html) - limit
        if excess <= 0:
            return html, cut
        budget -= excess
    return truncate(html, limit).html, cut  # unreachable in practice: belt and braces


def _plain(parts: _Parts, limit: int) -> str:
    """The plain form within `limit`. Links there show their URL, so a body of many links is
    much longer in plain text than its HTML's visible text: the budget shrinks in proportion
    (never below nothing, which left an empty message)."""
    target = limit
    for _ in range(8):
        html = _compose(parts, target)[0]
        text = plain_text(html)
        size = utf16_len(text)
        if size <= limit:
            return text
        target = max(1, min(target, measure(html)) * limit // size)
    return plain_text(truncate(escape_text(text), limit).html)


def _caption_is_sensible(parts: _Parts, cut: Cut | None) -> bool:
    """A caption is kept unless it would lose more than a third of the body's text."""
    if cut is None:
        return True
    return cut.kept >= MIN_CAPTION_SHARE * measure(parts.body)


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
    shown = [escape(m) for m in meta]
    if link and not first:  # an untitled post: its date (else the feed's name) links to it
        at = 2 if shown[2] else 0
        if shown[at]:
            shown[at] = f'<a href="{escape(link, quote=True)}">{shown[at]}</a>'
        else:
            first = escape(link)
    second = " · ".join(m for m in shown if m)
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


def _safe_link(link: str) -> str:
    link = re.sub(r"[\x00-\x20\x7f]", "", link or "")
    scheme = link.split(":", 1)[0].lower() if ":" in link else ""
    return link if scheme in ("http", "https") and "//" in link else ""


def _photo_url(entry: Entry, opts: RenderOptions) -> str:
    if not opts.pictures or _bodiless(opts) or not entry.image_url:
        return ""
    if is_video_page(entry.link):  # its link preview plays the video; a still would not
        return ""
    url = entry.image_url.strip()
    if too_big_picture(entry, url):
        return ""
    return url if re.match(r"https?://[^\s/]", url, re.I) else ""


def _picture_preview(url: str) -> dict[str, Any]:
    return {"url": url, "prefer_large_media": True, "show_above_text": True}


def _preview(link: str, opts: RenderOptions) -> dict[str, Any]:
    if not opts.link_preview or not link:
        return {"is_disabled": True}
    size = "prefer_large_media" if opts.pictures else "prefer_small_media"
    return {"url": link, size: True}
