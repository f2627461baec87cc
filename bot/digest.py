"""Digests (issue 18): when a subscription's posts are collected into one message. Pure: no
I/O, no clock.

A schedule is `hourly` (on the hour) or `daily HH:MM`, in the chat's time zone (bot.hours), stored
as that text; `""` is none (each post is sent as it comes). A post collected at `now` goes out
in the digest at `next_digest(now, ...)`; the collected posts wait in storage
(`models.DigestItem`) and `pipeline/digest.py` turns those due into messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import OptionError
from bot.hours import zone

_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")
#: a daily digest without a time: in the morning
DAILY_DEFAULT = 8 * 60
OFF_WORDS = frozenset({"off", "no", "none", "-", "default", "never"})


@dataclass(frozen=True)
class DigestSchedule:
    """`every` is "hourly" or "daily"; `at`: minutes after local midnight (daily)."""

    every: str
    at: int = 0

    def text(self) -> str:
        """The stored form (and how it is shown)."""
        if self.every == "hourly":
            return "hourly"
        return f"daily {self.at // 60:02d}:{self.at % 60:02d}"


def parse_digest(raw: str) -> DigestSchedule | None:
    """`hourly`, `daily`, `daily 08:00` (`daily 8`, `08:00`) -> a schedule; `off` -> None;
    anything else an OptionError naming what was typed."""
    words = raw.strip().lower().split()
    if not words or words[0] in OFF_WORDS:
        return None
    typed = raw.strip()
    if words == ["hourly"] or words == ["hour"]:
        return DigestSchedule("hourly")
    if words[0] in ("daily", "day"):
        words = words[1:]
        if not words:
            return DigestSchedule("daily", DAILY_DEFAULT)
    if len(words) != 1:
        raise OptionError("digest_bad", value=typed)
    match = _CLOCK.match(words[0])
    if match is None:
        raise OptionError("digest_bad", value=typed)
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if hour > 23 or minute > 59:
        raise OptionError("digest_bad", value=typed)
    return DigestSchedule("daily", hour * 60 + minute)


def read_digest(stored: str) -> DigestSchedule | None:
    """A stored schedule (written by `DigestSchedule.text`); None for none or unreadable."""
    try:
        return parse_digest(stored) if stored else None
    except OptionError:
        return None


def next_digest(now: float, schedule: DigestSchedule, timezone: str) -> float:
    """The epoch second of the first digest after `now` in the chat's wall-clock time: the next
    full hour, or the next day's `at` (today's when still to come). Across a daylight-saving
    change a time the clocks skip comes at the first moment after it."""
    tz = zone(timezone)
    local = datetime.fromtimestamp(now, tz)
    if schedule.every == "hourly":
        # by the epoch, not the wall clock: an hour is an hour, whatever the zone's offset
        # (zones a half or quarter hour off get their digest on their own full hour)
        offset = local.utcoffset() or timedelta(0)
        shifted = now + offset.total_seconds()
        return shifted - shifted % 3600 + 3600 - offset.total_seconds()
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    for days in (0, 1, 2):
        moment = (day + timedelta(days=days, minutes=schedule.at)).replace(tzinfo=tz).timestamp()
        if moment > now:
            return moment
    return now + 86400.0  # unreachable
