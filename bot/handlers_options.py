"""Per-subscription options (/set), keyword filters (/filter), /status, /pause and /resume.

Inline buttons carry a short hash of the feed URL rather than its /list number, so a button
pressed after the list changed (or after a restart) still acts on the feed it was shown for.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler

from .filters import parse_terms
from .handlers import (
    Context,
    add_commands,
    guarded,
    may_manage,
    refuse_unless_manager,
    remember_chat,
    reply,
    runtime_of,
)
from .i18n import format_time, t
from .models import Feed, SubscriptionOptions
from .service import ListedSubscription

#: what users type -> SubscriptionOptions field
OPTION_NAMES = {
    "silent": "silent",
    "preview": "link_preview",
    "style": "style",
    "pictures": "pictures",
    "title": "custom_title",
    "interval": "interval",
}
TOGGLES = ("silent", "preview", "style", "pictures")
STYLES = {"full": "full", "summary": "full", "title": "title", "short": "title", "link": "title"}
ON_WORDS = frozenset({"on", "yes", "true", "1"})
OFF_WORDS = frozenset({"off", "no", "false", "0"})
CLEAR_WORDS = frozenset({"", "off", "default", "auto", "-"})
MAX_INTERVAL = 86400  # the poller checks every feed at least daily anyway
MAX_TITLE = 100
MAX_FILTER_CHARS = 500
MAX_FILTER_TERMS = 30
RESUME_CONCURRENCY = 8
_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}  # a bare number means minutes


class OptionError(Exception):
    """A user's value was refused; `key` names the catalogue message explaining why."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values

    def text(self) -> str:
        return t(self.key, **self.values)


# ----------------------------------------------------------------- pure helpers
def token_of(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:10]


def parse_duration(text: str) -> int | None:
    """`90s`, `30m`, `2h`, `1d`, or a bare number of minutes -> seconds."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _switch(raw: str) -> bool:
    word = raw.strip().lower()
    if word in ON_WORDS:
        return True
    if word in OFF_WORDS:
        return False
    raise OptionError("set_bad_switch", value=html.escape(raw))


def parse_option(
    name: str, raw: str, *, min_interval: int, for_defaults: bool = False
) -> dict[str, Any]:
    """`/set N <name> <raw>` -> {SubscriptionOptions field: value}; OptionError if refused."""
    field = OPTION_NAMES.get(name.lower())
    if field is None:
        raise OptionError("set_unknown_option", name=html.escape(name))
    value = raw.strip()
    if field == "custom_title":
        if for_defaults:
            raise OptionError("set_title_not_default")
        title = " ".join(value.split())
        return {field: "" if title.lower() in CLEAR_WORDS else title[:MAX_TITLE]}
    if field == "interval":
        if value.lower() in CLEAR_WORDS:
            return {field: None}
        seconds = parse_duration(value)
        if seconds is None:
            raise OptionError("set_interval_bad", value=html.escape(value))
        if seconds < min_interval:
            raise OptionError("set_interval_min", minimum=format_duration(min_interval))
        return {field: min(seconds, MAX_INTERVAL)}
    if field == "style":
        style = STYLES.get(value.lower())
        if style is None:
            raise OptionError("set_style_bad", value=html.escape(value))
        return {field: style}
    return {field: _switch(value)}


def toggled(options: SubscriptionOptions, name: str) -> dict[str, Any]:
    """The change one keyboard button makes: flip a switch, or swap full/title style."""
    field = OPTION_NAMES[name]
    if field == "style":
        return {field: "title" if options.style == "full" else "full"}
    return {field: not getattr(options, field)}


def normalize_filter(text: str) -> str:
    """Validated filter spec: comma-separated words, `!word` excludes. No regexes."""
    if len(text) > MAX_FILTER_CHARS:
        raise OptionError("filter_too_long", limit=MAX_FILTER_CHARS)
    include, exclude = parse_terms(text)
    if not include and not exclude:
        raise OptionError("filter_empty")
    if len(include) + len(exclude) > MAX_FILTER_TERMS:
        raise OptionError("filter_too_many", limit=MAX_FILTER_TERMS)
    return ", ".join([*include, *(f"!{term}" for term in exclude)])


def describe_filter(spec: str) -> str:
    include, exclude = parse_terms(spec)
    if not include and not exclude:
        return t("filter_none")
    parts = []
    if include:
        parts.append(t("filter_include", terms=html.escape(", ".join(include))))
    if exclude:
        parts.append(t("filter_exclude", terms=html.escape(", ".join(exclude))))
    return "\n".join(parts)


def _on_off(value: bool) -> str:
    return t("opt_on") if value else t("opt_off")


def describe_options(options: SubscriptionOptions, default_interval: int) -> str:
    interval = (
        format_duration(options.interval)
        if options.interval
        else t("opt_interval_default", value=format_duration(default_interval))
    )
    return t(
        "set_options",
        silent=_on_off(options.silent),
        preview=_on_off(options.link_preview),
        style=t("opt_style_full") if options.style == "full" else t("opt_style_title"),
        pictures=_on_off(options.pictures),
        title=html.escape(options.custom_title) or t("opt_title_feed"),
        interval=interval,
    )


def options_keyboard(options: SubscriptionOptions, target: str) -> InlineKeyboardMarkup:
    labels = {
        "silent": t("btn_silent", value=_on_off(options.silent)),
        "preview": t("btn_preview", value=_on_off(options.link_preview)),
        "style": t("btn_style", value=t(f"opt_style_{options.style}")),
        "pictures": t("btn_pictures", value=_on_off(options.pictures)),
    }
    buttons = [InlineKeyboardButton(labels[n], callback_data=f"opt:{target}:{n}") for n in TOGGLES]
    return InlineKeyboardMarkup([buttons[:2], buttons[2:]])


def when(stamp: float | None) -> str:
    if not stamp:
        return t("status_never")
    return html.escape(format_time(stamp))


# --------------------------------------------------------------------- cards
@dataclass
class Card:
    text: str
    markup: InlineKeyboardMarkup


def subscription_card(row: ListedSubscription, default_interval: int) -> Card:
    feed, options = row.feed, row.subscription.options
    header = t("set_card", n=row.number, title=html.escape(feed.title or feed.url))
    body = describe_options(options, default_interval)
    return Card(f"{header}\n{body}", options_keyboard(options, token_of(feed.url)))


def defaults_card(options: SubscriptionOptions, default_interval: int) -> Card:
    body = describe_options(options, default_interval)
    return Card(f"{t('set_defaults_card')}\n{body}", options_keyboard(options, "default"))


async def show(update: Update, card: Card) -> None:
    await reply(update, card.text, reply_markup=card.markup)


async def _chat_id(update: Update) -> int:
    chat = update.effective_chat
    assert chat is not None
    return chat.id


def _fields(data: str) -> tuple[str, str, str]:
    """`prefix:a:b` callback data -> its three parts (missing ones empty)."""
    parts = [*data.split(":", 2), "", ""]
    return parts[0], parts[1], parts[2]


async def _find(context: Context, chat_id: int, token: str) -> ListedSubscription | None:
    rows = await runtime_of(context).service.listing(chat_id)
    return next((r for r in rows if token_of(r.subscription.feed_url) == token), None)


# ----------------------------------------------------------------------- /set
async def set_command(update: Update, context: Context) -> None:
    args = context.args or []
    if not args:
        await reply(update, t("set_usage"))
        return
    if await refuse_unless_manager(update, context):
        return
    await remember_chat(update, context)
    try:
        if args[0].lower() == "default":
            await _set_defaults(update, context, args[1:])
        else:
            await _set_subscription(update, context, args[0], args[1:])
    except OptionError as exc:
        await reply(update, exc.text())


async def _set_defaults(update: Update, context: Context, args: list[str]) -> None:
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    if args:
        change = parse_option(
            args[0],
            " ".join(args[1:]),
            min_interval=runtime.settings.min_interval,
            for_defaults=True,
        )
        options = await runtime.service.update_defaults(chat_id, change)
    else:
        options = await runtime.service.chat_defaults(chat_id)
    await show(update, defaults_card(options, runtime.settings.poll_interval))


async def _set_subscription(update: Update, context: Context, ref: str, args: list[str]) -> None:
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    row = await runtime.service.resolve(chat_id, ref)
    if row is None:
        await reply(update, t("unsub_unknown", ref=html.escape(ref)))
        return
    if args:
        name, value = args[0], " ".join(args[1:])
        if not value and name.lower() in TOGGLES:
            change = toggled(row.subscription.options, name.lower())
        else:
            change = parse_option(name, value, min_interval=runtime.settings.min_interval)
        sub = await runtime.service.update_options(chat_id, row.subscription.feed_url, change)
        if sub is None:
            await reply(update, t("unsub_unknown", ref=html.escape(ref)))
            return
        row.subscription = sub
    await show(update, subscription_card(row, runtime.settings.poll_interval))


async def option_pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    _, target, name = _fields(query.data)
    if name not in TOGGLES:
        await query.answer()
        return
    if not await may_manage(update, context):
        await query.answer(t("admins_only_plain"), show_alert=True)
        return
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    interval = runtime.settings.poll_interval
    if target == "default":
        current = await runtime.service.chat_defaults(chat_id)
        options = await runtime.service.update_defaults(chat_id, toggled(current, name))
        card = defaults_card(options, interval)
    else:
        row = await _find(context, chat_id, target)
        if row is not None:
            change = toggled(row.subscription.options, name)
            sub = await runtime.service.update_options(chat_id, row.subscription.feed_url, change)
        if row is None or sub is None:
            await query.answer(t("set_gone_plain"), show_alert=True)
            return
        row.subscription = sub
        card = subscription_card(row, interval)
    await query.answer()
    await query.edit_message_text(
        card.text,
        parse_mode=ParseMode.HTML,
        reply_markup=card.markup,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


# -------------------------------------------------------------------- /filter
async def filter_command(update: Update, context: Context) -> None:
    args = context.args or []
    if not args:
        await reply(update, t("filter_usage"))
        return
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    url: str | None = None
    if args[0].lower() == "global":
        label, current = t("filter_global"), await runtime.service.chat_filter(chat_id)
    else:
        row = await runtime.service.resolve(chat_id, args[0])
        if row is None:
            await reply(update, t("unsub_unknown", ref=html.escape(args[0])))
            return
        url, current = row.subscription.feed_url, row.subscription.options.filters
        label = html.escape(row.subscription.options.custom_title or row.feed.title or url)
    text = " ".join(args[1:]).strip()
    if not text:
        await reply(update, t("filter_show", label=label, filter=describe_filter(current)))
        return
    if await refuse_unless_manager(update, context):
        return
    await remember_chat(update, context)
    try:
        spec = "" if text.lower() == "off" else normalize_filter(text)
    except OptionError as exc:
        await reply(update, exc.text())
        return
    await runtime.service.set_filter(chat_id, url, spec)
    key = "filter_set" if spec else "filter_off"
    await reply(update, t(key, label=label, filter=describe_filter(spec)))


# -------------------------------------------------------------------- /status
def _state(row: ListedSubscription) -> str:
    feed = row.feed
    if feed.retired:
        return t("state_retired")
    if row.subscription.paused:
        return t("state_paused")
    if feed.errors and feed.failing_since:
        return t("status_failing", since=when(feed.failing_since), reason=_reason(feed))
    return t("status_ok")


def _reason(feed: Feed) -> str:
    return feed.failure_reason().text()


def status_line(row: ListedSubscription) -> str:
    feed = row.feed
    paused = row.subscription.paused or feed.retired
    return t(
        "status_item",
        n=row.number,
        title=html.escape(row.subscription.options.custom_title or feed.title or feed.url),
        state=_state(row),
        checked=when(feed.last_check),
        new=when(feed.last_new_entry),
        next=t("status_not_scheduled") if paused else when(feed.next_check),
    )


async def status_command(update: Update, context: Context) -> None:
    status = await runtime_of(context).service.status(await _chat_id(update))
    if not status.rows:
        await reply(update, t("list_empty"))
        return
    header = t("status_header", count=len(status.rows), pending=status.pending)
    await reply(update, "\n\n".join([header, *(status_line(r) for r in status.rows)]))


# ------------------------------------------------------------ /pause, /resume
async def _targets(
    update: Update, context: Context, args: list[str]
) -> list[ListedSubscription] | None:
    """Subscriptions named by the arguments (a /list number or URL; none or `all`: every one).
    None after telling the user what went wrong."""
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    if not args or args[0].lower() == "all":
        rows = await runtime.service.listing(chat_id)
        if not rows:
            await reply(update, t("list_empty"))
            return None
        return rows
    row = await runtime.service.resolve(chat_id, args[0])
    if row is None:
        await reply(update, t("unsub_unknown", ref=html.escape(args[0])))
        return None
    return [row]


async def pause_command(update: Update, context: Context) -> None:
    if await refuse_unless_manager(update, context):
        return
    rows = await _targets(update, context, context.args or [])
    if rows is None:
        return
    service = runtime_of(context).service
    changed = await service.pause(await _chat_id(update), [r.subscription.feed_url for r in rows])
    if len(rows) == 1:
        title = html.escape(rows[0].feed.title or rows[0].feed.url)
        await reply(update, t("pause_one" if changed else "pause_already", title=title))
    else:
        await reply(update, t("pause_all", count=len(changed)))


async def resume_command(update: Update, context: Context) -> None:
    if await refuse_unless_manager(update, context):
        return
    args = context.args or []
    rows = await _targets(update, context, args)
    if rows is None:
        return
    paused = [r for r in rows if r.subscription.paused]
    if not paused:
        await reply(update, t("resume_nothing"))
        return
    target = "all" if not args or args[0].lower() == "all" else token_of(paused[0].feed.url)
    what = (
        html.escape(paused[0].feed.title or paused[0].feed.url)
        if target != "all"
        else t("resume_count", count=len(paused))
    )
    buttons = [
        InlineKeyboardButton(t("btn_catch_up"), callback_data=f"resume:catch:{target}"),
        InlineKeyboardButton(t("btn_skip"), callback_data=f"resume:skip:{target}"),
    ]
    await reply(
        update,
        t("resume_ask", what=what, limit=runtime_of(context).settings.backlog_limit),
        reply_markup=InlineKeyboardMarkup([buttons]),
    )


async def resume_pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    _, mode, target = _fields(query.data)
    if not await may_manage(update, context):
        await query.answer(t("admins_only_plain"), show_alert=True)
        return
    await query.answer()
    runtime = runtime_of(context)
    chat_id = await _chat_id(update)
    rows = [
        r
        for r in await runtime.service.listing(chat_id)
        if r.subscription.paused and (target == "all" or token_of(r.feed.url) == target)
    ]
    if not rows:
        await query.edit_message_text(t("resume_nothing"), parse_mode=ParseMode.HTML)
        return
    gate = asyncio.Semaphore(RESUME_CONCURRENCY)

    async def one(url: str) -> int | None:
        async with gate:
            return await runtime.poller.resume(chat_id, url, catch_up=mode == "catch")

    results = await asyncio.gather(*(one(r.subscription.feed_url) for r in rows))
    text = t(
        "resume_done_catch" if mode == "catch" else "resume_done_skip",
        count=len(rows),
        queued=sum(r or 0 for r in results),
    )
    unreadable = sum(1 for r in results if r is None)
    if unreadable:
        text += "\n" + t("resume_unreadable", count=unreadable)
    await query.edit_message_text(
        text,
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


def register_options(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    add_commands(
        app,
        (
            ("set", set_command),
            ("filter", filter_command),
            ("status", status_command),
            ("pause", pause_command),
            ("resume", resume_command),
        ),
    )
    app.add_handler(CallbackQueryHandler(guarded(option_pressed), pattern=r"^opt:"))
    app.add_handler(CallbackQueryHandler(guarded(resume_pressed), pattern=r"^resume:"))
