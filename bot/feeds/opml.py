"""OPML 2.0 subscription lists: read them safely, write them. Pure: bytes in, bytes out.

Reading uses expat (the parser under xml.etree) directly so that a document type declaration is
refused the moment it starts: no DTD means no entity expansion (billion laughs), no external
entities and no network access, whatever the file says. Size and outline counts are capped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from xml.parsers import expat

from bot.errors import FeedbotError

MAX_OPML_BYTES = 2 * 1024 * 1024
MAX_OUTLINES = 20_000
MAX_DEPTH = 64


class OpmlError(FeedbotError):
    """The file is not a usable OPML document (kind: bad_opml, unsafe_opml, too_large)."""

    kind = "bad_opml"


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str = ""
    html_url: str = ""
    #: titles of the enclosing folder outlines, outermost first, joined with " / "
    category: str = ""


class _Collector:
    """expat callbacks: collect feed outlines, remembering the folder path."""

    def __init__(self) -> None:
        self.feeds: list[OpmlFeed] = []
        self.seen: set[str] = set()
        self.root: str | None = None
        self.outlines = 0
        self.stack: list[str] = []  # folder titles of open <outline> elements ("" for feeds)
        self.depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise OpmlError("the OPML outlines are nested too deeply", kind="bad_opml",
                           key="error_opml_nested")
        if self.root is None:
            self.root = tag
        if tag.lower() != "outline":
            return
        self.outlines += 1
        if self.outlines > MAX_OUTLINES:
            raise OpmlError(f"more than {MAX_OUTLINES} outlines", kind="too_large",
                           key="error_opml_too_many", args={"limit": MAX_OUTLINES})
        lowered = {k.lower(): v.strip() for k, v in attrs.items()}
        title = lowered.get("title") or lowered.get("text") or ""
        url = lowered.get("xmlurl", "")
        if url:
            self._add(OpmlFeed(url, title, lowered.get("htmlurl", ""), self._category()))
        self.stack.append("" if url else title)

    def end(self, tag: str) -> None:
        self.depth -= 1
        if tag.lower() == "outline" and self.stack:
            self.stack.pop()

    def _category(self) -> str:
        return " / ".join(t for t in self.stack if t)

    def _add(self, feed: OpmlFeed) -> None:
        if feed.url not in self.seen:
            self.seen.add(feed.url)
            self.feeds.append(feed)


def _refuse_dtd(*_args: object) -> int:
    raise OpmlError("the file declares a DOCTYPE or entities", kind="unsafe_opml",
                    key="import_unsafe")


def parse_opml(data: bytes, *, max_bytes: int = MAX_OPML_BYTES) -> list[OpmlFeed]:
    """Every feed (outline with xmlUrl) in the document, in order, each URL once.

    Raises OpmlError when the file is too big, not well-formed XML, not OPML, or declares a DTD.
    """
    if len(data) > max_bytes:
        raise OpmlError(f"the file is larger than {max_bytes // 1024} KB", kind="too_large",
                        key="error_opml_too_large", args={"limit": max_bytes // 1024})
    collector = _Collector()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        detail = f"{expat.ErrorString(exc.code)}, line {exc.lineno}"
        raise OpmlError(f"not well-formed XML ({detail})", key="error_xml_line",
                        args={"line": exc.lineno}) from None
    if (collector.root or "").lower() != "opml":
        raise OpmlError("not an OPML file (the root element is not <opml>)",
                        key="error_opml_root")
    return collector.feeds


def build_opml(feeds: Iterable[OpmlFeed], title: str, created: datetime | None = None) -> bytes:
    """An OPML 2.0 document listing `feeds` (grouped under folder outlines by category)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(created or datetime.now(UTC))
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for feed in feeds:
        parent = body
        if feed.category:
            if feed.category not in folders:
                name = feed.category
                folders[name] = ET.SubElement(body, "outline", text=name, title=name)
            parent = folders[feed.category]
        attrs = {"type": "rss", "text": feed.title or feed.url, "title": feed.title or feed.url}
        attrs["xmlUrl"] = feed.url
        if feed.html_url:
            attrs["htmlUrl"] = feed.html_url
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
