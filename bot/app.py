"""Build the Telegram application: handlers, the polling job, the sender, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.config import Settings
from bot.delivery.gateway import TelegramGateway
from bot.delivery.sender import DeliverySettings
from bot.handlers import commands as handlers
from bot.i18n import DEFAULT_LANG, languages
from bot.runtime import Runtime

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]


def build_application(settings: Settings, delivery: DeliverySettings | None = None) -> App:
    """`delivery`: the sender's and the gateway's limits (tests and benchmarks speed them up)."""
    delivery = delivery or DeliverySettings()
    app: App = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(f"{settings.api_url}/bot")
        .base_file_url(f"{settings.api_url}/file/bot")
        .concurrent_updates(True)
        .rate_limiter(TelegramGateway(delivery.limits()))
        .post_init(_started)
        .post_shutdown(_stopped)
        .build()
    )
    app.bot_data["settings"] = settings
    app.bot_data["delivery"] = delivery
    handlers.register(app)
    return app


async def _started(app: App) -> None:
    settings: Settings = app.bot_data["settings"]
    runtime = await Runtime.start(settings, app.bot, app.bot_data["delivery"])
    app.bot_data["feedbot"] = runtime
    app.bot_data["sender_task"] = asyncio.create_task(runtime.sender.run(), name="sender")
    await app.bot.set_my_commands(handlers.menu())
    for lang in languages():
        if lang != DEFAULT_LANG:
            await app.bot.set_my_commands(handlers.menu(lang), language_code=lang)
    assert app.job_queue is not None, "python-telegram-bot[job-queue] is required"
    app.job_queue.run_repeating(
        _tick,
        interval=settings.tick_seconds,
        first=0.2,
        name="poll",
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
    log.info(
        "feedbot started as @%s; database %s; poll interval %ss",
        app.bot.username,
        settings.db_path,
        settings.poll_interval,
    )


async def _stopped(app: App) -> None:
    runtime: Runtime | None = app.bot_data.get("feedbot")
    if runtime is not None:
        await runtime.stop()
    task: asyncio.Task[None] | None = app.bot_data.get("sender_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    runtime: Runtime = context.application.bot_data["feedbot"]
    started = await runtime.poller.tick()
    stats = runtime.poller.stats.take()
    sent = runtime.sender.stats
    depth = await runtime.store.outbox_depth()
    level = logging.INFO if (stats or started) else logging.DEBUG
    log.log(
        level,
        "tick: started=%d checked=%d not_modified=%d failed=%d new=%d queued=%d | %s | outbox=%d",
        started,
        stats.checked,
        stats.not_modified,
        stats.failed,
        stats.new_entries,
        stats.queued,
        sent,
        depth,
    )
    await runtime.store.flush_due()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, poll_interval: float = 0.0, delivery: DeliverySettings | None = None
) -> AsyncIterator[App]:
    """Run the bot inside an existing event loop (tests, benchmarks, embedding): the same
    start-up and shutdown path as `feedbot run`, without taking over the loop or signals."""
    app = build_application(settings, delivery)
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    assert app.updater is not None
    await app.updater.start_polling(
        poll_interval=poll_interval, timeout=1, allowed_updates=Update.ALL_TYPES
    )
    await app.start()
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
