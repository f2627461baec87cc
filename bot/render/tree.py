"""Any HTML -> a small, forgiving element tree (stdlib html.parser; entities already decoded)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr", "keygen", "image"}
)
#: a start tag of these closes an open <p> (as a browser would)
_CLOSES_P = frozenset(
    {"p", "div", "ul", "ol", "dl", "pre", "blockquote", "table", "h1", "h2", "h3", "h4", "h5",
     "h6", "hr", "figure", "section", "article", "header", "footer", "aside", "details"}
)
_SCOPES = frozenset({"ul", "ol", "blockquote", "td", "th", "table", "div", "figure", "li",
                     "section", "article"})
#: elements whose text no reader ever sees, even inside <code> or <pre>
INVISIBLE = frozenset({"script", "style", "template", "head", "title", "noscript"})
MAX_DEPTH = 120
# C0/C1 controls Telegram would choke on or show as boxes (tab/newline/CR stay as whitespace)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """All descendant text, markup ignored (<br> counts as a newline, scripts and styles
        count for nothing)."""
        parts: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.tag == "br":
                parts.append("\n")
            elif item.tag not in INVISIBLE:
                stack.extend(reversed(item.children))
        return "".join(parts)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


def clean_text(text: str) -> str:
    return _CONTROL_RE.sub("", text.replace("\x0c", " "))


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack: list[Node] = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: clean_text(v or "") for k, v in attrs if k not in ("",)})
        if tag in _CLOSES_P:
            self._close_implied("p", _SCOPES)
        if tag == "li":
            self._close_implied("li", frozenset({"ul", "ol"}))
        if tag == "a":  # links don't nest: a new one ends the previous
            self._close_implied("a", frozenset())
        self.stack[-1].children.append(node)
        if tag not in VOID and len(self.stack) < MAX_DEPTH:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: clean_text(v or "") for k, v in attrs})
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "p") and not any(n.tag == tag for n in self.stack):
            if tag == "br":  # browsers read a stray </br> as <br>
                self.stack[-1].children.append(Node("br"))
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if data:
            self.stack[-1].children.append(clean_text(data))

    def _close_implied(self, tag: str, scopes: frozenset[str]) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            name = self.stack[i].tag
            if name == tag:
                del self.stack[i:]
                return
            if name in scopes:
                return


def parse(html: str) -> Node:
    builder = _Builder()
    try:
        builder.feed(html)
        builder.close()
    except Exception:  # html.parser is lenient, but never let a hostile feed crash rendering
        fallback = Node("#root")
        fallback.children.append(clean_text(re.sub(r"<[^>]*>?", " ", html)))
        return fallback
    return builder.root
