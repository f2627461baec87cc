"""Element tree -> Telegram-HTML fragment, keeping structure and a strict tag whitelist.

Output tags: b, i, u, s, a href, code, pre (optionally with <code class="language-x">) and
blockquote. Only &lt; &gt; &amp; &quot; are ever emitted as entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from bot.render.math import MATH_RE, strip_delimiters, tex_to_unicode
from bot.render.tree import Node, parse

DROP = frozenset(
    {"table", "iframe", "frame", "frameset", "script", "style", "form", "svg", "noscript", "head",
     "object", "embed", "template", "select", "textarea", "button", "input", "audio", "video",
     "canvas", "map", "title", "meta", "link", "img", "picture", "source", "figcaption",
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
PERMALINK_TEXTS = frozenset({"#", "¶", "🔗", "§", "⚓", "link", "permalink", "↩", "↩︎", "^"})
BULLETS = ("• ", "◦ ", "▪ ")
INDENT = "   "
_WS_RE = re.compile(r"[ \t\n\r\f]+")
_SPLIT_WS_RE = re.compile(r"([ \t\n\r\f]+)")
_URL_JUNK_RE = re.compile(r"[\x00-\x20\x7f]")


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
            if _WS_RE.fullmatch(part):
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
        if tag in DROP or "katex-html" in classes or node.attrs.get("aria-hidden") == "true":
            return
        if tag == "math":
            self.mathml(node)
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
        if label in PERMALINK_TEXTS or (href is None and self.is_fragment(node, label)):
            return
        if href is None or self.w.is_open("a", "code", "pre"):
            self.children(node)
            return
        self.w.open("a", f'<a href="{escape(href, quote=True)}">')
        self.children(node)
        self.w.close("a")

    def is_fragment(self, node: Node, label: str) -> bool:
        """A same-page link: footnote markers and permalinks vanish, prose keeps its words."""
        href = _URL_JUNK_RE.sub("", node.attrs.get("href", ""))
        return href.startswith("#") and len(label) <= 3

    def resolve(self, href: str) -> str | None:
        """Absolute, safe URL for an href, or None (keep the text, drop the link)."""
        href = _URL_JUNK_RE.sub("", href)
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


def html_to_telegram(html: str, base_url: str = "") -> str:
    """Body HTML -> Telegram-HTML fragment (no length cut)."""
    if not html or not html.strip():
        return ""
    return Converter(base_url=base_url).run(parse(html))
