"""Build the Telegram application: handlers, the polling job, the sender, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import Application, ApplicationBuilder, ContextTypes

from bot.config import Settings, masked_proxy
from bot.delivery.gateway import TelegramGateway
from bot.delivery.sender import DeliverySettings
from bot.errors import FeedbotError
from bot.handlers import menu, register
from bot.handlers.common import BotData, Context, runtime_of, shared
from bot.handlers.owners import OwnerAlerts
from bot.i18n import DEFAULT_LANG, languages
from bot.roles import Roles, checks_feeds, receives_updates
from bot.runtime import Runtime

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, BotData, Any]

#: the updates `feedbot run` asks Telegram for
UPDATE_KINDS = ("message", "callback_query", "my_chat_member", "channel_post")
#: why binding the webhook's listener fails: taken, not this host's address, not allowed, no host
_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def build_application(settings: Settings, delivery: DeliverySettings | None = None) -> App:
    """`delivery`: the sender's and the gateway's limits (tests and benchmarks speed them up)."""
    delivery = delivery or DeliverySettings()
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(f"{settings.api_url}/bot")
        .base_file_url(f"{settings.api_url}/file/bot")
        .concurrent_updates(True)
        .rate_limiter(TelegramGateway(delivery.limits()))
        .context_types(ContextTypes(bot_data=BotData))
        .post_init(_started)
        .post_shutdown(_stopped)
    )
    if settings.telegram_proxy:
        # both of PTB's HTTPXRequests: the calls' and getUpdates' (a webhook's setWebhook is a
        # call; the updates Telegram posts to the webhook come in without it)
        builder = builder.proxy(settings.telegram_proxy).get_updates_proxy(
            settings.telegram_proxy
        )
    app: App = builder.build()
    data = app.bot_data
    data.settings, data.delivery = settings, delivery
    data.alerts = OwnerAlerts(app.bot, tuple(settings.owners))
    register(app)
    return app


async def _started(app: App) -> None:
    """The one start-up path: the runtime, the owners' alerts, the sender, the menu, the jobs."""
    data = app.bot_data
    settings = data.settings
    runtime = await Runtime.start(settings, app.bot, data.delivery)
    data.runtime = runtime
    if data.alerts is not None:
        runtime.poller.on_crash = data.alerts.check_crashed
        data.alerts.lang_of = runtime.service.chat_language
    data.roles = Roles(runtime, app.updater, _polling_start(app))
    await data.roles.start()
    if receives_updates(settings):
        await app.bot.set_my_commands(menu())
        for lang in languages():
            if lang != DEFAULT_LANG:
                await app.bot.set_my_commands(menu(lang), language_code=lang)
    assert app.job_queue is not None, "python-telegram-bot[job-queue] is required"
    if checks_feeds(settings):
        app.job_queue.run_repeating(
            _tick,
            interval=settings.tick_seconds,
            first=0.2,
            name="poll",
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
    app.job_queue.run_daily(_midnight, time=dt.time(0, 0, tzinfo=dt.UTC), name="sent-today")
    log.info(
        "feedbot started as @%s; role %s; database %s; poll interval %ss; event loop %s",
        app.bot.username,
        settings.role,
        describe_database(settings),
        settings.poll_interval,
        event_loop_name(),
    )
    if settings.feed_proxy or settings.telegram_proxy:
        log.info("%s", proxies_line(settings))
    if receives_updates(settings):
        log.info("%s", updates_line(settings))


def describe_database(settings: Settings) -> str:
    if not settings.database_url:
        return settings.db_path
    from bot.storage.postgres import describe_url

    return f"PostgreSQL at {describe_url(settings.database_url)}"


def proxies_line(settings: Settings) -> str:
    """The start-up line naming the proxies in use, passwords masked."""
    feeds = masked_proxy(settings.feed_proxy) if settings.feed_proxy else "none"
    telegram = masked_proxy(settings.telegram_proxy) if settings.telegram_proxy else "none"
    return f"proxies: feeds through {feeds}; Telegram through {telegram}"


def _polling_start(app: App) -> Callable[[], Awaitable[Any]] | None:
    """How this process starts long polling when it takes the updates seat; None when it does
    not poll under a seat (TinyDB: it simply polls; a webhook; a role without updates)."""
    settings = app.bot_data.settings
    updater = app.updater
    if not settings.database_url or settings.webhook_url or not receives_updates(settings):
        return None
    assert updater is not None
    polling = {"allowed_updates": UPDATE_KINDS, **app.bot_data.polling}
    return lambda: updater.start_polling(**polling)


def updates_line(settings: Settings) -> str:
    """The start-up line that says how this process receives updates."""
    if not settings.webhook_url:
        return "updates: long polling"
    host, port = settings.webhook_address
    secret = (
        "secret from FEEDBOT_WEBHOOK_SECRET"
        if settings.webhook_secret
        else "a random secret for this process (processes sharing this URL need "
        "FEEDBOT_WEBHOOK_SECRET)"
    )
    return f"updates: webhook {settings.webhook_url}, listening on {host}:{port}, {secret}"


def webhook_options(settings: Settings) -> dict[str, Any]:
    """PTB's start_webhook/run_webhook arguments. The local path is the URL's path (a reverse
    proxy forwards it as it is). setWebhook leaves through app.bot, so through the gateway."""
    host, port = settings.webhook_address
    return {
        "listen": host,
        "port": port,
        "url_path": urlsplit(settings.webhook_url).path or "/",
        "webhook_url": settings.webhook_url,
        "secret_token": settings.webhook_secret or secrets.token_urlsafe(32),
    }


def use_fast_event_loop() -> bool:
    """uvloop's event loop for the loops made from now on (PTB's and asyncio.run's), where it
    is installed: its loop and transports are C, and a check's HTTP exchange is mostly their
    bookkeeping. True when it is in use."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def event_loop_name() -> str:
    """"uvloop" or "asyncio": whose loop is running."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def serve(settings: Settings) -> None:
    """`feedbot run`: build the application and run it until a stop signal.

    With the TinyDB file: PTB's run_polling / run_webhook. On PostgreSQL the process runs its
    role (bot.roles) in `running()`, polling only while it holds the updates seat.

    On stop the webhook stays registered: other `updates` processes may still serve it, and
    deleting it would stop updates for all of them (a lone process's are retried by Telegram).
    Starting with long polling deletes it (PTB's polling start-up does)."""
    use_fast_event_loop()
    with _webhook_errors(settings):
        if settings.database_url:
            asyncio.run(_until_stopped(settings))
            return
        app = build_application(settings)
        if not settings.webhook_url:
            app.run_polling(allowed_updates=UPDATE_KINDS)
            return
        app.run_webhook(**webhook_options(settings), allowed_updates=UPDATE_KINDS)


async def _until_stopped(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running(settings, allowed_updates=UPDATE_KINDS):
        await stop.wait()
    log.info("feedbot stopped")


@contextlib.contextmanager
def _webhook_errors(settings: Settings) -> Iterator[None]:
    """A webhook Telegram refuses, or an address that cannot be listened on: one clear line."""
    try:
        yield
    except BadRequest as exc:
        if "webhook" not in exc.message.lower():
            raise
        raise FeedbotError(
            f"Telegram refused the webhook {settings.webhook_url}: {exc.message}",
            key="error_webhook_refused",
            args={"url": settings.webhook_url, "detail": exc.message},
        ) from exc
    except OSError as exc:
        if not isinstance(exc, socket.gaierror) and exc.errno not in _LISTEN_ERRORS:
            raise
        detail = exc.strerror or str(exc)
        raise FeedbotError(
            f"cannot listen on {settings.webhook_listen} for the webhook: {detail}",
            key="error_webhook_listen",
            args={"address": settings.webhook_listen, "detail": detail},
        ) from exc


async def _stopped(app: App) -> None:
    data = app.bot_data
    if data.roles is not None:
        await data.roles.stop()
    if data.runtime is not None:
        await data.runtime.stop()


async def _tick(context: Context) -> None:
    runtime = runtime_of(context)
    started = await runtime.poller.tick()
    try:
        await runtime.digests.run_due()
    except Exception:  # a digest that could not be made now is made at a later tick
        log.exception("making the digests due failed; the next tick tries again")
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


async def _midnight(context: Context) -> None:
    """/stats counts the messages sent since 00:00 UTC."""
    shared(context).sent_today.roll(
        runtime_of(context).messages_sent(), dt.datetime.now(dt.UTC).date()
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    poll_interval: float = 0.0,
    delivery: DeliverySettings | None = None,
    allowed_updates: Sequence[str] = Update.ALL_TYPES,
) -> AsyncIterator[App]:
    """Run the bot inside an existing event loop (tests, benchmarks, embedding): the same
    start-up and shutdown path as `feedbot run`, without taking over the loop or signals."""
    app = build_application(settings, delivery)
    polling: dict[str, Any] = {
        "poll_interval": poll_interval, "timeout": 1, "allowed_updates": allowed_updates,
    }
    app.bot_data.polling = polling
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    assert app.updater is not None
    if receives_updates(settings) and settings.webhook_url:
        await app.updater.start_webhook(
            **webhook_options(settings), allowed_updates=allowed_updates
        )
    elif not settings.database_url:  # on PostgreSQL the updates seat's holder polls
        await app.updater.start_polling(**polling)
    await app.start()
    try:
        yield app
    finally:
        if app.bot_data.roles is not None:
            await app.bot_data.roles.stop()
        if app.updater.running:
            await app.updater.stop()
        await app.stop()
        if app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)
