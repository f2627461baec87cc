"""A post's web page -> the article in it, for feeds that carry only a summary (`/set N fulltext
on`). Pure and CPU-bound: bot.fulltext runs it in a thread, off the event loop.

Why trafilatura (2.x) rather than readability-lxml:
- it is the better kept of the two: released several times a year, with a published evaluation
  against readability, jusText, newspaper and others that it keeps up to date; readability-lxml
  is released far less often;
- it returns the article as clean HTML whose links and pictures are made absolute against the
  page's URL (`url=`), with headings, lists, quotes, code and tables kept: what the feed HTML
  converter (bot.render.convert) and the Instant View pages take, so the full text is rendered
  like a feed's own body. readability-lxml hands back the page's original markup (classes,
  inline styles, relative links) for the bot to clean up;
- it drops navigation, sidebars, comments and footers by its own rules, then compares its result
  with jusText's and readability's algorithm and keeps the better, so a page one of them gets
  wrong still gives its article.
Its cost is its weight (about 60 MB installed with htmldate, dateparser and babel, which the bot
does not otherwise need); it is imported only when a page is first extracted (about 15 MB of
memory from then on, 0.25 s once), so a bot where no one turns full text on pays nothing. Without
it (an install that left it out) every page counts as not extracted and posts keep the summary.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import replace
from email.message import Message

from bot.feeds.parser import article_images
from bot.models import Entry

log = logging.getLogger(__name__)

#: the extractor's name, for logs and `feedbot preview --fulltext`
EXTRACTOR = "trafilatura"
#: what a page's Content-Type may be ("" when the server names none: it is tried)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
#: elements a <pre> of trafilatura's is inline code in (see `_tidy`)
_INLINE_PARENTS = frozenset(
    {"p", "li", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "a", "b", "i", "u", "s", "em",
     "strong", "span", "sub", "sup", "del", "ins", "q", "small", "mark"}
)
#: a heading at the article's start (the page repeats the post's title there)
_LEAD_HEADING = re.compile(r"^\s*<h([1-3])\b[^>]*>(.*?)</h\1>", re.IGNORECASE | re.DOTALL)


def extract_article(body: bytes, url: str, content_type: str = "") -> str | None:
    """The article of a web page as HTML (links and pictures absolute), or None when the page is
    not HTML or no article was found in it."""
    mime, charset = _content_type(content_type)
    if mime not in HTML_TYPES or not body.strip():
        return None
    try:
        import trafilatura
    except ImportError:  # installed without it: posts keep the feed's summary
        log.warning("full text: %s is not installed; posts keep the feed's summary", EXTRACTOR)
        return None
    page: str | bytes = body
    if charset:  # the server's charset wins; without one trafilatura reads <meta charset>
        try:
            page = body.decode(charset, errors="replace")
        except LookupError:
            page = body
    found = trafilatura.extract(
        page,
        url=url,
        output_format="html",
        include_formatting=True,
        include_links=True,
        include_images=True,
        include_tables=True,
        include_comments=False,
        deduplicate=False,  # its cache spans calls: it would cut paragraphs two posts share
    )
    if not found:
        return None
    article = _tidy(found)
    return article if text_length(article) else None


def _tidy(found: str) -> str:
    """trafilatura's HTML as a feed body: the <body>'s content, with its code put right. It
    writes every code element as <pre>: a block as <pre><pre>…</pre></pre> (between indentation
    that would show as code), inline code as a <pre> inside the sentence."""
    from lxml import etree  # lxml comes with trafilatura

    try:  # it serialises an lxml tree: XML, where a <pre> inside a <p> stays there
        root = etree.fromstring(found, etree.XMLParser(recover=True, resolve_entities=False))
    except (etree.XMLSyntaxError, ValueError):
        root = None
    body = root if root is None or root.tag == "body" else root.find("body")
    if body is None:
        match = _BODY.search(found)
        return (match.group(1) if match else found).strip()
    if body is None:
        return ""
    for pre in list(body.iter("pre")):
        parent = pre.getparent()
        if parent is not None and parent.tag == "pre":
            continue
        inner = list(pre)
        if len(inner) == 1 and inner[0].tag == "pre" and not (pre.text or "").strip():
            pre.text, inner[0].tag, inner[0].tail = None, "code", None  # a block of code
        elif parent is not None and parent.tag in _INLINE_PARENTS and "\n" not in (
            "".join(pre.itertext())
        ):
            pre.tag = "code"  # code inside a sentence
    parts = [html.escape(body.text or "", quote=False)]
    parts += [etree.tostring(child, encoding="unicode", method="html") for child in body]
    return "".join(parts).strip()


def _content_type(value: str) -> tuple[str, str]:
    message = Message()
    message["content-type"] = value or ""
    mime = message.get_content_type() if value else ""
    return mime.lower(), str(message.get_param("charset") or "")


def text_length(body_html: str) -> int:
    """How many characters of text an HTML body shows."""
    return len(visible_text(body_html))


def visible_text(body_html: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", body_html or ""))).strip()


def without_title(article_html: str, title: str) -> str:
    """The article without a first heading that only repeats the post's title."""
    match = _LEAD_HEADING.match(article_html)
    if match is None or not title.strip():
        return article_html
    if visible_text(match.group(2)).casefold() != _SPACE.sub(" ", title).strip().casefold():
        return article_html
    return article_html[match.end() :].lstrip()


def full_text_entry(entry: Entry, article_html: str) -> Entry | None:
    """The post with its page's article as its body, when the article says more than the feed's
    own body (a feed that carries whole posts loses nothing with `fulltext on`); else None. Its
    pictures are the feed's, then the article's."""
    article = without_title(article_html, entry.title)
    if text_length(article) <= text_length(entry.content_html):
        return None
    images = article_images(entry, article)
    image_url = entry.image_url or (images[0] if images else None)
    return replace(entry, content_html=article, image_url=image_url, images=images)
