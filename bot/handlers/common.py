"""What every handler module shares: the typed bot data, replies, the allow-list and admin checks,
the chat a command acts on (this one, or a channel named first), and the error answer.

Feature modules import this module and never each other; bot.handlers.register wires them.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden
from telegram.ext import CallbackContext, ExtBot, filters

from bot.config import Settings
from bot.delivery.sender import DeliverySettings
from bot.errors import StorageWriteError
from bot.handlers.live_reply import answer
from bot.handlers.owners import OwnerAlerts, SentToday
from bot.i18n import DEFAULT_LANG, catalogue_language, current_lang, t
from bot.models import Chat
from bot.roles import Roles
from bot.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class BotData:
    """PTB's `bot_data`, typed (`ContextTypes(bot_data=BotData)`): what handlers and jobs share.
    PTB creates it empty; bot.app fills it in, the settings when it builds the application and
    the runtime once the bot has started."""

    settings: Settings = field(default_factory=Settings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    alerts: OwnerAlerts | None = None
    sent_today: SentToday = field(default_factory=SentToday)
    runtime: Runtime | None = None
    #: what this process does and the seats it keeps (bot.roles)
    roles: Roles | None = None
    #: getUpdates' arguments when this process polls on PostgreSQL (the updates seat's)
    polling: dict[str, Any] = field(default_factory=dict)


Context = CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


def shared(context: Context) -> BotData:
    """The one way to the bot data."""
    return context.bot_data


def runtime_of(context: Context) -> Runtime:
    runtime = shared(context).runtime
    if runtime is None:
        raise RuntimeError("the bot has not started yet")
    return runtime


# ------------------------------------------------------------------------ replies
async def reply(update: Update, text: str, **kwargs: Any) -> None:
    """Answer the update's message (quoting the command in groups)."""
    message = update.effective_message
    if message is None:
        return
    await answer(message, text, **kwargs)


def as_alert(text: str) -> str:
    """A catalogue message (Telegram HTML) as the plain text of a button's alert (200 chars)."""
    plain = html.unescape(re.sub(r"<[^>]+>", "", text)).strip()
    return plain if len(plain) <= 200 else plain[:199] + "…"


# ---------------------------------------------------------------- who may do what
def allowed(update: Update, context: Context) -> bool:
    """Allow-list mode: only listed users/chats (and owners) may use the bot."""
    settings = runtime_of(context).settings
    if not settings.allowed_chats:
        return True
    user = update.effective_user
    chat = update.effective_chat
    ids = {user.id if user else None, chat.id if chat else None}
    return bool(ids & (set(settings.allowed_chats) | set(settings.owners)))


def target_allowed(update: Update, context: Context, target_id: int) -> bool:
    """Allow-list mode: a command may act on another chat (a channel) only when that chat is
    listed too, whoever sends it and from wherever (owners excepted)."""
    settings = runtime_of(context).settings
    user = update.effective_user
    if not settings.allowed_chats or (user is not None and user.id in settings.owners):
        return True
    return target_id in settings.allowed_chats


def guarded(handler: Handler) -> Handler:
    """Every command: allow-list check, and the chat's language for every reply."""

    async def wrapper(update: Update, context: Context) -> None:
        chat = update.effective_chat
        stored = await runtime_of(context).service.chat(chat.id) if chat else None
        current_lang.set(stored.lang if stored else user_language(update))
        if not allowed(update, context):
            await reply(update, t("not_allowed"))
            return
        await handler(update, context)

    wrapper.__name__ = handler.__name__
    return wrapper


def user_language(update: Update) -> str:
    """The sender's Telegram language when a catalogue exists for it: a new chat starts in it."""
    user = update.effective_user
    return catalogue_language(user.language_code if user else None) or DEFAULT_LANG


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
    service = runtime_of(context).service
    return await service.touch_chat(chat.id, chat.type, title, lang=current_lang.get())


# -------------------------------------------------- the chat a command acts on
#: "@username" (5-32 chars) or a numeric chat id, which is negative for channels
CHANNEL_REF = re.compile(r"^(@[A-Za-z]\w{3,31}|-\d{5,})$")
#: a command whose first argument is a channel reference
TARGETED = filters.Regex(r"^/\w+(@\w+)?\s+(@[A-Za-z]\w{3,31}|-\d{5,})(\s|$)")


@dataclass
class Target:
    """The chat a command acts on, when it is not the chat the command was sent in."""

    chat: Chat
    name: str  # shown in replies: "@channel" or the channel's title
    is_remote: bool = True


def topic_of(message: Message) -> int | None:
    """The forum topic the message was sent in (None: the chat's main thread)."""
    return message.message_thread_id if message.is_topic_message else None


def split_target(args: list[str]) -> tuple[str | None, list[str]]:
    """("@chan", rest) when the first argument names a channel, else (None, args)."""
    if args and CHANNEL_REF.match(args[0]):
        return args[0], args[1:]
    return None, args


async def channel_target(
    update: Update, context: Context, ref: str, *, manage: bool = True
) -> Target | None:
    """The channel `ref`, when the user administers it and the bot may post there.
    Otherwise tells the user why not and returns None. `manage`: the user wants to change
    the channel's subscriptions (else only to see them, which is refused in other words)."""
    bot = context.bot
    try:
        channel = await bot.get_chat(int(ref) if ref.lstrip("-").isdigit() else ref)
    except (BadRequest, Forbidden):
        await reply(update, t("channel_not_found", ref=html.escape(ref)))
        return None
    name = f"@{channel.username}" if channel.username else (channel.title or ref)
    shown = html.escape(name)
    if channel.type != ChatType.CHANNEL:
        await reply(update, t("channel_not_channel", ref=html.escape(ref)))
        return None
    user, message = update.effective_user, update.effective_message
    if user is None or (message is not None and message.sender_chat is not None):
        await reply(update, t("channel_anonymous"))
        return None
    if not target_allowed(update, context, channel.id):
        await reply(update, t("channel_not_allowed", channel=shown))
        return None
    problem = await channel_problem(context, channel.id, user.id)
    if problem == "channel_user_not_admin" and not manage:
        problem = "channel_user_not_admin_view"
    if problem:
        await reply(update, t(problem, channel=shown))
        return None
    service = runtime_of(context).service
    stored = await service.touch_chat(
        channel.id, "channel", channel.title or "", lang=current_lang.get()
    )
    return Target(stored, name)


async def channel_problem(context: Context, channel_id: int, user_id: int) -> str:
    """The catalogue key explaining why the user may not manage the channel, or ""."""
    bot = context.bot
    try:
        member = await bot.get_chat_member(channel_id, user_id)
    except (BadRequest, Forbidden):
        return "channel_bot_not_admin"  # the bot cannot even see the channel's members
    if member.status not in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER):
        return "channel_user_not_admin"
    try:
        me = await bot.get_chat_member(channel_id, bot.id)
    except (BadRequest, Forbidden):
        return "channel_bot_not_admin"
    if me.status != ChatMemberStatus.ADMINISTRATOR:
        return "channel_bot_not_admin"
    if not getattr(me, "can_post_messages", False):
        return "channel_bot_cannot_post"
    return ""


async def here_target(update: Update, context: Context, *, manage: bool) -> Target | None:
    """The chat the command was sent in (admins only when `manage`)."""
    if manage and await refuse_unless_manager(update, context):
        return None
    stored = await remember_chat(update, context)
    chat = update.effective_chat
    assert chat is not None
    return Target(stored, chat.title or "", is_remote=False)


async def resolve_target(
    update: Update, context: Context, ref: str | None, *, manage: bool = True
) -> Target | None:
    if ref is None:
        return await here_target(update, context, manage=manage)
    return await channel_target(update, context, ref, manage=manage)


def framed(target: Target, text: str) -> str:
    """Answers about another chat say which one."""
    if not target.is_remote:
        return text
    return t("channel_prefix", channel=html.escape(target.name), text=text)


# ------------------------------------------------------------------------ errors
#: set on an exception whose handler already told the chat about it
ANSWERED = "feedbot_answered"


def error_text(error: BaseException | None) -> str:
    """What the chat is told when a command failed: the database cannot be written (say so),
    or "something went wrong"."""
    if isinstance(error, StorageWriteError):
        return t(error.catalogue_key)
    return t("error_internal")


async def on_error(update: object, context: Context) -> None:
    """Every handler's failure: tell the chat (unless the handler did), and the owners."""
    error = context.error
    log.error("error while handling an update", exc_info=error)
    answered = getattr(error, ANSWERED, False)
    if isinstance(update, Update) and update.effective_message is not None and not answered:
        try:
            await reply(update, error_text(error))
        except Exception:
            log.exception("could not tell the chat about the error")
    alerts = shared(context).alerts
    if alerts is not None:
        await alerts.handler_failed(update, context.error)
