"""Keyword filters on posts. Pure: no regular expressions from users, so nothing can run away.

A filter is comma-separated terms, case-insensitive, matched on title and summary text:
`rust, python` keeps posts that mention either; `!sponsored` drops posts that mention it.
With only exclusions, everything else passes.
"""

from __future__ import annotations

import html
import re

from bot.models import Entry

_TAG = re.compile(r"<[^>]*>")


def parse_terms(spec: str) -> tuple[list[str], list[str]]:
    include: list[str] = []
    exclude: list[str] = []
    for raw in spec.split(","):
        term = " ".join(raw.split()).casefold()
        if term.startswith("!"):
            if term[1:].strip():
                exclude.append(term[1:].strip())
        elif term:
            include.append(term)
    return include, exclude


def entry_text(entry: Entry) -> str:
    body = html.unescape(_TAG.sub(" ", entry.content_html))
    return " ".join(f"{entry.title} {body}".split()).casefold()


def passes(text: str, spec: str) -> bool:
    include, exclude = parse_terms(spec)
    if any(term in text for term in exclude):
        return False
    return not include or any(term in text for term in include)


def matches(entry: Entry, *specs: str) -> bool:
    """True when the entry passes every non-empty filter in `specs`."""
    active = [s for s in specs if s and s.strip()]
    if not active:
        return True
    text = entry_text(entry)
    return all(passes(text, spec) for spec in active)
