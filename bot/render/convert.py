"""Element tree -> Telegram-HTML fragment, keeping structure and a strict tag whitelist.

Output tags: b, i, u, s, a href, code, pre (optionally with <code class="language-x">) and
blockquote. Only &lt; &gt; &amp; &quot; are ever emitted as entities.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from bot.i18n import DEFAULT_LANG, t
from bot.render.math import MATH_RE, strip_delimiters, tex_to_unicode
from bot.render.tree import Node, parse

DROP = frozenset(
    {"frame", "frameset", "script", "style", "form", "svg", "noscript", "head", "template",
     "select", "textarea", "button", "input", "canvas", "map", "title", "meta", "link", "img",
     "picture", "source", "track", "param",
     "applet", "base", "dialog", "option", "datalist", "output", "progress", "meter", "image"}
)
INLINE = {"b": "b", "strong": "b", "i": "i", "em": "i", "cite": "i", "dfn": "i", "var": "i",
          "u": "u", "ins": "u", "s": "s", "del": "s", "strike": "s"}
CODE_LIKE = frozenset({"code", "kbd", "samp", "tt"})
PARAGRAPHS = frozenset({"p", "hr", "address", "center", "details", "figure"})
LINES = frozenset({"div", "section", "article", "header", "footer", "main", "aside", "nav",
                   "summary", "dl", "dt", "dd", "fieldset", "caption", "tr", "hgroup"})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
SAFE_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
PERMALINK_SYMBOLS = frozenset({"#", "¶", "🔗", "§", "⚓", "↩", "↩︎", "^"})
#: words that are a permalink only when they point at the post itself ("a link" in prose stays)
PERMALINK_WORDS = frozenset({"link", "permalink"})
BULLETS = ("• ", "◦ ", "▪ ")
INDENT = "   "
_WS_RE = re.compile(r"[ \t\n\r\f]+")
_SPLIT_WS_RE = re.compile(r"([ \t\n\r\f]+)")
_URL_JUNK_RE = re.compile(r"[\x00-\x1f\x7f]")
#: text that shows nothing: a paragraph of only these is no paragraph
_BLANK_RE = re.compile(r"[\s\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]+")
#: an inline base64 picture or file pasted as text: thousands of characters of noise
_DATA_URI_RE = re.compile(r"data:[\w.+/-]*(?:;[\w.+=-]+)*;base64,[A-Za-z0-9+/=]{16,}")
#: a table whose text grid is at most this wide is shown as a <pre> grid
TABLE_GRID_WIDTH = 40
TABLE_GRID_ROWS = 40
_BLOCKS_IN_CELL = frozenset({"p", "div", "br", "ul", "ol", "pre", "blockquote", "table", "h1",
                             "h2", "h3", "h4", "h5", "h6", "hr", "dl", "figure", "section"})
_EMBEDS = frozenset({"iframe", "embed", "object", "video", "audio"})
#: iframe titles that say nothing about the video
_GENERIC_TITLES = frozenset({"", "youtube video player", "youtube", "vimeo", "video", "embed",
                             "video player", "audio player", "player"})
_YOUTUBE_ID_RE = re.compile(
    r"(?:youtube(?:-nocookie)?\.com/(?:embed/|v/|watch\?v=)|youtu\.be/)([\w-]{6,20})", re.I
)


def escape(text: str, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


@dataclass
class Writer:
    """Accumulates Telegram-HTML; spacing, line breaks and tag openings are deferred until the
    next visible character so the output never has empty tags, leading/trailing whitespace,
    or more than one empty line in a row."""

    out: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)  # tags written and not yet closed
    #: (name, start tag) requested but not yet written
    pending: list[tuple[str, str]] = field(default_factory=list)
    newlines: int = 0
    space: bool = False
    space_had_newline: bool = False
    prefix: str = ""
    newline_cap: int = 2

    def block(self, n: int) -> None:
        self.newlines = max(self.newlines, n)

    def hard_break(self) -> None:
        self.newlines = min(self.newlines + 1, 2)

    def open(self, name: str, start_tag: str | None = None) -> None:
        self.pending.append((name, start_tag or f"<{name}>"))

    def close(self, name: str) -> None:
        if self.pending and self.pending[-1][0] == name:
            self.pending.pop()
        elif self.opened and self.opened[-1] == name:
            self.opened.pop()
            self.out.append(f"</{name}>")

    def is_open(self, *names: str) -> bool:
        return any(n in names for n in self.opened) or any(p[0] in names for p in self.pending)

    def inline_open(self) -> bool:
        return self.is_open("b", "i", "u", "s", "a", "code", "pre")

    def flush(self, next_char: str = "") -> None:
        if self.out:
            if self.newlines:
                self.out.append("\n" * min(self.newlines, self.newline_cap))
            elif self.space and not (self.space_had_newline and next_char in ",.;:!?)]%…-’'"):
                self.out.append(" ")
        if self.prefix:
            self.out.append(self.prefix)
        for name, tag in self.pending:
            self.out.append(tag)
            self.opened.append(name)
        self.pending.clear()
        self.newlines, self.space, self.space_had_newline = 0, False, False
        self.prefix, self.newline_cap = "", 2

    def set_space(self, whitespace: str) -> None:
        self.space = True
        self.space_had_newline = self.space_had_newline or "\n" in whitespace

    def text(self, text: str) -> None:
        """Flowing text: whitespace collapses as in a browser."""
        for part in _SPLIT_WS_RE.split(text):
            if not part:
                continue
            if _WS_RE.fullmatch(part) or _BLANK_RE.fullmatch(part):
                self.set_space(part)
            else:
                self.flush(part[0])
                self.out.append(escape(part))

    def raw(self, html: str, first_char: str = "") -> None:
        self.flush(first_char)
        self.out.append(html)

    def result(self) -> str:
        for name in reversed(self.opened):
            self.out.append(f"</{name}>")
        return "".join(self.out)


@dataclass
class Converter:
    base_url: str
    lang: str = DEFAULT_LANG
    w: Writer = field(default_factory=Writer)
    list_depth: int = 0

    def run(self, root: Node) -> str:
        self.children(root)
        return self.w.result()

    def children(self, node: Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.text(child)
            else:
                self.element(child)

    def element(self, node: Node) -> None:
        tag = node.tag
        classes = node.classes()
        if tag == "figcaption" or "figcaption" in classes:
            # the words under a picture are the post's words too, even when hidden from screen
            # readers because the picture's alt says the same
            self.w.block(1)
            self.inline("i", node)
            self.w.block(1)
            return
        if tag in DROP or "katex-html" in classes or node.attrs.get("aria-hidden") == "true":
            return
        if tag == "math":
            self.mathml(node)
        elif tag == "table":
            self.table(node)
        elif tag in _EMBEDS:
            self.embed(node)
        elif classes & {"math", "math-inline", "math-display", "arithmatex"} and tag in (
            "span", "div", "p"
        ):
            self.math_span(node, display=tag != "span" or "math-display" in classes
                           or "display" in classes)
        elif tag in INLINE:
            self.inline(INLINE[tag], node)
        elif tag == "a":
            self.link(node)
        elif tag == "br":
            self.w.hard_break()
        elif tag == "pre":
            self.pre(node)
        elif tag in CODE_LIKE:
            self.code(node.text())
        elif tag in HEADINGS:
            self.heading(node)
        elif tag in ("ul", "ol", "menu", "dir"):
            self.listing(node)
        elif tag == "li":  # stray <li> outside a list
            self.item(node, BULLETS[0])
        elif tag == "blockquote":
            self.blockquote(node)
        elif tag == "q":
            self.w.text("“")
            self.children(node)
            self.w.text("”")
        else:
            self.block(node, 2 if tag in PARAGRAPHS else 1 if tag in LINES else 0)

    def block(self, node: Node, breaks: int) -> None:
        self.w.block(breaks)
        self.children(node)
        self.w.block(breaks)

    def inline(self, name: str, node: Node) -> None:
        if self.w.is_open(name, "code", "pre"):
            self.children(node)
            return
        self.w.open(name)
        self.children(node)
        self.w.close(name)

    def heading(self, node: Node) -> None:
        self.w.block(2)
        self.inline("b", node)
        self.w.block(1)
        self.w.newline_cap = 1  # keep the section's first line right under its heading

    def blockquote(self, node: Node) -> None:
        if self.w.is_open("blockquote", "code", "pre") or self.w.inline_open():
            self.block(node, 2)
            return
        self.w.block(2)
        self.w.open("blockquote")
        self.children(node)
        self.w.close("blockquote")
        self.w.block(2)

    def listing(self, node: Node) -> None:
        ordered = node.tag == "ol"
        number = _int(node.attrs.get("start"), 1)
        self.w.block(1)
        self.list_depth += 1
        for child in node.children:
            if isinstance(child, str):
                if child.strip():
                    self.text(child)
                continue
            if child.tag != "li":
                self.element(child)
                continue
            number = _int(child.attrs.get("value"), number)
            marker = f"{number}. " if ordered else BULLETS[min(self.list_depth - 1, 2)]
            self.item(child, marker)
            number += 1
        self.list_depth -= 1
        self.w.block(1)

    def item(self, node: Node, marker: str) -> None:
        self.w.block(1)
        self.w.prefix = INDENT * max(self.list_depth - 1, 0) + marker
        self.children(node)
        self.w.prefix = ""
        self.w.block(1)

    def link(self, node: Node) -> None:
        label = node.text().strip()
        href = self.resolve(node.attrs.get("href", ""))
        if label in PERMALINK_SYMBOLS or (href is None and self.is_fragment(node, label)):
            return
        if label.lower() in PERMALINK_WORDS and (href is None or self.is_this_post(href)):
            return
        if href is None or self.w.is_open("a", "code", "pre"):
            self.children(node)
            return
        self.w.open("a", f'<a href="{escape(href, quote=True)}">')
        self.children(node)
        self.w.close("a")

    def is_this_post(self, href: str) -> bool:
        return bool(self.base_url) and href.split("#", 1)[0] == self.base_url.split("#", 1)[0]

    def is_fragment(self, node: Node, label: str) -> bool:
        """A same-page link: footnote markers and permalinks vanish, prose keeps its words."""
        href = encode_spaces(node.attrs.get("href", ""))
        return href.startswith("#") and len(label) <= 3

    def resolve(self, href: str) -> str | None:
        """Absolute, safe URL for an href, or None (keep the text, drop the link)."""
        href = href.strip()
        # an address has no spaces (obfuscators put some in); a path's spaces are %20
        href = href.replace(" ", "") if href[:7].lower() == "mailto:" else encode_spaces(href)
        if not href or href.startswith("#"):
            return None
        try:
            url = urljoin(self.base_url, href) if self.base_url else href
            parts = urlsplit(url)
        except ValueError:
            return None
        if parts.scheme.lower() not in SAFE_SCHEMES:
            return None
        if parts.scheme.lower() in ("http", "https") and not parts.hostname:
            return None
        base = self.base_url.split("#", 1)[0]
        if base and parts.fragment and url.split("#", 1)[0] == base:
            return None  # a fragment of this very post
        return url

    def pre(self, node: Node) -> None:
        text = node.text().replace("\r\n", "\n").replace("\t", "    ")
        text = text.removeprefix("\n").rstrip()
        if not text.strip():
            return
        if self.w.inline_open():
            self.w.block(1)
            for i, line in enumerate(text.split("\n")):
                if i:
                    self.w.hard_break()
                self.w.text(line)
            self.w.block(1)
            return
        lang = _language(node)
        inner = escape(text)
        html = (f'<pre><code class="language-{lang}">{inner}</code></pre>' if lang
                else f"<pre>{inner}</pre>")
        self.w.block(2)
        self.w.raw(html, text[0])
        self.w.block(2)

    def code(self, text: str) -> None:
        stripped = _WS_RE.sub(" ", text).strip()
        if not stripped:
            if text:
                self.w.set_space(text)
            return
        if text[:1].isspace():
            self.w.set_space(text)
        if self.w.inline_open():
            self.w.text(stripped)
        else:
            self.w.raw(f"<code>{escape(stripped)}</code>", stripped[0])
        if text[-1:].isspace():
            self.w.set_space(text)

    def text(self, text: str) -> None:
        if "base64," in text:
            text = _DATA_URI_RE.sub(" ", text)
        if self.w.is_open("code", "pre"):
            self.w.text(text)
            return
        pos = 0
        for m in MATH_RE.finditer(text):
            self.w.text(text[pos : m.start()])
            tex = next(g for g in m.groups() if g is not None)
            self.math(tex, display=m.group("dd") is not None or m.group("br") is not None)
            pos = m.end()
        self.w.text(text[pos:])

    def math(self, tex: str, display: bool) -> None:
        if not tex.strip():
            return
        if display:
            self.w.block(1)
        converted = tex_to_unicode(tex)
        if converted is not None:
            self.w.text(converted)
        else:
            self.code(_WS_RE.sub(" ", tex).strip())
        if display:
            self.w.block(1)

    def math_span(self, node: Node, display: bool) -> None:
        tex, delimited = strip_delimiters(node.text())
        self.math(tex, display or bool(delimited))

    def mathml(self, node: Node) -> None:
        tex = _tex_annotation(node) or node.attrs.get("alttext", "")
        self.math(strip_delimiters(tex)[0], node.attrs.get("display") == "block")


    def table(self, node: Node) -> None:
        """A table as text: a <pre> grid when narrow and plain, else one "cell · cell" line per
        row (cells holding paragraphs or code stay blocks of their own). Never dropped."""
        rows = table_rows(node)
        if not rows:
            self.block(node, 1)
            return
        grid = text_grid(rows) if not self.w.inline_open() else None
        if grid is not None:
            self.w.block(2)
            self.table_caption(node)
            self.w.raw(f"<pre>{escape(grid)}</pre>", grid[0])
            self.w.block(2)
            return
        self.w.block(2)
        self.table_caption(node)
        for row in rows:
            cells = [c for c in row if _has_text(c)]
            blocks = any(_has_block(c) for c in cells)
            self.w.block(1)
            for i, cell in enumerate(cells):
                if i and blocks:
                    self.w.block(1)
                elif i:
                    self.w.text(" · ")
                self.children(cell)
            self.w.block(1)
        self.w.block(2)

    def table_caption(self, table: Node) -> None:
        for child in table.children:
            if isinstance(child, Node) and child.tag == "caption" and _has_text(child):
                self.w.block(1)
                self.inline("b", child)
                self.w.block(1)

    def embed(self, node: Node) -> None:
        """A player (iframe, video, audio, object) as a link line: never silence."""
        found = embed_link(node, self.base_url)
        if found is None:  # a player's fallback text ("your browser cannot play this") is noise
            return
        url, key, values = found
        if self.w.is_open("a", "code", "pre"):
            return
        label = t(key, self.lang, **{k: escape(v) for k, v in values.items()})
        self.w.block(2)
        self.w.raw(f'<a href="{escape(url, quote=True)}">{label}</a>', label[:1])
        self.w.block(2)


def encode_spaces(url: str) -> str:
    """A URL as written in a feed, ends trimmed, inner spaces as %20, control characters gone."""
    return _URL_JUNK_RE.sub("", url.strip(" \t\r\n\f")).replace(" ", "%20")


def table_rows(table: Node) -> list[list[Node]]:
    """The rows (lists of td/th cells) of a table, nested tables left to their cells."""
    rows: list[list[Node]] = []
    stack: list[Node | str] = list(reversed(table.children))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            continue
        if item.tag == "tr":
            rows.append([c for c in item.children if isinstance(c, Node) and c.tag in ("td", "th")])
        elif item.tag in ("thead", "tbody", "tfoot"):
            stack.extend(reversed(item.children))
    return [row for row in rows if any(_has_text(c) for c in row)]


def text_grid(rows: list[list[Node]]) -> str | None:
    """The table as aligned monospace columns, when it has at least two columns of short plain
    text and fits TABLE_GRID_WIDTH; None otherwise (links and blocks would be lost in a grid)."""
    if len(rows) > TABLE_GRID_ROWS or max(len(r) for r in rows) < 2:
        return None
    if any(_has_block(c) or _has_link(c) for row in rows for c in row):
        return None
    texts = [[_WS_RE.sub(" ", c.text()).strip() for c in row] for row in rows]
    columns = max(len(r) for r in texts)
    widths = [max((_width(r[i]) for r in texts if i < len(r)), default=0) for i in range(columns)]
    if sum(widths) + 2 * (columns - 1) > TABLE_GRID_WIDTH:
        return None
    lines = []
    for i, row in enumerate(texts):
        cells = [cell + " " * (widths[j] - _width(cell)) for j, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if i == 0 and all(c.tag == "th" for c in rows[0]) and len(rows) > 1:
            lines.append("─" * (sum(widths) + 2 * (columns - 1)))
    return "\n".join(lines)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _has_text(node: Node) -> bool:
    return bool(_BLANK_RE.sub("", node.text()))


def _descendants(node: Node) -> list[Node]:
    found: list[Node] = []
    stack: list[Node | str] = list(node.children)
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            found.append(item)
            stack.extend(item.children)
    return found


def _has_block(node: Node) -> bool:
    return any(n.tag in _BLOCKS_IN_CELL for n in _descendants(node))


def _has_link(node: Node) -> bool:
    return any(n.tag == "a" and n.attrs.get("href") for n in _descendants(node))


def embed_link(node: Node, base_url: str = "") -> tuple[str, str, dict[str, str]] | None:
    """(URL, catalogue key, values) of the link line standing for an embedded player, or None
    when it names nothing a reader could open."""
    src = _embed_source(node)
    if not src:
        return None
    src = encode_spaces(src)
    try:
        url = urljoin(base_url or "https:", src) if src.startswith("//") or base_url else src
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    title = _WS_RE.sub(" ", node.attrs.get("title", "") or node.attrs.get("aria-label", "")).strip()
    youtube = _YOUTUBE_ID_RE.search(url)
    if youtube:
        url = f"https://www.youtube.com/watch?v={youtube.group(1)}"
    shown = title if title.lower() not in _GENERIC_TITLES else url
    if youtube:
        return url, "embed_youtube", {"title": shown}
    if node.tag in ("video", "audio"):
        return url, f"embed_{node.tag}", {"title": shown}
    site = parts.hostname.removeprefix("www.").removeprefix("player.")
    return url, "embed_site", {"site": site, "title": shown}


def _embed_source(node: Node) -> str:
    for name in ("src", "data-src", "data"):
        if node.attrs.get(name, "").strip():
            return node.attrs[name].strip()
    for child in _descendants(node):
        if child.tag in ("source", "embed") and child.attrs.get("src", "").strip():
            return child.attrs["src"].strip()
        if child.tag == "param" and child.attrs.get("name", "").lower() in ("movie", "src"):
            return child.attrs.get("value", "").strip()
    return ""


def _tex_annotation(node: Node) -> str:
    stack: list[Node | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            continue
        if item.tag == "annotation" and "tex" in item.attrs.get("encoding", "").lower():
            return item.text()
        stack.extend(item.children)
    return ""


def _language(node: Node) -> str:
    candidates = [node] + [c for c in node.children if isinstance(c, Node) and c.tag == "code"]
    for cand in reversed(candidates):
        for cls in [*cand.attrs.get("class", "").split(), cand.attrs.get("data-lang", "")]:
            for prefix in ("language-", "lang-"):
                if cls.startswith(prefix):
                    lang = re.sub(r"[^\w+#.-]", "", cls.removeprefix(prefix))[:32]
                    if lang:
                        return lang
    return ""


def _int(value: str | None, default: int) -> int:
    try:
        return max(0, min(int(str(value).strip()), 10**6))
    except ValueError:
        return default


def html_to_telegram(html: str, base_url: str = "", lang: str = DEFAULT_LANG) -> str:
    """Body HTML -> Telegram-HTML fragment (no length cut); the bot's own words (embedded
    players' link lines) in `lang`."""
    if not html or not html.strip():
        return ""
    return Converter(base_url=base_url, lang=lang).run(parse(html))
