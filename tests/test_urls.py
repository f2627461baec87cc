"""bot.feeds.urls: addresses as people type them (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.diff import remember
from bot.feeds.urls import (
    Address,
    NotAnAddress,
    canonical,
    looks_like_channel_name,
    read_address,
    same_address,
    strip_punctuation,
    urls_in_text,
    without_credentials,
)
from bot.models import Entry, Feed, ParsedFeed, Subscription
from bot.service import ListedSubscription, find_row, same_feed


@pytest.mark.parametrize(
    ("typed", "clean"),
    [
        ("https://a.example/feed.xml,", "https://a.example/feed.xml"),
        ("https://a.example/feed.xml.", "https://a.example/feed.xml"),
        ("(https://a.example/feed.xml)", "https://a.example/feed.xml"),
        ("<https://a.example/feed.xml>", "https://a.example/feed.xml"),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)"),
        ("“https://a.example/x”。", "https://a.example/x"),
        ("https://a.example/x，", "https://a.example/x"),
        ("example.com!", "example.com"),
    ],
)
def test_strip_punctuation(typed: str, clean: str) -> None:
    assert strip_punctuation(typed) == clean


def test_a_url_without_scheme_is_tried_over_https_then_http() -> None:
    assert read_address("example.com/feed,") == Address(
        "example.com/feed", ("https://example.com/feed", "http://example.com/feed")
    )
    assert candidates("127.0.0.1:8080/x.xml") == (
        "https://127.0.0.1:8080/x.xml", "http://127.0.0.1:8080/x.xml"
    )
    assert candidates("localhost:8080/x")[1] == "http://localhost:8080/x"
    assert candidates("http://a.example/x") == ("http://a.example/x",)
    assert candidates("http://nas:8080/feed") == ("http://nas:8080/feed",)  # the guard decides
    assert candidates("例子.中国/feed")[0] == "https://例子.中国/feed"


def candidates(word: str) -> tuple[str, ...]:
    address = read_address(word)
    assert isinstance(address, Address), address
    return address.candidates


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("not", "not_url"),
        ("url", "not_url"),
        ("mychannel", "not_url"),
        ("e.g.", "not_url"),
        ("1.5", "not_url"),
        ("a..b", "not_url"),
        ("-a.com", "not_url"),
        ("https://", "not_url"),
        ("https:///feed", "not_url"),
        ("http://a.example:99999/x", "not_url"),
        ("ftp://a.example/x", "not_http"),
        ("mailto:me@a.example", "not_http"),
        ("javascript:alert(1)", "not_http"),
    ],
)
def test_words_that_cannot_be_addresses_are_refused(word: str, reason: str) -> None:
    refused = read_address(word)
    assert isinstance(refused, NotAnAddress) and refused.reason == reason


def test_canonical_form() -> None:
    assert canonical("HTTPS://Blog.Example:443/Feed?utm_source=x&a=1&fbclid=z#top") == (
        "https://blog.example/Feed?a=1"
    )
    assert canonical("http://blog.example:80") == "http://blog.example/"
    assert canonical("http://blog.example:8080/f/") == "http://blog.example:8080/f/"
    assert canonical("http://[::1]:8080/f") == "http://[::1]:8080/f"
    assert canonical("http://u:p@Blog.example/f") == "http://u:p@blog.example/f"
    assert same_address("http://blog.example/f/", "http://BLOG.example/f?utm_medium=m")
    assert not same_address("http://blog.example/f", "http://blog.example/g")


def test_urls_in_plain_text_and_channel_names() -> None:
    text = "sub https://a.example/feed.xml, and also b.example/rss? what about this."
    assert urls_in_text(text) == ["https://a.example/feed.xml", "b.example/rss"]
    assert urls_in_text("how do I use this bot?") == []
    assert looks_like_channel_name("mychannel") and not looks_like_channel_name("a.b")
    assert not looks_like_channel_name("abc")  # too short for a Telegram username


def _entry(n: int) -> Entry:
    return Entry(key=f"https://blog.example/{n}", title=f"Post {n}", link=f"https://blog.example/{n}")


def test_same_feed_under_another_name() -> None:
    entries = [_entry(n) for n in range(3)]
    stored = Feed(url="http://127.0.0.1/f", title="Blog", link="https://blog.example/")
    stored.seen = remember([], entries, 200)
    parsed = ParsedFeed(title="Blog", link="https://blog.example/", entries=entries)
    assert same_feed(stored, parsed)
    # a tag feed of the same blog shares posts but not its title
    assert not same_feed(stored, ParsedFeed("Blog: ML", "https://blog.example/", entries[:2]))
    assert not same_feed(stored, ParsedFeed("Blog", "https://blog.example/", [_entry(9)]))
    assert not same_feed(stored, ParsedFeed("Blog", "https://blog.example/", []))


def test_find_row_by_number_feed_url_or_page() -> None:
    rows = [
        ListedSubscription(1, Subscription(1, "http://a.example/feed.xml"), Feed("x")),
        ListedSubscription(
            2, Subscription(1, "http://b.example/rss", page="http://b.example/"), Feed("y")
        ),
    ]
    assert find_row(rows, "2,") is rows[1]
    assert find_row(rows, "3") is None
    assert find_row(rows, "http://A.example/feed.xml?utm_source=t") is rows[0]
    assert find_row(rows, "a.example/feed.xml") is rows[0]
    assert find_row(rows, "b.example") is rows[1]  # the page the feed was found on
    assert find_row(rows, "nothing") is None


_URL_PARTS = ["http://", "https://", "HTTP://", "h", "a.b", "/", "//", "?", "#", "@", ":",
              "8080", "%20", " ", "\t", "\n", "\r", "[::1]", "u:p@", "=", "&", ";", "é", ".."]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_URL_PARTS), min_size=1, max_size=9))
def test_without_credentials_shortcut_gives_what_urlsplit_gives(parts: list[str]) -> None:
    """The check path skips urlsplit for plain URLs: the answer must be the same either way."""
    url = "".join(parts)
    split = urlsplit(url.strip())
    by_split = urlunsplit(split._replace(netloc=split.netloc.rpartition("@")[2], fragment=""))
    assert without_credentials(url) == by_split
