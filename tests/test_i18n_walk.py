"""A chat in Chinese sees no English (issue 12): the real bot against the fake Bot API and loopback
feed servers, a user whose Telegram speaks "zh-hans" goes through every command and reply path
(subscription failures of each kind, options, filters, pause/resume, import/export, /lang,
/stats, feed failure and recovery notices, posts, an owner alert), and every text the bot sent
to that chat (messages, edits, captions, buttons, button answers) is scanned for English words
outside URLs, titles, code and command names (tests/english.py).

The walk is a table: add a row to STEPS (or a scripted flow below) for each new reply path.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import running
from bot.config import Settings
from bot.feeds.opml import OpmlFeed, build_opml
from bot.handlers import COMMANDS
from bot.i18n import languages, t
from bot.runtime import Runtime
from bot.service import SubscriptionService
from tests.conftest import Conversation
from tests.english import english_words
from tests.fakes.botapi import FakeBotApi, SentMessage
from tests.fakes.feeds import item, rss
from tests.fakes.feedserver import FeedServer

USER = 1001  # also the bot's owner: /stats and the alert go to this chat
CJK = re.compile(r"[\u4e00-\u9fff]")
LONG_BODY = "<p>" + "这是一段很长的中文正文,长到消息必须截断。" * 300 + "</p>"


def feed_title(name: str) -> str:
    return f"{name} Weekly"


def post_title(name: str, n: int) -> str:
    return f"{name} post {n}: Vec<T> & friends"


def zh_feed(name: str, ns: range, *, long_from: int = 99) -> str:
    """A feed with English titles (the feed's words, allowed) and Chinese bodies (so only the
    bot's own words could be English)."""
    now = datetime.now(UTC)
    items = [
        item(
            guid=f"https://blog.test/{name}/{n}",
            title=post_title(name, n),
            link=f"https://blog.test/{name}/{n}",
            pub_date=now - timedelta(minutes=100 - n),
            html=LONG_BODY if n >= long_from else f"<p>第 {n} 篇文章的正文。</p>",
        )
        for n in sorted(ns, reverse=True)
    ]
    return rss(feed_title(name), "https://blog.test/", items)


#: what the user typed that replies quote back (“maybe” is neither on nor off)
ECHOED = ("maybe", "colour", "fancy", "soon", "klingon", "somewhere", "Mars/Olympus", "late")


@dataclass(frozen=True)
class Say:
    """One command and how many messages answer it."""

    text: str  # {name} is replaced by the URL of that route
    replies: int = 1


#: the command paths, in order. The first /sub subscribes feed 1 ("Main"), used by later rows.
STEPS = (
    Say("/start"),
    Say("/help"),
    Say("/sub"),
    Say("/sub {main}"),
    Say("/sub {main}"),
    Say("/sub {http404}"),
    Say("/sub {http500}"),
    Say("/sub {http403}"),
    Say("/sub {http418}"),
    Say("/sub {slow}"),
    Say("/sub {garbage}"),
    Say("/sub {json}"),
    Say("/sub {empty}"),
    Say("/sub {page}"),
    Say("/sub {loop}"),
    Say("/sub {big}"),
    Say("/sub {tls}"),
    Say("/sub {refused}"),
    Say("/sub ftp://files.test/feed.xml"),
    Say("/sub {http404} {http500} {main}"),
    Say("/sub not a url at all"),
    Say("/sub mychannel {main}"),
    Say("/preview"),
    Say("/preview {second}", replies=2),
    Say("/preview {main}", replies=2),
    Say("/preview {http404}"),
    Say("hello there"),
    Say("{main}"),
    Say("/list"),
    Say("/status"),
    Say("/set"),
    Say("/set 1 silent maybe"),
    Say("/set 1 colour red"),
    Say("/set 1 style fancy"),
    Say("/set 1 interval soon"),
    Say("/set 1 interval 1s"),
    Say("/set 1 interval 3d"),
    Say("/set preview off"),
    Say("/set 1 title My own name"),
    Say("/set default"),
    Say("/set default title x"),
    Say("/set notices"),
    Say("/set notices somewhere"),
    Say("/set notices here"),
    Say("/set timezone"),
    Say("/set timezone Mars/Olympus"),
    Say("/set timezone Etc/GMT-8"),  # dates then say +08 (Asia/Shanghai would say CST)
    Say("/set quiet late"),
    Say("/set 1 quiet 23:00-07:00 silent"),
    Say("/set 9"),
    Say("/filter"),
    Say("/filter 1 rust, go, !sponsored"),
    Say("/filter 1"),
    Say("/filter 1 off"),
    Say("/filter global"),
    Say("/filter 1 , ,"),
    Say("/filter 1 title:/post [12]/ AND NOT author:/bot$/, !categories:ads"),
    Say("/filter 1"),
    Say("/filter 1 test"),
    Say("/filter 1 test title:/(?=x)/"),
    Say("/filter 1 author:/(a/"),
    Say("/filter 1 title:rust author:bob"),
    Say("/filter 1 off"),
    Say("/filter global test"),
    Say("/pause 1"),
    Say("/pause 1"),
    Say("/resume 9"),
    Say("/export"),
    Say("/import"),
    Say("/lang"),
    Say("/lang klingon"),
    Say("/lang zh-CN"),
    Say("/stats"),
    Say("/frobnicate"),
    Say("/unsub"),
    Say("/unsub 9"),
    Say("/unsub 9 10"),
)


def callback(message: SentMessage | dict[str, Any], prefix: str) -> str:
    params = message.params if isinstance(message, SentMessage) else message
    rows = params["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row
                if b["callback_data"].startswith(prefix))


def texts_sent_to(api: FakeBotApi, chat_id: int) -> list[str]:
    """Every text the bot showed this chat: messages, edits, captions, button labels and
    answers to button presses."""
    shown: list[str] = []
    for call in api.calls():
        params = call.params
        if call.method == "answerCallbackQuery":
            shown.append(str(params.get("text") or ""))
            continue
        if str(params.get("chat_id")) != str(chat_id):
            continue
        shown.append(str(params.get("text") or params.get("caption") or ""))
        markup = params.get("reply_markup")
        if isinstance(markup, dict):
            shown += [b.get("text", "") for row in markup.get("inline_keyboard", []) for b in row]
    return [s for s in shown if s]


def routes(server: FeedServer) -> dict[str, str]:
    server.set_feed("/main.xml", zh_feed("Main", range(1, 3)))
    server.set_feed("/second.xml", zh_feed("Second", range(1, 2)))
    server.set_feed("/flaky.xml", zh_feed("Flaky", range(1, 2)))
    server.set_feed("/gone.xml", zh_feed("Gone", range(1, 2)))
    server.set_response("/404.xml", 404, b"no")
    server.set_response("/500.xml", 500, b"boom")
    server.set_response("/403.xml", 403, b"go away")
    server.set_response("/418.xml", 418, b"teapot")
    server.set_feed("/slow.xml", zh_feed("Slow", range(1, 2)))
    server.slow("/slow.xml", 3.0)
    server.set_response("/garbage.xml", 200, b"hello\n<<< not xml at all", {
        "Content-Type": "application/xml"})
    server.set_response("/data.json", 200, b'{"hello": "world"}', {
        "Content-Type": "application/json"})
    server.set_response("/empty.xml", 200, b"", {"Content-Type": "application/xml"})
    server.set_response("/page.html", 200, b"<!doctype html><html><title>Home</title></html>", {
        "Content-Type": "text/html"})
    server.redirect("/loop-a.xml", server.url("/loop-b.xml"), 302)
    server.redirect("/loop-b.xml", server.url("/loop-a.xml"), 302)
    server.huge("/big.xml", 1024 * 1024)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    port = server.base_url.rsplit(":", 1)[1]
    return {
        "main": server.url("/main.xml"),
        "second": server.url("/second.xml"),
        "flaky": server.url("/flaky.xml"),
        "gone": server.url("/gone.xml"),
        "http404": server.url("/404.xml"),
        "http500": server.url("/500.xml"),
        "http403": server.url("/403.xml"),
        "http418": server.url("/418.xml"),
        "slow": server.url("/slow.xml"),
        "garbage": server.url("/garbage.xml"),
        "json": server.url("/data.json"),
        "empty": server.url("/empty.xml"),
        "page": server.url("/page.html"),
        "loop": server.url("/loop-a.xml"),
        "big": server.url("/big.xml"),
        "tls": f"https://127.0.0.1:{port}/main.xml",  # TLS to a plain HTTP server
        "refused": f"http://127.0.0.1:{closed_port}/feed.xml",
    }


async def _press(chat: Conversation, message: SentMessage, prefix: str, *, edits: int = 0) -> None:
    """Press the message's button whose data starts with `prefix`; wait for the answer to the
    press and for `edits` edited messages."""
    api = chat.api
    answers, edited = len(api.calls("answerCallbackQuery")), len(api.calls("editMessageText"))
    api.press_button(USER, message.message_id, callback(message, prefix))
    await api.await_for(
        lambda: len(api.calls("answerCallbackQuery")) > answers
        and len(api.calls("editMessageText")) >= edited + edits,
        timeout=15,
    )


async def _import_flows(chat: Conversation, url: dict[str, str]) -> None:
    api = chat.api
    listed = [OpmlFeed(url["second"], "Second"), OpmlFeed(url["http404"], "Missing"),
              OpmlFeed("ftp://files.test/x.xml", "Ftp")]
    files = [
        ("feeds.opml", build_opml(listed, "x"), 2),  # progress + summary
        ("broken.opml", b"<opml>\n<body><outline></body>", 1),
        ("root.opml", b"<html/>", 1),
        ("evil.opml", b'<!DOCTYPE opml [<!ENTITY x "y">]><opml/>', 1),
        ("empty.opml", b"<opml version='2.0'><body/></opml>", 1),
    ]
    for name, content, replies in files:
        before = len(api.delivered(USER))
        api.send_document(USER, name, content, caption="/import")
        await api.await_delivered(before + replies, USER, timeout=15)


async def _option_buttons(chat: Conversation) -> None:
    (card,) = await chat.say(USER, "/set 1")
    await _press(chat, card, "opt:", edits=1)
    (defaults,) = await chat.say(USER, "/set default")
    await _press(chat, defaults, "opt:default:", edits=1)
    (menu,) = await chat.say(USER, "/lang")
    await _press(chat, menu, "lang:zh", edits=1)


async def _resume_flow(chat: Conversation) -> None:
    (ask,) = await chat.say(USER, "/resume 1")
    await _press(chat, ask, "resume:skip", edits=1)
    await chat.say(USER, "/resume")  # nothing is paused now


def _said(api: FakeBotApi, marker: str) -> list[SentMessage]:
    return [m for m in api.delivered(USER) if marker in m.plain]


async def _posts_and_backlog(chat: Conversation, server: FeedServer) -> None:
    """New posts (one long enough for "Read more"), then more than the backlog limit at once."""
    api = chat.api
    server.set_feed("/main.xml", zh_feed("Main", range(1, 5), long_from=4))
    await api.await_for(lambda: bool(_said(api, "Main post 4")), timeout=15)
    server.set_feed("/main.xml", zh_feed("Main", range(1, 10)))
    await api.await_for(lambda: bool(_said(api, "⏭")), timeout=15)


async def _failure_notices(
    chat: Conversation, runtime: Runtime, server: FeedServer, url: dict[str, str]
) -> None:
    """A feed that is gone (410); one failing, then paused, resumed and recovered."""
    api = chat.api
    poller = runtime.poller
    poller.notify_after, poller.pause_after, poller.max_backoff = 1.0, 5.0, 0.5
    await chat.say(USER, f"/sub {url['flaky']}")
    await chat.say(USER, f"/sub {url['gone']}")
    server.set_response("/flaky.xml", 500, b"boom")
    server.set_response("/gone.xml", 410, b"gone")
    await api.await_for(lambda: bool(_said(api, "⛔ Gone")), timeout=15)
    await api.await_for(lambda: bool(_said(api, "⚠️ Flaky")), timeout=15)
    await chat.say(USER, "/list")
    await chat.say(USER, "/status")
    await api.await_for(lambda: bool(_said(api, "⏸ Flaky")), timeout=15)
    await chat.say(USER, "/list")
    subs = await runtime.store.subscriptions_for_chat(USER)
    number = next(n for n, s in enumerate(subs, start=1) if s.feed_url == url["flaky"])
    server.set_feed("/flaky.xml", zh_feed("Flaky", range(1, 3)))
    (ask,) = await chat.say(USER, f"/resume {number}")
    await _press(chat, ask, "resume:catch", edits=1)
    await api.await_for(lambda: bool(_said(api, "✅ Flaky")), timeout=20)


async def _owner_alert(chat: Conversation, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: SubscriptionService, chat_id: int) -> Any:
        raise RuntimeError("database on fire")

    with monkeypatch.context() as patch:
        patch.setattr(SubscriptionService, "status", broken)
        await chat.say(USER, "/status", replies=2)  # the apology, and the owner's alert


async def test_a_chinese_chat_sees_no_english(
    bot_settings: Settings,
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = routes(feed_server)
    fake_api.set_user_language(USER, "zh-hans")  # never says /lang: the chat starts in Chinese
    chat = Conversation(fake_api)
    settings = replace(
        bot_settings, fetch_timeout=1.0, max_feed_bytes=64 * 1024, backlog_limit=2, owners=(USER,)
    )
    async with running(settings) as app:
        runtime: Runtime = app.bot_data.runtime
        for step in STEPS:
            answers = await chat.say(USER, step.text.format(**url), replies=step.replies)
            assert all(CJK.search(a.plain) for a in answers), (step.text, answers[0].plain)
        await _option_buttons(chat)
        await _resume_flow(chat)
        await _import_flows(chat, url)
        await _posts_and_backlog(chat, feed_server)
        await _failure_notices(chat, runtime, feed_server, url)
        await _owner_alert(chat, monkeypatch)
        await chat.say(USER, "/unsub 1")

    titles = [
        *(feed_title(n) for n in ("Main", "Second", "Flaky", "Gone", "Slow")),
        *(post_title(n, i) for n in ("Main", "Second", "Flaky", "Gone") for i in range(1, 10)),
        "My own name", "Second", "Missing", "Ftp", "rust, go", "sponsored",
        *ECHOED, *(t("lang_name", code) for code in languages()),  # "English" names itself
    ]
    sent = texts_sent_to(fake_api, USER)
    english = {text: words for text in sent if (words := english_words(text, titles))}
    assert english == {}
    for expected in (  # the walk reached these paths (regular expressions)
        "阅读全文 →</a>", "未找到", "超时", "第 2 行", "http://", "连接被拒绝",
        r"上次检查 \d+月\d+日 \d\d:\d\d UTC", r"\d{4}年\d+月\d+日 \d\d:\d\d UTC", "⏭",
        "⛔ <b>Gone", "⚠️ <b>Flaky", "⏸ <b>Flaky", "✅ <b>Flaky", "起出错:服务器内部出错",
        "需要处理",
    ):
        assert any(re.search(expected, text) for text in sent), expected


def test_the_walk_covers_every_command() -> None:
    walked = {step.text.split()[0].lstrip("/") for step in STEPS}
    assert set(COMMANDS) - walked == set(), "add a row to STEPS for the new command"


# ------------------------------------------------- a new chat's language (Telegram's)
GROUP = -100990
ZH_USER, EN_USER, FR_USER = 5005, 6006, 7007


async def test_a_new_chat_starts_in_the_users_telegram_language(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    fake_api.set_user_language(ZH_USER, "zh-CN")
    fake_api.set_user_language(EN_USER, "en-US")
    fake_api.set_user_language(FR_USER, "fr")  # no catalogue: English
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ZH_USER,))
    async with start_bot() as chat:
        (zh,) = await chat.say(ZH_USER, "/start")
        assert zh.plain.startswith("👋 feedbot 会")
        (en,) = await chat.say(EN_USER, "/start")
        assert en.plain.startswith("👋 feedbot sends")
        (fr,) = await chat.say(FR_USER, "/help")
        assert "Commands" in fr.plain
        (chosen,) = await chat.say(EN_USER, "/lang zh")  # a stored choice wins over Telegram's
        assert "简体中文" in chosen.plain
        (still,) = await chat.say(EN_USER, "/help")
        assert "命令" in still.plain
        (group,) = await chat.say(GROUP, "/start", user_id=ZH_USER)  # the first to address it
        assert CJK.search(group.plain)
        (same,) = await chat.say(GROUP, "/list", user_id=EN_USER)
        assert same.plain.startswith("本聊天还没有订阅任何源")
