"""Message templates: what a user types after `/set N template`, read into safe Telegram HTML.

A template is literal text with named placeholders (`{title}`, `{summary}`, …); `{{` and `}}`
are literal braces and `\\n` a line break. The literal text is user input: it is escaped, except
for the tags of Telegram's HTML whitelist, which must be well formed and closed. Anything else
is refused with an `OptionError` naming what is wrong, so a template that was accepted always
renders. Filling the placeholders and fitting the result to Telegram's limits is
`bot.render.template`; this module has no dependency on the renderer (bot.options reads
templates with it).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache

from bot.errors import OptionError

PLACEHOLDERS = ("title", "link", "summary", "author", "feed", "date", "tags", "enclosure")
#: placeholders whose values are HTML with links and blocks of their own: never inside a tag
RICH = frozenset({"summary", "enclosure"})
#: styles written as templates (`full` and `title` are the renderer's own forms)
BUILT_IN = {
    "compact": '<b><a href="{link}">{title}</a></b>\n{summary}\n{enclosure}\n{tags}',
    "title-link": '<a href="{link}">{title}</a>\n{tags}',
}
MAX_TEMPLATE = 500  # characters
#: Telegram's HTML tags -> the attributes each may carry
TAGS: dict[str, frozenset[str]] = {
    **{name: frozenset() for name in ("b", "strong", "i", "em", "u", "ins", "s", "strike")},
    **{name: frozenset() for name in ("del", "code", "pre", "tg-spoiler")},
    "a": frozenset({"href"}),
    "blockquote": frozenset({"expandable"}),
    "span": frozenset({"class"}),
}
_QUOTES = {'"': '"', "“": "”", "„": "“", "'": "'", "«": "»", "「": "」"}
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}\n]*\}|[{}]|</?[A-Za-z][^<>]*>")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(.*)>", re.S)
_ATTR = re.compile(r"\s+([A-Za-z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
_URL = re.compile(r"^(https?://[^\s\"'<>{}]+|tg://[^\s\"'<>{}]+|mailto:[^\s\"'<>{}]+)$", re.I)


@dataclass(frozen=True)
class Slot:
    """A placeholder in a template; `in_tag`: the href of `<a href="{link}">`, not shown."""

    name: str
    in_tag: bool = False


#: one line of a template: safe HTML strings and slots, in order
Line = tuple[str | Slot, ...]


@dataclass(frozen=True)
class Template:
    lines: tuple[Line, ...]

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(p.name for line in self.lines for p in line if isinstance(p, Slot))


def typed_template(raw: str) -> str:
    """What was typed, as the template text to store: one pair of enclosing quotes dropped,
    `\\n` made a line break, the ends trimmed."""
    text = raw.strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1]
    return text.replace("\r\n", "\n").replace("\\n", "\n").strip()


def parse_template(text: str) -> Template:
    """Template text (as `typed_template` gives it) -> a Template; OptionError naming the
    first problem: a placeholder no template has, a lone brace, a tag Telegram refuses or one
    left open, summary or enclosure inside a tag, too long, no placeholder at all."""
    if len(text) > MAX_TEMPLATE:
        raise OptionError("template_too_long", limit=MAX_TEMPLATE)
    return _compiled(text)


@lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    reader = _Reader()
    at = 0
    for match in _TOKEN.finditer(text):
        reader.literal(text[at : match.start()])
        reader.token(match.group(), text, match.start())
        at = match.end()
    reader.literal(text[at:])
    return reader.finish()


class _Reader:
    """Builds a Template token by token, checking as it goes."""

    def __init__(self) -> None:
        self.lines: list[list[str | Slot]] = [[]]
        self.open: list[str] = []  # tags opened and not yet closed
        self.seen = False  # a placeholder was read

    def literal(self, text: str) -> None:
        first, *more = text.split("\n")
        self._add(html.escape(first, quote=False))
        for line in more:
            self.lines.append([])
            self._add(html.escape(line, quote=False))

    def _add(self, part: str | Slot) -> None:
        if part:
            self.lines[-1].append(part)

    def token(self, token: str, text: str, at: int) -> None:
        if token in ("{{", "}}"):
            self._add(token[0])
        elif token in ("{", "}"):
            raise OptionError("template_brace", brace=token, near=_near(text, at))
        elif token.startswith("{"):
            self._add(self._slot(token[1:-1]))
        else:
            for part in self._tag(token):
                self._add(part)

    def _slot(self, typed: str) -> Slot:
        name = typed.strip().lower()
        if name not in PLACEHOLDERS:
            raise OptionError("template_unknown_placeholder", name=typed, known=known())
        if name in RICH and self.open:
            raise OptionError("template_rich_in_tag", name=name, tag=self.open[-1])
        self.seen = True
        return Slot(name)

    def _tag(self, token: str) -> tuple[str | Slot, ...]:
        match = _TAG.fullmatch(token)
        name = match.group(2).lower() if match else token
        if match is None or name not in TAGS:
            raise OptionError("template_bad_tag", tag=token)
        if match.group(1):  # a closing tag
            if match.group(3).strip() or not self.open or self.open[-1] != name:
                raise OptionError("template_tag_order", tag=token)
            self.open.pop()
            return (f"</{name}>",)
        if name in ("a", "pre", "code") and set(self.open) & {"a", "pre", "code"}:
            raise OptionError("template_bad_tag", tag=token)  # Telegram refuses these nested
        attrs = _attributes(match.group(3), token)
        if not set(attrs) <= TAGS[name]:
            raise OptionError("template_bad_tag", tag=token)
        self.open.append(name)
        if name == "a" and attrs.get("href", "").strip().lower() == "{link}":
            self.seen = True
            # filled, an empty link drops the tag (bot.render.template)
            return ('<a href="', Slot("link", in_tag=True), '">')
        return (_open_tag(name, attrs, token),)

    def finish(self) -> Template:
        if self.open:
            raise OptionError("template_tag_unclosed", tag=f"<{self.open[-1]}>")
        if not self.seen:
            raise OptionError("template_no_placeholder", known=known())
        return Template(tuple(tuple(line) for line in self.lines))


def _attributes(text: str, token: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    at = 0
    for match in _ATTR.finditer(text):
        if match.start() != at:
            break
        attrs[match.group(1).lower()] = match.group(2) or match.group(3) or ""
        at = match.end()
    if text[at:].strip():
        raise OptionError("template_bad_tag", tag=token)
    return attrs


def _open_tag(name: str, attrs: dict[str, str], token: str) -> str:
    """The opening tag as we emit it; `href` is `{link}` or a literal web, tg or mail URL."""
    if name == "a":
        href = attrs.get("href", "").strip()
        if not _URL.match(href):
            raise OptionError("template_bad_link", tag=token)
        return f'<a href="{html.escape(href, quote=True)}">'
    if name == "span":
        if attrs.get("class") != "tg-spoiler":
            raise OptionError("template_bad_tag", tag=token)
        return '<span class="tg-spoiler">'
    if name == "blockquote" and "expandable" in attrs:
        return "<blockquote expandable>"
    return f"<{name}>"


def _near(text: str, at: int) -> str:
    """A few characters around position `at`, for saying where a problem is."""
    start, end = max(0, at - 12), min(len(text), at + 12)
    return (
        ("…" if start else "")
        + text[start:end].replace("\n", " ")
        + ("…" if end < len(text) else "")
    )


def known() -> str:
    return " ".join("{" + name + "}" for name in PLACEHOLDERS)


@lru_cache(maxsize=256)
def template_for(style: str) -> Template | None:
    """The Template a stored style value means: a built-in one's, a custom one's; None for
    the renderer's own forms (`full`, `title`) and for a value that is not a valid template
    (a record written by another version): that post is rendered in full. The 🎧/▶/📎 lines
    are how a reader reaches what a post could not carry, so a template without {enclosure}
    has them at its end."""
    text = BUILT_IN.get(style, style)
    if style in ("full", "title") or not text:
        return None
    try:
        template = parse_template(text)
    except OptionError:
        return None
    if "enclosure" in template.slots:
        return template
    return Template((*template.lines, (Slot("enclosure"),)))
