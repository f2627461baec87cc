"""Chat commands. Each handler parses arguments, calls the service, and replies: nothing more."""

from __future__ import annotations

import html
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from .delivery import on_bot_membership, on_chat_migrated
from .errors import StorageWriteError
from .i18n import DEFAULT_LANG, current_lang, t
from .models import Chat
from .runtime import Runtime
from .service import ListedSubscription, SubscribeOutcome

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]
CommandTable = tuple[tuple[str, Handler], ...]

COMMANDS = (
    "start",
    "help",
    "sub",
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
MAX_TEXT = 4000  # a reply is split below Telegram's 4096 limit


def runtime_of(context: Context) -> Runtime:
    runtime: Runtime = context.application.bot_data["feedbot"]
    return runtime


def menu(lang: str = "en") -> list[BotCommand]:
    return [BotCommand(name, t(f"commands_{name}", lang)) for name in COMMANDS]


async def reply(update: Update, text: str, **kwargs: Any) -> None:
    message = update.effective_message
    if message is None:
        return
    for part in split_text(text):
        await message.reply_text(
            part,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            do_quote=False,
            **kwargs,
        )


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a reply at line breaks so each part stays under Telegram's limit."""
    parts, current = [], ""
    for line in text.split("\n"):
        if current and len(current) + len(line) + 1 > limit:
            parts.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    parts.append(current)
    return [p for p in parts if p.strip()]


def allowed(update: Update, context: Context) -> bool:
    """Allow-list mode: only listed users/chats (and owners) may use the bot."""
    settings = runtime_of(context).settings
    if not settings.allowed_chats:
        return True
    user = update.effective_user
    chat = update.effective_chat
    ids = {user.id if user else None, chat.id if chat else None}
    return bool(ids & (set(settings.allowed_chats) | set(settings.owners)))


def guarded(handler: Handler) -> Handler:
    """Every command: allow-list check, and the chat's language for every reply."""

    async def wrapper(update: Update, context: Context) -> None:
        chat = update.effective_chat
        stored = await runtime_of(context).store.get_chat(chat.id) if chat else None
        current_lang.set(stored.lang if stored else DEFAULT_LANG)
        if not allowed(update, context):
            await reply(update, t("not_allowed"))
            return
        await handler(update, context)

    wrapper.__name__ = handler.__name__
    return wrapper


async def may_manage(update: Update, context: Context) -> bool:
    """Private chats: always. Groups: administrators, including anonymous ones."""
    chat, message, user = update.effective_chat, update.effective_message, update.effective_user
    if chat is None or chat.type == ChatType.PRIVATE:
        return True
    if (
        message is not None
        and message.sender_chat is not None
        and message.sender_chat.id == chat.id
    ):
        return True
    if user is None:
        return False
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)


async def refuse_unless_manager(update: Update, context: Context) -> bool:
    """True, after telling the sender, when they may not change this chat's subscriptions."""
    if await may_manage(update, context):
        return False
    await reply(update, t("admins_only"))
    return True


async def remember_chat(update: Update, context: Context) -> Chat:
    """Record (and resume) the chat the update came from; returns it as stored."""
    chat = update.effective_chat
    assert chat is not None, "commands always come from a chat"
    title = chat.title or chat.full_name or chat.username or ""
    return await runtime_of(context).service.touch_chat(chat.id, chat.type, title)


def add_commands(app: Application[Any, Any, Any, Any, Any, Any], commands: CommandTable) -> None:
    for name, handler in commands:
        app.add_handler(CommandHandler(name, guarded(handler)))


# ------------------------------------------------------------------------- commands
async def start(update: Update, context: Context) -> None:
    await remember_chat(update, context)
    await reply(update, t("start"))


async def help_command(update: Update, context: Context) -> None:
    await reply(update, "\n\n".join(t(k) for k in ("help", "help_channels", "help_options")))


async def sub(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("sub_usage"))
        return
    if await refuse_unless_manager(update, context):
        return
    stored = await remember_chat(update, context)
    runtime = runtime_of(context)
    message = update.effective_message
    assert message is not None
    thread_id = message.message_thread_id if message.is_topic_message else None
    for url in dict.fromkeys(context.args):
        outcome = await runtime.service.subscribe(stored, url, thread_id=thread_id)
        if outcome.status == "choose":
            await offer_choices(update, context, outcome)
        else:
            await reply(update, describe_outcome(outcome))


def describe_outcome(outcome: SubscribeOutcome) -> str:
    url = html.escape(outcome.url)
    title = html.escape(outcome.title or outcome.url)
    if outcome.status == "added" and outcome.page:
        return t("sub_discovered", page=html.escape(outcome.page), title=title, url=url)
    if outcome.status == "added":
        return t("sub_ok", title=title, url=url)
    if outcome.status == "exists":
        return t("sub_exists", title=title, url=url)
    if outcome.status == "limit":
        return t("sub_limit", limit=outcome.reason)
    reason = outcome.reason
    if reason in ("not_feed_page", "not_http"):
        reason = t(f"error_{reason}")
    return t("sub_failed", url=url, reason=html.escape(reason))


async def offer_choices(update: Update, context: Context, outcome: SubscribeOutcome) -> None:
    choices: dict[str, str] = (
        context.chat_data.setdefault("choices", {}) if context.chat_data is not None else {}
    )
    buttons = []
    for url, title in outcome.choices[:10]:
        token = secrets.token_urlsafe(8)
        choices[token] = url
        buttons.append([InlineKeyboardButton(title or url, callback_data=f"sub:{token}")])
    await reply(
        update,
        t("sub_choose", page=html.escape(outcome.url)),
        reply_markup=InlineKeyboardMarkup(buttons),
    )


async def chosen(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    token = query.data.removeprefix("sub:")
    url = (context.chat_data or {}).get("choices", {}).pop(token, None)
    await query.answer()
    if url is None or not await may_manage(update, context):
        return
    runtime = runtime_of(context)
    chat = update.effective_chat
    assert chat is not None
    stored = await remember_chat(update, context)
    outcome = await runtime.service.subscribe(stored, url)
    await reply(update, describe_outcome(outcome))


async def unsub(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("unsub_usage"))
        return
    if await refuse_unless_manager(update, context):
        return
    chat = update.effective_chat
    assert chat is not None
    for ref in context.args:
        row = await runtime_of(context).service.unsubscribe(chat.id, ref)
        if row is None:
            await reply(update, t("unsub_unknown", ref=html.escape(ref)))
        else:
            title = row.feed.title or row.subscription.feed_url
            await reply(update, t("unsub_ok", title=html.escape(title)))


def list_line(row: ListedSubscription) -> str:
    feed = row.feed
    state = ""
    if feed.retired:
        state = t("state_retired")
    elif row.subscription.paused:
        state = t("state_paused")
    elif feed.errors and feed.failing_since:
        since = time.strftime("%d %b %H:%M UTC", time.gmtime(feed.failing_since))
        state = t("state_failing", since=since, reason=html.escape(feed.last_error))
    return t(
        "list_item",
        n=row.number,
        link=html.escape(feed.link or feed.url, quote=True),
        title=html.escape(row.subscription.options.custom_title or feed.title or feed.url),
        state=state,
        url=html.escape(feed.url),
    )


async def list_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    assert chat is not None
    rows = await runtime_of(context).service.listing(chat.id)
    if not rows:
        await reply(update, t("list_empty"))
        return
    lines = [t("list_header", count=len(rows)), *(list_line(r) for r in rows)]
    await reply(update, "\n\n".join(lines))


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


# --------------------------------------------------------------- membership changes
async def membership(update: Update, context: Context) -> None:
    change = update.my_chat_member
    if change is None:
        return
    runtime = runtime_of(context)
    chat = change.chat
    status = change.new_chat_member.status
    if status in (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR):
        await runtime.service.touch_chat(chat.id, chat.type, chat.title or chat.full_name or "")
    await on_bot_membership(runtime.store, runtime.sender, chat.id, str(status))


async def migrated(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    runtime = runtime_of(context)
    await on_chat_migrated(
        runtime.store, runtime.sender, message.chat_id, message.migrate_to_chat_id
    )


async def on_error(update: object, context: Context) -> None:
    error = context.error
    log.error("error while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_message is not None:
        # the database cannot be written: say so, not "something went wrong"
        key = error.catalogue_key if isinstance(error, StorageWriteError) else "error_internal"
        try:
            await reply(update, t(key))
        except Exception:
            log.exception("could not tell the chat about the error")
    from .handlers_operator import report_handler_error

    await report_handler_error(update, context)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    from . import handlers_channels  # imports this module; its /sub @channel forms match first

    handlers_channels.register(app)
    add_commands(
        app,
        (
            ("start", start),
            ("help", help_command),
            ("sub", sub),
            ("unsub", unsub),
            ("list", list_command),
        ),
    )
    app.add_handler(CallbackQueryHandler(guarded(chosen), pattern=r"^sub:"))
    app.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, migrated))
    from .handlers_operator import register_operator  # both import this module
    from .handlers_options import register_options

    register_options(app)
    register_operator(app)
    app.add_handler(MessageHandler(filters.COMMAND, guarded(unknown)))
    app.add_error_handler(on_error)
