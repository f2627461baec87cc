"""Hashtags: an entry's categories and a subscription's own tags, as Telegram links them.

Telegram makes a link of `#` followed by letters (any script), digits, marks and underscores,
not of digits alone. A category becomes one tag: apostrophes dropped (`Don't` -> `Dont`), any
other run of spaces, dashes and punctuation one underscore (`Machine Learning` ->
`Machine_Learning`, `机器学习/深度学习` -> `机器学习_深度学习`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from bot.errors import OptionError

MAX_TAG = 40  # characters of one tag
MAX_CATEGORY_TAGS = 5  # of an entry's categories
MAX_OWN_TAGS = 10  # a subscription's own tags
_APOSTROPHES = frozenset("'’ʼ`´")
_SEPARATORS = re.compile(r"[\s,]+")


def normalize_tag(text: str) -> str:
    """One category or typed tag -> the tag Telegram links (without `#`); "" when nothing of
    it would be linked (no letters or digits, or digits only)."""
    kept = []
    for char in unicodedata.normalize("NFKC", text):
        if char in _APOSTROPHES:
            continue
        linked = char == "_" or unicodedata.category(char)[0] in "LNM"
        kept.append(char if linked else "_")
    tag = re.sub(r"_+", "_", "".join(kept)).strip("_")
    tag = tag[:MAX_TAG].rstrip("_")
    if not tag or tag.replace("_", "").isdigit() or unicodedata.category(tag[0])[0] == "M":
        return ""
    return tag


def hashtags(own: Iterable[str], categories: Iterable[str] = ()) -> tuple[str, ...]:
    """The tags of a post: the subscription's own, then up to MAX_CATEGORY_TAGS of its
    categories; each once, whatever its case."""
    seen: set[str] = set()
    tags: list[str] = []
    for limit, source in ((MAX_OWN_TAGS, own), (MAX_CATEGORY_TAGS, categories)):
        added = 0
        for text in source:
            tag = normalize_tag(text)
            if tag and tag.casefold() not in seen and added < limit:
                seen.add(tag.casefold())
                tags.append(tag)
                added += 1
    return tuple(tags)


def hashtag_line(tags: Iterable[str]) -> str:
    return " ".join("#" + tag for tag in tags)


def parse_tags(raw: str) -> tuple[str, ...]:
    """`/set N tags news tech` -> ("news", "tech"); OptionError naming a word that makes no
    tag, or when there are more than MAX_OWN_TAGS."""
    tags: list[str] = []
    for word in _SEPARATORS.split(raw.strip()):
        if not word:
            continue
        tag = normalize_tag(word.lstrip("#"))
        if not tag:
            raise OptionError("set_tags_bad", value=word)
        if tag.casefold() not in {t.casefold() for t in tags}:
            tags.append(tag)
    if len(tags) > MAX_OWN_TAGS:
        raise OptionError("set_tags_too_many", limit=MAX_OWN_TAGS)
    return tuple(tags)
