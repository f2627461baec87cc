"""Languages: every catalogue matches English key for key and placeholder for placeholder, every
message is valid Telegram HTML, no handler speaks outside the catalogue, and /lang works end to end.
"""

from __future__ import annotations

import ast
import re
import string
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import DEFAULT_LANG, catalogue, languages, t
from tests.fakes.botapi import FakeBotApi
from tests.fakes.telegram_rules import api_call_error

USER = 1001
ADMIN = 2002
MEMBER = 3003
GROUP = -100650
BOT_DIR = Path(__file__).resolve().parents[1] / "bot"
CJK = re.compile(r"[\u4e00-\u9fff]")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def raw_catalogue(lang: str) -> dict[str, Any]:
    text = resources.files("bot").joinpath(f"locales/{lang}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def test_there_is_a_second_language() -> None:
    assert {"en", "zh"} <= set(languages())


@pytest.mark.parametrize("lang", [x for x in languages() if x != DEFAULT_LANG])
def test_every_language_has_exactly_the_english_keys_and_placeholders(lang: str) -> None:
    english, other = raw_catalogue(DEFAULT_LANG), raw_catalogue(lang)
    assert sorted(set(english) - set(other)) == [], "missing translations"
    assert sorted(set(other) - set(english)) == [], "keys English does not have"
    wrong = {
        key: (placeholders(english[key]), placeholders(other[key]))
        for key in english
        if placeholders(english[key]) != placeholders(other[key])
    }
    assert wrong == {}
    assert all(isinstance(v, str) for v in other.values())


def sample_values(template: str) -> dict[str, str]:
    return {name: f"x{i}" for i, name in enumerate(sorted(placeholders(template)))}


@pytest.mark.parametrize("lang", languages())
def test_every_message_is_valid_telegram_html(lang: str) -> None:
    for key, template in catalogue(lang).items():
        text = template.format(**sample_values(template))
        error = api_call_error("sendMessage", {"text": text, "parse_mode": "HTML"})
        assert error is None, f"{lang}.{key}: {error}"


def has_words(template: str) -> bool:
    """False for messages made of placeholders, markup and symbols only ("• {title}")."""
    bare = re.sub(r"\{\w*\}|<[^>]*>", "", template)
    return re.search(r"[A-Za-z]{2}", bare) is not None


def test_chinese_is_actually_chinese() -> None:
    english, chinese = catalogue("en"), catalogue("zh")
    untranslated = [
        key
        for key, text in chinese.items()
        if has_words(english[key]) and (text == english[key] or not CJK.search(text))
    ]
    assert untranslated == []
    assert t("lang_name", "zh") == "简体中文"


def test_t_fills_placeholders_and_falls_back_to_english() -> None:
    assert t("sub_limit", "zh", limit=5) == "❌ 本聊天已订阅 5 个源,达到上限。"
    assert t("sub_limit", "xx", limit=5) == t("sub_limit", "en", limit=5)
    with pytest.raises(KeyError):
        t("no_such_message", "en")


def _literal_reply_texts(source: str) -> list[str]:
    """String literals (other than catalogue keys) passed as the text of reply(), reply_text(),
    edit_text(), answer() ... calls."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in {"reply", "reply_text", "edit_text", "edit_message_text", "answer",
                        "send_message", "reply_document"}:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords if k.arg in {"text", "caption"})]:
            found += [
                text
                for text in _strings_outside_t(arg)
                if re.search(r"[A-Za-z]{3}", text) and text not in catalogue(DEFAULT_LANG)
            ]
    return found


def _strings_outside_t(node: ast.AST) -> list[str]:
    """String constants in an expression, except catalogue keys (arguments of t(...))."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "t":
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    return [text for child in ast.iter_child_nodes(node) for text in _strings_outside_t(child)]


@pytest.mark.parametrize(
    "module", sorted(p.relative_to(BOT_DIR).as_posix() for p in (BOT_DIR / "handlers").glob("*.py"))
)
def test_handlers_say_nothing_outside_the_catalogue(module: str) -> None:
    assert _literal_reply_texts((BOT_DIR / module).read_text(encoding="utf-8")) == []


# ------------------------------------------------------------------- end to end
async def test_lang_lists_languages_with_buttons_and_switches_the_chat(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    async with start_bot() as chat:
        (menu,) = await chat.say(USER, "/lang")
        assert "English" in menu.plain
        buttons = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
        assert {b["text"]: b["callback_data"] for b in buttons} == {
            "English": "lang:en", "简体中文": "lang:zh",
        }
        fake_api.press_button(USER, menu.message_id, "lang:zh")
        await fake_api.await_for(
            lambda: "简体中文" in (fake_api.message(USER, menu.message_id) or {}).get("text", "")
        )
        (helped,) = await chat.say(USER, "/help")
        assert "命令" in helped.plain and "/sub" in helped.plain
        (unknown,) = await chat.say(USER, "/frobnicate")
        assert unknown.plain == "我不认识这个命令。/help 列出我能做的事。"
        (bad,) = await chat.say(USER, "/lang klingon")
        assert "klingon" in bad.plain and "en, zh" in bad.plain and "我不会说" in bad.plain
        (back,) = await chat.say(USER, "/lang EN")
        assert back.plain == "🌐 I will speak English here."
        (helped_en,) = await chat.say(USER, "/help")
        assert "Commands" in helped_en.plain
        (zh,) = await chat.say(USER, "/lang zh-CN")
        assert "简体中文" in zh.plain
        (other,) = await chat.say(USER + 1, "/help")  # other chats keep their own language
        assert "Commands" in other.plain


async def test_only_group_admins_change_the_group_language(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    fake_api.add_chat(GROUP, "supergroup", title="Readers", admins=(ADMIN,))
    async with start_bot() as chat:
        (refused,) = await chat.say(GROUP, "/lang zh", user_id=MEMBER)
        assert "only administrators" in refused.plain
        (menu,) = await chat.say(GROUP, "/lang", user_id=MEMBER)
        fake_api.press_button(GROUP, menu.message_id, "lang:zh", user_id=MEMBER)
        assert await chat.silence(GROUP, 1.0) == []
        (listing,) = await chat.say(GROUP, "/list", user_id=MEMBER)
        assert "follows no feeds" in listing.plain  # still English
        (ok,) = await chat.say(GROUP, "/lang zh", user_id=ADMIN)
        assert "简体中文" in ok.plain
        (listing_zh,) = await chat.say(GROUP, "/list", user_id=MEMBER)
        assert listing_zh.plain.startswith("本聊天还没有订阅任何源")


def test_the_literal_scan_finds_literals_but_not_catalogue_keys() -> None:
    source = (
        'await reply(update, "Hello there")\n'
        'await reply(update, t("sub_ok", title="x"))\n'
        'await message.edit_text(f"done: {n}")\n'
        'await reply(update, "\\n\\n".join(t(k) for k in ("help", "help_channels")))\n'
    )
    assert _literal_reply_texts(source) == ["Hello there", "done: "]
