"""Every user-facing string, by language. Catalogues are data: bot/locales/<lang>.toml."""

from __future__ import annotations

import re
import tomllib
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

DEFAULT_LANG = "en"

#: the language of the chat whose update is being handled (set once per update by the handlers)
current_lang: ContextVar[str] = ContextVar("current_lang", default=DEFAULT_LANG)


@cache
def catalogue(lang: str) -> dict[str, str]:
    try:
        text = resources.files("bot").joinpath(f"locales/{lang}.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {k: str(v) for k, v in tomllib.loads(text).items()}


@cache
def languages() -> tuple[str, ...]:
    folder = resources.files("bot").joinpath("locales")
    return tuple(sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    ))


def t(key: str, lang: str | None = None, /, **values: object) -> str:
    """The message `key` in `lang` (default: the current chat's; falling back to English),
    with {placeholders} filled."""
    lang = lang or current_lang.get()
    template = catalogue(lang).get(key) or catalogue(DEFAULT_LANG).get(key)
    if template is None:
        raise KeyError(f"no message {key!r} in the catalogue")
    return template.format(**values) if values else template


def catalogue_language(code: str | None) -> str | None:
    """The catalogue for a language tag: "zh", "zh-hans", "zh_CN", "en-US" -> its primary subtag
    when a catalogue exists for it, else None."""
    primary = re.split(r"[-_]", (code or "").strip().lower(), maxsplit=1)[0]
    return primary if primary and primary in languages() else None


#: directives of the date patterns in the catalogues (date_short, date_long, date_post)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DIRECTIVE = re.compile(r"%([a-zA-Z%])")


def format_time(
    when: datetime | float,
    lang: str | None = None,
    /,
    style: str = "short",
    timezone: str = "UTC",
) -> str:
    """A moment as the chat's language writes it; `style` is short (no year), long or post.

    The patterns live in the catalogues (keys date_<style>): %d / %e day with / without a
    leading zero, %m / %n month number likewise, %b month abbreviation (English), %Y year,
    %H:%M time, %Z zone. An unknown zone falls back to UTC."""
    if isinstance(when, datetime):
        moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(when, tz=UTC)
    try:
        local = moment.astimezone(ZoneInfo(timezone or "UTC"))
    except Exception:  # ZoneInfoNotFoundError, malformed keys, odd files
        local = moment.astimezone(UTC)
    fields = {
        "d": f"{local.day:02d}",
        "e": str(local.day),
        "m": f"{local.month:02d}",
        "n": str(local.month),
        "b": _MONTHS[local.month - 1],
        "Y": str(local.year),
        "H": f"{local.hour:02d}",
        "M": f"{local.minute:02d}",
        "Z": local.tzname() or "UTC",
        "%": "%",
    }
    pattern = t(f"date_{style}", lang)
    return _DIRECTIVE.sub(lambda m: fields.get(m.group(1), m.group(0)), pattern)
