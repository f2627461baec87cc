"""/sub and /unsub, here or in a channel named first, and the feed-choice cards: the buttons
offering a page's feeds, or the addresses of a plain private message; /preview, whose
Subscribe button is such a card."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.delivery.direct import send_rendered
from bot.errors import OptionError, Reason
from bot.feeds.request_headers import secret_in
from bot.feeds.urls import (
    Address,
    NotAnAddress,
    looks_like_channel_name,
    read_address,
    urls_in_text,
)
from bot.handlers.common import (
    ANSWERED,
    Context,
    Target,
    as_alert,
    channel_problem,
    channel_target,
    error_text,
    framed,
    may_manage,
    refuse_unless_manager,
    remember_chat,
    reply,
    runtime_of,
    split_target,
    topic_of,
)
from bot.handlers.live_reply import LiveReply
from bot.i18n import t
from bot.models import Chat
from bot.options import Limits, parse_option
from bot.service import ListedSubscription, PendingChoice, PreviewOutcome, SubscribeOutcome

log = logging.getLogger(__name__)

SUB_CONCURRENCY = 4  # addresses of one /sub checked at the same time
SLOW_AFTER_S = 1.0  # a single /sub that takes longer shows "checking…" meanwhile


# --------------------------------------------------------------------------- /sub
async def sub(update: Update, context: Context) -> None:
    words = list(dict.fromkeys(context.args or []))
    if not words:
        await reply(update, t("sub_usage"))
        return
    if _channel_typo(words):
        await reply(update, t("sub_did_you_mean", channel=html.escape("@" + words[0])))
        return
    if await refuse_unless_manager(update, context):
        return
    stored = await remember_chat(update, context)
    message = update.effective_message
    assert message is not None
    target = SubTarget(stored, thread_id=topic_of(message))
    if fetch_settings_given(list(context.args or [])):
        await subscribe_fetching(update, context, target, list(context.args or []))
        return
    await subscribe_words(update, context, target, words)


async def sub_in_channel(update: Update, context: Context) -> None:
    """/sub @channel URL…"""
    found = await _channel_and_urls(update, context, "sub_usage", manage=True)
    if found is not None:
        where, urls = found
        if fetch_settings_given(urls):
            await subscribe_fetching(update, context, where, urls)
            return
        await subscribe_words(update, context, where, list(dict.fromkeys(urls)))


#: what may follow /sub's one address: a fetch setting (bot.options, Effect.FETCH)
FETCH_WORDS = frozenset({"header", "headers", "auth"})


def fetch_settings_given(words: list[str]) -> bool:
    """`/sub URL header Name: value` or `/sub URL auth user:password`."""
    return len(words) >= 2 and words[1].lower() in FETCH_WORDS


async def subscribe_fetching(
    update: Update, context: Context, target: SubTarget, words: list[str]
) -> None:
    """/sub of one feed that answers only with a header or a login of the subscription's own
    (bot.service.subscribe_fetching)."""
    message = update.effective_message
    assert message is not None
    before = 3 + bool(target.channel)  # /sub [@channel] URL header|auth
    typed = (message.text or "").split(None, before)
    raw = typed[before] if len(typed) > before else ""
    runtime = runtime_of(context)
    try:
        change = parse_option(words[1], raw, Limits(runtime.settings.min_interval, 0))
    except OptionError as exc:
        await reply(update, target.frame(exc.text()))
        return
    outcome = await runtime.service.subscribe_fetching(
        target.chat, words[0], change, thread_id=target.thread_id
    )
    text = describe_outcome(outcome, channel=target.channel)
    if outcome.status == "added" and secret_in(change):
        text = f"{text}\n\n{t('set_fetch_secret_typed')}"
    await reply(update, target.frame(text))


async def _channel_and_urls(
    update: Update, context: Context, usage_key: str, *, manage: bool
) -> tuple[SubTarget, list[str]] | None:
    """`/command @channel URL…`: the channel (checked by `channel_target`) and the URLs; None
    once the user was answered (no URL: the command's usage)."""
    ref, urls = split_target(list(context.args or []))
    if ref is None:
        return None
    if not urls:
        await reply(update, t(usage_key))
        return None
    target = await channel_target(update, context, ref, manage=manage)
    if target is None:
        return None
    return SubTarget(target.chat, channel=target.name), urls


def _channel_typo(words: list[str], then: Callable[[str], bool] | None = None) -> bool:
    """"/sub mychannel URL": a channel's name without its @ (not an address), followed by
    what the command takes (by default, a web address)."""
    follows = then or (lambda word: isinstance(read_address(word), Address))
    return (
        len(words) > 1
        and looks_like_channel_name(words[0])
        and isinstance(read_address(words[0]), NotAnAddress)
        and any(follows(word) for word in words[1:])
    )


class SubTarget:
    """Where /sub's feeds go: the chat itself (maybe a forum topic), or a channel named in a
    private chat (`channel` is then its shown name, and answers say so)."""

    def __init__(self, chat: Chat, *, thread_id: int | None = None, channel: str = "") -> None:
        self.chat, self.thread_id, self.channel = chat, thread_id, channel

    def frame(self, text: str) -> str:
        if not self.channel:
            return text
        return t("channel_prefix", channel=html.escape(self.channel), text=text)

    @property
    def callback_prefix(self) -> str:
        return "chsub" if self.channel else "sub"


async def subscribe_words(
    update: Update, context: Context, target: SubTarget, words: list[str]
) -> None:
    """/sub's words: refuse what cannot be an address, check the rest (a few at a time), and
    answer in one message, edited as each address is checked."""
    message = update.effective_message
    assert message is not None
    plan = [read_address(word) for word in words]
    addresses = list({a.word: a for a in plan if isinstance(a, Address)}.values())
    refused = [a for a in plan if isinstance(a, NotAnAddress)]
    if not addresses:
        await reply(update, target.frame(refusal_text(refused)))
        return
    single = len(plan) == 1
    live = LiveReply(message, delay=SLOW_AFTER_S if single else 0.0)
    outcomes: dict[str, SubscribeOutcome] = {}
    live.update(target.frame(progress_text(addresses, outcomes, refused)))
    words_checked = [a.word for a in addresses]

    def on_done(n: int, outcome: SubscribeOutcome) -> None:
        outcomes[words_checked[n]] = outcome
        live.update(target.frame(progress_text(addresses, outcomes, refused)))

    try:
        await runtime_of(context).service.subscribe_many(
            target.chat,
            words_checked,
            thread_id=target.thread_id,
            concurrency=SUB_CONCURRENCY,
            on_done=on_done,
        )
        await finish_sub(update, context, live, target, [outcomes[w] for w in words_checked],
                         summary_text(addresses, outcomes, refused) if not single else "")
    except Exception as exc:
        await live.finish(target.frame(error_text(exc)))
        setattr(exc, ANSWERED, True)  # on_error must not say it a second time
        raise
    finally:
        await live.close()


async def finish_sub(
    update: Update,
    context: Context,
    live: LiveReply,
    target: SubTarget,
    outcomes: list[SubscribeOutcome],
    summary: str,
) -> None:
    """The answer in place of the progress: one outcome (buttons when a page has several
    feeds), or the summary followed by a card for each such page."""
    chat = update.effective_chat
    assert chat is not None
    if not summary:
        (outcome,) = outcomes
        if outcome.status != "choose":
            await live.finish(target.frame(describe_outcome(outcome, channel=target.channel)))
            return
        text, markup = await choice_card(context, target, outcome, chat.id)
        await live.finish(text, markup)
        return
    await live.finish(target.frame(summary))
    for outcome in outcomes:
        if outcome.status == "choose":
            await offer_choices(update, context, target, outcome)


def refusal_text(refused: list[NotAnAddress]) -> str:
    """One line per word that is not a feed address (one for all the plain words)."""
    lines = [outcome_line(_refused_outcome(r)) for r in refused if r.reason != "not_url"]
    words = [r.word for r in refused if r.reason == "not_url"]
    if words:
        shown = ", ".join(f"<code>{html.escape(w or ' ')}</code>" for w in words)
        lines.append(t("sub_not_urls", words=shown))
    return "\n".join(lines)


def _refused_outcome(refused: NotAnAddress) -> SubscribeOutcome:
    reason = Reason(f"error_{refused.reason}")
    return SubscribeOutcome(url=refused.word, status="failed", reason=reason)


def progress_text(
    addresses: list[Address], outcomes: dict[str, SubscribeOutcome], refused: list[NotAnAddress]
) -> str:
    if len(addresses) == 1 and not refused and not outcomes:
        return t("sub_line_checking", url=html.escape(addresses[0].word))
    done = sum(1 for a in addresses if a.word in outcomes)
    lines = [t("sub_progress", done=done, total=len(addresses))]
    for address in addresses:
        outcome = outcomes.get(address.word)
        lines.append(
            outcome_line(outcome)
            if outcome
            else t("sub_line_checking", url=html.escape(address.word))
        )
    if refused:
        lines.append(refusal_text(refused))
    return "\n".join(lines)


def summary_text(
    addresses: list[Address], outcomes: dict[str, SubscribeOutcome], refused: list[NotAnAddress]
) -> str:
    statuses = [outcomes[a.word].status for a in addresses]
    header = t(
        "sub_summary",
        added=statuses.count("added"),
        exists=statuses.count("exists"),
        failed=statuses.count("failed") + statuses.count("limit") + len(refused),
    )
    lines = [header, *(outcome_line(outcomes[a.word]) for a in addresses)]
    if refused:
        lines.append(refusal_text(refused))
    return "\n".join(lines)


def outcome_line(outcome: SubscribeOutcome) -> str:
    """One line of a several-address /sub answer."""
    url = html.escape(outcome.url)
    title = html.escape(outcome.title or outcome.url)
    if outcome.status == "added":
        return t("sub_line_added", title=title, url=url)
    if outcome.status == "exists":
        return t("sub_line_exists", title=title, url=url)
    if outcome.status == "choose":
        return t("sub_line_choose", url=url)
    if outcome.status == "limit":
        return t("sub_line_limit", url=url, limit=limit_of(outcome))
    return t("sub_line_failed", url=url, reason=outcome_reason(outcome.reason))


def describe_outcome(outcome: SubscribeOutcome, *, channel: str = "") -> str:
    url = html.escape(outcome.url)
    title = html.escape(outcome.title or outcome.url)
    if outcome.status == "added" and outcome.page:
        return t("sub_discovered", page=html.escape(outcome.page), title=title, url=url)
    if outcome.status == "added" and channel:
        return t("sub_ok_channel", title=title, url=url, channel=html.escape(channel))
    if outcome.status == "added":
        return t("sub_ok", title=title, url=url)
    if outcome.status == "exists":
        return t("sub_exists", title=title, url=url)
    if outcome.status == "limit":
        return t("sub_limit", limit=limit_of(outcome))
    failed = t("sub_failed", url=url, reason=outcome_reason(outcome.reason))
    if outcome.reason is not None and outcome.reason.key in LOGIN_REFUSALS:
        failed += "\n" + t("sub_needs_login", url=url)
    return failed


#: a /sub refused with these may work with a login or a cookie (/sub URL auth|header …)
LOGIN_REFUSALS = frozenset({"error_http_401", "error_http_403"})


def limit_of(outcome: SubscribeOutcome) -> object:
    return outcome.reason.args.get("limit", "") if outcome.reason else ""


def outcome_reason(reason: Reason | None) -> str:
    """Why a /sub failed, for the chat (HTML, in its language)."""
    return reason.text() if reason else t("error_unknown")


# ------------------------------------------------------------------ choice cards
async def choice_card(
    context: Context, target: SubTarget, outcome: SubscribeOutcome, card_chat: int
) -> tuple[str, InlineKeyboardMarkup]:
    """The text and buttons of a card offering the feeds of a page; the choice is kept by the
    service, so the buttons still work after a restart."""
    choice = PendingChoice(
        target=target.chat.id,
        page=outcome.url,
        options=outcome.choices[:10],
        thread_id=target.thread_id,
    )
    token = await runtime_of(context).service.open_choice(card_chat, choice)
    buttons = [
        [InlineKeyboardButton(title or url, callback_data=f"{target.callback_prefix}:{token}:{n}")]
        for n, (url, title) in enumerate(choice.options)
    ]
    text = target.frame(t("sub_choose", page=html.escape(outcome.url)))
    return text, InlineKeyboardMarkup(buttons)


async def offer_choices(
    update: Update, context: Context, target: SubTarget, outcome: SubscribeOutcome
) -> None:
    chat = update.effective_chat
    assert chat is not None
    text, markup = await choice_card(context, target, outcome, chat.id)
    await reply(update, text, reply_markup=markup)


def choice_data(data: str | None) -> tuple[str, int] | None:
    """("token", option number) from a button's "sub:<token>:<n>" (or "chsub:…")."""
    parts = (data or "").split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


async def close_card(query: Any, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Put `text` on a choice card in place of its buttons (best effort: it may be gone)."""
    try:
        await query.edit_message_text(
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_markup=markup,  # none: the buttons go
        )
    except TelegramError as exc:
        log.debug("could not edit the choice card: %s", exc)


async def refuse_closed_choice(query: Any) -> None:
    """A press on a card whose choice was made, forgotten or never ours: say so, drop its
    buttons."""
    await query.answer(as_alert(t("choice_closed")), show_alert=True)
    await drop_buttons(query)


async def drop_buttons(query: Any) -> None:
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.debug("could not remove the buttons: %s", exc)


async def chosen(update: Update, context: Context) -> None:
    """A feed button of a card in this chat (a page's feeds, or a URL sent as plain text)."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None:
        return
    parsed = choice_data(query.data)
    if not await may_manage(update, context):
        await query.answer(as_alert(t("admins_only")), show_alert=True)
        return
    service = runtime_of(context).service
    choice = await service.take_choice(chat.id, parsed[0]) if parsed else None
    if parsed is None or choice is None or parsed[1] >= len(choice.options):
        await refuse_closed_choice(query)
        return
    await query.answer()
    url, title = choice.options[parsed[1]]
    await close_card(query, t("sub_line_checking", url=html.escape(title or url)))
    stored = await remember_chat(update, context)
    target = SubTarget(stored, thread_id=choice.thread_id)
    outcome = await service.subscribe(
        stored, url, thread_id=choice.thread_id, chosen=not choice.discover
    )
    await show_on_card(context, query, target, outcome, chat.id)


async def show_on_card(
    context: Context, query: Any, target: SubTarget, outcome: SubscribeOutcome, card_chat: int
) -> None:
    """The outcome of a button press, in place of the card's text and buttons."""
    if outcome.status == "choose":
        text, markup = await choice_card(context, target, outcome, card_chat)
        await close_card(query, text, markup)
        return
    await close_card(query, target.frame(describe_outcome(outcome, channel=target.channel)))


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
    problem = await channel_problem(context, channel.id, user.id)
    if problem:
        return None, t(problem, channel=html.escape(name))
    service = runtime_of(context).service
    stored = await service.touch_chat(channel.id, "channel", channel.title or "")
    return Target(stored, name), ""


# ----------------------------------------------------------------------- /preview
async def preview(update: Update, context: Context) -> None:
    """/preview URL: the feed's newest post as this chat would get it, then a Subscribe
    button (pressing it is /sub: admins only in groups). Anyone may look."""
    words = list(context.args or [])
    if not words:
        await reply(update, t("preview_usage"))
        return
    if _channel_typo(words):
        await reply(update, t("sub_did_you_mean", channel=html.escape("@" + words[0])))
        return
    stored = await remember_chat(update, context)
    message = update.effective_message
    assert message is not None
    await show_preview(update, context, SubTarget(stored, thread_id=topic_of(message)), words[0])


async def preview_in_channel(update: Update, context: Context) -> None:
    """/preview @channel URL: rendered as the channel would get it, shown here."""
    found = await _channel_and_urls(update, context, "preview_usage", manage=False)
    if found is not None:
        where, urls = found
        await show_preview(update, context, where, urls[0])


async def show_preview(update: Update, context: Context, target: SubTarget, word: str) -> None:
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None
    live = LiveReply(message, delay=SLOW_AFTER_S)
    live.update(target.frame(t("sub_line_checking", url=html.escape(word))))
    try:
        outcome = await runtime_of(context).service.preview(target.chat, word)
        if outcome.status in ("failed", "choose"):
            await live.finish(target.frame(preview_refusal(outcome, target)))
            return
        await live.close()
        if live.message is not None:  # "checking…": the post and its card come after it
            with contextlib.suppress(TelegramError):
                await live.message.delete()
        if outcome.message is not None:
            await send_rendered(
                context.bot,
                chat.id,
                outcome.message,
                feed_url=outcome.url,
                entry_key=outcome.entry_key,
                # in the chat's own topic; a channel's preview is shown here, as a reply
                thread_id=topic_of(message),
                silent=outcome.silent,
                reply_to=message.message_id if chat.type != ChatType.PRIVATE else None,
            )
        text, markup = await preview_card(context, target, outcome, chat.id)
        await reply(update, text, reply_markup=markup)
    except Exception as exc:
        await live.finish(target.frame(error_text(exc)))
        setattr(exc, ANSWERED, True)  # on_error must not say it a second time
        raise
    finally:
        await live.close()


def preview_refusal(outcome: PreviewOutcome, target: SubTarget) -> str:
    """Why there is no preview: /sub's reasons, or the feeds of a page, one command each."""
    if outcome.status == "failed":
        return t("sub_failed", url=html.escape(outcome.url), reason=outcome_reason(outcome.reason))
    channel = f"{target.channel} " if target.channel else ""
    lines = [t("preview_choose", page=html.escape(outcome.url))]
    lines += [
        t("preview_choose_item", title=html.escape(title or url),
          command=html.escape(f"/preview {channel}{url}"))
        for url, title in outcome.choices[:10]
    ]
    return "\n".join(lines)


async def preview_card(
    context: Context, target: SubTarget, outcome: PreviewOutcome, card_chat: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The message after the post: what it was a preview of, and its Subscribe button (a
    choice card of one feed: the press goes the way of /sub's buttons)."""
    title, url = html.escape(outcome.title or outcome.url), html.escape(outcome.url)
    if outcome.known:
        return target.frame(t("preview_known", title=title, url=url)), None
    key = "preview_card" if outcome.status == "ok" else "preview_card_empty"
    choice = PendingChoice(
        target=target.chat.id,
        page=outcome.page,
        options=[(outcome.url, outcome.title)],
        thread_id=target.thread_id,
    )
    token = await runtime_of(context).service.open_choice(card_chat, choice)
    button = InlineKeyboardButton(
        t("btn_preview_subscribe"), callback_data=f"{target.callback_prefix}:{token}:0"
    )
    return target.frame(t(key, title=title, url=url)), InlineKeyboardMarkup([[button]])


# ------------------------------------------------------------- plain text, private
async def plain_text(update: Update, context: Context) -> None:
    """A private message that is not a command: offer to follow the addresses it holds, or
    say in one line how the bot is used."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not message.text or chat.type != ChatType.PRIVATE:
        return
    urls = urls_in_text(message.text)[:5]
    if not urls:
        await reply(update, t("plain_hint"))
        return
    choice = PendingChoice(target=chat.id, page="", options=[(u, u) for u in urls], discover=True)
    token = await runtime_of(context).service.open_choice(chat.id, choice)
    buttons = [
        [InlineKeyboardButton(t("btn_subscribe", url=_short(u)), callback_data=f"sub:{token}:{n}")]
        for n, u in enumerate(urls)
    ]
    await reply(update, t("plain_offer"), reply_markup=InlineKeyboardMarkup(buttons))


def _short(url: str, limit: int = 40) -> str:
    shown = url.split("://", 1)[-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


# ------------------------------------------------------------------------- /unsub
async def unsub(update: Update, context: Context) -> None:
    if not context.args:
        await reply(update, t("unsub_usage"))
        return
    if _channel_typo(context.args, then=lambda w: w.isdigit() or "." in w):
        await reply(update, t("sub_did_you_mean", channel=html.escape("@" + context.args[0])))
        return
    if await refuse_unless_manager(update, context):
        return
    chat = update.effective_chat
    assert chat is not None
    refs = list(dict.fromkeys(context.args))
    results = await runtime_of(context).service.unsubscribe_many(chat.id, refs)
    await reply(update, unsub_text(results))


async def unsub_in_channel(update: Update, context: Context) -> None:
    """/unsub @channel N|URL…"""
    ref, refs = split_target(list(context.args or []))
    if ref is None:
        return
    if not refs:
        await reply(update, t("unsub_usage"))
        return
    target = await channel_target(update, context, ref)
    if target is None:
        return
    service = runtime_of(context).service
    results = await service.unsubscribe_many(target.chat.id, list(dict.fromkeys(refs)))
    await reply(update, framed(target, unsub_text(results)))


def unsub_text(results: list[tuple[str, ListedSubscription | None]]) -> str:
    """One answer for all of /unsub's references."""
    lines = []
    for ref, row in results:
        if row is None:
            lines.append(t("unsub_unknown", ref=html.escape(ref)))
        else:
            title = row.feed.title or row.subscription.feed_url
            lines.append(t("unsub_ok", title=html.escape(title)))
    return "\n".join(lines)
