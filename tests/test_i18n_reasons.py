"""Error reasons are catalogue keys with arguments, shown in the chat's language; dates follow
the language too (issue 12). Real fetcher against loopback servers, real parser, real catalogues."""

from __future__ import annotations

import ast
import pickle
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bot
from bot.errors import FeedbotError, ParseError, Reason
from bot.feeds.fetcher import Fetcher, FetchSettings
from bot.feeds.netguard import AddressPolicy, check_url
from bot.feeds.opml import OpmlError, parse_opml
from bot.feeds.parser import parse_bytes
from bot.i18n import catalogue, catalogue_language, format_time, languages
from bot.models import Entry, Feed
from bot.render import RenderOptions, render_entry
from tests.english import english_words, template_english_words
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.test_cli import feedbot

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("lang", [x for x in languages() if x != "en"])
def test_no_catalogue_message_has_english_words(lang: str) -> None:
    found = {key: template_english_words(text) for key, text in catalogue(lang).items()}
    found = {key: words for key, words in found.items() if words}
    assert found == {}


def test_the_english_scan_skips_code_urls_commands_and_titles() -> None:
    text = (
        '✅ 已订阅 <b>My Blog</b>\nhttps://b.test/feed.xml <code>/set 2 silent on</code> /list '
        "@chan HTTP 404"
    )
    assert english_words(text, ["My Blog"]) == []
    assert english_words("⚠️ timed out after 30 s") == ["timed", "out", "after"]
    assert english_words("<a href=\"https://x.test/\">Read more →</a>") == ["Read", "more"]


# ------------------------------------------------------------------ reasons
def test_reason_round_trips_through_storage_and_old_records_keep_their_english() -> None:
    what = Reason("addr_private")
    blocked = Reason("error_blocked_address", {"address": "10.0.0.5", "what": what})
    assert Reason.from_dict(blocked.to_dict()) == blocked
    assert blocked.text("en") == "refused: 10.0.0.5 is a private address"
    assert blocked.text("zh") == "已拒绝:10.0.0.5 是私有地址"
    new = Feed.from_dict({"url": "u", "last_error": "HTTP 500", "last_reason": blocked.to_dict()})
    assert new.failure_reason() == blocked
    old = Feed.from_dict({"url": "u", "last_error": "HTTP 500 <Internal>", "errors": 3})
    assert old.failure_reason().text("zh") == "HTTP 500 &lt;Internal&gt;"


def test_reason_arguments_are_escaped() -> None:
    assert Reason("error_dns", {"host": "<b>x</b>"}).text("en").endswith("&lt;b&gt;x&lt;/b&gt;")


def test_errors_keep_their_key_across_processes() -> None:
    error = ParseError("not an RSS or Atom feed", key="error_not_well_formed", args={"line": 2})
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy), copy.kind) == (error.reason, str(error), "not_a_feed")


def test_blocked_addresses_are_explained_in_chinese_without_a_request() -> None:
    with pytest.raises(FeedbotError) as info:
        check_url("http://127.0.0.1/feed", AddressPolicy())
    assert info.value.reason.text("zh") == "已拒绝:127.0.0.1 是本机回环地址"
    with pytest.raises(FeedbotError) as info:
        check_url("http://[::ffff:10.0.0.1]/", AddressPolicy())
    assert "私有地址" in info.value.reason.text("zh") and "IPv6" in info.value.reason.text("zh")
    with pytest.raises(FeedbotError) as info:
        check_url("http://localhost:22/", AddressPolicy())
    assert info.value.reason.text("zh") == "已拒绝:localhost 是本机回环名称"


def test_xml_syntax_errors_give_a_line_not_the_parser_internals() -> None:
    with pytest.raises(ParseError) as info:
        parse_bytes(b"hello\n<<< this is not xml", "https://b.test/feed")
    shown = info.value.reason.text("en")
    assert "<unknown>" not in shown and "line 2" in shown, shown
    assert "第 2 行" in info.value.reason.text("zh")
    with pytest.raises(ParseError) as info:
        parse_bytes(b'{"items": [', "https://b.test/feed.json", "application/json")
    assert "第 1 行" in info.value.reason.text("zh")


def test_opml_errors_are_catalogue_reasons() -> None:
    with pytest.raises(OpmlError) as info:
        parse_opml(b"<opml>\n<body><outline></body>")
    assert info.value.reason.text("zh") == "XML 格式错误(第 2 行)"
    with pytest.raises(OpmlError) as info:
        parse_opml(b"<html/>")
    assert "opml" in info.value.reason.text("zh") and CJK.search(info.value.reason.text("zh"))


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(FetchSettings(allow_private=True, total_timeout=1.0)) as f:
        yield f


async def _fetch_error(fetcher: Fetcher, url: str) -> FeedbotError:
    with pytest.raises(FeedbotError) as info:
        await fetcher.fetch(url)
    return info.value


async def test_fetch_failures_read_as_chinese(fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.set_response("/404.xml", 404, b"nope")
    feed_server.set_response("/418.xml", 418, b"teapot")
    feed_server.set_feed("/slow.xml", "<rss/>")
    feed_server.slow("/slow.xml", 3.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    port = feed_server.base_url.rsplit(":", 1)[1]
    cases = {
        feed_server.url("/404.xml"): ("error_http_404", "未找到"),
        feed_server.url("/418.xml"): ("error_http_status", "HTTP 418"),
        feed_server.url("/slow.xml"): ("error_timeout", "1 秒后超时"),
        f"https://127.0.0.1:{port}/404.xml": ("error_tls_not_tls", "http://"),
        f"http://127.0.0.1:{closed_port}/": ("error_connect_refused", "连接被拒绝"),
    }
    for url, (key, words) in cases.items():
        error = await _fetch_error(fetcher, url)
        shown = error.reason.text("zh")
        assert (error.key, words in shown, english_words(shown)) == (key, True, []), (url, shown)
        assert "SSL" not in shown and "_ssl.c" not in shown


# -------------------------------------------------------------------- dates
def test_dates_follow_the_language() -> None:
    stamp = datetime(2026, 12, 1, 19, 31, tzinfo=UTC).timestamp()
    assert format_time(stamp, "en") == "01 Dec 19:31 UTC"
    assert format_time(stamp, "zh") == "12月1日 19:31 UTC"
    assert format_time(stamp, "zh", "long") == "2026年12月1日 19:31 UTC"
    assert format_time(stamp, "en", "post", "Asia/Tokyo") == "2 Dec 2026, 04:31 JST"
    assert format_time(stamp, "zh", "post", "No/Such_Zone") == "2026年12月1日 19:31 UTC"


def test_posts_speak_the_chat_language() -> None:
    entry = Entry(
        key="k", title="A long post", link="https://b.test/1",
        published=datetime(2026, 12, 1, 19, 31, tzinfo=UTC),
        content_html="<p>" + "很长的正文。" * 1200 + "</p>",
    )
    zh = render_entry(entry, "Blog", RenderOptions(lang="zh")).attempts[0].params["text"]
    assert "2026年12月1日 19:31 UTC" in zh and "阅读全文 →" in zh
    assert english_words(zh, ["A long post", "Blog"]) == []
    en = render_entry(entry, "Blog").attempts[0].params["text"]
    assert "1 Dec 2026, 19:31 UTC" in en and "Read more →" in en
    untitled = Entry(key="k", title="", link="", content_html="")
    assert render_entry(untitled, "", RenderOptions(lang="zh")).attempts[0].params["text"] == (
        "(无标题文章)"
    )


def test_telegram_language_codes_map_to_catalogues() -> None:
    codes = {"zh": "zh", "zh-hans": "zh", "zh-CN": "zh", "zh_TW": "zh", "en-US": "en",
             "EN": "en", "fr": None, "": None, None: None}
    assert {code: catalogue_language(code) for code in codes} == codes


def test_preview_renders_for_a_language(feed_server: FeedServer) -> None:
    feed_server.set_feed("/f.xml", hugo_feed(range(1, 3)))
    env = {"FEEDBOT_ALLOW_PRIVATE": "1"}
    english = feedbot("preview", feed_server.url("/f.xml"), "--json", "--limit", "1", env=env)
    chinese = feedbot(
        "preview", feed_server.url("/f.xml"), "--json", "--limit", "1", "--lang", "zh", env=env
    )
    assert english.returncode == chinese.returncode == 0, chinese.stderr
    assert re.search(r"\d+ \w{3} \d{4}, \d\d:\d\d UTC", english.stdout)
    assert re.search(r"\d{4}年\d+月\d+日 \d\d:\d\d UTC", chinese.stdout)


ERROR_CLASSES = {"FeedbotError", "FetchError", "BlockedAddressError", "ParseError", "OpmlError"}


def _error_calls() -> list[tuple[str, int, str | None]]:
    """(file, line, key) of every FeedbotError-family constructor call in bot/."""
    found = []
    for path in sorted(Path(bot.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ERROR_CLASSES:
                key = next((k.value for k in node.keywords if k.arg == "key"), None)
                shown = key.value if isinstance(key, ast.Constant) else (
                    None if key is None else "<expression>"
                )
                found.append((path.name, node.lineno, shown))
    return found


def test_every_error_the_bot_raises_names_a_catalogue_message() -> None:
    calls = _error_calls()
    assert len(calls) > 30
    english = catalogue("en")
    wrong = [c for c in calls if c[2] != "<expression>" and c[2] not in english]
    assert wrong == [], "give each error a key= from the catalogue"
