"""The bot's own place in chats: added to or removed from one, and a group that became a
supergroup (a new chat id)."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatMemberStatus

from bot.handlers.common import Context, runtime_of
from bot.i18n import catalogue_language


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
    await runtime.sender.bot_membership_changed(chat.id, str(status))


async def migrated(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    await runtime_of(context).sender.chat_migrated(message.chat_id, message.migrate_to_chat_id)
