"""Every entry of every feed in ../shared/corpus/realworld/ (898 real feeds from other projects'
test suites) goes through the bot's parser and renderer, and each message is checked as a reader
would: Telegram accepts it, no markup shows, the post's link is there, nothing of the post's text
is lost except by a marked cut, and its picture is not junk. Skipped when the corpus is absent.

The checks are a table (CHECKS): one more is one more row. `python -m tests.test_realworld_corpus`
prints the files passing / total and the failures of each check.
"""

from __future__ import annotations

import html
import json
import re
import sys
import unicodedata
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest

from bot.errors import ParseError
from bot.feeds.parser import parse_bytes
from bot.models import ApiCall, Entry, RenderedMessage
from bot.render import RenderOptions, render_entry
from tests.fakes.telegram_rules import TelegramParseError, api_call_error, message_content

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "realworld"
FEED_URL = "https://feeds.example.org/feed"
WORKERS = 2

# ---------------------------------------------------------------- what a reader must never see

_TAG_NAMES = (
    "a|abbr|b|blockquote|br|center|code|div|em|figure|font|h[1-6]|hr|i|iframe|img|li|ol|p|pre|"
    "script|small|span|strong|style|table|td|th|tr|u|ul|video|source|sup|sub"
)
VISIBLE_TAG = re.compile(rf"</?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>", re.I)
VISIBLE_ENTITY = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8});")
CDATA = re.compile(r"<!\[CDATA\[|\]\]>")

#: pictures no reader wants as a post's photo: tracking pixels, ads, avatars, icons, emoji
JUNK_PICTURE = re.compile(
    r"medium\.com/_/stat|/~r/|/~a/|/~ff/|feedburner\.com/~|feedsportal\.com|doubleclick\.net|"
    r"pixel|/stat\?|/track|beacon|gravatar\.com/avatar|/avatar|/emoji/|/smilies/|/smiley|"
    r"\bicons?/|share[-_]?button|/share[-_/]|/buttons?/|addtoany|a2a_|/ads?/|/ad\?|adserver|"
    r"spacer\.gif|blank\.gif|\b1x1\.(?:gif|png)|[?&](?:w|h|width|height)=1(?:&|$)",
    re.I,
)

# ---------------------------------------------------------------- the post's words, independently


class _Words(HTMLParser):
    """The text a browser shows for an HTML body, split wherever a tag is (never joined across one).
    Scripts, styles and other invisible elements carry no words."""

    SILENT = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "math",
                        "select", "textarea", "option", "button", "annotation"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.silent = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SILENT:
            self.silent += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SILENT and self.silent:
            self.silent -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.silent:
            self.parts.append(data)


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def post_text(body_html: str) -> str:
    parser = _Words()
    try:
        parser.feed(body_html)
        parser.close()
    except Exception:  # a body html.parser chokes on: judge its raw text
        return html.unescape(re.sub(r"<[^>]*>", " ", body_html))
    return "".join(parser.parts)


def post_words(body_html: str) -> list[str]:
    return re.findall(r"\w+", _norm(post_text(body_html)))


def squeezed(text: str) -> str:
    """Visible text with everything but word characters removed, for substring checks."""
    return "".join(re.findall(r"\w+", _norm(text)))


# ---------------------------------------------------------------- checks


@dataclass(frozen=True)
class Case:
    entry: Entry
    message: RenderedMessage
    call: ApiCall  # the first attempt: what the reader gets
    visible: str  # its text as Telegram shows it
    prose: str  # the same without what is shown as code (<code>, <pre>)
    links: tuple[str, ...]  # every URL the message carries (hrefs, preview, media)
    source: Source = field(default_factory=lambda: Source())


def check_valid(case: Case) -> str | None:
    for call in case.message.attempts:
        error = api_call_error(call.method, dict(call.params))
        if error:
            return f"{call.method}: {error}"
    return None


def check_no_markup(case: Case) -> str | None:
    """Markup the reader sees and the post itself does not show (as code, or as text a browser
    would show too: a post about HTML, a feed that escaped its markup twice) is a failure."""
    prose = _squash(case.prose)
    source = _squash(post_text(case.entry.content_html))
    for name, pattern in (("tag", VISIBLE_TAG), ("entity", VISIBLE_ENTITY), ("CDATA", CDATA)):
        for found in pattern.finditer(prose):
            if _squash(found.group(0)) not in source:
                return f"visible {name} {found.group(0)!r}"
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_link(case: Case) -> str | None:
    link = case.entry.link.strip()
    if not link.lower().startswith(("http://", "https://")) or re.search(r"\s", link):
        return None
    return None if any(_same_url(link, u) for u in case.links) else f"no link to {link}"


def _same_url(a: str, b: str) -> bool:
    return a == b or a.replace(" ", "%20") == b


def check_text_kept(case: Case) -> str | None:
    shown = squeezed(case.visible)
    losses = [_lost(words, shown, "Read more" in case.visible) for words in case.source.bodies]
    if not losses or any(not lost for lost, _ in losses):
        return None
    lost, total = min(losses, key=lambda pair: len(pair[0]))
    return f"lost {len(lost)} of {total} words: {' '.join(lost[:12])}"


def _lost(words: list[str], shown: str, cut: bool) -> tuple[list[str], int]:
    if cut:  # a marked cut: what was kept must be the post's beginning
        words = words[: max(len(shown) // 12, 1)]
    return [w for w in words if w not in shown], len(words)


def check_lines_kept(case: Case) -> str | None:
    """A plain-text body's lines (a video's description, podcast notes) stay lines."""
    shown_lines = [squeezed(line) for line in case.visible.splitlines()]
    cut = "Read more" in case.visible
    shown = squeezed(case.visible)
    for line in case.source.lines:
        start = line[:30]
        if cut and start not in shown:
            break
        if not any(s.startswith(start) or (s and start.startswith(s)) for s in shown_lines):
            return f"line run on: {line[:60]!r}"
    return None


def check_no_repeat(case: Case) -> str | None:
    """A body that only says the title (or the start of it) is not said twice."""
    title = squeezed(case.source.title)
    richest: list[str] = max(case.source.bodies, key=len) if case.source.bodies else []
    body = "".join(richest)
    after_header = squeezed(case.visible.partition("\n\n")[2])
    if len(title) >= 8 and body and title.startswith(body):
        if body in after_header:
            return f"title said twice: {case.source.title[:60]!r}"
    return None


def check_picture(case: Case) -> str | None:
    for key in ("photo", "thumbnail"):
        url = str(case.call.params.get(key) or "")
        if url and JUNK_PICTURE.search(url):
            return f"junk {key} {url}"
        if url and _tiny_in_body(url, case.entry.content_html):
            return f"tiny {key} {url}"
    return None


def _tiny_in_body(url: str, body: str) -> bool:
    """The picture's own <img> in the post says it is at most 2 pixels wide or high."""
    for tag in re.findall(r"<img\b[^>]*>", body, re.I):
        src = re.search(r"\bsrc\s*=\s*[\"']([^\"']*)", tag, re.I)
        if not src or html.unescape(src.group(1)).strip() not in url:
            continue
        for dim in re.findall(r"\b(?:width|height)\s*=\s*[\"']?\s*(\d+)", tag, re.I):
            if int(dim) <= 2:
                return True
    return False


CHECKS: dict[str, Callable[[Case], str | None]] = {
    "valid": check_valid,
    "no markup": check_no_markup,
    "link": check_link,
    "text kept": check_text_kept,
    "lines kept": check_lines_kept,
    "no repeat": check_no_repeat,
    "picture": check_picture,
}

# ---------------------------------------------------------------- running the corpus


@dataclass
class FileResult:
    path: str
    entries: int = 0
    refused: str = ""
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (check, entry, detail)


def corpus_files() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    rows = manifest.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split("\t", 1)[0] for row in rows if row.strip()]


@dataclass(frozen=True)
class Source:
    """An entry as the feed itself gives it, read with feedparser or json alone."""

    #: the word lists of its richest bodies (of content, summary, content_text): none may be lost
    bodies: list[list[str]] = field(default_factory=list)
    #: the lines of a body that is plain text with line breaks: each must start a line
    lines: list[str] = field(default_factory=list)
    title: str = ""


def sources_of(data: bytes, json_feed: bool) -> list[Source]:
    """Per entry, in the feed's order, what the bot must not lose of it."""
    if json_feed:
        try:
            items = json.loads(data.decode("utf-8-sig")).get("items") or []
        except (ValueError, AttributeError):
            return []
        return [_source([(str(i.get(k) or ""), k != "content_html")
                         for k in ("content_html", "content_text", "summary")],
                        str(i.get("title") or ""))
                for i in items if isinstance(i, dict)]
    doc = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    found = []
    for raw in doc.entries:
        bodies = [(str(c.get("value") or ""), "html" not in str(c.get("type") or ""))
                  for c in raw.get("content") or []]
        detail = raw.get("summary_detail") or {}
        bodies.append((str(raw.get("summary") or ""),
                       "html" not in str(detail.get("type", "html"))))
        found.append(_source(bodies, html.unescape(re.sub(r"<[^>]*>", "", raw.get("title", "")))))
    return found


def _source(bodies: list[tuple[str, bool]], title: str) -> Source:
    lists = [re.findall(r"\w+", _norm(v)) if plain else post_words(v) for v, plain in bodies]
    most = max((len(w) for w in lists), default=0)
    # a summary and a content often say the same at about the same length, in other words:
    # showing any body at least half as rich as the richest whole loses nothing
    richest = [w for w in lists if w and 2 * len(w) >= most]
    lines: list[str] = []
    for (value, plain), words in zip(bodies, lists, strict=True):
        if words not in richest:
            continue
        if (not plain and re.search(r"<[a-zA-Z/!]", value)) or "\n" not in value.strip():
            # an HTML body says where its lines break; a one-line body of the same words says
            # the breaks of the other are the feed's indentation
            return Source(richest, [], title)
        text = value if plain else html.unescape(value)
        found = [squeezed(line) for line in text.splitlines() if squeezed(line)]
        lines = found if len(found) > len(lines) else lines
    return Source(richest, lines, title)


def case_of(entry: Entry, message: RenderedMessage) -> Case:
    """What the reader gets: the first form of the message, and the text that follows it when
    the post needs two messages (an album or an episode whose text does not fit a caption)."""
    calls = [message.attempts[0]]
    if message.follow_up is not None:
        calls.append(message.follow_up.attempts[0])
    texts, prose, links = [], [], []
    for call in calls:
        text, entities, found = _content(call)
        texts.append(text)
        prose.append(_without_code(text, entities))
        links += found
    return Case(entry, message, calls[0], "\n\n".join(texts), "\n\n".join(prose), tuple(links))


def _content(call: ApiCall) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(visible text, entities, every URL) of one call; an album shows its first caption."""
    method, params = call.method, dict(call.params)
    links: list[str] = []
    if method == "sendMediaGroup":
        items = [m for m in params.get("media") or [] if isinstance(m, dict)]
        links += [str(m["media"]) for m in items if m.get("media")]
        first = items[0] if items else {}
        method = "sendPhoto"
        params = {k: first[k] for k in ("caption", "parse_mode") if first.get(k)}
    try:
        text, entities = message_content(method, params)
    except TelegramParseError:
        text, entities = str(params.get("text") or params.get("caption") or ""), []
    links += [str(e["url"]) for e in entities if e.get("type") == "text_link"]
    preview = params.get("link_preview_options") or {}
    links += [str(preview["url"])] if isinstance(preview, dict) and preview.get("url") else []
    links += re.findall(r"https?://\S+", text)
    links += [str(params[k]) for k in ("photo", "audio", "video") if params.get(k)]
    return text, entities, links


def _without_code(text: str, entities: list[dict[str, Any]]) -> str:
    units = text.encode("utf-16-le")
    for ent in sorted(entities, key=lambda e: -int(e["offset"])):
        if ent.get("type") in ("code", "pre"):
            start, end = 2 * int(ent["offset"]), 2 * (int(ent["offset"]) + int(ent["length"]))
            units = units[:start] + " ".encode("utf-16-le") + units[end:]
    return units.decode("utf-16-le", "replace")


def run_file(rel: str) -> FileResult:
    result = FileResult(rel)
    body = (CORPUS / rel).read_bytes()
    content_type = "application/feed+json" if rel.endswith(".json") else ""
    try:
        feed = parse_bytes(body, FEED_URL, content_type)
    except ParseError as exc:
        result.refused = str(exc)
        if b"jsonfeed.org/version" in body[:4096]:
            result.failures.append(("parsed", "", f"a JSON Feed refused: {exc}"))
        return result
    result.entries = len(feed.entries)
    sources = sources_of(body, rel.endswith(".json"))
    if len(sources) != len(feed.entries):  # feedparser and the bot disagree: judge the bot's body
        sources = [Source([post_words(e.content_html)], [], e.title) for e in feed.entries]
    for entry, source in zip(feed.entries, sources, strict=True):
        case = replace(case_of(entry, render_entry(entry, feed.title, RenderOptions())),
                       source=source)
        for name, check in CHECKS.items():
            detail = check(case)
            if detail:
                result.failures.append((name, entry.link or entry.title or entry.key, detail))
    return result


def run_corpus(files: list[str]) -> list[FileResult]:
    with ProcessPoolExecutor(WORKERS) as pool:
        return list(pool.map(run_file, files, chunksize=8))


def report(results: list[FileResult], out: Any = sys.stdout) -> None:
    passing = sum(1 for r in results if not r.failures)
    print(f"realworld: {passing} / {len(results)} files pass", file=out)
    by_check: dict[str, list[str]] = {}
    for r in results:
        for check in sorted({f[0] for f in r.failures}):
            by_check.setdefault(check, []).append(r.path)
    for check, paths in sorted(by_check.items()):
        print(f"  {check}: {len(paths)} files", file=out)
    for r in results:
        for check, where, detail in r.failures[:3]:
            print(f"{r.path}\t{check}\t{where[:80]}\t{detail[:200]}", file=out)


#: failures another task fixes: an untitled post sent as a photo has no link to the post until
#: every message carries one (issue #14, task "media"); drop an entry here once it passes
#: (check, file) known to fail, each with its reason; the test fails if one starts passing
#: unnoticed only in that it stays listed here: keep this set short and dated
PENDING = {
}
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_realworld_entry_reads_well(shard: int) -> None:
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus/realworld not available")
    results = run_corpus(files[shard::SHARDS])
    report(results)
    failures = [(r.path, check, detail) for r in results for check, _, detail in r.failures
                if (check, r.path) not in PENDING]
    assert not failures, "\n".join(f"{path}: {check}: {detail}" for path, check, detail
                                    in failures[:40])


if __name__ == "__main__":
    report(run_corpus(corpus_files()))
