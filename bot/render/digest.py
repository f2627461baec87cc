"""A digest's messages (pure): the posts a chat collected (`models.DigestItem`), titles linked,
grouped by feed, cut at Telegram's limits.

Beside the 4,096 units of text, a message Telegram accepts has at most 100 formatting entities
(it ignores those after) and a bounded total size of its entities (the URLs of links count: about
9,500 characters, past which it refuses the message with ENTITIES_TOO_LONG). A digest of many
posts meets those first, so each message is filled line by line against all three.

When the posts do not fit one message, the first says how many more there are and links a
Telegraph page of the whole digest when one was published (`digest_page`); without a page the
rest follow in as many messages as they need: nothing collected is dropped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.feeds.urls import public_url
from bot.i18n import format_time, t
from bot.models import ApiCall, DigestItem, RenderedMessage
from bot.render.cut import measure, plain_text, utf16_len
from bot.render.telegraph import TITLE_LIMIT, PageDraft, fit, size

TEXT_LIMIT = 4096
ENTITY_LIMIT = 100
#: the total length of the links' URLs one message may carry (Telegram's bound is higher)
LINK_BUDGET = 8000
#: a post's title in a digest line, in characters
TITLE_CHARS = 200


@dataclass
class _Message:
    lines: list[str] = field(default_factory=list)
    units: int = 0
    entities: int = 0
    link_chars: int = 0

    def room_for(self, line: str, entities: int, link_chars: int, reserve: int = 0) -> bool:
        return (
            self.units + measure(line) + 1 + reserve <= TEXT_LIMIT
            and self.entities + entities <= ENTITY_LIMIT - (1 if reserve else 0)
            and self.link_chars + link_chars <= LINK_BUDGET
        )

    def add(self, line: str, entities: int, link_chars: int) -> None:
        self.lines.append(line)
        self.units += measure(line) + 1
        self.entities += entities
        self.link_chars += link_chars


@dataclass(frozen=True)
class _Line:
    html: str
    entities: int
    link_chars: int
    header: bool = False  # a feed's name, above its posts


def grouped(items: Sequence[DigestItem]) -> list[tuple[str, list[DigestItem]]]:
    """(feed title, its items) in the order the feeds first appear, items oldest first."""
    groups: dict[str, list[DigestItem]] = {}
    for item in sorted(items, key=lambda i: (i.created, i.id)):
        groups.setdefault(item.feed_title or public_url(item.feed_url), []).append(item)
    return list(groups.items())


def _title(item: DigestItem) -> str:
    text = " ".join((item.title or item.link or "…").split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def _item_line(item: DigestItem) -> _Line:
    title = html.escape(_title(item), quote=False)
    if item.link.startswith(("http://", "https://")):
        href = html.escape(item.link, quote=True)
        return _Line(f'• <a href="{href}">{title}</a>', 1, len(item.link))
    return _Line(f"• {title}", 0, 0)


def _lines(items: Sequence[DigestItem]) -> list[_Line]:
    out: list[_Line] = []
    for feed, posts in grouped(items):
        name = html.escape(" ".join(feed.split())[:TITLE_CHARS], quote=False)
        out.append(_Line(f"\n<b>{name}</b>", 1, 0, header=True))
        out.extend(_item_line(p) for p in posts)
    return out


def header(count: int, lang: str, timezone: str, now: float) -> str:
    date = html.escape(format_time(now, lang, "long", timezone))
    return t("digest_header", lang, count=count, date=date)


def fits_one(items: Sequence[DigestItem], lang: str, timezone: str, now: float) -> bool:
    """Whether the whole digest fits one message (else a Telegraph page is worth making):
    `digest_messages` without a page gives one message."""
    return len(_pack(items, lang, timezone, now, "")) == 1


def digest_messages(
    items: Sequence[DigestItem], lang: str, timezone: str, now: float, page_url: str = ""
) -> list[RenderedMessage]:
    """The digest of `items` for a chat in `lang`, dated `now` in its zone: one message when it
    fits, else one with the overflow's count and `page_url` (the whole digest's page), else
    (no page) as many as it takes."""
    return [_rendered(text) for text in _pack(items, lang, timezone, now, page_url)]


def _pack(
    items: Sequence[DigestItem], lang: str, timezone: str, now: float, page_url: str
) -> list[str]:
    lines = _lines(items)
    first = _Message()
    first.add(header(len(items), lang, timezone, now), 1, 0)
    messages = [first]
    current_feed = ""
    placed = 0
    for line in lines:
        current = messages[-1]
        reserve = 160 if page_url else 0  # the overflow line and the page's link
        if not current.room_for(line.html, line.entities, line.link_chars, reserve):
            if page_url:
                return [_with_overflow(first, len(items) - placed, page_url, lang, len(items))]
            current = _Message()
            current.add(t("digest_continued", lang), 1, 0)
            if not line.header:  # a feed's posts go on: name it again
                current.add(current_feed, 1, 0)
            messages.append(current)
        if line.header:
            current_feed = line.html.strip()
        else:
            placed += 1
        current.add(line.html, line.entities, line.link_chars)
    return ["\n".join(m.lines) for m in messages]


def _with_overflow(
    message: _Message, more: int, page_url: str, lang: str, total: int
) -> str:
    lines = list(message.lines)
    while lines and lines[-1].startswith("\n<b>"):  # a feed's name with none of its posts
        lines.pop()
    href = html.escape(page_url, quote=True)
    lines.append("\n" + t("digest_more", lang, count=more))
    lines.append(f'<a href="{href}">{t("digest_page", lang, count=total)}</a>')
    return "\n".join(lines)


def _rendered(text: str) -> RenderedMessage:
    preview = {"is_disabled": True}
    plain = plain_text(text)
    if utf16_len(plain) > TEXT_LIMIT:  # links written out make the plain form longer
        plain = _cut_plain(plain)
    return RenderedMessage(
        attempts=(
            ApiCall(
                "sendMessage",
                {"text": text, "parse_mode": "HTML", "link_preview_options": preview},
            ),
            ApiCall("sendMessage", {"text": plain, "link_preview_options": preview}),
        )
    )


def _cut_plain(text: str) -> str:
    lines = text.split("\n")
    while lines and utf16_len("\n".join(lines) + "\n…") > TEXT_LIMIT:
        lines.pop()
    return "\n".join(lines) + "\n…"


# ---------------------------------------------------------------------------- the page
def digest_page(items: Sequence[DigestItem], lang: str, timezone: str, now: float) -> PageDraft:
    """The whole digest as a Telegraph page: each feed a heading, its posts a linked list."""
    content: list[object] = []
    for feed, posts in grouped(items):
        content.append({"tag": "h4", "children": [" ".join(feed.split())[:TITLE_CHARS]]})
        rows = []
        for post in posts:
            title = _title(post)
            if post.link.startswith(("http://", "https://")):
                label: object = {"tag": "a", "attrs": {"href": post.link}, "children": [title]}
            else:
                label = title
            rows.append({"tag": "li", "children": [label]})
        content.append({"tag": "ul", "children": rows})
    fitted, trimmed = fit(content, 60 * 1024 - size([]))
    if trimmed:
        fitted.append({"tag": "p", "children": ["…"]})
    date = format_time(now, lang, "long", timezone)
    title = t("digest_page_title", lang, date=date)[:TITLE_LIMIT]
    return PageDraft(title, "feedbot", "", fitted or ["…"], trimmed)
