"""Find English words in a message meant for a chat in another language (issue 12).

A word is a run of 2+ ASCII letters. Not counted: what is inside <code>/<pre>, tags, URLs,
/commands and @names, the literals a test passes (feed and post titles: the feeds' words, not
the bot's), and the technical names that every language writes in Latin letters.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

#: format, protocol and product names, and units, written the same way in every language
TECH_TERMS = frozenset({
    "feedbot", "Telegram", "RSS", "Atom", "JSON", "Feed", "OPML", "XML", "DOCTYPE",
    "HTTP", "HTTPS", "http", "https", "TLS", "IPv4", "IPv6", "NAT", "ID", "UTC",
    "KB", "KiB", "MiB", "GiB", "YouTube",
})
_CODE = re.compile(r"<(code|pre)\b[^>]*>.*?</\1>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
#: a URL, or an address shown without its scheme (host with a dot or a port, then a path)
_URL = re.compile(
    r"(?:https?|ftp)://[\x21-\x7e]+|\b[\w.-]+(?:\.[a-z]{2,}|:\d+)/[\x21-\x7e]*"
)
_COMMAND = re.compile(r"(?<![\w])[/@][A-Za-z]\w*")
_PLACEHOLDER = re.compile(r"\{\w*\}")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def english_words(text_html: str, literals: Iterable[str] = ()) -> list[str]:
    """The English words of `text_html` (Telegram HTML, or plain text) outside what is allowed."""
    text = _TAG.sub(" ", _CODE.sub(" ", text_html))
    text = html.unescape(text)
    for literal in sorted((x for x in literals if x), key=len, reverse=True):
        text = text.replace(literal, " ")
    text = _COMMAND.sub(" ", _URL.sub(" ", text))
    return [
        w for w in _WORD.findall(text)
        if sum(c.isalpha() for c in w) >= 2 and w not in TECH_TERMS
    ]


def template_english_words(template: str) -> list[str]:
    """`english_words` of a catalogue message, its {placeholders} left out."""
    return english_words(_PLACEHOLDER.sub(" ", template))
