"""OPML /export and /import (a file captioned /import, a reply to the bot's prompt, or any
*.opml sent in a private chat), here or for a channel named first."""

from __future__ import annotations

import asyncio
import html
import logging
import re

from telegram import Document, InputFile, LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError

from bot.feeds.opml import MAX_OPML_BYTES, OpmlError, OpmlFeed, build_opml, parse_opml
from bot.feeds.urls import with_marker
from bot.handlers.common import (
    Context,
    Target,
    framed,
    reply,
    resolve_target,
    runtime_of,
    split_target,
    topic_of,
)
from bot.i18n import t
from bot.service import ImportItem

log = logging.getLogger(__name__)

IMPORT_CAPTION = re.compile(r"^/import(@\w+)?(\s|$)", re.IGNORECASE)
IMPORT_CONCURRENCY = 8
PROGRESS_EVERY_S = 2.0
SUMMARY_LINES = 30  # per section of the import summary; the rest is counted


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
            url=with_marker(row.feed.url, None),  # a fetch-settings marker means nothing there
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
    thread_id = None if target.is_remote else topic_of(message)
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
