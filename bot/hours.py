"""A chat's hours (issue 18): its time zone and its quiet hours. Pure: no I/O, no clock.

A time zone is an IANA name (`Europe/Berlin`), found whatever its case. Quiet hours are a
window of the day in the chat's zone, `23:00-07:00` (it may wrap midnight), written as
stored text `"23:00-07:00"` or `"23:00-07:00 silent"`; `""` is no window. In the window a
post is held until it ends (`held_until`), or in silent mode sent without a sound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.errors import OptionError

UTC_NAMES = frozenset({"utc", "gmt", "z", "etc/utc"})


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def find_zone(typed: str) -> str | None:
    """The IANA name the user meant (`europe/berlin` -> `Europe/Berlin`), or None."""
    word = typed.strip()
    if word.lower() in UTC_NAMES:
        return "UTC"
    name = _zones().get(word.lower())
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def zone(name: str) -> ZoneInfo:
    """The zone of a stored name; UTC for one this machine does not know."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# ------------------------------------------------------------------------ quiet hours
_WINDOW = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?$")
#: what users may type after the window for each mode
MODES = {"hold": "hold", "silent": "silent", "quiet": "silent", "mute": "silent"}


@dataclass(frozen=True)
class Quiet:
    """Quiet hours: minutes after local midnight where the window starts and ends."""

    start: int
    end: int
    mode: str = "hold"  # "hold": posts wait for the window's end; "silent": sent without sound

    def text(self) -> str:
        """The stored form (and how it is shown)."""
        shown = f"{_clock(self.start)}-{_clock(self.end)}"
        return shown if self.mode == "hold" else f"{shown} {self.mode}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_quiet(raw: str) -> Quiet | None:
    """`23:00-07:00 [silent]` -> Quiet; `off` and the like -> None; else OptionError."""
    words = raw.strip().lower().split()
    if not words or words[0] in {"off", "no", "none", "-", "default"}:
        return None
    mode = "hold"
    if len(words) > 1 and words[-1] in MODES:
        mode, words = MODES[words[-1]], words[:-1]
    match = _WINDOW.match("".join(words))
    if match is None:
        raise OptionError("quiet_bad", value=raw.strip())
    h1, m1, h2, m2 = (int(g or 0) for g in match.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise OptionError("quiet_bad", value=raw.strip())
    start, end = (h1 * 60 + m1) % 1440, (h2 * 60 + m2) % 1440
    if start == end:
        raise OptionError("quiet_empty", value=raw.strip())
    return Quiet(start, end, mode)


def read_quiet(stored: str) -> Quiet | None:
    """A stored window (written by `Quiet.text`); None for none or an unreadable one."""
    try:
        return parse_quiet(stored) if stored else None
    except OptionError:
        return None


def _inside(minute: int, window: Quiet) -> bool:
    if window.start < window.end:
        return window.start <= minute < window.end
    return minute >= window.start or minute < window.end  # wraps midnight


def is_quiet(now: float, window: Quiet | None, timezone: str) -> bool:
    """Whether the epoch second `now` falls in the window, in the chat's zone."""
    if window is None:
        return False
    local = datetime.fromtimestamp(now, zone(timezone))
    return _inside(local.hour * 60 + local.minute, window)


def quiet_end(now: float, window: Quiet | None, timezone: str) -> float | None:
    """When the window `now` is in ends (epoch seconds); None when `now` is outside it.

    Local wall-clock time: across a daylight-saving change the end is the next moment the
    chat's clocks show the window's end (or the first moment after it, in a skipped hour)."""
    if not is_quiet(now, window, timezone):
        return None
    assert window is not None
    tz = zone(timezone)
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    for days in (0, 1):
        candidate = day + timedelta(days=days, minutes=window.end)
        moment = candidate.replace(tzinfo=tz).timestamp()
        if moment > now:
            return moment
    return now  # unreachable for a window shorter than a day


def held_until(now: float, window: Quiet | None, timezone: str) -> float:
    """The epoch second before which a post queued at `now` may not be sent: the window's end
    in hold mode while in the window, else 0 (at once)."""
    if window is None or window.mode != "hold":
        return 0.0
    return quiet_end(now, window, timezone) or 0.0


def silenced(now: float, window: Quiet | None, timezone: str) -> bool:
    """Whether a post sent at `now` goes without a sound (silent-mode quiet hours)."""
    return window is not None and window.mode == "silent" and is_quiet(now, window, timezone)
