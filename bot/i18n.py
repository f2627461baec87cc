"""Every user-facing string, by language. Catalogues are data: bot/locales/<lang>.toml."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

DEFAULT_LANG = "en"


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


def t(key: str, lang: str = DEFAULT_LANG, /, **values: object) -> str:
    """The message `key` in `lang` (falling back to English), with {placeholders} filled."""
    template = catalogue(lang).get(key) or catalogue(DEFAULT_LANG).get(key)
    if template is None:
        raise KeyError(f"no message {key!r} in the catalogue")
    return template.format(**values) if values else template
