"""A Template (bot.template) filled with a post's values, within Telegram's length limit.

The values are safe Telegram HTML already (escaped text; the summary and enclosure lines as
bot.render makes them). A line whose placeholders are all empty and that has nothing else to
show is left out. Too long, the summary is cut first (with "…" and the "Read more" link),
then the tags go, and only then is the whole cut.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bot.render.cut import TRIM, Cut, measure, truncate
from bot.template import Line, Slot, Template

#: the tags go when they would leave the summary less than this (as bot.render.message does)
MIN_SUMMARY = 100
_TAGS = re.compile(r"<(/?)[a-z][^>]*>")
_EMPTY_LINK = re.compile(r'<a href="">(.*?)</a>', re.S)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
#: a tag left with nothing in it (an untitled post's `<b>{title}</b>`)
_EMPTY_TAG = re.compile(
    r"<(b|strong|i|em|u|ins|s|strike|del|code|pre|tg-spoiler|span|blockquote|a)"
    r"(?: [^>]*)?>\s*</\1>"
)


def fill(template: Template, values: Mapping[str, str]) -> str:
    lines = [_line(line, values) for line in template.lines if _shown(line, values)]
    text = _EMPTY_LINK.sub(r"\1", "\n".join(lines))
    previous = None
    while previous != text:
        previous, text = text, _EMPTY_TAG.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip(TRIM)


def _line(line: Line, values: Mapping[str, str]) -> str:
    return "".join(values.get(p.name, "") if isinstance(p, Slot) else p for p in line)


def _shown(line: Line, values: Mapping[str, str]) -> bool:
    """False for a line whose shown placeholders are all empty and whose literal text is only
    spaces and tags opened and closed on the line (`<b>{title}</b>` of an untitled post)."""
    slots = [p for p in line if isinstance(p, Slot) and not p.in_tag]
    if not slots or any(values.get(s.name, "").strip(TRIM) for s in slots):
        return True
    literal = "".join(p for p in line if isinstance(p, str))
    depth = 0
    for closing in _TAGS.findall(literal):
        depth += -1 if closing else 1
        if depth < 0:
            return True  # closes a tag of an earlier line: the line must stay
    return depth != 0 or bool(_TAGS.sub("", literal).strip(TRIM))


def fill_within(
    template: Template, values: Mapping[str, str], limit: int, more: str = ""
) -> tuple[str, Cut | None]:
    """The filled template within `limit` (Telegram's units); the Cut of the summary, None when
    it was not cut. `more`: the "Read more" link put after a cut summary."""
    html = fill(template, values)
    if measure(html) <= limit:
        return html, None
    untagged = {**values, "tags": ""}
    summary = values.get("summary", "") if "summary" in template.slots else ""
    if not summary:
        html = fill(template, untagged)
        return (html if measure(html) <= limit else truncate(html, limit).html), None
    shown = dict(values) if _room(template, values, limit, more) >= MIN_SUMMARY else untagged
    budget = _room(template, shown, limit, more)
    cut = None
    for _ in range(5):
        cut = truncate(summary, max(budget, 0))
        ending = "…" if cut.boundary in ("word", "hard") else ""
        body = "\n".join(part for part in (cut.html + ending, more) if part.strip(TRIM))
        html = fill(template, {**shown, "summary": body})
        excess = measure(html) - limit
        if excess <= 0:
            return html, cut
        budget -= excess
    return truncate(html, limit).html, cut


def _room(template: Template, values: Mapping[str, str], limit: int, more: str) -> int:
    """What the rest of the message leaves of `limit` for the summary's text."""
    return limit - measure(fill(template, {**values, "summary": "x\n" + more})) + 1
