"""The last-resort forms of a rendered message, for when Telegram refused every rendered one: the
text without markup, cut to a message; then only the title and the link. Never empty."""

from __future__ import annotations

import html
import re

from bot.feeds.urls import public_url
from bot.models import ApiCall, RenderedMessage
from bot.render.cut import utf16_len, visible
from bot.render.message import TEXT_LIMIT

TITLE_LIMIT = 300


def last_resort_calls(
    message: RenderedMessage, entry_key: str, feed_url: str
) -> tuple[ApiCall, ...]:
    """The plain text cut to a message, then title + link (no parse mode: nothing to refuse)."""
    return (
        ApiCall("sendMessage", {"text": cut_utf16(plain_text(message), TEXT_LIMIT)}),
        ApiCall("sendMessage", {"text": title_and_link(message, entry_key, feed_url)}),
    )


def plain_text(message: RenderedMessage) -> str:
    """The text of the safest rendered form, without markup; never empty."""
    return _bare_text(message) or _first_link(message) or "📰"  # no words: any chat's language


def _bare_text(message: RenderedMessage) -> str:
    last = message.attempts[-1].params
    text = str(last.get("text") or last.get("caption") or "")
    if str(last.get("parse_mode") or "").lower() == "html":
        text = visible(text)
    return text.strip()


def title_and_link(message: RenderedMessage, entry_key: str, feed_url: str) -> str:
    lines = [ln.strip() for ln in _bare_text(message).splitlines() if ln.strip()]
    title = cut_utf16(lines[0], TITLE_LIMIT) if lines else ""
    link = _first_link(message)
    if not link and entry_key.startswith(("http://", "https://")):
        link = entry_key
    parts = [title] + ([link] if link and link not in title else [])
    # the feed's address, with no credentials: the chat may be a channel
    return "\n".join(p for p in parts if p) or f"📰 {public_url(feed_url)}"


_URL_RE = re.compile(r"https?://[^\s<>\"']+")


def _first_link(message: RenderedMessage) -> str:
    for call in message.attempts:
        preview = call.params.get("link_preview_options")
        # a picture shown above the text as its preview is not the post's link
        if isinstance(preview, dict) and isinstance(preview.get("url"), str) and not preview.get(
            "show_above_text"
        ):
            return str(preview["url"])
    for call in message.attempts:
        for key in ("text", "caption"):
            found = _URL_RE.search(html.unescape(str(call.params.get(key) or "")))
            if found:
                return found.group().rstrip(".,;:!?)")
    return ""


def cut_utf16(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units (Telegram's measure), with an ellipsis."""
    if utf16_len(text) <= limit:
        return text
    units = 0
    out = []
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if units + size > limit - 1:
            break
        out.append(ch)
        units += size
    return "".join(out).rstrip() + "…"
