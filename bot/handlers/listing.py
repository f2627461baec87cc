"""/list, here or in a channel named first."""

from __future__ import annotations

import html

from telegram import Update
from telegram.constants import ChatType

from bot.feeds.urls import public_url, with_marker
from bot.handlers.common import Context, channel_target, reply, runtime_of, split_target
from bot.i18n import format_time, t
from bot.service import ListedSubscription


def list_line(row: ListedSubscription, *, private: bool = True) -> str:
    """One feed of /list; `private`: the list is read in a private chat, where a feed's address
    is shown whole (a password or token in it too), else as `public_url` shows it. A feed
    record's marker (its own fetch settings) is never shown: it means nothing to readers."""
    feed = row.feed
    address = with_marker(feed.url, None) if private else public_url(feed.url)
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
        link=html.escape(feed.link or address, quote=True),
        title=html.escape(row.subscription.options.custom_title or feed.title or address),
        state=state,
        url=html.escape(address),
    )


async def list_command(update: Update, context: Context) -> None:
    chat = update.effective_chat
    assert chat is not None
    rows = await runtime_of(context).service.listing(chat.id)
    if not rows:
        await reply(update, t("list_empty"))
        return
    private = chat.type == ChatType.PRIVATE
    lines = [t("list_header", count=len(rows)), *(list_line(r, private=private) for r in rows)]
    await reply(update, "\n\n".join(lines))


async def list_in_channel(update: Update, context: Context) -> None:
    """/list @channel"""
    ref, _ = split_target(list(context.args or []))
    if ref is None:
        return
    target = await channel_target(update, context, ref, manage=False)
    if target is None:
        return
    rows = await runtime_of(context).service.listing(target.chat.id)
    name = html.escape(target.name)
    if not rows:
        await reply(update, t("channel_list_empty", channel=name))
        return
    lines = [t("channel_list_header", channel=name, count=len(rows)), *map(list_line, rows)]
    await reply(update, "\n\n".join(lines))
