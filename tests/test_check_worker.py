"""A check's parse, diff and rendering in one parse-worker trip (bot.pipeline.check.
check_and_render): the same messages the bot's own rendering gives, and none when a post needs
an Instant View page published first. Pure functions, no I/O."""

from __future__ import annotations

from bot.feeds.diff import remember, seen_cap
from bot.feeds.parser import parse_bytes
from bot.models import Feed, Prints, Subscription
from bot.models import SubscriptionOptions as Options
from bot.pipeline.check import CheckedPosts, RenderJob, check_and_render, render_for
from tests.fakes.feeds import BASE_DATE, hugo_feed, item, rss

URL = "https://blog.example.org/feed.xml"


def job(subs: list[Subscription], *, pages: bool = False) -> RenderJob:
    return RenderJob(Feed(URL, title="Stored title"), subs, {1: "en", 2: "de"},
                     {2: "Europe/Berlin"}, 1000, pages)


def checked(body: bytes, seen_body: bytes, render: RenderJob) -> CheckedPosts:
    """The worker's answer for `body` when every entry of `seen_body` was seen."""
    old = parse_bytes(seen_body, URL)
    seen = remember([], old.entries, seen_cap(len(old.entries)))
    return check_and_render(body, URL, "", b"", Prints(seen).packed, render)


def test_the_worker_renders_what_the_bot_would_per_subscriber() -> None:
    subs = [Subscription(1, URL), Subscription(2, URL, options=Options(style="title"))]
    old, new = hugo_feed(range(1, 6)).encode(), hugo_feed(range(1, 8)).encode()
    answer = checked(new, old, job(subs))
    fresh = answer.document.fresh
    newest_two = parse_bytes(new, URL).entries[:2]
    assert [e.title for e in fresh] == [e.title for e in reversed(newest_two)]
    expected = render_for(Feed(URL, title="Stored title"), answer.document.parsed, fresh, subs,
                          {1: "en", 2: "de"}, 1000, zones={2: "Europe/Berlin"})
    assert answer.messages == expected
    assert set(expected) == {(chat, e.key) for chat in (1, 2) for e in fresh}
    assert expected[(1, fresh[0].key)] != expected[(2, fresh[0].key)]  # each its own options


def test_nothing_new_renders_nothing_and_no_job_renders_nothing() -> None:
    body = hugo_feed(range(1, 6)).encode()
    answer = checked(body, body, job([Subscription(1, URL)]))
    assert answer.document.fresh == [] and answer.messages is None
    newer = hugo_feed(range(1, 7)).encode()
    assert check_and_render(newer, URL, "", b"", b"", None).messages is None


def test_a_post_that_wants_a_page_is_left_to_the_bot_when_pages_can_be_made() -> None:
    long_html = "<p>" + "A long paragraph about nothing in particular. " * 400 + "</p>"
    old = rss("Blog", "https://blog.example.org/", []).encode()
    new = rss("Blog", "https://blog.example.org/", [
        item("g1", "Long read", "https://blog.example.org/long", BASE_DATE, long_html)]).encode()
    subs = [Subscription(1, URL)]
    assert checked(new, old, job(subs, pages=True)).messages is None
    without_pages = checked(new, old, job(subs, pages=False)).messages
    assert without_pages is not None and len(without_pages) == 1  # cut to fit, as without pages
