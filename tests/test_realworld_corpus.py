"""Every entry of every feed in ../shared/corpus/realworld/ (898 real feeds from other projects'
test suites) goes through the bot's parser and renderer, and each message is checked as a reader
would: Telegram accepts it, no markup shows, the post's link is there, nothing of the post's text
is lost except by a marked cut, and its picture is not junk. Skipped when the corpus is absent.

The checks are a table (CHECKS): one more is one more row. `python -m tests.test_realworld_corpus`
prints the files passing / total and the failures of each check.
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ParseError
from bot.models import ApiCall, Entry, RenderedMessage
from bot.parser import parse_bytes
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


def post_words(body_html: str) -> list[str]:
    parser = _Words()
    try:
        parser.feed(body_html)
        parser.close()
    except Exception:  # a body html.parser chokes on: judge its raw text
        return re.findall(r"\w+", _norm(html.unescape(re.sub(r"<[^>]*>", " ", body_html))))
    return re.findall(r"\w+", _norm("".join(parser.parts)))


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
    links: tuple[str, ...]  # every URL the message carries (hrefs, preview, media)


def check_valid(case: Case) -> str | None:
    for call in case.message.attempts:
        error = api_call_error(call.method, dict(call.params))
        if error:
            return f"{call.method}: {error}"
    return None


def check_no_markup(case: Case) -> str | None:
    for name, pattern in (("tag", VISIBLE_TAG), ("entity", VISIBLE_ENTITY), ("CDATA", CDATA)):
        found = pattern.search(case.visible)
        if found:
            return f"visible {name} {found.group(0)!r}"
    return None


def check_link(case: Case) -> str | None:
    link = case.entry.link.strip()
    if not link.lower().startswith(("http://", "https://")) or re.search(r"\s", link):
        return None
    return None if any(_same_url(link, u) for u in case.links) else f"no link to {link}"


def _same_url(a: str, b: str) -> bool:
    return a == b or a.replace(" ", "%20") == b


def check_text_kept(case: Case) -> str | None:
    words = post_words(case.entry.content_html)
    if not words:
        return None
    shown = squeezed(case.visible)
    if "Read more" in case.visible:  # a marked cut: what was kept must be the post's beginning
        words = words[: max(len(shown) // 12, 1)]
    lost = [w for w in words if w not in shown]
    return f"lost {len(lost)} of {len(words)} words: {' '.join(lost[:12])}" if lost else None


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


def case_of(entry: Entry, message: RenderedMessage) -> Case:
    call = message.attempts[0]
    try:
        text, entities = message_content(call.method, dict(call.params))
    except TelegramParseError:
        text, entities = str(call.params.get("text") or call.params.get("caption") or ""), []
    links = [str(e["url"]) for e in entities if e.get("type") == "text_link"]
    preview = call.params.get("link_preview_options") or {}
    links += [str(preview["url"])] if isinstance(preview, dict) and preview.get("url") else []
    links += re.findall(r"https?://\S+", text)
    links += [str(call.params[k]) for k in ("photo", "audio", "video") if call.params.get(k)]
    return Case(entry, message, call, text, tuple(links))


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
    for entry in feed.entries:
        case = case_of(entry, render_entry(entry, feed.title, RenderOptions()))
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


def test_every_realworld_entry_reads_well() -> None:
    files = corpus_files()
    if not files:
        pytest.skip("../shared/corpus/realworld not available")
    results = run_corpus(files)
    report(results)
    failing = [r for r in results if r.failures]
    assert not failing, "\n".join(
        f"{r.path}: {check}: {detail}" for r in failing[:20] for check, _, detail in r.failures[:2]
    )


if __name__ == "__main__":
    report(run_corpus(corpus_files()))
