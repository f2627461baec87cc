"""Channels as targets (/sub @channel …), OPML /import and /export, and /lang.

Thin like bot.handlers.commands: resolve who may act on which chat, call the service, answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
from dataclasses import dataclass
from typing import Any

from telegram import (
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.feeds.opml import MAX_OPML_BYTES, OpmlError, OpmlFeed, build_opml, parse_opml
from bot.handlers.commands import (
    Context,
    SubTarget,
    add_commands,
    as_alert,
    choice_data,
    close_card,
    guarded,
    list_line,
    may_manage,
    refuse_closed_choice,
    refuse_unless_manager,
    remember_chat,
    reply,
    runtime_of,
    show_on_card,
    subscribe_words,
    target_allowed,
    unsub_text,
)
from bot.i18n import catalogue_language, current_lang, languages, t
from bot.models import Chat
from bot.service import ImportItem

log = logging.getLogger(__name__)

#: "@username" (5-32 chars) or a numeric chat id, which is negative for channels
CHANNEL_REF = re.compile(r"^(@[A-Za-z]\w{3,31}|-\d{5,})$")
#: a command whose first argument is a channel reference
TARGETED = filters.Regex(r"^/\w+(@\w+)?\s+(@[A-Za-z]\w{3,31}|-\d{5,})(\s|$)")
IMPORT_CAPTION = re.compile(r"^/import(@\w+)?(\s|$)", re.IGNORECASE)
IMPORT_CONCURRENCY = 8
PROGRESS_EVERY_S = 2.0
SUMMARY_LINES = 30  # per section of the import summary; the rest is counted


@dataclass
class Target:
    """The chat a command acts on, when it is not the chat the command was sent in."""

    chat: Chat
    name: str  # shown in replies: "@channel" or the channel's title
    is_remote: bool = True


# ------------------------------------------------------------------------ targets
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
    problem = await _channel_problem(context, channel.id, user.id)
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


async def _channel_problem(context: Context, channel_id: int, user_id: int) -> str:
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


# ------------------------------------------------- /sub /list /unsub @channel
async def targeted(update: Update, context: Context) -> None:
    """/sub, /list and /unsub whose first argument is a channel."""
    message = update.effective_message
    assert message is not None and message.text is not None
    command = message.text.split(maxsplit=1)[0].lstrip("/").split("@", 1)[0].lower()
    ref, rest = split_target(list(context.args or []))
    if ref is None:
        return
    if command in ("sub", "unsub") and not rest:
        await reply(update, t(f"{command}_usage"))
        return
    target = await channel_target(update, context, ref, manage=command != "list")
    if target is None:
        return
    if command == "sub":
        await _sub_channel(update, context, target, rest)
    elif command == "unsub":
        await _unsub_channel(update, context, target, rest)
    else:
        await _list_channel(update, context, target)


async def _sub_channel(update: Update, context: Context, target: Target, urls: list[str]) -> None:
    where = SubTarget(target.chat, channel=target.name)
    await subscribe_words(update, context, where, list(dict.fromkeys(urls)))


async def channel_chosen(update: Update, context: Context) -> None:
    """A feed button of a card for a channel, pressed in the private chat that asked for it."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    parsed = choice_data(query.data)
    service = runtime_of(context).service
    choice = await service.peek_choice(chat.id, parsed[0]) if parsed else None
    if parsed is None or choice is None or parsed[1] >= len(choice.options):
        await refuse_closed_choice(query)
        return
    target, problem = await _button_target(update, context, choice.target)
    if target is None:
        await query.answer(as_alert(problem), show_alert=True)  # the card stays usable
        return
    if await service.take_choice(chat.id, parsed[0]) is None:  # pressed twice at once
        await query.answer(as_alert(t("choice_closed")), show_alert=True)
        return
    await query.answer()
    url, title = choice.options[parsed[1]]
    where = SubTarget(target.chat, channel=target.name)
    await close_card(query, where.frame(t("sub_line_checking", url=html.escape(title or url))))
    outcome = await service.subscribe(target.chat, url, chosen=not choice.discover)
    await show_on_card(context, query, where, outcome, chat.id)


async def _button_target(
    update: Update, context: Context, channel_id: int
) -> tuple[Target | None, str]:
    """The channel a card's button is for, when whoever pressed it may manage it; else why not
    (a catalogue text)."""
    user = update.effective_user
    try:
        channel = await context.bot.get_chat(channel_id)
    except (BadRequest, Forbidden):
        return None, t("channel_not_found", ref=str(channel_id))
    name = f"@{channel.username}" if channel.username else (channel.title or str(channel_id))
    if user is None:
        return None, t("channel_anonymous")
    problem = await _channel_problem(context, channel.id, user.id)
    if problem:
        return None, t(problem, channel=html.escape(name))
    service = runtime_of(context).service
    stored = await service.touch_chat(channel.id, "channel", channel.title or "")
    return Target(stored, name), ""


async def _unsub_channel(update: Update, context: Context, target: Target, refs: list[str]) -> None:
    service = runtime_of(context).service
    results = await service.unsubscribe_many(target.chat.id, list(dict.fromkeys(refs)))
    await reply(update, framed(target, unsub_text(results)))


async def _list_channel(update: Update, context: Context, target: Target) -> None:
    rows = await runtime_of(context).service.listing(target.chat.id)
    name = html.escape(target.name)
    if not rows:
        await reply(update, t("channel_list_empty", channel=name))
        return
    lines = [t("channel_list_header", channel=name, count=len(rows)), *map(list_line, rows)]
    await reply(update, "\n\n".join(lines))


# ------------------------------------------------------------------------ /export
async def export_command(update: Update, context: Context) -> None:
    ref, _ = split_target(list(context.args or []))
    target = await resolve_target(update, context, ref, manage=False)
    message = update.effective_message
    if target is None or message is None:
        return
    rows = await runtime_of(context).service.listing(target.chat.id)
    if not rows:
        await reply(update, framed(target, t("export_empty")))
        return
    feeds = [
        OpmlFeed(
            url=row.feed.url,
            title=row.subscription.options.custom_title or row.feed.title,
            html_url=row.feed.link if row.feed.link != row.feed.url else "",
        )
        for row in rows
    ]
    name = target.name or target.chat.title or str(target.chat.id)
    data = await asyncio.to_thread(build_opml, feeds, t("export_title", chat=name))
    await message.reply_document(
        document=InputFile(data, filename=export_filename(name)),
        caption=t("export_caption", count=len(rows)),
        parse_mode=ParseMode.HTML,
        do_quote=False,
    )


def export_filename(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower()
    return f"feedbot-{slug or 'feeds'}.opml"


# ------------------------------------------------------------------------ /import
async def import_command(update: Update, context: Context) -> None:
    """/import [@channel]: as a reply to a document, import it; otherwise ask for the file."""
    message = update.effective_message
    assert message is not None
    ref, _ = split_target(list(context.args or []))
    target = await resolve_target(update, context, ref)
    if target is None:
        return
    replied = message.reply_to_message
    if replied is not None and replied.document is not None:
        await run_import(update, context, target, replied.document)
        return
    prompt = await message.reply_text(
        framed(target, t("import_prompt")),
        parse_mode=ParseMode.HTML,
        do_quote=False,
    )
    prompts(context)[prompt.message_id] = target.chat.id if target.is_remote else None


def prompts(context: Context) -> dict[int, int | None]:
    """Our "send me the file" prompts in this chat: message id -> channel id (None: this chat)."""
    if context.chat_data is None:
        return {}
    found: dict[int, int | None] = context.chat_data.setdefault("import_prompts", {})
    while len(found) > 20:
        found.pop(next(iter(found)))
    return found


async def document_received(update: Update, context: Context) -> None:
    """An OPML file: captioned /import, a reply to our prompt, or (private chats) any *.opml."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or message.document is None or chat is None:
        return
    caption = (message.caption or "").strip()
    replied = message.reply_to_message
    prompt_id = None
    if IMPORT_CAPTION.match(caption):
        ref, _ = split_target(caption.split()[1:])
    elif replied is not None and replied.message_id in prompts(context):
        prompt_id = replied.message_id
        channel_id = prompts(context)[prompt_id]
        ref = None if channel_id is None else str(channel_id)
    elif chat.type == ChatType.PRIVATE and _looks_like_opml(message.document):
        ref = None
    else:
        return
    target = await resolve_target(update, context, ref)
    if target is None:
        return  # refused: the prompt stays open for someone who may answer it
    if prompt_id is not None:
        prompts(context).pop(prompt_id, None)
    await run_import(update, context, target, message.document)


def _looks_like_opml(document: Document) -> bool:
    name = (document.file_name or "").lower()
    return name.endswith(".opml") or "opml" in (document.mime_type or "")


async def run_import(update: Update, context: Context, target: Target, document: Document) -> None:
    message = update.effective_message
    assert message is not None
    feeds = await _read_opml(update, document)
    if feeds is None:
        return
    thread_id = message.message_thread_id if message.is_topic_message else None
    if target.is_remote:
        thread_id = None
    progress = await message.reply_text(
        framed(target, t("import_progress", done=0, total=len(feeds))),
        parse_mode=ParseMode.HTML,
        do_quote=False,
    )
    checked = [0]

    def on_checked() -> None:
        checked[0] += 1

    ticker = asyncio.create_task(_show_progress(progress, target, checked, len(feeds)))
    try:
        items = await runtime_of(context).service.import_feeds(
            target.chat,
            [(f.url, f.title) for f in feeds],
            thread_id=thread_id,
            concurrency=IMPORT_CONCURRENCY,
            on_checked=on_checked,
        )
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    await _edit(progress, framed(target, t("import_progress_done", total=len(feeds))))
    await reply(update, framed(target, import_summary(items)))


async def _read_opml(update: Update, document: Document) -> list[OpmlFeed] | None:
    """The feeds of the document, or None after telling the user what is wrong with it."""
    if document.file_size and document.file_size > MAX_OPML_BYTES:
        await reply(update, t("import_too_large", limit=MAX_OPML_BYTES // 1024))
        return None
    try:
        data = bytes(await (await document.get_file()).download_as_bytearray())
    except TelegramError as exc:
        log.info("could not download an OPML file: %s", exc)
        await reply(update, t("import_download_failed", reason=t("error_telegram_download")))
        return None
    try:
        feeds = await asyncio.to_thread(parse_opml, data)
    except OpmlError as exc:
        if exc.kind == "unsafe_opml":
            await reply(update, t("import_unsafe"))
        elif exc.kind == "too_large":
            await reply(update, t("import_too_large", limit=MAX_OPML_BYTES // 1024))
        else:
            await reply(update, t("import_not_opml", reason=exc.reason.text()))
        return None
    if not feeds:
        await reply(update, t("import_empty"))
        return None
    return feeds


async def _show_progress(progress: Message, target: Target, checked: list[int], total: int) -> None:
    """Edit the one progress message, at most every PROGRESS_EVERY_S, while the import runs."""
    shown = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        if checked[0] != shown:
            shown = checked[0]
            await _edit(progress, framed(target, t("import_progress", done=shown, total=total)))


async def _edit(message: Message, text: str) -> None:
    try:
        await message.edit_text(
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
    except TelegramError as exc:  # "not modified", message deleted: progress is best effort
        log.debug("progress edit failed: %s", exc)


def import_summary(items: list[ImportItem]) -> str:
    groups: dict[str, list[ImportItem]] = {"added": [], "exists": [], "failed": []}
    for item in items:
        groups["failed" if item.status in ("failed", "limit") else item.status].append(item)
    counts = {k: len(v) for k, v in groups.items()}
    parts = [t("import_summary", **counts)]
    for status, header in (
        ("added", "import_added_header"),
        ("exists", "import_exists_header"),
        ("failed", "import_failed_header"),
    ):
        if groups[status]:
            parts.append("\n".join([t(header), *_item_lines(groups[status])]))
    return "\n\n".join(parts)


def _item_lines(items: list[ImportItem]) -> list[str]:
    lines = []
    for item in items[:SUMMARY_LINES]:
        if item.status in ("failed", "limit"):
            lines.append(t("import_item_failed", url=html.escape(item.url), reason=_reason(item)))
        else:
            lines.append(t("import_item", title=html.escape(item.title or item.url)))
    if len(items) > SUMMARY_LINES:
        lines.append(t("import_more", count=len(items) - SUMMARY_LINES))
    return lines


def _reason(item: ImportItem) -> str:
    return item.reason.text() if item.reason else t("error_unknown")


# ------------------------------------------------------------------------ /lang
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


# ------------------------------------------------------------------------ wiring
def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add before bot.handlers.commands' commands: the channel-targeted forms match first."""
    app.add_handler(CommandHandler(["sub", "unsub", "list"], guarded(targeted), filters=TARGETED))
    add_commands(
        app, (("export", export_command), ("import", import_command), ("lang", lang_command))
    )
    app.add_handler(MessageHandler(filters.Document.ALL, guarded(document_received)))
    app.add_handler(CallbackQueryHandler(guarded(channel_chosen), pattern=r"^chsub:"))
    app.add_handler(CallbackQueryHandler(guarded(lang_chosen), pattern=r"^lang:"))
