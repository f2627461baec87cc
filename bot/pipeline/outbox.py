"""From rendered posts to deliveries (pure): chat dedup, filters, the backlog cap, follow-ups,
and the bot's own notices, with where they go: a chat's feed notices go to the chat its
`notices` setting names (`/set @channel notices me`), never into it then; and a feed address
that carries credentials is shown only in private chats."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.digest import next_digest, read_digest
from bot.errors import Reason
from bot.feeds.diff import entry_prints
from bot.feeds.filters import matches
from bot.feeds.urls import public_url
from bot.hours import held_until, read_quiet, silenced
from bot.i18n import format_time, t
from bot.models import (
    ApiCall,
    Chat,
    Delivery,
    DigestItem,
    Entry,
    Feed,
    Prints,
    RenderedMessage,
    Subscription,
    pack_print,
)

#: entry prints a chat remembers (a post reaching it through two feeds is sent once)
CHAT_SEEN_CAP = 2000


def merge_chat_seen(seen: Sequence[str], prints: list[str]) -> Prints:
    """A chat's seen-set with `prints` added (newest last), bounded by CHAT_SEEN_CAP."""
    return as_prints(seen).with_added(prints, CHAT_SEEN_CAP)


def as_prints(seen: Sequence[str]) -> Prints:
    return seen if isinstance(seen, Prints) else Prints(seen)


@dataclass(frozen=True)
class Moment:
    """A notice value shown as a date in the receiving chat's language."""

    stamp: float


def localized(value: object, lang: str, *, private: bool = True) -> str:
    """A notice value as Telegram HTML in `lang`: reasons and moments translated, the rest
    escaped. `private`: the chat is a private one (else addresses lose their credentials)."""
    if not private:
        value = without_credentials(value)
    if isinstance(value, Reason):
        return value.text(lang)
    if isinstance(value, Moment):
        return html.escape(format_time(value.stamp, lang, "long"))
    return html.escape(str(value))


def without_credentials(value: object) -> object:
    """A notice value as a channel or group may read it: each address in it (itself, or an
    argument of a reason) without a user name, password or token-looking query."""
    if isinstance(value, str):
        return public_url(value) if "://" in value else value
    if isinstance(value, Reason):
        return Reason(value.key, {k: without_credentials(v) for k, v in value.args.items()})
    return value


def is_private_chat(chat: Chat) -> bool:
    """Only a private chat may see a feed's address whole (its subscriber typed it)."""
    return chat.type == "private" and chat.id > 0


def notice(text_html: str) -> RenderedMessage:
    """A message from the bot itself (not a post): HTML text, no preview."""
    return RenderedMessage(
        attempts=(
            ApiCall(
                "sendMessage",
                {
                    "text": text_html,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": True},
                },
            ),
        )
    )


def delivery(sub: Subscription, key: str, message: RenderedMessage, now: float) -> Delivery:
    return Delivery(
        id=uuid.uuid4().hex,
        chat_id=sub.chat_id,
        feed_url=sub.feed_url,
        entry_key=key,
        message=message,
        created=now,
        thread_id=sub.thread_id,
        silent=sub.options.silent,
    )


def notice_delivery(
    sub: Subscription, key: str, now: float, lang: str = "en", *, private: bool = True,
    **values: object,
) -> Delivery:
    """Catalogue notice `key` for one subscriber, in its chat's language (`private`: see
    `localized`)."""
    shown = {k: localized(v, lang, private=private) for k, v in values.items()}
    return delivery(sub, f"notice:{key}:{now}", notice(t(key, lang, **shown)), now)


def notices_chat(chat: Chat) -> int | None:
    """Where `chat`'s feed notices go when not into the chat itself (its `notices` setting)."""
    return chat.notices if chat.notices not in (None, chat.id) else None


def subscriber_notices(
    told: Sequence[tuple[Subscription, Chat]], key: str, now: float, values: dict[str, object]
) -> list[Delivery]:
    """Notice `key` for each (subscription, its chat): into the chat, or, when the chat's
    notices go elsewhere, one notice per receiving chat, naming the chats it is about (in the
    language of the first). Feed addresses with credentials are shown only in private chats."""
    out: list[Delivery] = []
    routed: dict[int, list[tuple[Subscription, Chat]]] = {}
    for sub, chat in told:
        elsewhere = notices_chat(chat)
        if elsewhere is None:
            private = is_private_chat(chat)
            out.append(notice_delivery(sub, key, now, chat.lang, private=private, **values))
        else:
            routed.setdefault(elsewhere, []).append((sub, chat))
    for chat_id, about in routed.items():
        sub, first = about[0]
        lang, private = first.lang, chat_id > 0  # a user's private chat with the bot
        shown = {k: localized(v, lang, private=private) for k, v in values.items()}
        names = ", ".join(dict.fromkeys(chat.title or str(chat.id) for _, chat in about))
        text = t("channel_prefix", lang, channel=html.escape(names), text=t(key, lang, **shown))
        out.append(Delivery(
            id=uuid.uuid4().hex, chat_id=chat_id, feed_url=sub.feed_url,
            entry_key=f"notice:{key}:{now}", message=notice(text), created=now,
        ))
    return out


def shown_url(text: str, private: bool) -> str:
    return text if private else str(without_credentials(text))


def posts_sent(
    chat: Chat, sub: Subscription, fresh: list[Entry], backlog_limit: int
) -> tuple[list[Entry], int]:
    """The `fresh` posts one subscriber is sent: those its chat has not seen and its filters
    let through, at most `backlog_limit` (the newest); and how many more were skipped."""
    seen = as_prints(chat.seen)
    wanted = [
        e
        for e in fresh
        if not any(seen.holds(pack_print(p)) for p in entry_prints(e))
        and matches(e, sub.options.filters, chat.filters)
    ]
    skipped = max(len(wanted) - max(backlog_limit, 1), 0)
    return wanted[skipped:], skipped


def post_deliveries(
    chat: Chat,
    sub: Subscription,
    feed: Feed,
    fresh: list[Entry],
    messages: dict[tuple[int, str], RenderedMessage],
    now: float,
    backlog_limit: int,
) -> list[Delivery]:
    """The deliveries of `fresh` posts for one subscriber: those its chat has not seen and its
    filters let through, at most `backlog_limit` (the newest; a notice says how many were
    skipped), each followed by its follow-up. Every fresh post now counts as seen in `chat`
    (its seen-set is updated in place), sent or filtered."""
    sent, skipped = posts_sent(chat, sub, fresh, backlog_limit)
    chat.seen = merge_chat_seen(chat.seen, [p for e in fresh for p in entry_prints(e)])
    out: list[Delivery] = []
    if skipped:
        private = is_private_chat(chat)
        text = t(
            "backlog_skipped",
            chat.lang,
            count=skipped,
            link=html.escape(shown_url(feed.link or feed.url, private), quote=True),
            title=html.escape(shown_url(feed.title or feed.url, private)),
        )
        out.append(delivery(sub, f"backlog:{now}", notice(text), now))
    for entry in sent:
        message = messages[(sub.chat_id, entry.key)]  # every fresh entry was rendered
        out.append(delivery(sub, entry.key, message, now))
        if message.follow_up is not None:  # next in the chat's order: nothing comes between
            follow_up = delivery(sub, entry.key, message.follow_up, now)
            out.append(replace(follow_up, reply_to_previous=True))
    return quieted(out, sub, chat, now)


#: posts one check may add to a chat's digest (a digest is one message: more than the backlog cap
#: of separate posts is welcome there, but a feed dumping its archive is not)
DIGEST_PER_CHECK = 200


def collects_digest(sub: Subscription) -> bool:
    """Whether the subscription's posts go into a digest (its `digest` option) instead."""
    return read_digest(sub.options.digest) is not None


def digest_items(
    chat: Chat, sub: Subscription, feed_title: str, fresh: list[Entry], now: float
) -> list[DigestItem]:
    """The `fresh` posts one digest subscriber collects (not seen in its chat, let through by
    its filters), due at the subscription's next digest in the chat's zone. Every fresh post
    now counts as seen in `chat` (updated in place), as with `post_deliveries`."""
    schedule = read_digest(sub.options.digest)
    assert schedule is not None
    kept, _ = posts_sent(chat, sub, fresh, DIGEST_PER_CHECK)
    chat.seen = merge_chat_seen(chat.seen, [p for e in fresh for p in entry_prints(e)])
    due = next_digest(now, schedule, chat.timezone)
    name = sub.options.custom_title or feed_title
    return [
        DigestItem(
            id=uuid.uuid4().hex, chat_id=sub.chat_id, feed_url=sub.feed_url,
            feed_title=shown_url(name, is_private_chat(chat)), title=entry.title,
            link=entry.link, due=due, created=now + n * 1e-6, thread_id=sub.thread_id,
            entry_key=entry.key,
        )
        for n, entry in enumerate(kept)  # oldest first, and kept in that order
    ]


def quieted(
    deliveries: list[Delivery], sub: Subscription, chat: Chat, now: float
) -> list[Delivery]:
    """Posts queued in the subscription's quiet hours (its `quiet` option, in the chat's time
    zone): held until the window ends, or sent without a sound in silent mode."""
    window = read_quiet(sub.options.quiet)
    if window is None:
        return deliveries
    until = held_until(now, window, chat.timezone)
    if until:
        return [replace(d, not_before=until) for d in deliveries]
    if silenced(now, window, chat.timezone):
        return [replace(d, silent=True) for d in deliveries]
    return deliveries


def notify_subscribers(
    subs: list[Subscription],
    chats: dict[int, Chat],
    key: str,
    now: float,
    values: dict[str, object],
    *,
    pause: bool = False,
) -> tuple[list[Delivery], list[Subscription]]:
    """Notice `key` about every active subscription (paused ones and paused chats hear
    nothing), where each chat's notices go (`subscriber_notices`); with pause=True the
    subscriptions are paused too. Returns the notices and the subscriptions that changed."""
    told, paused = [], []
    for sub in subs:
        chat = chats.get(sub.chat_id) or unknown_chat(sub.chat_id)
        if sub.paused or chat.paused:
            continue
        told.append((sub, chat))
        if pause:
            paused.append(replace(sub, paused=True, paused_at=now))
    return subscriber_notices(told, key, now, values), paused


def unknown_chat(chat_id: int) -> Chat:
    """A subscriber's chat that has no record: private or not by its id."""
    return Chat(id=chat_id, type="private" if chat_id > 0 else "group")
