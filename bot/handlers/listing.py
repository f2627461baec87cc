"""/list, here or in a channel named first."""

from __future__ import annotations

import html

from telegram import Update

from bot.handlers.common import Context, channel_target, reply, runtime_of, split_target
from bot.i18n import format_time, t
from bot.service import ListedSubscription


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
