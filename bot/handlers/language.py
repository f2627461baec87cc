"""/lang: the language the bot speaks in a chat."""

from __future__ import annotations

import contextlib
import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.handlers.common import Context, may_manage, remember_chat, reply, runtime_of
from bot.i18n import catalogue_language, current_lang, languages, t


def language_code(raw: str) -> str | None:
    """ "zh", "ZH", "zh-CN", "zh_hans" -> "zh"; None for a language without a catalogue."""
    return catalogue_language(raw)


async def lang_command(update: Update, context: Context) -> None:
    args = list(context.args or [])
    if not args:
        buttons = [
            [InlineKeyboardButton(t("lang_name", code), callback_data=f"lang:{code}")]
            for code in languages()
        ]
        text = t("lang_choose", name=t("lang_name"))
        await reply(update, text, reply_markup=InlineKeyboardMarkup(buttons))
        return
    code = language_code(args[0])
    if code is None:
        codes = ", ".join(f"<code>{c}</code>" for c in languages())
        await reply(update, t("lang_unknown", code=html.escape(args[0]), codes=codes))
        return
    if not await may_manage(update, context):
        await reply(update, t("lang_admins_only"))
        return
    await _set_language(update, context, code)
    await reply(update, t("lang_set"))


async def lang_chosen(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    code = language_code(query.data.removeprefix("lang:"))
    if code is None or not await may_manage(update, context):
        await query.answer(t("lang_admins_only_plain") if code else None, show_alert=bool(code))
        return
    await query.answer()
    await _set_language(update, context, code)
    with contextlib.suppress(TelegramError):
        await query.edit_message_text(t("lang_set"), parse_mode=ParseMode.HTML)


async def _set_language(update: Update, context: Context, code: str) -> None:
    chat = update.effective_chat
    assert chat is not None
    await remember_chat(update, context)
    await runtime_of(context).service.set_language(chat.id, chat.type, code)
    current_lang.set(code)  # this update's answers already speak the new language
