"""Hashtags (bot/hashtags.py): categories and typed tags as the tags Telegram links."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from bot.errors import OptionError, ParseError
from bot.feeds.parser import parse_bytes
from bot.hashtags import (
    MAX_CATEGORY_TAGS,
    MAX_OWN_TAGS,
    MAX_TAG,
    hashtag_line,
    hashtags,
    normalize_tag,
    parse_tags,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.mark.parametrize(
    ("category", "tag"),
    [
        ("news", "news"),
        ("Machine Learning", "Machine_Learning"),
        ("machine-learning", "machine_learning"),
        ("  spaced   out  ", "spaced_out"),
        ("News/Media/Science", "News_Media_Science"),
        ("Don't Panic", "Dont_Panic"),
        ("Node.js", "Node_js"),
        ("C++", "C"),
        ("#already", "already"),
        ("__dunder__", "dunder"),
        ("深度学习", "深度学习"),
        ("机器学习/深度学习", "机器学习_深度学习"),
        ("ニュース・速報", "ニュース_速報"),
        ("인공지능 뉴스", "인공지능_뉴스"),
        ("हिन्दी", "हिन्दी"),  # combining vowel signs and virama stay in the word
        ("Café Crème", "Café_Crème"),
        ("ＡＩ技术", "AI技术"),  # full-width letters as Telegram users type them
        ("2024年", "2024年"),
        ("web3", "web3"),
        ("Gowanus Canal (Brooklyn, NY)", "Gowanus_Canal_Brooklyn_NY"),
        ("🚀 launches", "launches"),
    ],
)
def test_categories_become_the_tags_telegram_links(category: str, tag: str) -> None:
    assert normalize_tag(category) == tag


@pytest.mark.parametrize("category", ["", "   ", "2024", "2024-05", "#", "🚀✨", "---", "100%"])
def test_what_telegram_would_not_link_makes_no_tag(category: str) -> None:
    assert normalize_tag(category) == ""


def test_long_categories_are_cut_without_a_trailing_underscore() -> None:
    tag = normalize_tag("word " * 30)
    assert len(tag) <= MAX_TAG and not tag.endswith("_") and tag.startswith("word_word")


def test_own_tags_come_first_then_categories_once_whatever_their_case() -> None:
    tags = hashtags(["news", "Tech"], ["NEWS", "tech", "Machine Learning", "machine_learning"])
    assert tags == ("news", "Tech", "Machine_Learning")
    many = hashtags([], [f"topic {n}" for n in range(20)])
    assert len(many) == MAX_CATEGORY_TAGS
    assert hashtag_line(("a", "深度学习")) == "#a #深度学习" and hashtag_line(()) == ""


def test_typed_tags_are_read_and_refused_by_name() -> None:
    assert parse_tags("news #tech, Node.js  深度学习") == ("news", "tech", "Node_js", "深度学习")
    assert parse_tags("News news NEWS") == ("News",)
    with pytest.raises(OptionError) as refused:
        parse_tags("news 2024")
    assert refused.value.key == "set_tags_bad" and "“2024”" in refused.value.text()
    with pytest.raises(OptionError) as too_many:
        parse_tags(" ".join(f"t{n}" for n in range(MAX_OWN_TAGS + 1)))
    assert too_many.value.key == "set_tags_too_many"
    assert "10" in too_many.value.reason.text("zh")


def _linkable(tag: str) -> bool:
    return all(c == "_" or unicodedata.category(c)[0] in "LNM" for c in tag)


def test_every_category_in_the_corpora_makes_a_linkable_tag_or_none() -> None:
    files = [
        p
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file()
        and p.suffix in (".xml", ".rss", ".atom", ".rdf")
        and b"category" in p.read_bytes()
    ]
    if not files:
        pytest.skip("../shared/corpus not available")
    seen = 0
    scripts: set[str] = set()
    for path in files:
        try:
            feed = parse_bytes(path.read_bytes(), "https://corpus.test/feed.xml")
        except ParseError:
            continue
        for entry in feed.entries:
            for category in entry.categories:
                tag = normalize_tag(category)
                seen += 1
                if not tag:
                    continue
                assert _linkable(tag) and len(tag) <= MAX_TAG, (path.name, category, tag)
                assert not tag.replace("_", "").isdigit() and "__" not in tag, (category, tag)
                assert normalize_tag(tag) == tag, (category, tag)  # a tag stays itself
                scripts.update(unicodedata.name(c, "?").split()[0] for c in tag if ord(c) > 0x2FF)
            line = hashtag_line(hashtags([], entry.categories))
            assert len(line.split()) <= MAX_CATEGORY_TAGS
    assert seen > 100
    assert scripts, "the corpora have categories beyond Latin"
