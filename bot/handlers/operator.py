"""Operator features: owner-only /stats. The alerts to the owners are in bot.handlers.owners."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict

from telegram import Update

from bot.handlers.common import Context, reply, runtime_of, shared
from bot.i18n import t


async def stats_command(update: Update, context: Context) -> None:
    runtime = runtime_of(context)
    user = update.effective_user
    if user is None or user.id not in runtime.settings.owners:
        await reply(update, t("owners_only"))
        return
    stats = await runtime.service.operator_stats()
    counter = shared(context).sent_today
    total = runtime.messages_sent()
    counter.roll(total, dt.datetime.now(dt.UTC).date())
    await reply(
        update,
        t(
            "stats",
            **asdict(stats),
            sent_today=counter.count(total),
            sent_total=total,
        ),
    )

