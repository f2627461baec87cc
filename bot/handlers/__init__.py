"""The Telegram handlers: one module per feature, all wired here in one ordered list.

Order matters: PTB runs the first handler that matches an update, so the channel-targeted forms
(`/sub @channel …`) come before the plain commands, and the catch-alls (an unknown command, a
plain private message) come last.
"""

from __future__ import annotations

from typing import Any

from telegram import BotCommand
from telegram.ext import (
    Application,
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.handlers import (
    basics,
    import_export,
    language,
    listing,
    membership,
    operator,
    options,
    subscriptions,
)
from bot.handlers.common import TARGETED, Handler, guarded, on_error
from bot.i18n import t

#: the bot's menu, in this order
COMMANDS = (
    "start",
    "help",
    "sub",
    "preview",
    "unsub",
    "list",
    "import",
    "export",
    "lang",
    "set",
    "filter",
    "status",
    "pause",
    "resume",
)


def menu(lang: str = "en") -> list[BotCommand]:
    return [BotCommand(name, t(f"commands_{name}", lang)) for name in COMMANDS]


def command(name: str, handler: Handler, **kwargs: Any) -> CommandHandler[Any, None]:
    """A command behind the allow-list, answering in the chat's language."""
    return CommandHandler(name, guarded(handler), **kwargs)


def button(prefix: str, handler: Handler) -> CallbackQueryHandler[Any, None]:
    """Presses on the inline buttons whose data starts with `prefix:`."""
    return CallbackQueryHandler(guarded(handler), pattern=rf"^{prefix}:")


def handlers() -> list[BaseHandler[Any, Any, None]]:
    """Every handler, in matching order."""
    private_text = (
        filters.UpdateType.MESSAGE & filters.TEXT & filters.ChatType.PRIVATE & ~filters.COMMAND
    )
    return [
        # a channel named first: these forms before the plain commands
        command("sub", subscriptions.sub_in_channel, filters=TARGETED),
        command("unsub", subscriptions.unsub_in_channel, filters=TARGETED),
        command("preview", subscriptions.preview_in_channel, filters=TARGETED),
        command("list", listing.list_in_channel, filters=TARGETED),
        command("export", import_export.export_command),
        command("import", import_export.import_command),
        command("lang", language.lang_command),
        MessageHandler(filters.Document.ALL, guarded(import_export.document_received)),
        button("chsub", subscriptions.channel_chosen),
        button("lang", language.lang_chosen),
        command("start", basics.start),
        command("help", basics.help_command),
        command("sub", subscriptions.sub),
        command("unsub", subscriptions.unsub),
        command("preview", subscriptions.preview),
        command("list", listing.list_command),
        button("sub", subscriptions.chosen),
        ChatMemberHandler(membership.membership, ChatMemberHandler.MY_CHAT_MEMBER),
        MessageHandler(filters.StatusUpdate.MIGRATE, membership.migrated),
        command("set", options.set_command),
        command("filter", options.filter_command),
        command("status", options.status_command),
        command("pause", options.pause_command),
        command("resume", options.resume_command),
        button("opt", options.option_pressed),
        button("resume", options.resume_pressed),
        command("stats", operator.stats_command),
        # the catch-alls, last
        MessageHandler(filters.COMMAND, guarded(basics.unknown)),
        MessageHandler(private_text, guarded(subscriptions.plain_text)),
    ]


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    app.add_handlers(handlers())
    app.add_error_handler(on_error)
