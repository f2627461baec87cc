"""Tests of the test infrastructure: Telegram's rules, the fake Bot API and the feed server."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from telegram import Bot, InputMediaPhoto
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)

from bot.models import Enclosure
from tests.fakes import feeds
from tests.fakes.botapi import TOKEN, FakeBotApi
from tests.fakes.feedserver import FeedServer
from tests.fakes.fixtures import fake_api, feed_server, make_fake_api  # noqa: F401
from tests.fakes.telegram_rules import TelegramParseError, api_call_error, parse_html, utf16_len

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# ------------------------------------------------------------------------ telegram_rules


def test_parse_html_valid_nesting_and_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <b>bold <i>both</i></b> <a href="https://x.org/?a=1&amp;b=2">link</a> '
        '<pre><code class="language-py">x &lt; 1</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>s</tg-spoiler>"
        '<span class="tg-spoiler">t</span>&#65;&#x1F600;'
    )
    assert text == "😀 bold both link x < 1qstA😀"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.org/?a=1&b=2"},
        {"type": "pre", "offset": 18, "length": 5, "language": "py"},
        {"type": "expandable_blockquote", "offset": 23, "length": 1},
        {"type": "spoiler", "offset": 24, "length": 1},
        {"type": "spoiler", "offset": 25, "length": 1},
    ]


def test_parse_html_keeps_lone_ampersand_and_drops_empty_entities() -> None:
    assert parse_html("Tom & Jerry <b></b>&quot;") == ('Tom & Jerry "', [])


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("<p>x</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("é<br>", 'Unsupported start tag "br" at byte offset 2'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("It&rsquo;s", 'Character entity "&rsquo;" is not supported at byte offset 2'),
        ("a&nbsp;b", 'Character entity "&nbsp;"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<b class="x">y</b>', 'Unsupported attribute "class" in the tag "b"'),
        ('<a href="https://a" title="t">y</a>', 'Unsupported attribute "title"'),
        ('<span class="math-inline">$x$</span>', 'Tag "span" must have class "tg-spoiler"'),
        ("<code><b>x</b></code>", 'Tag "b" can\'t be nested in tag "code"'),
        ("<pre>x<code>y</code></pre>", 'Tag "code" can\'t be nested in tag "pre"'),
        ('<a href="https://a"><a href="https://b">x</a></a>', 'Tag "a" can\'t be nested'),
        ("<blockquote><blockquote>x</blockquote></blockquote>", 'Tag "blockquote" can\'t'),
        ('<a href="javascript:alert(1)">x</a>', "Unsupported URL scheme"),
        ('<a href=" JavaScript:alert(1)">x</a>', "Unsupported URL scheme"),
        ('<a href="data:text/html,x">x</a>', "Unsupported URL scheme"),
        ('<a href="vbscript:x">x</a>', "Unsupported URL scheme"),
        ('<a href="https://a', "Unclosed start tag at byte offset 0"),
        ("<tg-emoji>x</tg-emoji>", 'must have attribute "emoji-id"'),
    ],
)
def test_parse_html_rejects(html: str, detail: str) -> None:
    with pytest.raises(TelegramParseError) as info:
        parse_html(html)
    assert info.value.description.startswith("Bad Request: can't parse entities: ")
    assert detail in info.value.description


def test_emoji_counts_as_two_utf16_units() -> None:
    assert utf16_len("😀") == 2
    assert api_call_error("sendMessage", {"text": "😀" * 2048}) is None
    assert api_call_error("sendMessage", {"text": "😀" * 2048 + "x"}) == (
        "Bad Request: message is too long"
    )


def test_length_is_counted_after_parsing_and_trimming() -> None:
    body = "<b>" + "&amp;" * 4096 + "</b>"
    assert api_call_error("sendMessage", {"text": body, "parse_mode": "HTML"}) is None
    assert api_call_error("sendMessage", {"text": "\n  " + "x" * 4096 + " \n"}) is None
    assert api_call_error("sendMessage", {"text": "x" * 4097}) == "Bad Request: message is too long"


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("sendMessage", {"text": " \n "}, "Bad Request: message text is empty"),
        ("sendMessage", {"text": "<b> </b>", "parse_mode": "HTML"}, "message text is empty"),
        ("sendMessage", {}, "Bad Request: message text is empty"),
        ("editMessageText", {"text": "x" * 4097}, "Bad Request: message is too long"),
        ("sendPhoto", {"photo": "u", "caption": "x" * 1025}, "message caption is too long"),
        ("sendDocument", {"document": "d", "caption": "😀" * 513}, "caption is too long"),
        ("sendPhoto", {"caption": "x"}, "Bad Request: there is no photo in the request"),
        (
            "sendMessage",
            {"text": "x", "parse_mode": "HTML", "entities": [{"type": "bold", "offset": 0}]},
            "Bad Request: can't use parse_mode and entities together",
        ),
        (
            "sendMessage",
            {"text": "😀", "entities": [{"type": "bold", "offset": 1, "length": 2}]},
            "out of the text bounds",
        ),
        (
            "sendMessage",
            {"text": "x", "entities": '[{"type": "shiny", "offset": 0, "length": 1}]'},
            'unsupported entity type "shiny"',
        ),
        (
            "sendPhoto",
            {"photo": "u", "caption": "<p>x</p>", "parse_mode": "HTML"},
            'Unsupported start tag "p"',
        ),
    ],
)
def test_api_call_error(method: str, params: dict[str, object], error: str) -> None:
    result = api_call_error(method, params)
    assert result is not None and error in result


def test_api_call_error_accepts_valid_calls() -> None:
    assert api_call_error("sendPhoto", {"photo": "https://x/y.png"}) is None  # no caption
    assert api_call_error("sendPhoto", {"photo": "p", "caption": "x" * 1024}) is None
    good_entities = [{"type": "text_link", "offset": 0, "length": 2, "url": "https://a"}]
    assert api_call_error("sendMessage", {"text": "😀", "entities": good_entities}) is None
    assert api_call_error("getMe", {}) is None


def test_seed_descriptions_are_not_telegram_html() -> None:
    seed = SHARED / "seeds" / "machine-learning.xml"
    if not seed.exists():
        pytest.skip("../shared is absent")
    first = feedparser.parse(seed.read_bytes()).entries[0].summary
    error = api_call_error("sendMessage", {"text": first, "parse_mode": "HTML"})
    assert error is not None and error.startswith("Bad Request: can't parse entities")


# ------------------------------------------------------------------------ FakeBotApi + PTB


def seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


def make_bot(api: FakeBotApi, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=f"{api.url}/bot", base_file_url=f"{api.url}/file/bot")


@pytest.fixture
async def bot(fake_api: FakeBotApi) -> AsyncIterator[Bot]:  # noqa: F811
    async with make_bot(fake_api) as b:
        yield b


async def test_send_message_is_delivered_and_recorded(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.add_chat(-100, "supergroup", title="Forum", is_forum=True)
    msg = await bot.send_message(
        -100, "<b>Hi</b> 😀 &amp; <i>x</i>", parse_mode="HTML", message_thread_id=7,
        disable_notification=True,
    )
    assert msg.text == "Hi 😀 & x" and msg.chat.type == "supergroup"
    spans = [(e.type, e.offset, e.length) for e in msg.entities]
    assert spans == [("bold", 0, 2), ("italic", 8, 1)]
    [sent] = await fake_api.await_delivered(1, chat_id=-100)
    assert (sent.method, sent.message_id, sent.thread_id) == ("sendMessage", msg.message_id, 7)
    assert sent.text_or_caption == "<b>Hi</b> 😀 &amp; <i>x</i>" and sent.plain == "Hi 😀 & x"
    assert sent.params["disable_notification"] is True and sent.params["chat_id"] == -100
    assert [c.method for c in fake_api.calls()] == ["getMe", "sendMessage"]


async def test_bad_html_is_rejected_with_telegram_description(
    bot: Bot, fake_api: FakeBotApi  # noqa: F811
) -> None:
    with pytest.raises(BadRequest, match='nsupported start tag "p" at byte offset 0'):
        await bot.send_message(5, "<p>x</p>", parse_mode="HTML")
    [call] = fake_api.calls("sendMessage")
    assert call.rejected and call.status == 400
    assert call.description == (
        "Bad Request: can't parse entities: Unsupported start tag \"p\" at byte offset 0"
    )
    assert fake_api.delivered() == []


async def test_photo_url_rejection_and_caption(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.reject_photo_urls("broken.example")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/http url specified"):
        await bot.send_photo(5, "https://broken.example/a.png", caption="c")
    msg = await bot.send_photo(
        5, "https://ok.example/a.png", caption="<i>cap</i>", parse_mode="HTML"
    )
    assert msg.caption == "cap" and msg.photo
    assert [(d.method, d.text_or_caption) for d in fake_api.delivered(5)] == [
        ("sendPhoto", "<i>cap</i>")
    ]
    assert [c.rejected for c in fake_api.calls("sendPhoto")] == [True, False]


@pytest.mark.filterwarnings("ignore:Deprecated since version v22.2")
async def test_rate_limits_raise_retry_after(make_fake_api) -> None:  # noqa: F811
    now = [1000.0]
    api = make_fake_api(enforce_limits=True, clock=lambda: now[0])
    api.add_chat(-200, "group", title="G")
    async with make_bot(api) as bot:
        for i in range(3):  # a private chat allows a burst of 3
            await bot.send_message(5, f"m{i}")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(5, "too fast")
        assert seconds(info.value.retry_after) == 1
        now[0] += 1.0
        await bot.send_message(5, "after a second")
        for i in range(20):
            now[0] += 0.1  # stay under 30/s across the bot
            await bot.send_message(-200, f"g{i}")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(-200, "21st in a minute")
        assert 57 <= seconds(info.value.retry_after) <= 60
    assert api.count_429 == 2
    assert len(api.delivered(5)) == 4 and len(api.delivered(-200)) == 20
    assert api.calls("sendMessage")[3].description == "Too Many Requests: retry after 1"


async def test_migrate_raises_chat_migrated(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.add_chat(-300, "group", title="Old")
    fake_api.migrate(-300, -1000300)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-300, "hello")
    assert info.value.new_chat_id == -1000300
    updates: Any = await bot.get_updates()
    assert updates[0].message.migrate_to_chat_id == -1000300
    await bot.send_message(-1000300, "hello")
    assert fake_api.delivered()[0].chat_id == -1000300


@pytest.mark.parametrize(
    ("chat_type", "reason", "error", "message"),
    [
        ("private", "blocked", Forbidden, "Forbidden: bot was blocked by the user"),
        ("group", "kicked", Forbidden, "Forbidden: bot was kicked from the group chat"),
        ("private", "deactivated", Forbidden, "Forbidden: user is deactivated"),
        ("supergroup", "not_found", BadRequest, "Chat not found"),
    ],
)
async def test_block_reasons(
    bot: Bot, fake_api: FakeBotApi, chat_type: str, reason: str, error: type, message: str  # noqa: F811
) -> None:
    chat_id = 77 if chat_type == "private" else -77
    if chat_type != "private":
        fake_api.add_chat(chat_id, chat_type)
    fake_api.block(chat_id, reason)
    with pytest.raises(error, match=message):
        await bot.send_message(chat_id, "x")
    fake_api.unblock(chat_id)
    await bot.send_message(chat_id, "x")
    assert len(fake_api.delivered(chat_id)) == 1


async def test_get_updates_long_poll_delivers_user_text(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    timer = threading.Timer(0.3, fake_api.send_text, args=(42, "/start hello"))
    timer.start()
    started = time.monotonic()
    updates: Any = await bot.get_updates(timeout=5)
    assert 0.2 < time.monotonic() - started < 3
    [update] = updates
    assert update.message.text == "/start hello" and update.message.from_user.id == 42
    assert update.message.entities[0].type == "bot_command"
    fake_api.send_text(42, "second")
    later: Any = await bot.get_updates(offset=update.update_id + 1, timeout=1)
    assert [u.message.text for u in later] == ["second"]
    assert await bot.get_updates(offset=later[0].update_id + 1, timeout=0) == ()


async def test_buttons_membership_and_documents(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    sent = await bot.send_message(9, "pick")
    fake_api.press_button(9, sent.message_id, "unsub:1")
    fake_api.bot_membership(9, "kicked")
    fake_api.send_document(9, "subs.opml", b"<opml/>", caption="import")
    updates: Any = await bot.get_updates()
    query, member, doc = updates
    assert query.callback_query.data == "unsub:1"
    assert await query.callback_query.answer()
    assert member.my_chat_member.new_chat_member.status == "kicked"
    file = await bot.get_file(doc.message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"<opml/>"
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(9, "x")


async def test_edit_delete_and_chat_info(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.add_chat(-5, "channel", title="News", username="news", admins=(7,))
    msg = await bot.send_message("@news", "v1")
    edited: Any = await bot.edit_message_text("<b>v2</b>", -5, msg.message_id, parse_mode="HTML")
    assert edited.text == "v2" and (fake_api.message(-5, msg.message_id) or {})["text"] == "v2"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("<b>v2</b>", -5, msg.message_id, parse_mode="HTML")
    assert await bot.delete_message(-5, msg.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(-5, msg.message_id)
    assert (await bot.get_chat(-5)).title == "News"
    assert (await bot.get_chat_member(-5, 7)).status == "creator"
    admins = await bot.get_chat_administrators(-5)
    assert {a.user.id for a in admins} == {7, bot.id}
    await bot.set_my_commands([("start", "Start")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]


async def test_fail_next_and_protocol_errors(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.fail_next("sendMessage", 502, "Bad Gateway", chat_id=5)
    with pytest.raises(NetworkError):
        await bot.send_message(5, "x")
    fake_api.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(RetryAfter):
        await bot.send_message(5, "x")
    await bot.send_message(5, "x")
    with pytest.raises(InvalidToken):
        await make_bot(fake_api, "1:wrong").get_me()
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{fake_api.url}/bot{TOKEN}/noSuchMethod")
        assert resp.status_code == 404 and resp.json()["description"] == "Not Found"
        resp = await client.post(
            f"{fake_api.url}/bot{TOKEN}/sendMessage", json={"chat_id": 5, "text": "json body"}
        )
        assert resp.json()["result"]["text"] == "json body"
    assert [d.plain for d in fake_api.delivered()] == ["x", "json body"]


async def test_delay_without_error_still_delivers(bot: Bot, fake_api: FakeBotApi) -> None:  # noqa: F811
    fake_api.fail_next("sendMessage", None, delay=1.0)
    with pytest.raises(NetworkError):  # TimedOut
        await bot.send_message(5, "slow", read_timeout=0.2)
    await fake_api.await_delivered(1, timeout=5)


def test_stop_is_prompt_during_long_poll() -> None:
    api = FakeBotApi().start()
    poll = threading.Thread(
        target=lambda: httpx.post(f"{api.url}/bot{TOKEN}/getUpdates", data={"timeout": "30"},
                                  timeout=40),
    )
    poll.start()
    api.wait_for(lambda: len(api.calls("getUpdates")) == 1, timeout=5)
    started = time.monotonic()
    api.stop()
    poll.join(timeout=5)
    assert time.monotonic() - started < 3 and not poll.is_alive()


# ------------------------------------------------------------------------ FeedServer


def test_feed_etag_and_last_modified(feed_server: FeedServer) -> None:  # noqa: F811
    feed_server.set_feed("/f.xml", feeds.hugo_feed([1, 2]))
    first = httpx.get(feed_server.url("/f.xml"))
    assert first.status_code == 200 and first.headers["content-type"].startswith(
        "application/rss+xml"
    )
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert httpx.get(feed_server.url("/f.xml"), headers={"If-None-Match": etag}).status_code == 304
    by_date = httpx.get(feed_server.url("/f.xml"), headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304 and by_date.content == b""
    feed_server.set_feed("/f.xml", feeds.hugo_feed([1, 2, 3]))
    changed = httpx.get(feed_server.url("/f.xml"), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert feed_server.hits("/f.xml") == 4
    assert feed_server.requests("/f.xml")[1].headers["if-none-match"] == etag


def test_redirect_and_status(feed_server: FeedServer) -> None:  # noqa: F811
    feed_server.set_feed("/new.xml", "<rss/>")
    feed_server.redirect("/old.xml", feed_server.url("/new.xml"), status=308)
    feed_server.set_response("/gone.xml", 410, "gone", {"X-Why": "retired"})
    resp = httpx.get(feed_server.url("/old.xml"), follow_redirects=True)
    assert resp.status_code == 200 and [r.status_code for r in resp.history] == [308]
    gone = httpx.get(feed_server.url("/gone.xml"))
    assert (gone.status_code, gone.text, gone.headers["x-why"]) == (410, "gone", "retired")
    assert httpx.get(feed_server.url("/missing")).status_code == 404


def test_gzip_bomb_is_small_on_the_wire(feed_server: FeedServer) -> None:  # noqa: F811
    feed_server.gzip_bomb("/bomb.xml", 20_000_000)
    with httpx.stream("GET", feed_server.url("/bomb.xml")) as resp:
        assert resp.headers["content-encoding"] == "gzip"
        assert int(resp.headers["content-length"]) < 100_000
        total = sum(len(chunk) for chunk in resp.iter_bytes())
    assert total == 20_000_000


def test_huge_slow_and_drip(feed_server: FeedServer) -> None:  # noqa: F811
    feed_server.huge("/huge.xml", 50_000_000)
    with httpx.stream("GET", feed_server.url("/huge.xml")) as resp:
        assert resp.headers["content-length"] == "50000000"
        first = next(resp.iter_bytes())
        assert first.startswith(b"<?xml")
    feed_server.set_feed("/slow.xml", "<rss/>")
    feed_server.slow("/slow.xml", 2.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(feed_server.url("/slow.xml"), timeout=0.3)
    feed_server.drip("/drip.xml", b"<", every_s=0.05, total_bytes=5)
    started = time.monotonic()
    assert httpx.get(feed_server.url("/drip.xml")).content == b"<<<<<"
    assert time.monotonic() - started >= 0.2


def test_serve_file_raw_bytes(feed_server: FeedServer, tmp_path: Path) -> None:  # noqa: F811
    packed = tmp_path / "feed.xml.gz"
    packed.write_bytes(gzip.compress(b"<rss version='2.0'/>"))
    feed_server.serve_file("/packed.xml", packed, {"Content-Encoding": "gzip"})
    assert httpx.get(feed_server.url("/packed.xml")).content == b"<rss version='2.0'/>"


def test_feed_server_stops_promptly_mid_stream() -> None:
    server = FeedServer().start()
    server.drip("/drip.xml", b"x", every_s=0.5, total_bytes=1000)
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            httpx.get(server.url("/drip.xml"), timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    client = threading.Thread(target=fetch)
    client.start()
    while server.hits("/drip.xml") == 0:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    client.join(timeout=5)
    assert time.monotonic() - started < 3 and not client.is_alive() and errors


# ------------------------------------------------------------------------ feed builders


def test_builders_parse_like_hugo_feeds() -> None:
    doc = feedparser.parse(feeds.hugo_feed([1, 2, 3]))
    assert not doc.bozo and [e.title.split(":")[0] for e in doc.entries] == [
        "ML Math Derivations (3)", "ML Math Derivations (2)", "ML Math Derivations (1)",
    ]
    body = doc.entries[0].summary
    for needle in ("<figure", "<img", 'href="#part-3"', "math-inline", "&rsquo;", "<blockquote"):
        assert needle in body
    assert feeds.hugo_item(4) == feeds.hugo_item(4)  # deterministic
    custom = feedparser.parse(
        feeds.rss("T", "https://t.example/", [feeds.item(
            "g1", "Title", "https://t.example/1", "Mon, 02 Feb 2026 09:00:00 +0000", "<p>x</p>",
            categories=("ml",), enclosure=Enclosure("https://t.example/a.png", "image/png", 10),
        )], ttl=30)
    )
    entry = custom.entries[0]
    assert (entry.id, entry.tags[0].term, entry.enclosures[0].href) == (
        "g1", "ml", "https://t.example/a.png"
    )
    atom = feedparser.parse(feeds.atom("A", "https://a.example/", [
        feeds.atom_entry("urn:1", "One", "https://a.example/1", feeds.BASE_DATE, "<p>1</p>")
    ]))
    assert atom.version == "atom10" and atom.entries[0].id == "urn:1"


async def test_await_helpers_do_not_block_the_loop(fake_api: FakeBotApi) -> None:  # noqa: F811
    async def later() -> None:
        await asyncio.sleep(0.1)
        async with make_bot(fake_api) as b:
            await b.send_message(3, "late")

    task = asyncio.create_task(later())
    [msg] = await fake_api.await_delivered(1, chat_id=3, timeout=5)
    await task
    assert msg.plain == "late"
    with pytest.raises(AssertionError, match="expected 2 deliveries"):
        await fake_api.await_delivered(2, timeout=0.05)


# ---------------------------------------------------------------- media (issue 14)
def test_media_rules_follow_telegram() -> None:
    photo = {"type": "photo", "media": "https://img.test/1.jpg"}
    assert api_call_error("sendMediaGroup", {"media": [photo]}) is not None  # 2-10 items
    assert api_call_error("sendMediaGroup", {"media": [photo] * 11}) is not None
    assert api_call_error("sendMediaGroup", {"media": [photo] * 10}) is None
    long = {**photo, "caption": "x" * 1025}
    assert api_call_error("sendMediaGroup", {"media": [long, photo]}) == (
        "Bad Request: message caption is too long")
    audio = {"type": "audio", "media": "https://a.test/1.mp3"}
    assert api_call_error("sendMediaGroup", {"media": [audio, photo]}) is not None  # no mixing
    assert api_call_error("sendAudio", {"audio": "https://a.test/1.mp3", "caption": "x" * 1025})
    assert api_call_error("sendVideo", {"caption": "no file"}) == (
        "Bad Request: there is no video in the request")
    assert api_call_error("sendAudio", {"audio": "https://a.test/1.mp3", "duration": "1:00"})


async def test_audio_video_and_albums_by_url_and_a_refused_url(
    bot: Bot, fake_api: FakeBotApi  # noqa: F811
) -> None:
    fake_api.reject_file_urls("/gone/")
    sent = await bot.send_audio(1, "https://a.test/ep.mp3", caption="<b>Ep</b>", parse_mode="HTML",
                                title="Ep", performer="Ada", duration=61)
    assert sent.audio is not None and sent.audio.performer == "Ada" and sent.caption == "Ep"
    video = await bot.send_video(1, "https://a.test/clip.mp4", caption="Clip")
    assert video.video is not None
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/http url"):
        await bot.send_audio(1, "https://a.test/gone/ep.mp3")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/http url"):
        await bot.send_media_group(1, [InputMediaPhoto("https://img.test/1.jpg"),
                                       InputMediaPhoto("https://img.test/gone/2.jpg")])
    album = await bot.send_media_group(1, [
        InputMediaPhoto("https://img.test/1.jpg", caption="<i>Trip</i>", parse_mode="HTML"),
        InputMediaPhoto("https://img.test/2.jpg"),
    ])
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "Trip" and album[1].caption is None
    items = [m for m in fake_api.delivered(1) if m.method == "sendMediaGroup"]
    assert [m.plain for m in items] == ["Trip", "Trip"]  # what the album shows under it
    assert [m.params["item"]["media"] for m in items] == [
        "https://img.test/1.jpg", "https://img.test/2.jpg"]
