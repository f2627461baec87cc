"""Every user-facing string, by language. Catalogues are data: bot/locales/<lang>.toml."""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from functools import cache
from importlib import resources

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


def languages() -> list[str]:
    folder = resources.files("bot").joinpath("locales")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def t(key: str, lang: str | None = None, /, **values: object) -> str:
    """The message `key` in `lang` (default: the current chat's; falling back to English),
    with {placeholders} filled."""
    lang = lang or current_lang.get()
    template = catalogue(lang).get(key) or catalogue(DEFAULT_LANG).get(key)
    if template is None:
        raise KeyError(f"no message {key!r} in the catalogue")
    return template.format(**values) if values else template
