"""Per-subscription options (/set), keyword filters (/filter), /status, /pause and /resume.

Each command acts on the chat it was sent in, or on a channel named first (`/set @chan 2`),
the way /sub, /list and /unsub do (bot.handlers.common: split_target, resolve_target).
Inline buttons carry a short hash of the feed URL rather than its /list number, so a button
pressed after the list changed (or after a restart) still acts on the feed it was shown for;
a button about a channel also carries the channel's id.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
import time
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden

from bot.errors import OptionError as OptionError  # re-exported: the parsers raise it
from bot.feeds.filters import (
    PostVerdict,
    Words,
    normalize_filter,
    read_filter,
    render_expr,
    render_rule,
    render_term,
)
from bot.feeds.request_headers import secret_in
from bot.handlers.common import (
    Context,
    Target,
    channel_problem,
    channel_target,
    framed,
    here_target,
    may_manage,
    reply,
    resolve_target,
    runtime_of,
    split_target,
    target_allowed,
)
from bot.hours import find_zone
from bot.i18n import format_time, t
from bot.models import Feed, SubscriptionOptions
from bot.options import (
    OPTIONS,
    Effect,
    Limits,
    Option,
    button_labels,
    describe_options,
    flips,
    toggled,
    usage_examples,
)
from bot.options import format_duration as format_duration
from bot.options import parse_duration as parse_duration
from bot.options import parse_option as parse_within
from bot.pipeline.poller import Resumed
from bot.pipeline.schedule import MAX_INTERVAL
from bot.render.cut import utf16_len
from bot.service import FilterTrial, ListedSubscription

#: /filter N test: the posts listed at most, and the visible characters of the answer
TEST_MAX_POSTS = 25
TEST_BUDGET = 3500
TEST_TITLE_CHARS = 80
RESUME_CONCURRENCY = 8


# ----------------------------------------------------------------- pure helpers
def token_of(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:10]


def parse_option(
    name: str, raw: str, *, min_interval: int, for_defaults: bool = False
) -> dict[str, Any]:
    """`/set N <name> <raw>` -> {SubscriptionOptions field: value}; OptionError if refused."""
    limits = Limits(min_interval=min_interval, max_interval=MAX_INTERVAL)
    return parse_within(name, raw, limits, for_defaults=for_defaults)


def typed_tail(text: str, words: list[str]) -> str:
    """The end of a command's text that `words` (its last arguments) came from, as typed: a
    template's line breaks survive, where joining the arguments would lose them."""
    if not words:
        return ""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    tail = text[starts[-len(words)] :].strip() if len(starts) >= len(words) else ""
    return tail if tail.split() == words else " ".join(words)


def message_text(update: Update) -> str:
    message = update.effective_message
    return (message.text or "") if message is not None else ""


def describe_filter(spec: str) -> str:
    """A stored filter as the chat reads it: the older word lists, or each part written out."""
    rules = read_filter(spec)
    if not rules.rules:
        return t("filter_none")
    plain = rules.words_only
    parts = []
    for veto, group in ((False, rules.keeps), (True, rules.vetoes)):
        if not group:
            continue
        if plain:
            words = ", ".join(r.expr.phrase for r in group if isinstance(r.expr, Words))
            key = "filter_exclude" if veto else "filter_include"
            parts.append(t(key, terms=html.escape(words)))
        else:
            shown = ", ".join(_code(render_expr(r.expr)) for r in group)
            key = "filter_exclude_parts" if veto else "filter_include_parts"
            parts.append(t(key, parts=shown))
    return "\n".join(parts)


def _code(text: str, limit: int = 120) -> str:
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"<code>{html.escape(cut)}</code>"


def options_keyboard(
    options: SubscriptionOptions,
    token: str,
    where: Target | None = None,
    *,
    default_interval: int,
) -> InlineKeyboardMarkup:
    """`token`: the feed's token_of, or "default"; `where`: the chat the card is about."""
    buttons = [
        InlineKeyboardButton(label, callback_data=callback("opt", token, name, where=where))
        for name, label in button_labels(options, default_interval)
    ]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def callback(*parts: str, where: Target | None) -> str:
    """Button data `prefix:a:b`, plus `:<channel id>` when the button is about a channel."""
    if where is not None and where.is_remote:
        parts = (*parts, str(where.chat.id))
    return ":".join(parts)


def fields_of(data: str) -> tuple[str, str, str, str]:
    """`prefix:a:b[:channel]` -> its four parts (missing ones empty)."""
    parts = [*data.split(":", 3), "", "", ""]
    return parts[0], parts[1], parts[2], parts[3]


def display_title(row: ListedSubscription) -> str:
    """What the chat calls the feed: its custom title, else the feed's own, else the URL."""
    feed = row.feed
    return row.subscription.options.custom_title or feed.title or feed.url


def when(stamp: float | None, timezone: str = "UTC") -> str:
    """A moment in a reply, in the chat's time zone."""
    if not stamp:
        return t("status_never")
    return html.escape(format_time(stamp, None, "short", timezone))


# --------------------------------------------------------------------- cards
@dataclass
class Card:
    text: str
    markup: InlineKeyboardMarkup


def subscription_card(row: ListedSubscription, default_interval: int, where: Target) -> Card:
    options = row.subscription.options
    header = t("set_card", n=row.number, title=html.escape(display_title(row)))
    body = describe_options(options, default_interval)
    markup = options_keyboard(
        options, token_of(row.feed.url), where, default_interval=default_interval
    )
    return Card(framed(where, f"{header}\n{body}"), markup)


def defaults_card(options: SubscriptionOptions, default_interval: int, where: Target) -> Card:
    body = describe_options(options, default_interval)
    text = framed(where, f"{t('set_defaults_card')}\n{body}")
    markup = options_keyboard(options, "default", where, default_interval=default_interval)
    return Card(text, markup)


async def show(update: Update, card: Card) -> None:
    await reply(update, card.text, reply_markup=card.markup)


async def _where(
    update: Update, context: Context, args: list[str], *, manage: bool
) -> tuple[Target, list[str]] | None:
    """The chat a command acts on (a channel named first, else this one) and the remaining
    arguments; None after telling the user why they may not."""
    ref, rest = split_target(args)
    target = await resolve_target(update, context, ref, manage=manage)
    return None if target is None else (target, rest)


async def _button_target(update: Update, context: Context, channel: str) -> Target | None:
    """The chat a pressed button acts on, when the presser may change it (the caller answers
    the query); None after telling them why not."""
    query = update.callback_query
    assert query is not None
    if channel:
        target = await channel_target(update, context, channel)
        if target is None:
            await query.answer()  # channel_target has said why, in the chat
        return target
    if not await may_manage(update, context):
        await query.answer(t("admins_only_plain"), show_alert=True)
        return None
    return await here_target(update, context, manage=False)


def _unknown(target: Target, ref: str) -> str:
    return framed(target, t("unsub_unknown", ref=html.escape(ref)))


def _empty(target: Target) -> str:
    if target.is_remote:
        return t("channel_list_empty", channel=html.escape(target.name))
    return t("list_empty")


async def _find(context: Context, chat_id: int, token: str) -> ListedSubscription | None:
    rows = await runtime_of(context).service.listing(chat_id)
    return next((r for r in rows if token_of(r.subscription.feed_url) == token), None)


async def _edit_card(update: Update, card: Card) -> None:
    query = update.callback_query
    assert query is not None
    await query.edit_message_text(
        card.text,
        parse_mode=ParseMode.HTML,
        reply_markup=card.markup,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


# ----------------------------------------------------------------------- /set
async def set_command(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("set_usage", examples=usage_examples()))
        return
    found = await _where(update, context, list(context.args), manage=True)
    if found is None:
        return
    target, args = found
    if not args:
        await reply(update, framed(target, t("set_usage", examples=usage_examples())))
        return
    try:
        if args[0].lower() == "default":
            await _set_defaults(update, context, target, args[1:])
        elif args[0].lower() == "notices":
            await _set_notices(update, context, target, args[1:])
        elif args[0].lower() in ("timezone", "tz"):
            await _set_timezone(update, context, target, args[1:])
        else:
            await _set_subscription(update, context, target, args[0], args[1:])
    except OptionError as exc:
        await reply(update, framed(target, exc.text()))


async def _set_defaults(update: Update, context: Context, target: Target, args: list[str]) -> None:
    runtime = runtime_of(context)
    chat_id = target.chat.id
    if args:
        change = parse_option(
            args[0],
            typed_tail(message_text(update), args[1:]),
            min_interval=runtime.settings.min_interval,
            for_defaults=True,
        )
        options = await runtime.service.update_defaults(chat_id, change)
    else:
        options = await runtime.service.chat_defaults(chat_id)
    await show(update, defaults_card(options, runtime.settings.poll_interval, target))


async def _set_subscription(
    update: Update, context: Context, target: Target, ref: str, args: list[str]
) -> None:
    runtime = runtime_of(context)
    chat_id = target.chat.id
    option = OPTIONS.get(ref)
    if option is not None:  # `/set preview off`: the feed's number was left out
        rows = await runtime.service.listing(chat_id)
        if option.chat_wide and len(rows) != 1 and args:
            await _set_chat_wide(update, context, target, option, args)
            return
        if len(rows) != 1:
            await reply(update, framed(target, which_feed(rows, ref, args, target)))
            return
        row: ListedSubscription | None = rows[0]
        args = [ref, *args]
    else:
        row = await runtime.service.resolve(chat_id, ref)
    if row is None:
        await reply(update, _unknown(target, ref))
        return
    if args:
        name, value = args[0], typed_tail(message_text(update), args[1:])
        if not value and flips(name):
            change = toggled(row.subscription.options, name)
        else:
            change = parse_option(name, value, min_interval=runtime.settings.min_interval)
        if OPTIONS.changes_affect(change, Effect.FETCH):
            await _set_fetch(update, context, target, row, change)
            return
        sub = await runtime.service.update_options(chat_id, row.subscription.feed_url, change)
        if sub is None:
            await reply(update, _unknown(target, ref))
            return
        row.subscription = sub
    await show(update, subscription_card(row, runtime.settings.poll_interval, target))


async def _set_fetch(
    update: Update, context: Context, target: Target, row: ListedSubscription,
    change: dict[str, Any],
) -> None:
    """`/set N header …` / `/set N auth …`: the feed is tried with the new settings, and the
    subscription moves to the feed record fetched with them (bot.service.change_fetch)."""
    runtime = runtime_of(context)
    changed = await runtime.service.change_fetch(
        target.chat.id, row.subscription.feed_url, change
    )
    if changed.row is None:
        await reply(update, _unknown(target, str(row.number)))
        return
    if changed.error is not None:
        failed = t("set_fetch_failed", reason=changed.error.text())
        await reply(update, framed(target, failed))
        return
    card = subscription_card(changed.row, runtime.settings.poll_interval, target)
    if secret_in(change):
        card.text = f"{card.text}\n\n{t('set_fetch_secret_typed')}"
    await show(update, card)


async def _set_chat_wide(
    update: Update, context: Context, target: Target, option: Option, args: list[str]
) -> None:
    """`/set quiet 23:00-07:00` in a chat with several feeds: all of them, and later ones."""
    runtime = runtime_of(context)
    change = parse_option(option.name, typed_tail(message_text(update), args),
                          min_interval=runtime.settings.min_interval)
    count = await runtime.service.update_chat_wide(target.chat.id, change)
    line = t(option.label, value=option.shown(change[option.field],
                                              runtime.settings.poll_interval))
    await reply(update, framed(target, t("set_chat_wide", line=line, count=count)))


# ----------------------------------------------------------- /set … timezone
async def _set_timezone(
    update: Update, context: Context, target: Target, args: list[str]
) -> None:
    """`/set [@channel] timezone Europe/Berlin`: the zone of the chat's dates and hours;
    without a zone, the current one."""
    about = html.escape(target.name) if target.is_remote else t("notices_this_chat")
    channel = f"{target.name} " if target.is_remote else ""
    example = html.escape(f"/set {channel}timezone Europe/Berlin")
    if not args:
        zone = target.chat.timezone or "UTC"
        now = html.escape(format_time(time.time(), None, "long", zone))
        text = t("timezone_show", target=about, zone=html.escape(zone), now=now, example=example)
        await reply(update, text)
        return
    found = find_zone(args[0])
    if found is None or len(args) > 1:
        typed = html.escape(" ".join(args))
        await reply(update, framed(target, t("timezone_bad", value=typed, example=example)))
        return
    await runtime_of(context).service.set_timezone(target.chat.id, found)
    now = html.escape(format_time(time.time(), None, "long", found))
    await reply(update, t("timezone_set", target=about, zone=html.escape(found), now=now))


# ------------------------------------------------------------ /set … notices
#: what sends a chat's notices into the chat itself again
NOTICES_OFF = frozenset({"off", "default", "-", "reset"})
#: a chat named by its @username or its numeric id (a user's id is positive)
CHAT_REF = re.compile(r"^(@[A-Za-z]\w{3,31}|-?\d{1,20})$")
MEMBERS = (
    ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER,
    ChatMemberStatus.RESTRICTED,
)


@dataclass
class NoticesChat:
    """Where a chat's notices are to go: `chat_id` (None: into the chat itself) and its name
    as answers show it (Telegram HTML), or `problem`, why it may not be (Telegram HTML)."""

    chat_id: int | None = None
    name: str = ""
    problem: str = ""


async def _set_notices(update: Update, context: Context, target: Target, args: list[str]) -> None:
    """`/set [@channel] notices here|me|@chat|id|off`: where the notices about the feeds of
    `target` (failing, working again, gone, paused) go; without a value, where they go now."""
    service = runtime_of(context).service
    about = html.escape(target.name) if target.is_remote else t("notices_this_chat")
    if not args:
        current = target.chat.notices
        if current is None or current == target.chat.id:
            text = t("notices_show_default", target=about, example=_notices_example(target))
        else:
            text = t("notices_show", target=about, chat=await _stored_name(context, current))
        await reply(update, framed(target, text))
        return
    chosen = await notices_chat(update, context, target, args[0])
    if chosen.problem:
        await reply(update, framed(target, chosen.problem))
        return
    await service.set_notices(target.chat.id, chosen.chat_id)
    if chosen.chat_id is None:
        text = t("notices_off", target=about)
    else:
        text = t("notices_set", target=about, chat=chosen.name)
    await reply(update, framed(target, text))


def _notices_example(target: Target) -> str:
    channel = f"{target.name} " if target.is_remote else ""
    return html.escape(f"/set {channel}notices me")


async def _stored_name(context: Context, chat_id: int) -> str:
    stored = await runtime_of(context).service.chat(chat_id)
    if stored is not None and stored.title:
        return html.escape(stored.title)
    return f"<code>{chat_id}</code>"


async def notices_chat(
    update: Update, context: Context, target: Target, word: str
) -> NoticesChat:
    """The chat `word` names for notices: `here` (the chat the command was sent in), `me` (the
    sender's private chat with the bot), `off`, or a chat by @username or id that the sender is
    in and the bot may write in. The target itself means `off`."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    assert chat is not None
    typed = word.strip().lower()
    if typed in NOTICES_OFF:
        return NoticesChat()
    anonymous = user is None or (message is not None and message.sender_chat is not None)
    if typed == "here":
        found = NoticesChat(chat.id, _here_name(chat.type, chat.title or ""))
    elif typed == "me":
        if anonymous or user is None:
            return NoticesChat(problem=t("channel_anonymous"))
        found = NoticesChat(user.id, t("notices_your_chat"))
    elif CHAT_REF.match(word.strip()):
        if anonymous or user is None:
            return NoticesChat(problem=t("channel_anonymous"))
        found = await _named_chat(context, word.strip(), user.id)
    else:
        return NoticesChat(problem=t("notices_bad", value=html.escape(word)))
    if found.problem or found.chat_id == target.chat.id:
        return NoticesChat(problem=found.problem)
    assert found.chat_id is not None
    if not target_allowed(update, context, found.chat_id):
        return NoticesChat(problem=t("notices_not_allowed", chat=found.name))
    return found


def _here_name(chat_type: str, title: str) -> str:
    if chat_type == ChatType.PRIVATE or not title:
        return t("notices_this_chat")
    return html.escape(title)


async def _named_chat(context: Context, ref: str, user_id: int) -> NoticesChat:
    """A chat named by @username or id, when the user is in it and the bot may write there."""
    bot = context.bot
    shown = html.escape(ref)
    try:
        found = await bot.get_chat(int(ref) if ref.lstrip("-").isdigit() else ref)
    except (BadRequest, Forbidden):
        return NoticesChat(problem=t("notices_not_found", ref=shown))
    name = html.escape(f"@{found.username}" if found.username else (found.title or ref))
    if found.type == ChatType.PRIVATE:
        if found.id != user_id:  # someone else's private chat with the bot
            return NoticesChat(problem=t("notices_not_yours", ref=shown))
        return NoticesChat(found.id, t("notices_your_chat"))
    if found.type == ChatType.CHANNEL:
        problem = await channel_problem(context, found.id, user_id)
        return NoticesChat(problem=t(problem, channel=name)) if problem else NoticesChat(
            found.id, name
        )
    try:
        member = await bot.get_chat_member(found.id, user_id)
        me = await bot.get_chat_member(found.id, bot.id)
    except (BadRequest, Forbidden):
        return NoticesChat(problem=t("notices_bot_cannot_write", chat=name))
    if member.status not in MEMBERS:
        return NoticesChat(problem=t("notices_user_not_member", chat=name))
    writes = me.status in (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR) or (
        me.status == ChatMemberStatus.RESTRICTED and getattr(me, "can_send_messages", False)
    )
    if not writes:
        return NoticesChat(problem=t("notices_bot_cannot_write", chat=name))
    return NoticesChat(found.id, name)


def which_feed(rows: list[ListedSubscription], name: str, args: list[str], where: Target) -> str:
    """`/set <option> …` without a number in a chat with several feeds (or none): which one?"""
    if not rows:
        return _empty(where)
    channel = f"{where.name} " if where.is_remote else ""
    example = html.escape(" ".join([f"/set {channel}{rows[0].number}", name, *args]))
    lines = [t("set_which_feed", example=example)]
    lines += [t("set_which_item", n=r.number, title=html.escape(display_title(r))) for r in rows]
    return "\n".join(lines)


async def option_pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    _, token, name, channel = fields_of(query.data)
    if not flips(name):
        await query.answer()
        return
    target = await _button_target(update, context, channel)
    if target is None:
        return
    runtime = runtime_of(context)
    chat_id, interval = target.chat.id, runtime.settings.poll_interval
    if token == "default":
        current = await runtime.service.chat_defaults(chat_id)
        options = await runtime.service.update_defaults(chat_id, toggled(current, name))
        await query.answer()
        await _edit_card(update, defaults_card(options, interval, target))
        return
    row = await _find(context, chat_id, token)
    sub = None
    if row is not None:
        change = toggled(row.subscription.options, name)
        sub = await runtime.service.update_options(chat_id, row.subscription.feed_url, change)
    if row is None or sub is None:
        await query.answer(t("set_gone_plain"), show_alert=True)
        return
    row.subscription = sub
    await query.answer()
    await _edit_card(update, subscription_card(row, interval, target))


# -------------------------------------------------------------------- /filter
def after_words(text: str, count: int) -> str:
    """`text` without its first `count` words, the rest exactly as typed (a regular
    expression's spaces matter)."""
    words = text.split(None, count)
    return words[count].strip() if len(words) > count else ""


async def filter_command(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("filter_usage"))
        return
    ref, args = split_target(list(context.args))
    testing = len(args) > 1 and args[1].lower() == "test"
    typed = update.effective_message.text if update.effective_message else None
    text = after_words(typed or "", 2 + (ref is not None) + testing)
    # showing or testing a filter is for everyone in a group; a channel's is for its admins
    target = await resolve_target(update, context, ref, manage=bool(text) and not testing)
    if target is None:
        return
    if not args:
        await reply(update, framed(target, t("filter_usage")))
        return
    runtime = runtime_of(context)
    chat_id = target.chat.id
    url: str | None = None
    if args[0].lower() == "global":
        if testing:
            await reply(update, framed(target, t("filter_test_global")))
            return
        label, current = t("filter_global"), await runtime.service.chat_filter(chat_id)
    else:
        row = await runtime.service.resolve(chat_id, args[0])
        if row is None:
            await reply(update, _unknown(target, args[0]))
            return
        url, current = row.subscription.feed_url, row.subscription.options.filters
        label = html.escape(display_title(row))
    if testing and url is not None:
        await _test_filter(update, context, target, url, label, text)
        return
    if not text:
        await reply(
            update, framed(target, t("filter_show", label=label, filter=describe_filter(current)))
        )
        return
    try:
        spec = "" if text.lower() == "off" else normalize_filter(text)
    except OptionError as exc:
        await reply(update, framed(target, exc.text()))
        return
    await runtime.service.set_filter(chat_id, url, spec)
    key = "filter_set" if spec else "filter_off"
    await reply(update, framed(target, t(key, label=label, filter=describe_filter(spec))))


async def _test_filter(
    update: Update, context: Context, target: Target, url: str, label: str, text: str
) -> None:
    """/filter N test [filter]: the feed's current posts against its filter (or the one given,
    not saved) and the chat's."""
    try:
        candidate = normalize_filter(text) if text else None
    except OptionError as exc:
        await reply(update, framed(target, exc.text()))
        return
    trial = await runtime_of(context).service.try_filter(target.chat.id, url, candidate)
    await reply(update, framed(target, test_report(trial, label, tried=candidate is not None)))


def test_report(trial: FilterTrial, label: str, *, tried: bool) -> str:
    """The answer to /filter N test, within one message: at most TEST_MAX_POSTS posts and
    TEST_BUDGET visible characters, then how many more there were."""
    if trial.error is not None:
        return t("filter_test_failed", label=label, reason=trial.error.text())
    if not trial.posts:
        return t("filter_test_empty", label=label)
    passed = sum(p.verdict.passed for p in trial.posts)
    head = [t("filter_test_header", label=label, passed=passed, total=len(trial.posts))]
    if tried:
        head.append(t("filter_test_tried", filter=describe_filter(trial.feed_spec)))
    elif not trial.feed_spec and not trial.chat_spec:
        head.append(t("filter_test_no_filter"))
    lines, used = [], sum(_visible(line) for line in head)
    for n, post in enumerate(trial.posts):
        line = _test_line(post)
        if n >= TEST_MAX_POSTS or used + _visible(line) > TEST_BUDGET:
            lines.append(t("filter_test_more", count=len(trial.posts) - n))
            break
        lines.append(line)
        used += _visible(line) + 1
    return "\n\n".join(head) + "\n\n" + "\n".join(lines)


def _visible(line: str) -> int:
    """Telegram's measure of a message: UTF-16 code units of its text without the tags."""
    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", line)))


def _test_line(post: PostVerdict) -> str:
    entry, verdict = post.entry, post.verdict
    title = entry.title or entry.link or "…"
    if len(title) > TEST_TITLE_CHARS:
        title = title[: TEST_TITLE_CHARS - 1] + "…"
    shown = html.escape(title)
    if entry.link:
        shown = f'<a href="{html.escape(entry.link, quote=True)}">{shown}</a>'
    scope = t("filter_test_chat_wide") if post.by_chat else ""
    if verdict.rule is None:
        key = "filter_test_pass_unfiltered" if verdict.passed else "filter_test_fail_none"
        return t(key, title=shown, scope=scope)
    terms = [render_term(term) for term in verdict.hits] or [render_rule(verdict.rule)]
    why = ", ".join(_code(term, 60) for term in terms[:3]) + (" …" if len(terms) > 3 else "")
    key = "filter_test_pass" if verdict.passed else "filter_test_fail_veto"
    return t(key, title=shown, why=why, scope=scope)


# -------------------------------------------------------------------- /status
def _state(row: ListedSubscription, zone: str) -> str:
    feed = row.feed
    if feed.retired:
        return t("state_retired")
    if row.subscription.paused:
        return t("state_paused")
    if feed.errors and feed.failing_since:
        return t("status_failing", since=when(feed.failing_since, zone), reason=_reason(feed))
    return t("status_ok")


def _reason(feed: Feed) -> str:
    return feed.failure_reason().text()


def status_line(row: ListedSubscription, zone: str = "UTC") -> str:
    """One feed's line of /status, its dates in the chat's time zone `zone`."""
    feed = row.feed
    paused = row.subscription.paused or feed.retired
    return t(
        "status_item",
        n=row.number,
        title=html.escape(display_title(row)),
        state=_state(row, zone),
        checked=when(feed.last_check, zone),
        new=when(feed.last_new_entry, zone),
        next=t("status_not_scheduled") if paused else when(feed.next_check, zone),
    )


async def status_command(update: Update, context: Context) -> None:
    found = await _where(update, context, list(context.args or []), manage=False)
    if found is None:
        return
    target, _ = found
    status = await runtime_of(context).service.status(target.chat.id)
    if not status.rows:
        await reply(update, _empty(target))
        return
    header = t("status_header", count=len(status.rows), pending=status.pending)
    zone = target.chat.timezone
    if status.next_digest is not None:
        header += "\n" + t("status_digest", count=status.collected,
                            when=when(status.next_digest, zone))
    lines = [framed(target, header), *(status_line(r, zone) for r in status.rows)]
    await reply(update, "\n\n".join(lines))


# ------------------------------------------------------------ /pause, /resume
async def _targets(
    update: Update, context: Context, target: Target, args: list[str]
) -> list[ListedSubscription] | None:
    """Subscriptions named by the arguments (a /list number or URL; none or `all`: every one).
    None after telling the user what went wrong."""
    runtime = runtime_of(context)
    if not args or args[0].lower() == "all":
        rows = await runtime.service.listing(target.chat.id)
        if not rows:
            await reply(update, _empty(target))
            return None
        return rows
    row = await runtime.service.resolve(target.chat.id, args[0])
    if row is None:
        await reply(update, _unknown(target, args[0]))
        return None
    return [row]


async def _managed_rows(
    update: Update, context: Context
) -> tuple[Target, list[str], list[ListedSubscription]] | None:
    """The chat a /pause or /resume acts on (its admins only), the command's arguments after
    it, and the subscriptions they name (all when none); None when the answer was given."""
    found = await _where(update, context, list(context.args or []), manage=True)
    if found is None:
        return None
    target, args = found
    rows = await _targets(update, context, target, args)
    return None if rows is None else (target, args, rows)


async def pause_command(update: Update, context: Context) -> None:
    chosen = await _managed_rows(update, context)
    if chosen is None:
        return
    target, _, rows = chosen
    service = runtime_of(context).service
    changed = await service.pause(target.chat.id, [r.subscription.feed_url for r in rows])
    if len(rows) == 1:
        title = html.escape(display_title(rows[0]))
        text = t("pause_one" if changed else "pause_already", title=title)
    else:
        text = t("pause_all", count=len(changed))
    await reply(update, framed(target, text))


async def resume_command(update: Update, context: Context) -> None:
    chosen = await _managed_rows(update, context)
    if chosen is None:
        return
    target, args, rows = chosen
    paused = [r for r in rows if r.subscription.paused]
    if not paused:
        await reply(update, framed(target, t("resume_nothing")))
        return
    which = "all" if not args or args[0].lower() == "all" else token_of(paused[0].feed.url)
    what = (
        html.escape(display_title(paused[0]))
        if which != "all"
        else t("resume_count", count=len(paused))
    )
    buttons = [
        InlineKeyboardButton(
            t("btn_catch_up"), callback_data=callback("resume", "catch", which, where=target)
        ),
        InlineKeyboardButton(
            t("btn_skip"), callback_data=callback("resume", "skip", which, where=target)
        ),
    ]
    await reply(
        update,
        framed(
            target, t("resume_ask", what=what, limit=runtime_of(context).settings.backlog_limit)
        ),
        reply_markup=InlineKeyboardMarkup([buttons]),
    )


async def resume_pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not query.data:
        return
    _, mode, which, channel = fields_of(query.data)
    target = await _button_target(update, context, channel)
    if target is None:
        return
    await query.answer()
    runtime = runtime_of(context)
    chat_id = target.chat.id
    rows = [
        r
        for r in await runtime.service.listing(chat_id)
        if r.subscription.paused and (which == "all" or token_of(r.feed.url) == which)
    ]
    if not rows:
        await query.edit_message_text(
            framed(target, t("resume_nothing")), parse_mode=ParseMode.HTML
        )
        return
    gate = asyncio.Semaphore(RESUME_CONCURRENCY)

    async def one(url: str) -> Resumed | None:
        async with gate:
            return await runtime.resume(chat_id, url, catch_up=mode == "catch")

    results = await asyncio.gather(*(one(r.subscription.feed_url) for r in rows))
    text = resume_summary(len(rows), mode == "catch", results)
    await query.edit_message_text(
        framed(target, text),
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )


def resume_summary(count: int, catch_up: bool, results: list[Resumed | None]) -> str:
    read = [r for r in results if r is not None]
    queued, too_old = sum(r.queued for r in read), sum(r.too_old for r in read)
    if catch_up:
        lines = [t("resume_done_catch", count=count, queued=queued)]
    else:
        lines = [t("resume_done_skip", count=count)]
        if queued:
            lines.append(t("resume_skip_owed", queued=queued))
    if too_old:
        lines.append(t("resume_too_old", count=too_old))
    if len(read) < len(results):
        lines.append(t("resume_unreadable", count=len(results) - len(read)))
    return "\n".join(lines)

