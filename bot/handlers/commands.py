"""Chat commands. Each handler parses arguments, calls the service, and replies: nothing more."""

from __future__ import annotations

import html
import logging
import re
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
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.delivery.sender import on_bot_membership, on_chat_migrated
from bot.errors import Reason, StorageWriteError
from bot.feeds.urls import (
    Address,
    NotAnAddress,
    looks_like_channel_name,
    read_address,
    urls_in_text,
)
from bot.handlers.live_reply import (
    MAX_TEXT as MAX_TEXT,  # re-exported: other handler modules use them
)
from bot.handlers.live_reply import LiveReply, answer
from bot.handlers.live_reply import split_text as split_text
from bot.i18n import DEFAULT_LANG, catalogue_language, current_lang, format_time, t
from bot.models import Chat
from bot.options import help_examples
from bot.runtime import Runtime
from bot.service import ListedSubscription, PendingChoice, SubscribeOutcome

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


def runtime_of(context: Context) -> Runtime:
    runtime: Runtime = context.application.bot_data["feedbot"]
    return runtime


def menu(lang: str = "en") -> list[BotCommand]:
    return [BotCommand(name, t(f"commands_{name}", lang)) for name in COMMANDS]


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
        stored = await runtime_of(context).store.get_chat(chat.id) if chat else None
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


def add_commands(app: Application[Any, Any, Any, Any, Any, Any], commands: CommandTable) -> None:
    for name, handler in commands:
        app.add_handler(CommandHandler(name, guarded(handler)))


# ------------------------------------------------------------------------- commands
async def start(update: Update, context: Context) -> None:
    await remember_chat(update, context)
    await reply(update, t("start"))


async def help_command(update: Update, context: Context) -> None:
    options = t("help_options", examples=help_examples())  # the /set examples: bot.options
    await reply(update, "\n\n".join((t("help"), t("help_channels"), options)))


async def sub(update: Update, context: Context) -> None:
    words = list(dict.fromkeys(context.args or []))
    if not words:
        await reply(update, t("sub_usage"))
        return
    if _channel_typo(words):
        await reply(update, t("sub_did_you_mean", channel=html.escape("@" + words[0])))
        return
    if await refuse_unless_manager(update, context):
        return
    stored = await remember_chat(update, context)
    message = update.effective_message
    assert message is not None
    thread_id = message.message_thread_id if message.is_topic_message else None
    await subscribe_words(update, context, SubTarget(stored, thread_id=thread_id), words)


def _channel_typo(words: list[str], then: Callable[[str], bool] | None = None) -> bool:
    """"/sub mychannel URL": a channel's name without its @ (not an address), followed by
    what the command takes (by default, a web address)."""
    follows = then or (lambda word: isinstance(read_address(word), Address))
    return (
        len(words) > 1
        and looks_like_channel_name(words[0])
        and isinstance(read_address(words[0]), NotAnAddress)
        and any(follows(word) for word in words[1:])
    )


class SubTarget:
    """Where /sub's feeds go: the chat itself (maybe a forum topic), or a channel named in a
    private chat (`channel` is then its shown name, and answers say so)."""

    def __init__(self, chat: Chat, *, thread_id: int | None = None, channel: str = "") -> None:
        self.chat, self.thread_id, self.channel = chat, thread_id, channel

    def frame(self, text: str) -> str:
        if not self.channel:
            return text
        return t("channel_prefix", channel=html.escape(self.channel), text=text)

    @property
    def callback_prefix(self) -> str:
        return "chsub" if self.channel else "sub"


SUB_CONCURRENCY = 4  # addresses of one /sub checked at the same time
SLOW_AFTER_S = 1.0  # a single /sub that takes longer shows "checking…" meanwhile


async def subscribe_words(
    update: Update, context: Context, target: SubTarget, words: list[str]
) -> None:
    """/sub's words: refuse what cannot be an address, check the rest (a few at a time), and
    answer in one message, edited as each address is checked."""
    message = update.effective_message
    assert message is not None
    plan = [read_address(word) for word in words]
    addresses = list({a.word: a for a in plan if isinstance(a, Address)}.values())
    refused = [a for a in plan if isinstance(a, NotAnAddress)]
    if not addresses:
        await reply(update, target.frame(refusal_text(refused)))
        return
    single = len(plan) == 1
    live = LiveReply(message, delay=SLOW_AFTER_S if single else 0.0)
    outcomes: dict[str, SubscribeOutcome] = {}
    live.update(target.frame(progress_text(addresses, outcomes, refused)))
    words_checked = [a.word for a in addresses]

    def on_done(n: int, outcome: SubscribeOutcome) -> None:
        outcomes[words_checked[n]] = outcome
        live.update(target.frame(progress_text(addresses, outcomes, refused)))

    try:
        await runtime_of(context).service.subscribe_many(
            target.chat,
            words_checked,
            thread_id=target.thread_id,
            concurrency=SUB_CONCURRENCY,
            on_done=on_done,
        )
        await finish_sub(update, context, live, target, [outcomes[w] for w in words_checked],
                         summary_text(addresses, outcomes, refused) if not single else "")
    except Exception as exc:
        await live.finish(target.frame(error_text(exc)))
        setattr(exc, ANSWERED, True)  # on_error must not say it a second time
        raise
    finally:
        await live.close()


async def finish_sub(
    update: Update,
    context: Context,
    live: LiveReply,
    target: SubTarget,
    outcomes: list[SubscribeOutcome],
    summary: str,
) -> None:
    """The answer in place of the progress: one outcome (buttons when a page has several
    feeds), or the summary followed by a card for each such page."""
    chat = update.effective_chat
    assert chat is not None
    if not summary:
        (outcome,) = outcomes
        if outcome.status != "choose":
            await live.finish(target.frame(describe_outcome(outcome, channel=target.channel)))
            return
        text, markup = await choice_card(context, target, outcome, chat.id)
        await live.finish(text, markup)
        return
    await live.finish(target.frame(summary))
    for outcome in outcomes:
        if outcome.status == "choose":
            await offer_choices(update, context, target, outcome)


def refusal_text(refused: list[NotAnAddress]) -> str:
    """One line per word that is not a feed address (one for all the plain words)."""
    lines = [outcome_line(_refused_outcome(r)) for r in refused if r.reason != "not_url"]
    words = [r.word for r in refused if r.reason == "not_url"]
    if words:
        shown = ", ".join(f"<code>{html.escape(w or ' ')}</code>" for w in words)
        lines.append(t("sub_not_urls", words=shown))
    return "\n".join(lines)


def _refused_outcome(refused: NotAnAddress) -> SubscribeOutcome:
    reason = Reason(f"error_{refused.reason}")
    return SubscribeOutcome(url=refused.word, status="failed", reason=reason)


def progress_text(
    addresses: list[Address], outcomes: dict[str, SubscribeOutcome], refused: list[NotAnAddress]
) -> str:
    if len(addresses) == 1 and not refused and not outcomes:
        return t("sub_line_checking", url=html.escape(addresses[0].word))
    done = sum(1 for a in addresses if a.word in outcomes)
    lines = [t("sub_progress", done=done, total=len(addresses))]
    for address in addresses:
        outcome = outcomes.get(address.word)
        lines.append(
            outcome_line(outcome)
            if outcome
            else t("sub_line_checking", url=html.escape(address.word))
        )
    if refused:
        lines.append(refusal_text(refused))
    return "\n".join(lines)


def summary_text(
    addresses: list[Address], outcomes: dict[str, SubscribeOutcome], refused: list[NotAnAddress]
) -> str:
    statuses = [outcomes[a.word].status for a in addresses]
    header = t(
        "sub_summary",
        added=statuses.count("added"),
        exists=statuses.count("exists"),
        failed=statuses.count("failed") + statuses.count("limit") + len(refused),
    )
    lines = [header, *(outcome_line(outcomes[a.word]) for a in addresses)]
    if refused:
        lines.append(refusal_text(refused))
    return "\n".join(lines)


def outcome_line(outcome: SubscribeOutcome) -> str:
    """One line of a several-address /sub answer."""
    url = html.escape(outcome.url)
    title = html.escape(outcome.title or outcome.url)
    if outcome.status == "added":
        return t("sub_line_added", title=title, url=url)
    if outcome.status == "exists":
        return t("sub_line_exists", title=title, url=url)
    if outcome.status == "choose":
        return t("sub_line_choose", url=url)
    if outcome.status == "limit":
        return t("sub_line_limit", url=url, limit=limit_of(outcome))
    return t("sub_line_failed", url=url, reason=outcome_reason(outcome.reason))


def describe_outcome(outcome: SubscribeOutcome, *, channel: str = "") -> str:
    url = html.escape(outcome.url)
    title = html.escape(outcome.title or outcome.url)
    if outcome.status == "added" and outcome.page:
        return t("sub_discovered", page=html.escape(outcome.page), title=title, url=url)
    if outcome.status == "added" and channel:
        return t("sub_ok_channel", title=title, url=url, channel=html.escape(channel))
    if outcome.status == "added":
        return t("sub_ok", title=title, url=url)
    if outcome.status == "exists":
        return t("sub_exists", title=title, url=url)
    if outcome.status == "limit":
        return t("sub_limit", limit=limit_of(outcome))
    return t("sub_failed", url=url, reason=outcome_reason(outcome.reason))


def limit_of(outcome: SubscribeOutcome) -> object:
    return outcome.reason.args.get("limit", "") if outcome.reason else ""


def outcome_reason(reason: Reason | None) -> str:
    """Why a /sub failed, for the chat (HTML, in its language)."""
    return reason.text() if reason else t("error_unknown")


# ------------------------------------------------------------------ choice cards
async def choice_card(
    context: Context, target: SubTarget, outcome: SubscribeOutcome, card_chat: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The text and buttons of a card offering the feeds of a page; the choice is kept by the
    service, so the buttons still work after a restart."""
    choice = PendingChoice(
        target=target.chat.id,
        page=outcome.url,
        options=outcome.choices[:10],
        thread_id=target.thread_id,
    )
    token = await runtime_of(context).service.open_choice(card_chat, choice)
    buttons = [
        [InlineKeyboardButton(title or url, callback_data=f"{target.callback_prefix}:{token}:{n}")]
        for n, (url, title) in enumerate(choice.options)
    ]
    text = target.frame(t("sub_choose", page=html.escape(outcome.url)))
    return text, InlineKeyboardMarkup(buttons)


async def offer_choices(
    update: Update, context: Context, target: SubTarget, outcome: SubscribeOutcome
) -> None:
    chat = update.effective_chat
    assert chat is not None
    text, markup = await choice_card(context, target, outcome, chat.id)
    await reply(update, text, reply_markup=markup)


def choice_data(data: str | None) -> tuple[str, int] | None:
    """("token", option number) from a button's "sub:<token>:<n>" (or "chsub:…")."""
    parts = (data or "").split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


async def close_card(query: Any, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Put `text` on a choice card in place of its buttons (best effort: it may be gone)."""
    try:
        await query.edit_message_text(
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_markup=markup,  # none: the buttons go
        )
    except TelegramError as exc:
        log.debug("could not edit the choice card: %s", exc)


async def refuse_closed_choice(query: Any) -> None:
    """A press on a card whose choice was made, forgotten or never ours: say so, drop its
    buttons."""
    await query.answer(as_alert(t("choice_closed")), show_alert=True)
    await drop_buttons(query)


async def drop_buttons(query: Any) -> None:
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.debug("could not remove the buttons: %s", exc)


async def chosen(update: Update, context: Context) -> None:
    """A feed button of a card in this chat (a page's feeds, or a URL sent as plain text)."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    parsed = choice_data(query.data)
    if not await may_manage(update, context):
        await query.answer(as_alert(t("admins_only")), show_alert=True)
        return
    service = runtime_of(context).service
    choice = await service.take_choice(chat.id, parsed[0]) if parsed else None
    if parsed is None or choice is None or parsed[1] >= len(choice.options):
        await refuse_closed_choice(query)
        return
    await query.answer()
    url, title = choice.options[parsed[1]]
    await close_card(query, t("sub_line_checking", url=html.escape(title or url)))
    stored = await remember_chat(update, context)
    target = SubTarget(stored, thread_id=choice.thread_id)
    outcome = await service.subscribe(
        stored, url, thread_id=choice.thread_id, chosen=not choice.discover
    )
    await show_on_card(context, query, target, outcome, chat.id)


async def show_on_card(
    context: Context, query: Any, target: SubTarget, outcome: SubscribeOutcome, card_chat: int
) -> None:
    """The outcome of a button press, in place of the card's text and buttons."""
    if outcome.status == "choose":
        text, markup = await choice_card(context, target, outcome, card_chat)
        await close_card(query, text, markup)
        return
    await close_card(query, target.frame(describe_outcome(outcome, channel=target.channel)))


# ------------------------------------------------------------- plain text, private
async def plain_text(update: Update, context: Context) -> None:
    """A private message that is not a command: offer to follow the addresses it holds, or
    say in one line how the bot is used."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text or chat.type != ChatType.PRIVATE:
        return
    urls = urls_in_text(message.text)[:5]
    if not urls:
        await reply(update, t("plain_hint"))
        return
    choice = PendingChoice(target=chat.id, page="", options=[(u, u) for u in urls], discover=True)
    token = await runtime_of(context).service.open_choice(chat.id, choice)
    buttons = [
        [InlineKeyboardButton(t("btn_subscribe", url=_short(u)), callback_data=f"sub:{token}:{n}")]
        for n, u in enumerate(urls)
    ]
    await reply(update, t("plain_offer"), reply_markup=InlineKeyboardMarkup(buttons))


def _short(url: str, limit: int = 40) -> str:
    shown = url.split("://", 1)[-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


async def unsub(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("unsub_usage"))
        return
    if _channel_typo(context.args, then=lambda w: w.isdigit() or "." in w):
        await reply(update, t("sub_did_you_mean", channel=html.escape("@" + context.args[0])))
        return
    if await refuse_unless_manager(update, context):
        return
    chat = update.effective_chat
    assert chat is not None
    refs = list(dict.fromkeys(context.args))
    results = await runtime_of(context).service.unsubscribe_many(chat.id, refs)
    await reply(update, unsub_text(results))


def unsub_text(results: list[tuple[str, ListedSubscription | None]]) -> str:
    """One answer for all of /unsub's references."""
    lines = []
    for ref, row in results:
        if row is None:
            lines.append(t("unsub_unknown", ref=html.escape(ref)))
        else:
            title = row.feed.title or row.subscription.feed_url
            lines.append(t("unsub_ok", title=html.escape(title)))
    return "\n".join(lines)


def list_line(row: ListedSubscription) -> str:
    feed = row.feed
    state = ""
    if feed.retired:
        state = t("state_retired")
    elif row.subscription.paused:
        state = t("state_paused")
    elif feed.errors and feed.failing_since:
        since = html.escape(format_time(feed.failing_since))
        state = t("state_failing", since=since, reason=feed.failure_reason().text())
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
        added_by = catalogue_language(change.from_user.language_code if change.from_user else None)
        title = chat.title or chat.full_name or ""
        await runtime.service.touch_chat(chat.id, chat.type, title, lang=added_by)
    await on_bot_membership(runtime.store, runtime.sender, chat.id, str(status))


async def migrated(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    runtime = runtime_of(context)
    await on_chat_migrated(
        runtime.store, runtime.sender, message.chat_id, message.migrate_to_chat_id
    )


#: set on an exception whose handler already told the chat about it
ANSWERED = "feedbot_answered"


def error_text(error: BaseException | None) -> str:
    """What the chat is told when a command failed: the database cannot be written (say so),
    or "something went wrong"."""
    if isinstance(error, StorageWriteError):
        return t(error.catalogue_key)
    return t("error_internal")


async def on_error(update: object, context: Context) -> None:
    error = context.error
    log.error("error while handling an update", exc_info=error)
    answered = getattr(error, ANSWERED, False)
    if isinstance(update, Update) and update.effective_message is not None and not answered:
        try:
            await reply(update, error_text(error))
        except Exception:
            log.exception("could not tell the chat about the error")
    from bot.handlers.operator import report_handler_error

    await report_handler_error(update, context)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    from bot.handlers import (
        channels as handlers_channels,  # imports this module; its /sub @channel forms match first
    )

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
    from bot.handlers.operator import register_operator  # both import this module
    from bot.handlers.options import register_options

    register_options(app)
    register_operator(app)
    app.add_handler(MessageHandler(filters.COMMAND, guarded(unknown)))
    app.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE & filters.TEXT & filters.ChatType.PRIVATE & ~filters.COMMAND,
            guarded(plain_text),
        )
    )
    app.add_error_handler(on_error)
