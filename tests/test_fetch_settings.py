"""Feeds that need more to fetch (issue 18): a subscription's own request headers (User-Agent,
Cookie, others) and HTTP basic auth, kept as part of the feed's identity (a feed record of their
own, keyed by a marker that is never sent), sent only to the feed's own origin, and never shown
back in full. Reading and refusing what users type is pure; the fetcher is tried against the
loopback feed server; then end to end against the fake Bot API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import FetchError, OptionError
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.feeds.request_headers import (
    HeaderEdit,
    basic_credentials,
    basic_header,
    edited,
    read_auth,
    read_header_edit,
    shown_auth,
    shown_headers,
    with_auth,
)
from bot.feeds.urls import (
    has_marker,
    is_private_url,
    moved_feed_url,
    public_url,
    with_marker,
    without_credentials,
)
from bot.i18n import t
from bot.models import Feed, FetchResult, Subscription
from bot.pipeline.check import moved_to
from bot.storage.tinydb.database import Database
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
OTHER = 2002
PASSWORD = "s3cret-Pa55:word"
COOKIE = "member=7f3a9c2e51"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


def loopback_fetcher() -> Fetcher:
    return Fetcher(FetchSettings(allow_private=True))


@pytest.fixture
def other_server() -> Iterator[FeedServer]:
    """A second origin (another port on loopback)."""
    with FeedServer() as server:
        yield server


# ------------------------------------------------------------- what users type
def refusal(text: str) -> str:
    with pytest.raises(OptionError) as refused:
        read_header_edit(text)
    return refused.value.key


def test_headers_are_read_as_edits_and_refused_by_name() -> None:
    assert read_header_edit(f"User-Agent: {BROWSER}") == HeaderEdit("User-Agent", BROWSER)
    assert read_header_edit("Cookie:a=b; c=d") == HeaderEdit("Cookie", "a=b; c=d")
    assert read_header_edit("-Cookie") == HeaderEdit("Cookie", None)
    assert read_header_edit("off") == HeaderEdit("")
    assert refusal("") == refusal("Cookie") == "set_header_usage"
    assert refusal("Bad Name: x") == refusal("Ünicode: x") == refusal("a(b): x") == (
        "set_header_bad_name"
    )
    for owned in ("Host", "content-length", "Transfer-Encoding", "Connection",
                  "Accept-Encoding", "If-None-Match", "If-Modified-Since", "Proxy-Authorization",
                  "TE", "Upgrade"):
        assert refusal(f"{owned}: x") == "set_header_owned", owned
    assert refusal("X-Evil: a\r\nHost: b") == "set_header_line_break"
    assert refusal("X-Evil: a\nb") == "set_header_line_break"
    assert refusal("X-Name: caf\u00e9") == refusal("X-Name: a\x00b") == "set_header_bad_value"
    assert refusal("X-Empty:") == "set_header_empty"
    assert refusal("X-Long: " + "a" * 4001) == "set_header_too_long"
    headers: dict[str, str] = {}
    for n in range(10):
        headers = edited(headers, HeaderEdit(f"X-H{n}", "v"))
    with pytest.raises(OptionError) as many:
        edited(headers, HeaderEdit("X-One-Too-Many", "v"))
    assert many.value.key == "set_header_too_many"
    with pytest.raises(OptionError) as large:
        edited({f"X-{n}": "v" * 3000 for n in range(2)}, HeaderEdit("X-More", "v" * 3000))
    assert large.value.key == "set_header_too_large"
    # names compare without case: the last typed replaces, `-name` removes
    assert edited({"cookie": "old"}, HeaderEdit("Cookie", "new")) == {"Cookie": "new"}
    assert edited({"Cookie": "x", "User-Agent": "y"}, HeaderEdit("COOKIE")) == {"User-Agent": "y"}
    # every refusal has its words in both languages
    for key in ("set_header_usage", "set_header_bad_name", "set_header_owned",
                "set_header_line_break", "set_header_bad_value", "set_auth_usage"):
        assert t(key, "zh", name="X", limit=1) != t(key, "en", name="X", limit=1)


def test_basic_auth_is_read_and_shown_without_its_password() -> None:
    assert read_auth(f"reader:{PASSWORD}") == f"reader:{PASSWORD}"
    assert read_auth("off") == ""
    for bad in ("", "reader", ":pw", "reader:"):
        with pytest.raises(OptionError) as refused:
            read_auth(bad)
        assert refused.value.key == "set_auth_usage"
    headers = with_auth({"User-Agent": BROWSER}, f"reader:{PASSWORD}")
    assert headers["Authorization"] == basic_header(f"reader:{PASSWORD}")
    assert basic_credentials(headers) == f"reader:{PASSWORD}"
    assert with_auth(headers, "") == {"User-Agent": BROWSER}
    assert shown_auth(f"reader:{PASSWORD}") == "<code>reader:••••</code>"
    shown = " ".join(shown_headers([("User-Agent", BROWSER), ("Cookie", COOKIE)]))
    assert BROWSER in shown and "Cookie: ••••" in shown and COOKIE not in shown


def test_a_feed_fetched_with_its_own_headers_is_private_and_keeps_them_only_on_its_origin() -> None:
    url = with_marker("https://feeds.example/f.xml", "Ab3dEf9h")
    assert has_marker(url) and is_private_url(url)
    assert public_url(url) == "https://feeds.example/f.xml"
    assert without_credentials("https://u:p@feeds.example/f.xml#feedbot-h=x") == (
        "https://feeds.example/f.xml"
    )
    # a permanent move on the same origin keeps the marker (and a password before the host)
    assert moved_feed_url(url, "https://feeds.example/new.xml") == (
        "https://feeds.example/new.xml#feedbot-h=Ab3dEf9h"
    )
    assert moved_feed_url("https://u:p@feeds.example/f", "https://feeds.example/g") == (
        "https://u:p@feeds.example/g"
    )
    # ... a move to another origin is not followed: the credentials don't go there
    assert moved_feed_url(url, "https://elsewhere.example/f.xml") is None
    moved = FetchResult(url="https://elsewhere.example/f.xml", status=200,
                        permanent_url="https://elsewhere.example/f.xml")
    assert moved_to(url, moved) is None
    assert moved_to("https://feeds.example/f.xml", moved) == "https://elsewhere.example/f.xml"
    # the plain feed moves as before
    assert moved_feed_url("https://feeds.example/f", "https://x.example/g") == "https://x.example/g"


def test_fetch_settings_are_stored_with_the_feed_never_with_the_subscription() -> None:
    feed = Feed(url=with_marker("https://feeds.example/f.xml", "t"),
                request_headers={"Cookie": COOKIE})
    assert Feed.from_dict(feed.to_dict()) == feed
    sub = Subscription(1, feed.url)
    sub.options.headers, sub.options.auth = (("Cookie", COOKIE),), f"u:{PASSWORD}"
    stored = str(sub.to_dict())
    assert COOKIE not in stored and PASSWORD not in stored


def test_tinydb_stores_request_headers_only_when_a_feed_has_them(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.json")
    db.save_feed(Feed(url="https://feeds.example/plain"))
    marked = with_marker("https://feeds.example/plain", "t")
    db.save_feed(Feed(url=marked, request_headers={"Cookie": COOKIE}))
    db.commit()
    docs = {d["url"]: d for _, d in db.feeds.items()}
    assert "request_headers" not in docs["https://feeds.example/plain"]
    assert docs[marked]["request_headers"] == {"Cookie": COOKIE}
    db.close()
    reopened = Database(tmp_path / "db.json")
    stored = reopened.get_feed(marked)
    assert stored is not None and stored.request_headers == {"Cookie": COOKIE}
    reopened.close()


# ------------------------------------------------------------------ the fetcher
async def test_a_feed_behind_a_login_cookie_or_user_agent_answers_only_with_them(
    feed_server: FeedServer,
) -> None:
    feed = hugo_feed(range(1, 3))
    for path in ("/auth.xml", "/cookie.xml", "/browser.xml"):
        feed_server.set_feed(path, feed)
    feed_server.require("/auth.xml", {"Authorization": basic_header(f"reader:{PASSWORD}")})
    feed_server.require("/cookie.xml", {"Cookie": COOKIE}, status=403)
    feed_server.require("/browser.xml", {"User-Agent": BROWSER}, status=403)
    async with loopback_fetcher() as fetcher:
        for path, status in (("/auth.xml", 401), ("/cookie.xml", 403), ("/browser.xml", 403)):
            with pytest.raises(FetchError) as refused:
                await fetcher.fetch(feed_server.url(path))
            assert refused.value.status == status, path
        auth = with_auth({}, f"reader:{PASSWORD}")
        marked = with_marker(feed_server.url("/auth.xml"), "Zx81yTq0")
        assert (await fetcher.fetch(marked, headers=auth)).status == 200
        got = await fetcher.fetch(feed_server.url("/cookie.xml"), headers={"cookie": COOKIE})
        assert got.status == 200
        got = await fetcher.fetch(feed_server.url("/browser.xml"), headers={"user-agent": BROWSER})
        assert got.status == 200
        # a password before the host is basic auth too (as /sub https://user:pass@host/ did)
        userinfo = feed_server.url("/auth.xml").replace("://", f"://reader:{PASSWORD}@")
        assert (await fetcher.fetch(userinfo)).status == 200
    (first, *_) = [r for r in feed_server.requests() if r.path == "/auth.xml"]
    assert all("#" not in r.path for r in feed_server.requests())  # the marker is never sent
    browsers = [r.headers["user-agent"] for r in feed_server.requests("/browser.xml")]
    assert browsers[-1] == BROWSER and len(browsers) == 2  # one User-Agent, the feed's own
    assert "authorization" not in first.headers


async def test_a_redirect_to_another_origin_drops_the_credentials(
    feed_server: FeedServer, other_server: FeedServer
) -> None:
    other_server.set_feed("/moved.xml", hugo_feed(range(1, 3)))
    feed_server.set_feed("/here.xml", hugo_feed(range(1, 3)))
    feed_server.redirect("/f.xml", other_server.url("/moved.xml"), status=302)
    feed_server.redirect("/same.xml", feed_server.url("/here.xml"), status=302)
    own = {"Cookie": COOKIE, "User-Agent": BROWSER, "X-Api-Key": "k-123",
           **with_auth({}, f"reader:{PASSWORD}")}
    async with loopback_fetcher() as fetcher:
        await fetcher.fetch(feed_server.url("/f.xml"), headers=own)
        await fetcher.fetch(feed_server.url("/same.xml"), headers=own)
    (asked,) = feed_server.requests("/f.xml")
    assert asked.headers["cookie"] == COOKIE and "authorization" in asked.headers
    (elsewhere,) = other_server.requests("/moved.xml")
    for name in ("cookie", "authorization", "x-api-key"):
        assert name not in elsewhere.headers, name
    assert elsewhere.headers["user-agent"] == BROWSER  # harmless: kept
    (same,) = feed_server.requests("/here.xml")  # the same origin: all of them
    assert same.headers["cookie"] == COOKIE and same.headers["x-api-key"] == "k-123"
    assert same.headers["authorization"] == basic_header(f"reader:{PASSWORD}")


# ------------------------------------------------------------------ end to end
def posts(api: FakeBotApi, chat_id: int, text: str) -> list[str]:
    return [m.plain for m in api.delivered(chat_id) if text in m.plain]


async def test_set_auth_lets_a_post_arrive_and_the_card_never_shows_the_password(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        feed_server.require("/f.xml", {"Authorization": basic_header(f"reader:{PASSWORD}")})
        (wrong,) = await chat.say(USER, "/set 1 auth reader:wrong")
        assert "Not changed" in wrong.plain and "needs a login" in wrong.plain
        (card,) = await chat.say(USER, f"/set 1 auth reader:{PASSWORD}")
        assert "Login (basic auth): reader:••••" in card.plain
        assert "Delete your message" in card.plain
        (shown,) = await chat.say(USER, "/set 1")
        assert "reader:••••" in shown.plain
        (listed,) = await chat.say(USER, "/list")
        (silent,) = await chat.say(USER, "/set 1 silent on")  # another option: still shown
        assert "reader:••••" in silent.plain
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(posts(fake_api, USER, "Topic 3")), timeout=15)
        assert not posts(fake_api, USER, "Topic 1 ")  # no flood
        (off,) = await chat.say(USER, "/set 1 auth off")
        assert "Login (basic auth): none" in off.plain
    sent = [str(c.params) for c in fake_api.calls()]
    assert not any(PASSWORD in text for text in sent)
    assert not any(basic_header(f"reader:{PASSWORD}").split()[1] in text for text in sent)
    assert "Machine Learning" in listed.plain and "feedbot-h" not in listed.plain


def test_list_shows_a_feeds_address_without_its_marker_and_elsewhere_without_its_secret() -> None:
    from bot.handlers.listing import list_line
    from bot.service import ListedSubscription

    for url in (with_marker("https://feeds.example/f.xml", "t0k"),
                f"https://reader:{PASSWORD}@feeds.example/f.xml"):
        row = ListedSubscription(1, Subscription(1, url), Feed(url=url))
        assert "feedbot-h" not in list_line(row)
        in_group = list_line(row, private=False)
        assert PASSWORD not in in_group and "feedbot-h" not in in_group
        assert "https://feeds.example/f.xml" in in_group


async def test_two_chats_of_one_feed_one_with_a_cookie_do_not_share_its_content(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    members = hugo_feed([1, 2, 50], title="Machine Learning on Test Blog")
    feed_server.set_private_feed("/f.xml", members, {"Cookie": COOKIE})
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        await chat.say(OTHER, f"/sub {feed_server.url('/f.xml')}")
        (card,) = await chat.say(USER, f"/set 1 header Cookie: {COOKIE}")
        assert "Request headers: Cookie: ••••" in card.plain and COOKIE not in card.plain
        (ua,) = await chat.say(USER, f"/set 1 header User-Agent: {BROWSER}")
        assert BROWSER in ua.plain and "Cookie: ••••" in ua.plain
        # post 50 was there for members when the cookie was set: seen, not sent
        feed_server.set_private_feed("/f.xml", hugo_feed([1, 2, 50, 51]), {"Cookie": COOKIE})
        feed_server.set_feed("/f.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(
            lambda: bool(posts(fake_api, USER, "Topic 51") and posts(fake_api, OTHER, "Topic 3")),
            timeout=15,
        )
        (removed,) = await chat.say(USER, "/set 1 header -Cookie")
        assert "Cookie" not in removed.plain and BROWSER in removed.plain
    assert not posts(fake_api, OTHER, "Topic 5")
    assert not posts(fake_api, USER, "Topic 50") and len(posts(fake_api, USER, "Topic 51")) == 1
    with_cookie = [r for r in feed_server.requests("/f.xml") if r.headers.get("cookie")]
    without = [r for r in feed_server.requests("/f.xml") if not r.headers.get("cookie")]
    assert with_cookie and without  # two fetches, one per feed record
    assert all(r.headers["cookie"] == COOKIE for r in with_cookie)


async def test_an_invalid_header_is_refused_with_the_translated_error(
    start_bot: Callable[..., Any], feed_server: FeedServer
) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/f.xml')}")
        (owned,) = await chat.say(USER, "/set 1 header Host: evil.example")
        assert owned.plain.startswith("❌ The header Host is set by the bot itself")
        (bad,) = await chat.say(USER, "/set 1 header Bad Name: x")
        assert "is not a header name" in bad.plain
        (default,) = await chat.say(USER, "/set default header Cookie: a=b")
        assert "belong to one feed" in default.plain
        await chat.say(USER, "/lang zh")
        (zh,) = await chat.say(USER, "/set 1 header Transfer-Encoding: chunked")
        assert "由机器人自己设置" in zh.plain
        (shown,) = await chat.say(USER, "/set 1")
        assert "请求头:无" in shown.plain
    assert not [r for r in feed_server.requests("/f.xml") if "evil" in str(r.headers)]


async def test_sub_with_a_cookie_or_a_login_follows_a_feed_that_needs_them_from_the_start(
    start_bot: Callable[..., Any], fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    feed_server.set_feed("/members.xml", hugo_feed(range(1, 3)))
    feed_server.require("/members.xml", {"Cookie": COOKIE}, status=403)
    feed_server.set_feed("/login.xml", hugo_feed(range(1, 3)))
    feed_server.require("/login.xml", {"Authorization": basic_header(f"reader:{PASSWORD}")})
    members, login = feed_server.url("/members.xml"), feed_server.url("/login.xml")
    async with start_bot() as chat:
        (refused,) = await chat.say(OTHER, f"/sub {members}")
        assert "refuses access" in refused.plain
        assert f"/sub {members} header Cookie:" in refused.plain  # what may help
        (added,) = await chat.say(USER, f"/sub {members} header Cookie: {COOKIE}")
        assert "Subscribed to" in added.plain and "Delete your message" in added.plain
        assert COOKIE not in added.plain and "feedbot-h" not in added.plain
        (again,) = await chat.say(USER, f"/sub {members} header Cookie: {COOKIE}")
        assert "already" in again.plain.lower()
        (logged,) = await chat.say(USER, f"/sub {login} auth reader:{PASSWORD}")
        assert "Subscribed to" in logged.plain
        (card,) = await chat.say(USER, "/set 2")
        assert "reader:••••" in card.plain and PASSWORD not in card.plain
        feed_server.set_feed("/members.xml", hugo_feed(range(1, 4)))
        await fake_api.await_for(lambda: bool(posts(fake_api, USER, "Topic 3")), timeout=15)
        (bad,) = await chat.say(USER, f"/sub {login} header Host: x")
        assert "set by the bot itself" in bad.plain
    assert not posts(fake_api, USER, "Topic 1 ")
    assert not any(PASSWORD in str(c.params) or COOKIE in str(c.params) for c in fake_api.calls()
                   if c.method != "getUpdates")
