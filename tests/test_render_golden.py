"""Golden tests: every entry of the real seed feeds and of our hand-made Hugo-like fixture renders
to exactly the RenderedMessage frozen in tests/golden/*.json.

Regenerate after an intended change with:
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_golden.py
(then read the diff as a reader would before committing it).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
import pytest

from bot.feeds.parser import parse_bytes
from bot.models import Entry
from bot.render import RenderOptions, render_entry
from tests.fakes.telegram_rules import api_call_error

GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEEDS = SHARED / "seeds"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
_IMG_RE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.I)


def entries_from(data: bytes) -> tuple[str, list[Entry]]:
    """feedparser -> (feed title, Entry list), independent of bot.feeds.parser on purpose."""
    parsed = feedparser.parse(data)
    entries = []
    for e in parsed.entries:
        content = e.get("content") or []
        html = (content[0].get("value") if content else None) or e.get("summary", "") or ""
        link = e.get("link", "") or ""
        img = _IMG_RE.search(html)
        published = e.get("published_parsed") or e.get("updated_parsed")
        entries.append(
            Entry(
                key=e.get("id") or link or e.get("title", ""),
                title=e.get("title", "") or "",
                link=link,
                published=_utc(published),
                author=e.get("author", "") or "",
                content_html=html,
                image_url=urljoin(link, img.group(1)) if img else None,
                categories=tuple(t.get("term", "") for t in e.get("tags", []) if t.get("term")),
            )
        )
    return parsed.feed.get("title", "") or "", entries


def _utc(parsed: tuple[int, ...] | None) -> datetime | None:
    if not parsed:
        return None
    y, mo, d, h, mi, s = (int(v) for v in tuple(parsed)[:6])
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def render_feed(path: Path) -> dict[str, list[dict[str, object]]]:
    title, entries = entries_from(path.read_bytes())
    out: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        msg = render_entry(entry, title)
        key = entry.key
        while key in out:  # the real seeds share guids across feeds, not within one; be safe
            key += "'"
        out[key] = msg.to_list()
    return out


def matches_golden(golden: Path, rendered: Any) -> None:
    """`rendered` equals the golden file (written afresh with UPDATE_GOLDEN=1, or when missing)."""
    text = json.dumps(rendered, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if UPDATE or not golden.exists():
        golden.write_text(text, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{golden.name} was missing and has been written; re-run")
    assert json.loads(golden.read_text(encoding="utf-8")) == rendered


def _check(name: str, rendered: dict[str, list[dict[str, object]]]) -> None:
    matches_golden(GOLDEN / f"{name}.json", rendered)
    for attempts in rendered.values():
        for call in attempts:
            assert api_call_error(str(call["method"]), dict(call["params"])) is None  # type: ignore[call-overload]


@pytest.mark.parametrize("feed", ["machine-learning", "neural-networks"])
def test_seed_feed_matches_golden(feed: str) -> None:
    path = SEEDS / f"{feed}.xml"
    if not path.exists():
        pytest.skip("../shared/seeds not available")
    _check(f"seed-{feed}", render_feed(path))


def test_hugo_like_fixture_matches_golden() -> None:
    _check("hugo_like", render_feed(GOLDEN / "hugo_like.xml"))


def test_hugo_like_fixture_reads_well() -> None:
    """The fixture's structures, checked in words rather than only against the frozen file."""
    title, entries = entries_from((GOLDEN / "hugo_like.xml").read_bytes())
    first = render_entry(entries[0], title)
    call = first.attempts[0]
    assert call.method == "sendPhoto"
    assert call.params["photo"] == "https://blog.example.org/img/gradients.png"
    caption = call.params["caption"]
    assert caption.startswith(
        '<b><a href="https://blog.example.org/posts/gradients/">Gradients &amp; Friends: A Tour'
        "</a></b>\nHand-made Hugo Blog · Ada Example · 21 Nov 2026, 14:05 UTC\n\n"
        "<i>Figure 1: the overview</i>\n\n<b>Why gradients?</b>\nEvery model you’ll meet — linear"
    )
    assert "θ ← θ − η 𝐠, with cost O(N² T) per epoch and α ≤ β₁." in caption
    assert "#</a>" not in caption
    assert "\n<i>Figure 1: the overview</i>\n" in caption  # a picture's caption is post text
    text = first.attempts[1].params["text"]
    assert "   ◦ heavy ball\n" in text
    assert "$5 and $10" in text
    assert '<pre><code class="language-python">def step(' in text
    assert "<code>e^{-x^2}</code>" in text
    assert "javascript" not in text
    assert "4. fourth\n\nkept cell\n\nInline" in text  # a table is text, never dropped
    assert text.endswith("#Machine_Learning #C")


def test_title_style_and_options_on_fixture() -> None:
    title, entries = entries_from((GOLDEN / "hugo_like.xml").read_bytes())
    opts = RenderOptions(style="title", link_preview=False, custom_title="My Blog",
                         timezone="Europe/Berlin")
    msg = render_entry(entries[0], title, opts)
    assert [a.method for a in msg.attempts] == ["sendMessage", "sendMessage"]
    assert msg.attempts[0].params == {
        "text": '<b><a href="https://blog.example.org/posts/gradients/">Gradients &amp; Friends: '
        "A Tour</a></b>\nMy Blog · Ada Example · 21 Nov 2026, 15:05 CET",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert msg.attempts[1].params["text"] == (
        "Gradients & Friends: A Tour (https://blog.example.org/posts/gradients/)\n"
        "My Blog · Ada Example · 21 Nov 2026, 15:05 CET"
    )
    assert "parse_mode" not in msg.attempts[1].params


REALWORLD = SHARED / "corpus" / "realworld"
#: (golden name, corpus file, a piece of the entry's link): real posts, through bot.feeds.parser too
REALWORLD_CASES = [
    ("reddit-post", "feed-rs/feed-rs/fixture/atom/atom_mediarss_reddit_1.xml",
     "cleaned_up_the_lack_rack"),
    ("mastodon-micropost", "feedbin/test/support/www/microposts.xml", "109514150488399327"),
    ("mastodon-photo", "feedbin/test/support/www/microposts.xml", "109480363768443971"),
    ("code-table", "rss-parser/test/input/many-links.rss", "code-health-reduce-nesting-reduce"),
    ("youtube-embed", "RSParser/Tests/RSParserTests/Resources/scriptingNews.rss", "a020637"),
]


@pytest.mark.parametrize(
    ("name", "rel", "link"), REALWORLD_CASES, ids=[c[0] for c in REALWORLD_CASES]
)
def test_realworld_entry_matches_golden(name: str, rel: str, link: str) -> None:
    path = REALWORLD / rel
    if not path.exists():
        pytest.skip("../shared/corpus/realworld not available")
    feed = parse_bytes(path.read_bytes(), "https://feeds.example.org/feed")
    (entry,) = [e for e in feed.entries if link in e.link]
    _check(f"realworld-{name}", {entry.link: render_entry(entry, feed.title).to_list()})
