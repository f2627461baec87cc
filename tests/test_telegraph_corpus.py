"""Every post of the real-world corpus (../shared/corpus/realworld) and the seed feeds as an Instant
View page: content the fake Telegraph accepts (its tags, href/src only, within 64 KB), the post's
words and pictures kept, and the link message valid for the fake Bot API's rules."""

from __future__ import annotations

import html
import re
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import pytest

from bot.errors import ParseError
from bot.feeds.parser import parse_bytes
from bot.models import Entry
from bot.render.convert import html_to_telegram
from bot.render.message import RenderOptions, render_entry
from bot.render.telegraph import page_draft
from tests.fakes.telegram_rules import api_call_error
from tests.fakes.telegraph import content_problem, node_text, walk
from tests.test_realworld_corpus import CORPUS, FEED_URL, corpus_files

SEEDS = CORPUS.parent.parent / "seeds"
PAGE = "https://telegra.ph/Page-12-02"
#: share of the words the bot shows in Telegram that an untrimmed page must show too
WORDS_KEPT = 0.99


def _squash(text: str) -> str:
    return re.sub(r"\W+", "", unicodedata.normalize("NFKC", text)).casefold()


def telegram_words(entry: Entry) -> list[str]:
    """The words of the post as the bot shows it in Telegram, uncut (math as Unicode there too,
    players as link lines whose label words are the bot's own)."""
    shown = html.unescape(
        re.sub(r"<[^>]*>", " ", html_to_telegram(entry.content_html, base_url=entry.link))
    )
    shown = re.sub(r"^\s*(▶ [^:\n]*: |\d+\. )", "", shown, flags=re.M)  # list numbers too
    return [w for w in (_squash(word) for word in shown.split()) if w]


def check_file(path: Path) -> list[str]:
    content_type = "application/feed+json" if path.suffix == ".json" else ""
    try:
        feed = parse_bytes(path.read_bytes(), FEED_URL, content_type)
    except ParseError:
        return []
    problems: list[str] = []
    for entry in feed.entries:
        where = f"{path.name} {entry.link or entry.title or entry.key}"[:120]
        draft = page_draft(entry, feed.title)
        problem = content_problem(draft.content)
        if problem is not None:
            problems.append(f"{where}: refused: {problem}")
            continue
        if not 1 <= len(draft.title) <= 256 or len(draft.author_name) > 128:
            problems.append(f"{where}: title or author out of bounds")
        shown = _squash(node_text(draft.content))
        words = telegram_words(entry)
        lost = [w for w in words if w not in shown]
        if words and not draft.trimmed and len(lost) > (1 - WORDS_KEPT) * len(words):
            problems.append(f"{where}: {len(lost)}/{len(words)} words lost, e.g. {lost[:5]}")
        picture = (entry.image_url or "").strip()
        images = {n["attrs"]["src"] for n in walk(draft.content) if n["tag"] == "img"}
        if (
            picture.startswith(("http://", "https://"))
            and not draft.trimmed
            and (urljoin(entry.link, picture) not in images)
        ):
            problems.append(f"{where}: its picture {picture[:80]} is not on the page")
        message = render_entry(entry, feed.title, RenderOptions(instant_view="always"), PAGE)
        for call in message.attempts:
            error = api_call_error(call.method, call.params)
            if error is not None:
                problems.append(f"{where}: {call.method} refused: {error}")
    return problems


def test_every_corpus_post_makes_a_page_telegraph_accepts() -> None:
    files = [CORPUS / rel for rel in corpus_files()]
    if not files:
        pytest.skip("../shared/corpus/realworld not available")
    files += sorted(SEEDS.glob("*.xml"))
    with ProcessPoolExecutor(2) as pool:
        problems = [p for found in pool.map(check_file, files, chunksize=16) for p in found]
    assert not problems, "\n".join(problems[:40])
