"""A post's HTML body -> Telegraph's Node JSON (the content of an Instant View page). Pure.

Telegraph takes a list of nodes: a text node is a string, an element is
`{"tag": ..., "attrs": {"href" | "src": ...}, "children": [...]}` with a tag from `ALLOWED`.
Everything else is mapped onto those tags (h1/h2 -> h3, h5/h6 -> h4, del -> s, kbd -> code, a
table -> one paragraph per row) or unwrapped (its children kept). Players become link lines,
pictures keep absolute http(s) `src`s, and the whole content is fitted into Telegraph's size
limit (`fit`): what does not fit is cut at the end, with a line linking to the original post.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from bot.models import Entry
from bot.render.convert import embed_link, encode_spaces, table_rows
from bot.render.math import MATH_RE, strip_delimiters, tex_to_unicode
from bot.render.tree import INVISIBLE, VOID, Node, clean_text, parse

#: the tags Telegraph accepts (telegra.ph/api#NodeElement)
ALLOWED = frozenset(
    {
        "a",
        "aside",
        "b",
        "blockquote",
        "br",
        "code",
        "em",
        "figcaption",
        "figure",
        "h3",
        "h4",
        "hr",
        "i",
        "iframe",
        "img",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "strong",
        "u",
        "ul",
        "video",
    }
)
#: Telegraph's limit on a page's content: 64 KB of JSON
CONTENT_LIMIT = 64 * 1024
#: what the content is fitted into: a margin below the limit for how the sender encodes it
CONTENT_BUDGET = CONTENT_LIMIT - 1024
TITLE_LIMIT = 256  # characters, for createPage
AUTHOR_LIMIT = 128

_RENAMED = {
    "h1": "h3",
    "h2": "h3",
    "h5": "h4",
    "h6": "h4",
    "del": "s",
    "strike": "s",
    "ins": "u",
    "cite": "i",
    "dfn": "i",
    "var": "i",
    "kbd": "code",
    "samp": "code",
    "tt": "code",
}
_DROPPED = INVISIBLE | frozenset(
    {
        "frame",
        "frameset",
        "form",
        "svg",
        "select",
        "textarea",
        "button",
        "input",
        "canvas",
        "map",
        "meta",
        "link",
        "source",
        "track",
        "param",
        "applet",
        "base",
        "dialog",
        "option",
        "datalist",
        "output",
        "progress",
        "meter",
    }
)
_EMBEDS = frozenset({"iframe", "embed", "object", "video", "audio"})
#: elements that sit among blocks; other content at the top level is gathered into a <p>
_BLOCKS = frozenset(
    {"p", "h3", "h4", "ul", "ol", "li", "blockquote", "pre", "figure", "figcaption", "aside", "hr"}
)
#: elements whose content is a paragraph of its own, or paragraphs and blocks
_CONTAINERS = frozenset(
    {
        "div",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "details",
        "summary",
        "dl",
        "dt",
        "dd",
        "address",
        "center",
        "caption",
        "fieldset",
        "hgroup",
    }
)
_INLINE_TEXT = frozenset({"a", "b", "strong", "i", "em", "u", "s", "code"})
_WS_RE = re.compile(r"[ \t\n\r\f]+")
_DATA_URI_RE = re.compile(r"data:[\w.+/-]*(?:;[\w.+=-]+)*;base64,[A-Za-z0-9+/=]{16,}")

Nodes = list[Any]  # str | dict[str, Any]


@dataclass(frozen=True)
class PageDraft:
    """What createPage is given for one post."""

    title: str
    author_name: str
    author_url: str
    content: Nodes
    #: the content was cut to fit Telegraph's limit
    trimmed: bool = False


def page_draft(entry: Entry, feed_title: str) -> PageDraft:
    """The Telegraph page of a post: its title, its author (linking to the original), and its
    whole body with its pictures, fitted into Telegraph's limit."""
    link = _absolute(entry.link, "") or ""
    content = html_to_nodes(entry.content_html or "", base_url=link)
    lead = _lead_picture(entry, content, link)
    if lead is not None:
        content.insert(0, lead)
    tail: Nodes = []
    if link:
        tail = [
            {
                "tag": "p",
                "children": [
                    {"tag": "a", "attrs": {"href": link}, "children": [_short(link, 200)]}
                ],
            }
        ]
    fitted, trimmed = fit(content, CONTENT_BUDGET - size(tail))
    if trimmed:
        fitted.append({"tag": "p", "children": ["…"]})
    title = _short(_one_line(entry.title) or _one_line(feed_title) or link or "…", TITLE_LIMIT)
    author = _short(_one_line(entry.author) or _one_line(feed_title), AUTHOR_LIMIT)
    return PageDraft(title, author, link[:512], fitted + tail or ["…"], trimmed)


# ------------------------------------------------------------------------------ HTML -> nodes
def html_to_nodes(html: str, base_url: str = "") -> Nodes:
    """Body HTML -> Telegraph nodes (no size limit): only `ALLOWED` tags, only href/src
    attributes (absolute, http(s) or mailto), runs of inline content at the top level
    gathered into paragraphs, whitespace collapsed outside <pre>."""
    if not html.strip():
        return []
    walker = _Walker(base_url)
    return _paragraphs(_trim_blank(walker.children(parse(html))))


class _Walker:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.in_link = 0
        self.in_pre = 0

    def children(self, node: Node) -> Nodes:
        out: Nodes = []
        for child in node.children:
            if isinstance(child, str):
                out.extend(self.text(child))
            else:
                out.extend(self.element(child))
        return out

    def text(self, text: str) -> Nodes:
        text = _DATA_URI_RE.sub(" ", clean_text(text))
        if self.in_pre:
            return [text] if text else []
        text = _WS_RE.sub(" ", text)
        if not text:
            return []
        out: Nodes = []
        pos = 0
        for m in MATH_RE.finditer(text):
            out.append(text[pos : m.start()])
            tex = next(g for g in m.groups() if g is not None)
            out.append(tex_to_unicode(tex) or tex)
            pos = m.end()
        out.append(text[pos:])
        return [t for t in out if t]

    def element(self, node: Node) -> Nodes:
        tag = node.tag
        classes = node.classes()
        if "figcaption" in classes and tag != "figcaption":
            # words under a picture are the post's words, even when hidden from screen readers
            return _element("em", self.children(node))
        if (
            tag in _DROPPED
            or "katex-html" in classes
            or (node.attrs.get("aria-hidden") == "true" and tag != "figcaption")
        ):
            return []
        if classes & {"math", "math-inline", "math-display", "arithmatex"}:
            tex, _ = strip_delimiters(node.text())
            return [tex_to_unicode(tex) or tex] if tex.strip() else []
        if tag == "img":
            return self.picture(node)
        if tag in _EMBEDS:
            return self.embed(node)
        if tag == "table":
            return self.table(node)
        if tag == "a":
            return self.link(node)
        if tag == "pre":
            return self.pre(node)
        if tag in ("br", "hr"):
            return [{"tag": tag}]
        name = _RENAMED.get(tag, tag)
        if tag in ("td", "th"):
            return [*self.children(node), " "]
        if tag in _CONTAINERS and not self.in_link:
            return _paragraphs(_trim_blank(self.children(node)))
        if name not in ALLOWED:  # div, span, section, picture, …: their content stays
            return self.children(node)
        if name == "code" and self.in_pre:
            return self.children(node)
        return _element(name, self.children(node))

    def picture(self, node: Node) -> Nodes:
        src = _absolute(node.attrs.get("src", "") or node.attrs.get("data-src", ""), self.base_url)
        if src is None or not src.lower().startswith(("http://", "https://")):
            return []
        return [{"tag": "img", "attrs": {"src": src}}]

    def embed(self, node: Node) -> Nodes:
        """A player as a link line: Telegraph plays only the embeds it hosts itself."""
        found = embed_link(node, self.base_url)
        if found is None or self.in_link:
            return []
        url, _, values = found
        label = values.get("title") or url
        return [
            {
                "tag": "p",
                "children": [
                    "▶ ",
                    {"tag": "a", "attrs": {"href": url}, "children": [_short(label, 200)]},
                ],
            }
        ]

    def table(self, node: Node) -> Nodes:
        """One paragraph per row, its cells apart by " · " (Telegraph has no tables)."""
        out: Nodes = []
        for row in table_rows(node):
            cells: Nodes = []
            for cell in row:
                inner = _trim_blank(self.children(cell))
                if inner:
                    cells.extend([" · ", *inner] if cells else inner)
            if cells:
                out.append({"tag": "p", "children": cells})
        return out

    def link(self, node: Node) -> Nodes:
        href = _absolute(node.attrs.get("href", ""), self.base_url, mailto=True)
        if href is None or self.in_link:
            return self.children(node)
        self.in_link += 1
        try:
            inner = self.children(node)
        finally:
            self.in_link -= 1
        return [{"tag": "a", "attrs": {"href": href}, "children": inner}] if inner else []

    def pre(self, node: Node) -> Nodes:
        self.in_pre += 1
        try:
            text = node.text().replace("\r\n", "\n").removeprefix("\n").rstrip()
        finally:
            self.in_pre -= 1
        return [{"tag": "pre", "children": [clean_text(text)]}] if text.strip() else []


def _element(tag: str, children: Nodes) -> Nodes:
    if tag in VOID:
        return [{"tag": tag}]
    children = _trim_blank(children) if tag not in _INLINE_TEXT else children
    if not children or all(isinstance(c, str) and not c.strip() for c in children):
        return [" "] if tag in _INLINE_TEXT and children else []
    return [{"tag": tag, "children": children}]


def _trim_blank(nodes: Nodes) -> Nodes:
    """Without blank text at either end or between blocks, the end texts stripped."""
    out: Nodes = []
    for i, node in enumerate(nodes):
        if isinstance(node, str) and not node.strip():
            before = out[-1] if out else None
            after = nodes[i + 1] if i + 1 < len(nodes) else None
            if _is_block(before) or _is_block(after) or before is None or after is None:
                continue
        out.append(node)
    if out and isinstance(out[0], str):
        out[0] = out[0].lstrip()
    if out and isinstance(out[-1], str):
        out[-1] = out[-1].rstrip()
    return [n for n in out if n != ""]


def _is_block(node: Any) -> bool:
    return isinstance(node, dict) and node.get("tag") in _BLOCKS


def _paragraphs(nodes: Nodes) -> Nodes:
    """Top-level inline runs (text, links, pictures between paragraphs) as paragraphs."""
    out: Nodes = []
    run: Nodes = []

    def close_run() -> None:
        trimmed = _trim_blank(run)
        while trimmed and isinstance(trimmed[-1], dict) and trimmed[-1].get("tag") == "br":
            trimmed.pop()
        if trimmed:
            out.append({"tag": "p", "children": trimmed})
        run.clear()

    for node in nodes:
        if _is_block(node) or (isinstance(node, dict) and node.get("tag") == "img"):
            close_run()
            out.append(node)
        else:
            run.append(node)
    close_run()
    return out


# ---------------------------------------------------------------------------------- URLs
def _absolute(url: str, base: str, *, mailto: bool = False) -> str | None:
    """An absolute http(s) URL (or mailto:) for an attribute, or None."""
    url = encode_spaces(url or "")
    if not url or url.startswith("#"):
        return None
    try:
        full = urljoin(base, url) if base else url
        parts = urlsplit(full)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "mailto" and mailto:
        return full
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return full


def _lead_picture(entry: Entry, content: Nodes, link: str) -> dict[str, Any] | None:
    """The post's picture as the page's first figure, when the body does not show it."""
    src = _absolute(entry.image_url or "", link)
    if src is None or src in _pictures(content):
        return None
    return {"tag": "figure", "children": [{"tag": "img", "attrs": {"src": src}}]}


def _pictures(nodes: Nodes) -> set[str]:
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("tag") == "img":
                found.add(node.get("attrs", {}).get("src", ""))
            stack.extend(node.get("children", []))
    return found


# ---------------------------------------------------------------------------------- size
def size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON: what Telegraph measures its limit on."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def fit(nodes: Nodes, budget: int) -> tuple[Nodes, bool]:
    """The longest start of `nodes` whose JSON is within `budget` bytes, the last node that
    does not fit whole cut inside (text at a word when it can); and whether anything was cut."""
    out: Nodes = []
    used = 2  # the list's brackets
    for node in nodes:
        cost = size(node) + (1 if out else 0)
        if used + cost <= budget:
            out.append(node)
            used += cost
            continue
        room = budget - used - (1 if out else 0)
        part = _cut_node(node, room)
        if part is not None:
            out.append(part)
        return out, True
    return out, False


def _cut_node(node: Any, room: int) -> Any:
    """`node` cut to at most `room` bytes of JSON, or None when nothing useful fits."""
    if room <= 8:
        return None
    if isinstance(node, str):
        return _cut_text(node, room)
    if node.get("tag") in ("img", "br", "hr") or not node.get("children"):
        return None
    shell = {k: v for k, v in node.items() if k != "children"}
    children, _ = fit(node["children"], room - size({**shell, "children": []}) + 2)
    if not children or all(isinstance(c, str) and not c.strip() for c in children):
        return None
    return {**shell, "children": children}


def _cut_text(text: str, room: int) -> str | None:
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose JSON (with "…") fits
        mid = (low + high + 1) // 2
        if size(text[:mid] + "…") <= room:
            low = mid
        else:
            high = mid - 1
    kept = text[:low]
    word = kept.rsplit(" ", 1)[0] if " " in kept[len(kept) // 2 :] else kept
    return (word.rstrip() + "…") if word.strip() else None


def _one_line(text: str) -> str:
    return _WS_RE.sub(" ", clean_text(text or "")).strip()


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
