"""Feed discovery in HTML pages and page-vs-feed sniffing (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.feeds.discovery import FeedLink, find_feed_links, looks_like_html

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

PAGE = """<!doctype html>
<html><head>
<title>A blog</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="Posts (RSS)" href="/index.xml">
<link rel="alternate" type="application/atom+xml" title="Posts &amp; notes" href="atom.xml">
<link rel="alternate" hreflang="de" href="/de/">
<link rel="alternate" type="application/rss+xml" href="https://blog.example/index.xml">
<link rel="alternate" type="application/feed+json" title="JSON" href="//cdn.example/feed.json">
<link rel="feed" href="/all">
<link rel="alternate" type="text/html" href="/mobile">
<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
<link rel="alternate" type="application/rss+xml" href="">
</head><body></body></html>"""


def test_finds_feed_links_in_document_order() -> None:
    links = find_feed_links(PAGE, "https://blog.example/posts/")
    assert links == [
        FeedLink("https://blog.example/index.xml", "Posts (RSS)", "application/rss+xml"),
        FeedLink("https://blog.example/posts/atom.xml", "Posts & notes", "application/atom+xml"),
        FeedLink("https://cdn.example/feed.json", "JSON", "application/feed+json"),
        FeedLink("https://blog.example/all", "", ""),
    ]


def test_base_href_applies_even_after_the_links() -> None:
    page = b"""<html><head>
    <LINK REL="Alternate" TYPE="Application/RSS+XML; charset=utf-8" HREF="feed.xml"/>
    <base href="/blog/"><base href="/ignored/">
    </head></html>"""
    links = find_feed_links(page, "http://example.org/a/b.html")
    assert links == [FeedLink("http://example.org/blog/feed.xml", "", "application/rss+xml")]


def test_rel_tokens_and_json_type() -> None:
    page = ('<link rel="alternate home" type="application/json" href="/f.json">'
            '<link rel="alternate stylesheet" type="text/css" href="/x.css">'
            '<link rel="feed alternate" type="application/atom+xml" href="/f.json">')
    assert find_feed_links(page, "http://h.example/") == [
        FeedLink("http://h.example/f.json", "", "application/json")
    ]


def test_no_links_and_broken_html() -> None:
    assert find_feed_links("<html><body><p>nothing", "http://h.example/") == []
    assert find_feed_links(b"\xff\xfe<\x00", "http://h.example/") == []
    assert find_feed_links('<link rel="alternate" type="application/rss+xml" href="/f"',
                           "http://h.example/") == []


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("text/html; charset=utf-8", b"<!DOCTYPE html><html>", True),
    ("text/html", b'<?xml version="1.0"?><rss version="2.0">', False),
    ("application/xml", b"\xef\xbb\xbf\n  <!doctype HTML>\n<html>", True),
    ("application/rss+xml", b"<rss version='2.0'>", False),
    ("application/xhtml+xml", b"<div>", True),
    ("", b"<feed xmlns='http://www.w3.org/2005/Atom'>", False),
    ("application/feed+json", b'{"version": "https://jsonfeed.org/version/1.1"}', False),
    ("text/plain", b"hello", False),
])
def test_looks_like_html(content_type: str, body: bytes, expected: bool) -> None:
    assert looks_like_html(content_type, body) is expected


def test_real_seed_feeds_are_not_html() -> None:
    seeds = sorted((SHARED / "seeds").glob("*.xml"))
    if not seeds:
        pytest.skip("shared seeds absent")
    for seed in seeds:
        assert not looks_like_html("text/html", seed.read_bytes()), seed.name
