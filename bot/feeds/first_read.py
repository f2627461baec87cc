"""A new feed's first read: its title, link, ttl and the identity prints of its entries, from one
expat pass instead of a whole feedparser parse.

A new subscription delivers nothing: it marks what the feed holds now as seen, so it needs the
entries' identities (guid/id, else link; plus the second identity by link, bot.feeds.identity),
the feed's title and link (the /sub reply, duplicate detection) and its <ttl>. feedparser spends
most of a parse on what is not needed here (bodies, dates, pictures, dictionaries per element).

`first_read` reads the document the way feedparser's strict (SAX) parser would see it: the bytes
go through feedparser's own encoding conversion and DOCTYPE replacement, then through expat set
up as xml.sax sets it up, and the few feedparser handlers that decide an entry's id and link, the
feed's title, link and ttl are followed step by step (element names mapped to feedparser's
handler names, the context an element writes to, guid-as-link, relative URIs against the
document's URL, the text clean-ups of `pop`, the title's depth rule). The values then go through
the same functions parse_bytes uses (bot.feeds.parser, bot.feeds.identity).

Whatever this does not follow exactly, it declines (returns None) and the caller parses whole as
before: JSON; documents expat or feedparser's encoding detection reject (feedparser's loose
parser reads those); markup inside a title, guid, link or ttl; elements inside content whose
feedparser handlers would run; nested entries, a textinput inside an entry; entries with neither
guid nor link (their key hashes the body); entries whose second identity needs their title and
date (a link shared by several entries); titles of types other than text and HTML; another
feedparser release than the one followed. tests/test_first_read.py checks the answers against
parse_bytes on generated feeds, the seeds and the corpora.
"""

from __future__ import annotations

import functools
import logging
import re
import xml.parsers.expat
import xml.sax
import xml.sax.expatreader
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlparse

import feedparser
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import replace_doctype
from feedparser.urls import _urljoin, make_safe_absolute_uri, resolve_relative_uris

from bot.errors import ParseError
from bot.feeds.identity import (
    BY_LINK,
    NO_SECOND,
    entry_key,
    fingerprint,
    normalize_link,
    second_identities,
)
from bot.feeds.parse_delta import split_items
from bot.feeds.parser import (
    _int,
    _looks_like_json,
    encode_spaces,
    parse_bytes,
    parse_document,
    tdl_key,
    title_of,
)
from bot.models import Entry, ParsedFeed

log = logging.getLogger(__name__)


class Declined(Exception):
    """The document needs the whole parse; the message says why (tests, diagnostics)."""


# ----------------------------------------------------------- what feedparser's handlers are
def _handler_names(kind: str) -> frozenset[str]:
    prefix = f"_{kind}_"
    return frozenset(n.removeprefix(prefix) for n in dir(_FeedParserMixin) if n.startswith(prefix))


def _reaches(kind: str, name: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
    """Does feedparser's `_<kind>_<name>` call `target`, itself or through other handlers?"""
    method = getattr(_FeedParserMixin, f"_{kind}_{name}", None)
    code = getattr(method, "__code__", None)
    if code is None:
        return False
    if target in code.co_names:
        return True
    prefix = f"_{kind}_"
    return any(
        _reaches(kind, other.removeprefix(prefix), target, seen | {name})
        for other in code.co_names
        if other.startswith(prefix) and other.removeprefix(prefix) not in seen | {name}
    )


#: the feedparser releases whose handlers this follows (another one: every document declines)
FOLLOWED_FEEDPARSER = "6.0."
#: feedparser's SAX parser is expat, set up as `_run_expat` sets it up (were libxml2's Python
#: binding installed, feedparser would prefer it, and every document would decline)
SAX_IS_EXPAT = isinstance(
    xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS), xml.sax.expatreader.ExpatParser
)
STARTS = _handler_names("start")
ENDS = _handler_names("end")
#: elements whose start handler begins "content" (push_content): their children are markup
CONTENT = frozenset(n for n in STARTS if _reaches("start", n, "push_content"))
#: elements whose end handler ends content (pop_content)
CONTENT_ENDS = frozenset(n for n in ENDS if _reaches("end", n, "pop_content"))
TITLES = frozenset({"title", "dc_title", "media_title"})
IDS = frozenset({"guid", "id"})
ITEMS = frozenset({"item", "entry"})
#: names whose start and end would not pair up in feedparser's content count, and unknown
#: elements that would overwrite a key read here with something else
REFUSED = (CONTENT ^ CONTENT_ENDS) | {"title_detail", "links", "textInput"}
_NAMESPACES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_ATOM_VERSIONS = {"0.1": "atom01", "0.2": "atom02", "0.3": "atom03"}
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_XLINK = "http://www.w3.org/1999/xlink"
_XMLNS_KEPT = frozenset({
    ("math", "http://www.w3.org/1998/Math/MathML"), ("svg", "http://www.w3.org/2000/svg"),
})
_IMAGE_PARTS = frozenset({"title", "link", "description", "url", "href", "width", "height"})
_ENTITY_IN_LINK = re.compile("&([A-Za-z0-9_]+);")
_UNSET: Any = object()  # a key the feedparser dictionary does not hold
_NOT_A_NUMBER = object()  # an element feedparser stores as a dictionary of its attributes


#: URLs feedparser's _urljoin gives back unchanged against any base urljoin can split: the
#: scheme and netloc start at once (no slashes for _urifixer to drop), so urljoin returns the URL
#: as urlsplit/urlunsplit rebuild it, and nothing here is one they change: no whitespace or
#: control characters, no brackets, no ";" (params), no "#", no empty "?"; the scheme in
#: lower case. tests/test_first_read.py checks it against _urljoin.
_ABSOLUTE = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~!$&'()*+,=:@%/-]*)?"
    r"(?:\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]+)?\Z"
)


#: links whose normalize_link only lower-cases the scheme and host and drops the slashes that end
#: the path: a host (ASCII, no brackets or user) and nothing urlsplit strips, no query or
#: fragment to rebuild. tests/test_first_read.py checks it against normalize_link.
_PLAIN_LINK = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9._:-]+)(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?\Z"
)


def _normalized(link: str) -> str:
    """normalize_link(link)."""
    plain = _PLAIN_LINK.match(link)
    if plain is None:
        return normalize_link(link)
    scheme, host, path = plain.groups()
    return f"{scheme.lower()}://{host.lower()}{(path or '').rstrip('/') or '/'}"


@functools.lru_cache(maxsize=64)
def _joins(base: str) -> bool:
    """Does urljoin split `base` (else _urljoin gives "" for every URI against it)?"""
    try:
        urlparse(base)
    except ValueError:
        return False
    return True


def _content_type(value: str) -> str:
    return _FeedParserMixin.map_content_type(value)


def _without_entities(link: str) -> str:
    """pop's fix for links: "?a=1&amp;b=2" read as "?a=1&b;=2" by loose parsers."""
    return _ENTITY_IN_LINK.sub(r"&\g<1>", link) if "&" in link else link


def _cleaned(text: str) -> str:
    """What `pop` does last to every value (its strict parser's encoding is always utf-8)."""
    if text.isascii():  # both steps change only what is not ASCII
        return text
    try:
        text = text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return text.translate(_cp1252)


# ------------------------------------------------------------------------------ the reader
@dataclass(eq=False)
class _Context:
    """The keys read here of one feedparser dictionary (the feed's or an entry's)."""

    link: Any = _UNSET
    id: Any = _UNSET
    id_depth: int | None = None
    title: Any = _UNSET
    title_type: str = ""
    ttl: Any = _UNSET


@dataclass(frozen=True)
class _Names:
    """An element's name as feedparser's handlers see it."""

    start: str  # the handler name unknown_starttag looks up ("item", "dc_title", "media_content")
    end: str  # and unknown_endtag (the same but in odd namespace cases)
    namespace: str | None
    local: str
    ends_textinput: bool
    ends_image: bool
    refused: bool  # see REFUSED
    refused_in_content: bool  # feedparser would run its end handler inside content


@dataclass(eq=False, slots=True)
class _Element:
    start_handler: str
    kind: str = ""  # what this reader does at its end ("" nothing)
    expecting_text: bool = False
    content_type: str = ""
    text: Sequence[str] = ()  # a list of its own once collected


@dataclass(eq=False)
class _Reader:
    base: str
    #: feedparser resolves relative links in HTML titles (parse_document: where xml:base is used)
    resolve_in_html: bool = False
    version: str = ""
    depth: int = 0
    infeed: bool = False
    inentry: bool = False
    insource: bool = False
    inimage: bool = False
    intextinput: bool = False
    feed_has_image: bool = False
    incontent: int = 0
    content_xmlish: bool = False  # the content's children run handlers (feedparser's rule)
    guidislink: bool = False
    title_depth: int = -1
    feed: _Context = field(default_factory=_Context)
    sink: _Context = field(default_factory=_Context)  # image, textinput, source: never read
    entries: list[_Context] = field(default_factory=list)
    #: open elements: what this reader follows, or just the names of the others
    stack: list[_Element | _Names] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    #: base -> the base a start tag without xml:base leaves (make_safe_absolute_uri of itself)
    settled: dict[str, str] = field(default_factory=dict)
    resolved: dict[tuple[str, str], str] = field(default_factory=dict)
    namespacemap: dict[str | None, str] = field(default_factory=dict)
    namespaces_in_use: dict[str, str] = field(default_factory=dict)
    decls: dict[str, str] = field(default_factory=dict)
    names: dict[str, _Names] = field(default_factory=dict)
    collecting: bool = False
    parser: Any = None  # the expat parser: text is collected only inside a title, guid, link, ttl

    # ------------------------------------------------------------ feedparser's bookkeeping
    def context(self) -> _Context:
        if self.insource or (self.inimage and self.feed_has_image) or self.intextinput:
            return self.sink
        if self.inentry:
            return self.entries[-1]
        return self.feed

    def on_namespace(self, prefix: str | None, uri: str | None) -> None:
        if not uri:
            return
        prefix = prefix or None
        self.track_namespace(prefix, uri)
        if prefix and uri == _XLINK:
            self.decls["xmlns:" + prefix] = uri

    def track_namespace(self, prefix: str | None, uri: str) -> None:
        lower = uri.lower()
        if not self.version:
            if (prefix, lower) == (None, "http://my.netscape.com/rdf/simple/0.9/"):
                self.version = "rss090"
            elif lower == "http://purl.org/rss/1.0/":
                self.version = "rss10"
            elif lower == "http://www.w3.org/2005/atom":
                self.version = "atom10"
        if "backend.userland.com/rss" in lower:
            uri = lower = "http://backend.userland.com/rss"
        if lower in _NAMESPACES:
            self.namespacemap[prefix] = _NAMESPACES[lower]
            self.namespaces_in_use[_NAMESPACES[lower]] = uri
        else:
            self.namespaces_in_use[prefix or ""] = uri
        self.names.clear()

    def _tag(self, namespace: str | None, local: str, *, start: bool) -> str:
        """The tag feedparser's strict parser gives an element (startElementNS/endElementNS)."""
        lower = (namespace or "").lower()
        if start and "backend.userland.com/rss" in lower:
            namespace = lower = "http://backend.userland.com/rss"
        prefix = _NAMESPACES.get(lower, None if start else "")
        if start:
            local = local.lower()
        if prefix:
            local = (prefix.lower() if start else prefix) + ":" + local
        elif namespace:
            for name, value in self.namespaces_in_use.items():
                if name and value == namespace:
                    local = name + ":" + local
                    break
        return local.lower()

    def _handler(self, tag: str) -> tuple[str, bool]:
        """(handler name, whether the tag has no prefix) as unknown_starttag/endtag find them."""
        prefix, suffix = tag.split(":", 1) if ":" in tag else ("", tag)
        prefix = self.namespacemap.get(prefix, prefix)
        return (f"{prefix}_{suffix}" if prefix else suffix), not prefix

    def element_names(self, name: str) -> _Names:
        """What feedparser makes of an expat name ("uri local prefix")."""
        found = self.names.get(name)
        if found is None:
            parts = name.split()
            namespace, local = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
            tag = self._tag(namespace, local, start=True)
            start, plain = self._handler(tag)
            end, _ = self._handler(self._tag(namespace, local, start=False))
            found = self.names[name] = _Names(
                start,
                end,
                namespace,
                local,
                ends_textinput=plain and tag not in ("title", "link", "description", "name"),
                ends_image=plain and tag not in _IMAGE_PARTS,
                refused=start in REFUSED or end in REFUSED,
                refused_in_content=end in ENDS or local.lower() in ("svg", "math"),
            )
        return found

    def attributes(
        self, namespace: str | None, local: str, attrs: dict[str, str]
    ) -> dict[str, str]:
        """The attribute dictionary feedparser's handlers get (keys lower-cased, both the mapped
        and the given prefix, rel and type values lower-cased)."""
        found, self.decls = self.decls, {}
        if (local.lower(), namespace) in _XMLNS_KEPT:
            found["xmlns"] = namespace or ""
        qnames = {}
        for name, value in attrs.items():
            parts = name.split()
            if len(parts) == 1:
                found[name.lower()] = qnames[name.lower()] = value
                continue
            prefix = _NAMESPACES.get(parts[0].lower(), "")
            found[(f"{prefix}:{parts[1]}" if prefix else parts[1]).lower()] = value
            qname = f"{parts[2]}:{parts[1]}" if len(parts) == 3 else parts[1]
            qnames[qname.lower()] = value
        found.update(qnames)
        for key in ("rel", "type"):
            if key in found:
                found[key] = found[key].lower()
        return found

    # -------------------------------------------------------------------------- elements
    def on_start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        names = self.names.get(name) or self.element_names(name)
        start = names.start
        if self.collecting:  # a child of a title, guid, link or ttl: its text is not plain
            raise Declined("markup inside a title, guid, link or ttl")
        if attrs or self.decls:
            attrs_d = self.attributes(names.namespace, names.local, attrs)
            given = attrs_d.get("xml:base", attrs_d.get("base"))
            base = self.join_base(self.base, given) if given else self.settle(self.base)
        else:
            attrs_d = attrs  # empty, and expat's own for this element only
            base = self.settled.get(self.base) or self.settle(self.base)
        self.base = base  # unknown_starttag's xml:base bookkeeping
        self.bases.append(base)
        if self.incontent:
            if self.content_xmlish:
                raise Declined("elements inside XML-typed content")
            if names.refused_in_content:
                raise Declined(f"{names.end} inside content")
            self.stack.append(names)
            return
        if names.refused:
            raise Declined(f"element {start}")
        # feedparser's "special hack" for image and textinput elements left open
        if names.ends_textinput:
            self.intextinput = False
        if names.ends_image:
            self.inimage = False
        starter = self.starters.get(start)
        if starter is None:
            self.stack.append(names)
            return
        element = _Element(start)
        self.stack.append(element)
        starter(element, attrs_d)

    def settle(self, base: str) -> str:
        """The base a start tag without xml:base leaves (feedparser joins it to itself)."""
        settled = self.settled.get(base)
        if settled is None:
            settled = self.settled[base] = self.join_base(base, base)
        return settled

    @staticmethod
    def join_base(base: str, given: str) -> str:
        if base:
            return make_safe_absolute_uri(base, given) or base
        return _urljoin(base, given)

    def resolve(self, uri: str) -> str:
        """feedparser's resolve_uri (an item's guid and link are often the same URL)."""
        if _ABSOLUTE.match(uri) and _joins(self.base):
            return uri  # what _urljoin gives back for it, unchanged (see _ABSOLUTE)
        key = (self.base, uri)
        resolved = self.resolved.get(key)
        if resolved is None:
            resolved = self.resolved[key] = _urljoin(self.base, uri)
        return resolved

    def __post_init__(self) -> None:
        #: handler name -> what this reader does at its start (feedparser's _start_<name>)
        self.starters: dict[str, Callable[[_Element, dict[str, str]], None]] = {
            **dict.fromkeys(CONTENT, self.start_content),
            **dict.fromkeys(TITLES, self.start_title),
            **dict.fromkeys(IDS, self.start_id),
            **dict.fromkeys(ITEMS, self.start_item),
            **dict.fromkeys(("channel", "feed", "rss"), self.start_feed),
            **dict.fromkeys(("itunes_image", "itunes_link"), self.start_itunes_image),
            "link": self.start_link,
            "image": self.start_image,
            "textinput": self.start_textinput,
            "source": self.start_source,
            "ttl": self.start_ttl,
        }

    def start_id(self, element: _Element, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        self.collect(element, "id", expecting_text=True)

    def start_content(self, element: _Element, attrs: dict[str, str]) -> None:
        self.incontent += 1
        kind = _content_type(attrs.get("type", "text/plain"))
        self.content_xmlish = kind.endswith("xml") and kind != "application/xhtml+xml"
        element.kind = "content"

    def start_image(self, element: _Element, attrs: dict[str, str]) -> None:
        if not self.inentry:
            self.feed_has_image |= not (self.insource or self.intextinput)
        self.inimage, self.title_depth = True, -1
        element.kind = "image"

    def start_textinput(self, element: _Element, attrs: dict[str, str]) -> None:
        if self.inentry:  # feedparser would look for the feed's textinput (a KeyError)
            raise Declined("textinput inside an entry")
        self.intextinput, self.title_depth = True, -1
        element.kind = "textinput"

    def start_itunes_image(self, element: _Element, attrs: dict[str, str]) -> None:
        if (attrs.get("href") or attrs.get("url")) and self.context() is self.feed:
            self.feed_has_image = True

    def start_source(self, element: _Element, attrs: dict[str, str]) -> None:
        self.insource, self.title_depth = True, -1
        element.kind = "source"

    def start_ttl(self, element: _Element, attrs: dict[str, str]) -> None:
        """No handler: feedparser keeps its text, or else its attributes."""
        if attrs:
            self.context().ttl = _NOT_A_NUMBER
        else:
            self.collect(element, "ttl", expecting_text=True)

    def collect(self, element: _Element, kind: str, *, expecting_text: bool) -> None:
        text: list[str] = []
        element.kind, element.expecting_text, element.text = kind, expecting_text, text
        self.collecting = True
        self.parser.CharacterDataHandler = text.append

    def start_item(self, element: _Element, attrs: dict[str, str]) -> None:
        if self.inentry:
            raise Declined("an entry inside an entry")
        if "href" in attrs:
            raise Declined("CDF href on an item")
        self.entries.append(_Context())
        self.inentry, self.guidislink, self.title_depth = True, False, -1
        about = attrs.get(self.standard_prefix("rdf:about"))
        if about:
            self.context().id = about
        element.kind = "item"

    def standard_prefix(self, name: str) -> str:
        prefix, _, suffix = name.partition(":")
        return f"{self.namespacemap.get(prefix, prefix)}:{suffix}"

    def start_feed(self, element: _Element, attrs: dict[str, str]) -> None:
        name = element.start_handler
        if name == "rss":
            if not self.version.startswith("rss"):
                given = attrs.get("version", "")
                rss_version = _RSS_VERSIONS.get(given)
                self.version = rss_version or ("rss20" if given.startswith("2.") else "rss")
            return
        if name == "channel" and "href" in attrs:
            raise Declined("CDF href on the channel")
        self.infeed = True
        element.kind = "channel"
        if name == "feed" and not self.version:
            self.version = _ATOM_VERSIONS.get(attrs.get("version", ""), "atom")

    def start_link(self, element: _Element, attrs: dict[str, str]) -> None:
        rel = attrs.setdefault("rel", "alternate")
        kind = attrs.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
        href = attrs.get("url", attrs.get("uri", attrs.get("href", None)))
        if href:
            attrs["href"] = href
        if "href" not in attrs:
            expecting = self.infeed or self.inentry or self.insource
            self.collect(element, "link", expecting_text=expecting)
            return
        resolved = self.resolve(attrs["href"])
        if rel == "alternate" and _content_type(kind) in _HTML_TYPES:
            self.context().link = resolved

    def start_title(self, element: _Element, attrs: dict[str, str]) -> None:
        kind = _content_type(attrs.get("type", "text/plain"))
        if kind not in ("text/plain", "text/html") or attrs.get("mode") == "base64":
            raise Declined(f"a title of type {kind}")
        self.incontent += 1
        self.content_xmlish = False
        element.content_type = kind
        self.collect(element, "title", expecting_text=self.infeed or self.inentry or self.insource)

    def on_end(self, name: str) -> None:
        end = (self.names.get(name) or self.element_names(name)).end
        element = self.stack.pop()
        if element.__class__ is _Names:
            if element.start != end and end in ENDS:
                raise Declined(f"{end} ends {element.start}")
        else:
            assert isinstance(element, _Element)
            if self.collecting:
                self.collecting = False
                self.parser.CharacterDataHandler = None
            if element.start_handler != end:
                if end in ENDS or element.kind:
                    raise Declined(f"{end} ends {element.start_handler}")
            elif element.kind:
                _ENDERS[element.kind](self, element)
        bases = self.bases  # unknown_endtag's: back to the parent's base (when it has one)
        bases.pop()
        if bases and bases[-1]:
            self.base = bases[-1]
        self.depth -= 1

    def end_content(self, element: _Element) -> None:
        self.incontent -= 1

    def end_item(self, element: _Element) -> None:
        self.inentry = False

    def end_channel(self, element: _Element) -> None:
        self.infeed = False

    def end_image(self, element: _Element) -> None:
        self.inimage = False

    def end_textinput(self, element: _Element) -> None:
        self.intextinput = False

    def end_source(self, element: _Element) -> None:
        self.insource = False

    def end_id(self, element: _Element) -> None:
        value = "".join(element.text).strip()
        if value and self.guidislink:
            value = self.resolve(value)
        value = _cleaned(value)
        if self.inentry and not self.insource:
            entry = self.entries[-1]
            if entry.id_depth is None or self.depth <= entry.id_depth:
                entry.id, entry.id_depth = value, self.depth
        elif self.infeed or self.insource:
            self.context().id = value
        if self.guidislink:
            context = self.context()
            if context.link is _UNSET:
                context.link = value

    def end_link(self, element: _Element) -> None:
        if not element.expecting_text:
            return
        value = "".join(element.text).strip()
        value = _cleaned(self.resolve(value) if value else value)
        if self.inentry and not self.insource:
            if not self.inimage:
                value = _without_entities(value.replace("&amp;", "&"))
                self.entries[-1].link = value
        elif self.infeed or self.insource:
            self.context().link = _without_entities(value)

    def end_title(self, element: _Element) -> None:
        value = "".join(element.text).strip()
        blocked = -1 < self.title_depth <= self.depth
        kept = not blocked and not (self.inentry and not self.insource) and (
            self.infeed or self.insource
        )
        # an entry's title is not kept: only whether it is empty matters below, which the
        # clean-ups do not change (resolving links in HTML might: that one still runs)
        if element.expecting_text and (kept or self.resolve_in_html):
            kind = element.content_type
            if (not self.version.startswith("atom") and kind == "text/plain"
                    and _FeedParserMixin.looks_like_html(value)):
                kind = "text/html"
            if self.resolve_in_html and kind == "text/html":
                value = resolve_relative_uris(value, self.base, "utf-8", kind)
            value = _cleaned(value)
            if kept:
                context = self.context()
                context.title, context.title_type = value, kind
        self.incontent -= 1
        if value and element.start_handler != "media_title":
            self.title_depth = self.depth

    def end_ttl(self, element: _Element) -> None:
        value = _cleaned("".join(element.text).strip())
        if not (self.inentry and not self.insource) and (self.infeed or self.insource):
            self.context().ttl = value


#: what the reader does at the end of an element of each kind (`_Element.kind`)
_ENDERS: dict[str, Callable[[_Reader, _Element], None]] = {
    name.removeprefix("end_"): getattr(_Reader, name) for name in dir(_Reader)
    if name.startswith("end_") and name != "end_element"
}


# ---------------------------------------------------------------------------- the answer
class FirstRead(NamedTuple):
    """What a first read finds, as a parse worker sends it back: plain strings and tuples, a
    fraction of the pickle (and of its unpickling in the bot's process) of a ParsedFeed with
    one Entry per item. `feed()` is the ParsedFeed."""

    title: str
    link: str
    ttl_minutes: int | None
    warning: str
    prints: tuple[tuple[str, ...], ...]  # per entry, in document order

    def feed(self) -> ParsedFeed:
        return ParsedFeed(
            title=self.title,
            link=self.link,
            entries=[_stub_entry(p) for p in self.prints],
            ttl_minutes=self.ttl_minutes,
            warning=self.warning,
        )


_STUB_FIELDS = dict(vars(Entry(key="", title="", link="")))


def _stub_entry(prints: tuple[str, ...]) -> Entry:
    """Entry(key="", title="", link="", prints=prints), built as unpickling builds one: the
    dataclass __init__ (frozen: a setattr per field) costs several times more, per entry of
    every feed a first read answers, and its __post_init__ changes nothing in a stub."""
    entry = object.__new__(Entry)
    vars(entry).update(_STUB_FIELDS, prints=prints)
    return entry


def first_read(body: bytes, url: str, content_type: str = "") -> ParsedFeed | None:
    """The feed's title, link, ttl and entries as identity-only stubs (`Entry.prints`), the same
    as `parse_bytes` gives them; None when that cannot be promised here (parse whole then)."""
    found = _first_read(body, url, content_type)
    return None if found is None else found.feed()


def _first_read(body: bytes, url: str, content_type: str) -> FirstRead | None:
    try:
        return read_prints(body, url, content_type)
    except Declined:
        return None
    except Exception:  # a shortcut only: whatever goes wrong here, the whole parse decides
        log.warning("first read of %s failed; parsing it whole", url, exc_info=True)
        return None


def read_identities(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """`first_read`, raising Declined (with the reason) instead of returning None."""
    return read_prints(body, url, content_type).feed()


def read_prints(body: bytes, url: str, content_type: str = "") -> FirstRead:
    """`read_identities` as a FirstRead."""
    if not feedparser.__version__.startswith(FOLLOWED_FEEDPARSER) or not SAX_IS_EXPAT:
        raise Declined(f"feedparser {feedparser.__version__} is not the one followed here")
    if not body.strip() or _looks_like_json(body, content_type):
        raise Declined("empty or JSON")
    # as bot.feeds.parser reads it: no type is application/xml (UTF-8 without a declaration)
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    result: dict[str, Any] = {}
    data = convert_to_utf8(headers, body, result)
    if not result.get("encoding"):
        raise Declined("unknown encoding")
    doctype_version, data, _ = replace_doctype(data)
    reader = _Reader(make_safe_absolute_uri("", url), resolve_in_html=b"xml:base" in body)
    _run_expat(reader, data)
    if not (doctype_version or reader.version) and not reader.entries:
        raise Declined("not a feed")
    feed = reader.feed
    title = feed.title if feed.title is not _UNSET else ""
    shown = title_of({"title": title, "title_detail": {"type": feed.title_type}})
    link = feed.link if feed.link is not _UNSET else ""
    ttl = None if feed.ttl in (_UNSET, _NOT_A_NUMBER) else _int(feed.ttl)
    warning = str(result.get("bozo_exception") or "") if result.get("bozo") else ""
    return FirstRead(
        shown or url, link or url, ttl, warning, _prints(reader.entries, body, url, content_type)
    )


def _run_expat(reader: _Reader, data: bytes) -> None:
    """expat set up as xml.sax.expatreader sets it up for feedparser."""
    parser = xml.parsers.expat.ParserCreate(None, " ")
    parser.namespace_prefixes = True
    parser.StartNamespaceDeclHandler = reader.on_namespace
    parser.StartElementHandler = reader.on_start
    parser.EndElementHandler = reader.on_end
    reader.parser = parser
    parser.ExternalEntityRefHandler = lambda *_: 1
    parser.SkippedEntityHandler = lambda *_: None
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)
    try:
        parser.Parse(data, True)
    except (xml.parsers.expat.ExpatError, ValueError, LookupError) as exc:
        raise Declined(f"not well-formed: {exc}") from None


@dataclass
class _Identity:
    """What the prints of one entry come from (parser._entry, parser.add_alt_keys)."""

    key: str
    link: str  # as parse_bytes keeps it (ends trimmed, spaces as %20)
    tdl: str = ""  # its title-date-link key, known only where feedparser parsed the entry


def _prints(
    raws: list[_Context], body: bytes, url: str, content_type: str
) -> tuple[tuple[str, ...], ...]:
    """Each entry's prints as parse_bytes gives them."""
    link_keys: dict[str, str] = {}  # link -> its link key (normalize_link is not cheap)

    def link_key(link: str) -> str:
        found = link_keys.get(link)
        if found is None:
            found = link_keys[link] = f"link:{_normalized(link)}" if link else ""
        return found

    found: list[Any] = [_identity(raw) for raw in raws]
    links = [link_key(encode_spaces(_raw_link(raw))) for raw in raws]
    wanted = _needing_feedparser(found, links)
    identities = _parse_some(found, wanted, body, url, content_type) if wanted else found
    is_link = [i.key == link_key(i.link).removeprefix("link:") for i in identities]
    tdls = [i.tdl for i in identities]
    choices = second_identities(links, is_link, tdls)
    return tuple(
        (fingerprint(i.key), fingerprint(link if choice == BY_LINK else i.tdl))
        if choice != NO_SECOND else (fingerprint(i.key),)
        for i, link, choice in zip(identities, links, choices, strict=True)
    )


def _raw_link(raw: _Context) -> str:
    return str(raw.link or "") if raw.link is not _UNSET else ""


def _identity(raw: _Context) -> _Identity | None:
    """The entry's key and link; None when its key hashes its text (no guid, no link)."""
    guid = raw.id if raw.id is not _UNSET else None
    raw_link = _raw_link(raw)
    if not ((guid and guid.strip()) or raw_link.strip()):
        return None
    return _Identity(entry_key(guid, raw_link, "", None, ""), encode_spaces(raw_link))


def _needing_feedparser(found: list[_Identity | None], links: list[str]) -> list[int]:
    """The entries whose prints need their text: those without guid and link, and every entry
    of a link several share (unless all of them are keyed by it): their title and date decide."""
    shared = Counter(k for k in links if k)
    own_key = [i is not None and i.key == link.removeprefix("link:")
               for i, link in zip(found, links, strict=True)]
    mixed = {link for link, own in zip(links, own_key, strict=True)
             if link and shared[link] > 1 and not own}
    wanted = [n for n, (i, link) in enumerate(zip(found, links, strict=True))
              if i is None or link in mixed]
    if len(wanted) == len(found) and found:
        raise Declined("every entry needs its text (no guid and link, or a shared link)")
    return wanted


def _parse_some(
    found: list[_Identity | None], wanted: list[int], body: bytes, url: str, content_type: str
) -> list[_Identity]:
    """`found` with the `wanted` entries parsed by feedparser (the others cut out of the
    document, as bot.feeds.parse_delta does)."""
    split = split_items(body)
    if split is None or len(split[1]) != len(found):
        raise Declined("entries needing their text, in a document that does not split")
    spans = split[1]
    kept = set(wanted)
    cut = [span for n, span in enumerate(spans) if n not in kept]
    parts, last = [], 0
    for start, end in cut:
        parts.append(body[last:start])
        last = end
    parts.append(body[last:])
    try:
        parsed = parse_document(b"".join(parts), url, content_type, xml_base=b"xml:base" in body)
    except ParseError:
        raise Declined("the entries needing their text do not parse alone") from None
    if len(parsed.entries) != len(wanted):
        raise Declined("the entries needing their text parse differently alone")
    for n, entry in zip(wanted, parsed.entries, strict=True):
        mine = found[n]
        if mine is not None and (mine.key, mine.link) != (entry.key, entry.link):
            raise Declined("an entry parsed alone is not the one read here")
        found[n] = _Identity(entry.key, entry.link, tdl_key(entry))
    return [i for i in found if i is not None]


def first_read_or_parse(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """`first_read`, else `parse_bytes`."""
    return as_feed(first_read_packed(body, url, content_type))


def first_read_packed(body: bytes, url: str, content_type: str = "") -> FirstRead | ParsedFeed:
    """`first_read_or_parse` as a parse worker's task (one trip whichever answers): a first read
    comes back as a FirstRead (see `as_feed`)."""
    return _first_read(body, url, content_type) or parse_bytes(body, url, content_type)


def as_feed(found: FirstRead | ParsedFeed) -> ParsedFeed:
    return found.feed() if isinstance(found, FirstRead) else found
