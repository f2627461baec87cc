"""/start, /help, and commands the bot does not know."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType

from bot.handlers.common import Context, remember_chat, reply
from bot.i18n import t
from bot.options import help_examples, template_help


async def start(update: Update, context: Context) -> None:
    await remember_chat(update, context)
    await reply(update, t("start"))


async def help_command(update: Update, context: Context) -> None:
    options = t("help_options", examples=help_examples())  # the /set examples: bot.options
    sections = (
        t("help"), t("help_preview"), t("help_channels"), options, template_help(),
        t("help_fulltext"), t("help_notices"), t("help_timezone"),
        t("help_quiet"), t("help_digest"), t("help_fetch"),
    )
    await reply(update, "\n\n".join(sections))


async def unknown(update: Update, context: Context) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or not message.text:
        return
    command = message.text.split()[0]
    addressed = (
        "@" in command and command.split("@", 1)[1].lower() == (context.bot.username or "").lower()
    )
    if chat.type == ChatType.PRIVATE or addressed:
        await reply(update, t("unknown_command"))
