"""When a feed is checked next, and which posts a resumed subscription is owed. Pure functions.

Shared by the poller (after each check) and the service (when a command changes a feed's
subscribers), so both agree on a feed's effective interval.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from bot.feeds.diff import is_seen, new_entries
from bot.models import Entry, Feed, Subscription

DAY = 86400.0
#: the longest a feed ever waits between checks, and so the longest interval a chat may set
MAX_INTERVAL = int(DAY)
#: catch-up leaves out posts the bot saw before and that are dated more than this before the
#: pause: the chat's bounded seen-memory may simply have forgotten that it got them
RESUME_GRACE = DAY


def effective_interval(subs: Iterable[Subscription], default: float) -> float:
    """The shortest interval among the feed's active (not paused) subscribers, else `default`;
    never longer than a day, never below a second."""
    chosen = [s.options.interval for s in subs if s.options.interval and not s.paused]
    base = min(chosen) if chosen else default
    return float(min(max(base, 1), DAY))


def rescheduled(feed: Feed, interval: float, now: float) -> float:
    """The feed's next check once its effective interval became `interval`: counted from its
    last check (never in the past). A failing feed keeps its backoff unless this is sooner."""
    target = max((feed.last_check or now) + interval, now)
    if feed.errors:
        return min(feed.next_check, target)
    return target


@dataclass
class ResumePlan:
    """What a resumed subscription is sent: `send`, oldest first; `too_old` counts the posts
    catch-up left out because they are dated more than RESUME_GRACE before the pause."""

    send: list[Entry] = field(default_factory=list)
    too_old: int = 0


def owed_on_resume(
    entries: list[Entry],
    chat_seen: Collection[str],
    feed_seen: Collection[str],
    paused_at: float | None,
    *,
    catch_up: bool,
) -> ResumePlan:
    """The posts of the feed a resumed subscription should get (filters and the backlog cap
    apply later).

    A post the chat has not seen is one of:
    - unknown to the bot (no check has seen it: the feed was not checked since it appeared).
      Dated before the pause, it arrived while the subscription was active: always owed, even
      on "skip to now". Otherwise (dated later, or undated) it counts as arriving in the pause.
    - known to the bot but not to the chat: a check for another chat saw it during the pause,
      or the chat's bounded memory forgot it long ago. Dated more than RESUME_GRACE before the
      pause, it is taken for the latter.
    Catch-up sends every post from the pause; skip sends only the ones from before it."""
    since = paused_at
    plan = ResumePlan()
    feed_set = set(feed_seen)
    for entry in new_entries(entries, chat_seen):
        dated = entry.published.timestamp() if entry.published is not None else None
        known = is_seen(entry, feed_set)
        before_pause = since is not None and dated is not None and dated < since
        if not known and before_pause:
            plan.send.append(entry)
        elif not catch_up:
            continue
        elif known and since is not None and dated is not None and dated < since - RESUME_GRACE:
            plan.too_old += 1
        else:
            plan.send.append(entry)
    return plan
