"""The per-subscription options: each declared once, as a field of `SubscriptionOptions`.

A field's metadata (see `option`) says what users type after /set, how the value is read
(`Kind.parse`, refusing with an `OptionError` whose key names the reason) and shown, the
catalogue keys of its card line, button and example, and whom it affects (render, delivery,
schedule). Everything else iterates the registry (`OPTIONS`): /set parsing, the card and its
buttons, the help and usage examples, storage (`to_dict` / `from_dict`), the render options
(`bot.render.RenderOptions.for_subscription`) and rescheduling.

The same pattern as bot.config's settings (dataclass fields with metadata).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from bot.digest import DAILY_DEFAULT, DigestSchedule, parse_digest
from bot.errors import OptionError, Series
from bot.feeds.request_headers import (
    HeaderEdit,
    read_auth,
    read_header_edit,
    shown_auth,
    shown_headers,
)
from bot.hashtags import hashtag_line, parse_tags
from bot.hours import parse_quiet
from bot.i18n import t
from bot.template import BUILT_IN, PLACEHOLDERS, parse_template, typed_template


class Effect(Enum):
    """Whom an option's value matters to."""

    RENDER = "render"  # carried into bot.render.RenderOptions
    DELIVERY = "delivery"  # read when a post is queued (e.g. Delivery.silent)
    SCHEDULE = "schedule"  # a change reschedules the feed's next check
    #: how the feed is fetched (request headers, basic auth): part of the feed's identity, so
    #: a change moves the subscription to the feed record fetched so (bot.service
    #: .change_fetch). Kept on that feed record (Feed.request_headers), never with the
    #: subscription: the value here is filled from the feed when the subscription is listed
    FETCH = "fetch"


@dataclass(frozen=True)
class Limits:
    """What bounds a value may have on this bot (from the settings and the schedule rules)."""

    min_interval: int
    max_interval: int


# ------------------------------------------------------------------------- durations
_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}  # a bare number means minutes


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


# ----------------------------------------------------------------------------- kinds
ON_WORDS = frozenset({"on", "yes", "true", "1"})
OFF_WORDS = frozenset({"off", "no", "false", "0"})
#: what resets a text or an interval to its default
CLEAR_WORDS = frozenset({"", "off", "default", "auto", "-"})


class Kind:
    """How one kind of value is read from /set and shown on the card."""

    #: a bare `/set N <name>` and the option's button flip it (see `flipped`)
    flips = False

    def parse(self, raw: str, limits: Limits) -> Any:
        raise NotImplementedError

    def show(self, value: Any, default_interval: int) -> str:
        """The value on the card and its button (Telegram HTML)."""
        raise NotImplementedError

    def flipped(self, value: Any) -> Any:
        raise TypeError(f"{type(self).__name__} values are not flipped")

    def button_values(self) -> tuple[str, ...]:
        """Values that get a button each on the card (`name=value`), instead of one button."""
        return ()


class Toggle(Kind):
    flips = True

    def parse(self, raw: str, limits: Limits) -> bool:
        word = raw.strip().lower()
        if word in ON_WORDS:
            return True
        if word in OFF_WORDS:
            return False
        raise OptionError("set_bad_switch", value=raw)

    def show(self, value: Any, default_interval: int) -> str:
        return t("opt_on") if value else t("opt_off")

    def flipped(self, value: Any) -> bool:
        return not value


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few values; `words` maps what users may type to the stored value, and each
    stored value is shown through the catalogue key `shown + value`."""

    words: Mapping[str, str]
    shown: str
    refused: str  # catalogue key of the refusal, with {value}
    flips = True

    def parse(self, raw: str, limits: Limits) -> str:
        value = self.words.get(raw.strip().lower())
        if value is None:
            raise OptionError(self.refused, value=raw.strip())
        return value

    def show(self, value: Any, default_interval: int) -> str:
        return t(f"{self.shown}{value}")

    def flipped(self, value: Any) -> str:
        """The next value, in the order `words` first names them."""
        values = list(dict.fromkeys(self.words.values()))
        return values[(values.index(value) + 1) % len(values)] if value in values else values[0]


@dataclass(frozen=True)
class Text(Kind):
    """Free text of at most `limit` characters (spaces collapsed); a clear word empties it,
    and an empty value is shown through the catalogue key `empty`."""

    limit: int
    empty: str

    def parse(self, raw: str, limits: Limits) -> str:
        text = " ".join(raw.split())
        return "" if text.lower() in CLEAR_WORDS else text[: self.limit]

    def show(self, value: Any, default_interval: int) -> str:
        return html.escape(value) or t(self.empty)


@dataclass(frozen=True)
class Style(Kind):
    """A built-in style (`words` maps what users type to it, shown through `shown + value`), or
    a template of the user's own (bot.template): a value without a placeholder is taken for a
    mistyped style name. Each built-in style has its own button on the card."""

    words: Mapping[str, str]
    shown: str
    flips = True

    def parse(self, raw: str, limits: Limits) -> str:
        text = typed_template(raw)
        word = text.lower()
        if word in self.words or word in CLEAR_WORDS:
            return self.words.get(word, "full")
        if not any(c in text for c in "{}<>") and len(text.split()) == 1:
            raise OptionError("set_style_bad", value=text)
        parse_template(text)  # refuses with the first problem
        return text

    def show(self, value: Any, default_interval: int) -> str:
        if value in self.button_values():
            return t(f"{self.shown}{value}")
        shown = value if len(value) <= 120 else value[:119] + "…"
        return t(f"{self.shown}custom", template=html.escape(shown))

    def button_values(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.words.values()))

    def flipped(self, value: Any) -> str:
        """The next built-in style (a bare `/set N style`)."""
        values = self.button_values()
        return values[(values.index(value) + 1) % len(values)] if value in values else values[0]


@dataclass(frozen=True)
class Tags(Kind):
    """Hashtags of the subscription's own (bot.hashtags), stored space-separated without `#`."""

    empty: str

    def parse(self, raw: str, limits: Limits) -> str:
        if raw.strip().lower() in CLEAR_WORDS:
            return ""
        return " ".join(parse_tags(raw))

    def show(self, value: Any, default_interval: int) -> str:
        return html.escape(hashtag_line(value.split())) or t(self.empty)


@dataclass(frozen=True)
class QuietHours(Kind):
    """A quiet-hours window (bot.hours), stored as its text (`23:00-07:00 silent`); a clear
    word gives "": none."""

    empty: str

    def parse(self, raw: str, limits: Limits) -> str:
        window = parse_quiet(raw)
        return "" if window is None else window.text()

    def show(self, value: Any, default_interval: int) -> str:
        """As typed (`23:00-07:00 silent`), in every language."""
        return f"<code>{html.escape(value)}</code>" if value else t(self.empty)


@dataclass(frozen=True)
class DigestKind(Kind):
    """A digest schedule (bot.digest), stored as its text (`daily 08:00`, `hourly`); a clear
    word gives "": each post as it comes."""

    empty: str
    #: its button goes off -> daily -> hourly -> off
    flips = True

    def parse(self, raw: str, limits: Limits) -> str:
        schedule = parse_digest(raw)
        return "" if schedule is None else schedule.text()

    def show(self, value: Any, default_interval: int) -> str:
        """As stored (`daily 08:00`), in every language; plain, since buttons show it too."""
        return html.escape(value) if value else t(self.empty)

    def flipped(self, value: Any) -> str:
        cycle = ["", DigestSchedule("daily", DAILY_DEFAULT).text(), "hourly"]
        return cycle[(cycle.index(value) + 1) % 3] if value in cycle else ""


class Interval(Kind):
    """A duration between the bot's smallest interval and the longest the schedule allows;
    a clear word gives None: the bot's default."""

    def parse(self, raw: str, limits: Limits) -> int | None:
        value = raw.strip()
        if value.lower() in CLEAR_WORDS:
            return None
        seconds = parse_duration(value)
        if seconds is None:
            raise OptionError("set_interval_bad", value=value)
        if seconds < limits.min_interval:
            raise OptionError("set_interval_min", minimum=format_duration(limits.min_interval))
        if seconds > limits.max_interval:  # every feed is checked at least daily: say so
            raise OptionError("set_interval_max", maximum=format_duration(limits.max_interval))
        return seconds

    def show(self, value: Any, default_interval: int) -> str:
        if value:
            return format_duration(value)
        return t("opt_interval_default", value=format_duration(default_interval))


class RequestHeaders(Kind):
    """The subscription's own request headers (bot.feeds.request_headers): one is set, replaced
    or removed at a time, so what is read is the edit (`HeaderEdit`), applied to the feed's
    headers by the service. Values are shown masked but for a few harmless ones."""

    def parse(self, raw: str, limits: Limits) -> HeaderEdit:
        return read_header_edit(raw)

    def show(self, value: Any, default_interval: int) -> str:
        return t("list_separator").join(shown_headers(value)) or t("opt_headers_none")


class BasicAuth(Kind):
    """HTTP basic auth, `user:password` ("" for none); shown as `user:••••`."""

    def parse(self, raw: str, limits: Limits) -> str:
        return read_auth(raw)

    def show(self, value: Any, default_interval: int) -> str:
        return shown_auth(value) or t("opt_auth_none")


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One per-subscription option. `field` and `default` come from its SubscriptionOptions
    field (or are given to `OPTIONS.add` for an option registered at run time)."""

    name: str  # what users type after /set (and what buttons carry)
    kind: Kind
    affects: Effect
    label: str  # catalogue key of its line on the card, with {value}
    button: str = ""  # catalogue key of its card button, with {value}; "" = no button
    example: str = ""  # the value in the /set examples (language-neutral) ...
    example_key: str = ""  # ... or a catalogue key, for an example made of words
    #: other names users may type for it (not listed, not on buttons)
    aliases: tuple[str, ...] = ()
    #: catalogue key of the refusal when given as a chat default; "" = may be a default
    not_default: str = ""
    #: the chat's own (quiet hours, digest): `/set <name> …` without a feed's number in a chat
    #: with several feeds sets it for all of them and for those added later
    chat_wide: bool = False
    field: str = ""
    default: Any = None

    def parse(self, raw: str, limits: Limits, *, for_defaults: bool = False) -> Any:
        if for_defaults and self.not_default:
            raise OptionError(self.not_default)
        return self.kind.parse(raw, limits)

    def shown(self, value: Any, default_interval: int) -> str:
        return self.kind.show(value, default_interval)

    def example_value(self) -> str:
        return t(self.example_key) if self.example_key else self.example


def option(default: Any, **spec: Any) -> Any:
    """A SubscriptionOptions field declaring an option (`spec`: Option's fields but `field`)."""
    return field(default=default, metadata={"option": Option(default=default, **spec)})


#: "auto": a page when the post is too long for one message
INSTANT_VIEW = {"auto": "auto", "always": "always", "on": "always", "off": "off", "never": "off"}
STYLES = {
    "full": "full", "summary": "full", "title": "title", "short": "title", "link": "title",
    **{name: name for name in BUILT_IN},
}
MAX_TITLE = 100


@dataclass
class SubscriptionOptions:
    silent: bool = option(
        False, name="silent", kind=Toggle(), affects=Effect.DELIVERY,
        label="opt_line_silent", button="btn_silent", example="on",
    )
    link_preview: bool = option(
        True, name="preview", kind=Toggle(), affects=Effect.RENDER,
        label="opt_line_preview", button="btn_preview", example="off",
    )
    style: str = option(  # "full" | "title" | a built-in template's name | a template
        "full", name="style", kind=Style(STYLES, "opt_style_"), affects=Effect.RENDER,
        label="opt_line_style", button="btn_style", example="compact", aliases=("template",),
    )
    pictures: bool = option(
        True, name="pictures", kind=Toggle(), affects=Effect.RENDER,
        label="opt_line_pictures", button="btn_pictures", example="off",
    )
    hashtags: bool = option(
        True, name="hashtags", kind=Toggle(), affects=Effect.RENDER,
        label="opt_line_hashtags", button="btn_hashtags", example="off",
    )
    tags: str = option(  # the subscription's own hashtags, space-separated, without "#"
        "", name="tags", kind=Tags("opt_tags_none"), affects=Effect.RENDER,
        label="opt_line_tags", example="news tech",
    )
    instant_view: str = option(  # "auto" | "always" | "off"
        "auto", name="instantview", kind=Choice(INSTANT_VIEW, "opt_iv_", "set_iv_bad"),
        affects=Effect.RENDER, label="opt_line_instantview", button="btn_instantview",
        example="always",
    )
    fulltext: bool = option(  # each new post's body is its web page's article (bot.fulltext)
        False, name="fulltext", kind=Toggle(), affects=Effect.RENDER,
        label="opt_line_fulltext", button="btn_fulltext", example="on",
    )
    quiet: str = option(  # quiet hours in the chat's time zone (bot.hours); "": none
        "", name="quiet", kind=QuietHours("opt_quiet_none"), affects=Effect.DELIVERY,
        label="opt_line_quiet", example="23:00-07:00", chat_wide=True,
    )
    digest: str = option(  # "daily HH:MM" | "hourly" in the chat's time zone; "": none
        "", name="digest", kind=DigestKind("opt_digest_none"), affects=Effect.DELIVERY,
        label="opt_line_digest", button="btn_digest", example="daily 08:00", chat_wide=True,
    )
    custom_title: str = option(
        "", name="title", kind=Text(MAX_TITLE, "opt_title_feed"), affects=Effect.RENDER,
        label="opt_line_title", example_key="opt_title_example",
        not_default="set_title_not_default",
    )
    #: request headers but a basic auth, in order (as the feed record keeps them: not stored
    #: with the subscription, see Effect.FETCH)
    headers: tuple[tuple[str, str], ...] = option(
        (), name="header", kind=RequestHeaders(), affects=Effect.FETCH,
        label="opt_line_headers", example="User-Agent: Mozilla/5.0", aliases=("headers",),
        not_default="set_fetch_not_default",
    )
    auth: str = option(  # `user:password` of basic auth ("": none); not stored here either
        "", name="auth", kind=BasicAuth(), affects=Effect.FETCH, label="opt_line_auth",
        example="user:password", not_default="set_fetch_not_default",
    )
    interval: int | None = option(  # seconds; None = operator default
        None, name="interval", kind=Interval(), affects=Effect.SCHEDULE,
        label="opt_line_interval", example="30m",
    )
    filters: str = ""  # comma-separated terms, "!term" excludes: set by /filter, not /set
    #: values of options registered at run time (OPTIONS.add), which have no field of their own
    added: dict[str, Any] = field(default_factory=dict)

    def get(self, option: Option) -> Any:
        if option.field in _DECLARED:
            return getattr(self, option.field)
        return self.added.get(option.field, option.default)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set options by field name; ValueError for a name no option has."""
        unknown = set(changes) - set(_DECLARED) - {o.field for o in OPTIONS}
        if unknown:
            raise ValueError(f"unknown subscription option(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            if name in _DECLARED:
                setattr(self, name, value)
            else:
                self.added[name] = value

    def to_dict(self) -> dict[str, Any]:
        """The stored form: field name -> value, one flat mapping (as older versions wrote).
        Fetch settings are the feed record's (Effect.FETCH), not stored here."""
        stored = {name: getattr(self, name) for name in _STORED}
        return {**stored, **{o.field: self.get(o) for o in OPTIONS if o.field not in _DECLARED}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubscriptionOptions:
        """From the stored form; what a record lacks takes its default, keys no option has
        (left by other versions) are ignored."""
        options = cls(**{k: v for k, v in data.items() if k in _STORED})
        options.added = {o.field: data[o.field] for o in OPTIONS.added() if o.field in data}
        return options


#: SubscriptionOptions fields of their own (all but `added`), in field order
_DECLARED = tuple(f.name for f in fields(SubscriptionOptions) if f.name != "added")
#: ... and those stored with the subscription: all but the fetch settings (Effect.FETCH)
_STORED = tuple(
    f.name
    for f in fields(SubscriptionOptions)
    if f.name in _DECLARED
    and not ("option" in f.metadata and f.metadata["option"].affects is Effect.FETCH)
)


class Registry:
    """The options in the order the card shows them, found by what users type."""

    def __init__(self, declared: Iterable[Option]) -> None:
        self._options = {o.name: o for o in declared}

    def __iter__(self) -> Iterator[Option]:
        return iter(tuple(self._options.values()))

    def get(self, typed: str) -> Option | None:
        name = typed.strip().lower()
        found = self._options.get(name)
        return found or next((o for o in self if name in o.aliases), None)

    def affecting(self, effect: Effect) -> list[Option]:
        return [o for o in self if o.affects is effect]

    def changes_affect(self, changes: Iterable[str], effect: Effect) -> bool:
        """Whether changing these fields (of SubscriptionOptions) matters to `effect`."""
        return bool({o.field for o in self.affecting(effect)} & set(changes))

    def added(self) -> list[Option]:
        return [o for o in self if o.field not in _DECLARED]

    def add(self, option: Option) -> Option:
        """Register an option without a SubscriptionOptions field (a test's, a plugin's): its
        value lives in SubscriptionOptions.added. `field` defaults to its name."""
        if option.name in self._options:
            raise ValueError(f"option {option.name!r} exists")
        added = replace(option, field=option.field or option.name)
        self._options[added.name] = added
        return added

    def remove(self, name: str) -> None:
        if self._options[name].field in _DECLARED:
            raise ValueError(f"option {name!r} is a SubscriptionOptions field")
        del self._options[name]


OPTIONS = Registry(
    replace(f.metadata["option"], field=f.name)
    for f in fields(SubscriptionOptions)
    if "option" in f.metadata
)


# ------------------------------------------------------------------------------ /set
def parse_option(
    name: str, raw: str, limits: Limits, *, for_defaults: bool = False
) -> dict[str, Any]:
    """`/set N <name> <raw>` -> {SubscriptionOptions field: value}; OptionError if refused."""
    found = OPTIONS.get(name)
    if found is None:
        raise OptionError("set_unknown_option", name=name, options=option_names())
    return {found.field: found.parse(raw.strip(), limits, for_defaults=for_defaults)}


def toggled(options: SubscriptionOptions, name: str) -> dict[str, Any]:
    """The change one keyboard button (or a bare `/set N <name>`) makes: a flip, or for a
    button of one value (`style=compact`), that value."""
    typed, _, value = name.partition("=")
    found = OPTIONS.get(typed)
    if found is not None and value and value in found.kind.button_values():
        return {found.field: value}
    if found is None or value or not found.kind.flips:
        raise ValueError(f"option {name!r} does not flip")
    return {found.field: found.kind.flipped(options.get(found))}


def flips(name: str) -> bool:
    """Whether `toggled` knows what a button (or a bare `/set N <name>`) named so changes."""
    typed, _, value = name.partition("=")
    found = OPTIONS.get(typed)
    if found is None:
        return False
    return value in found.kind.button_values() if value else found.kind.flips


# --------------------------------------------------------------------- descriptions
def describe_options(options: SubscriptionOptions, default_interval: int) -> str:
    """The card's lines: one per option, in registry order."""
    return "\n".join(
        t(o.label, value=o.shown(options.get(o), default_interval)) for o in OPTIONS
    )


def button_labels(options: SubscriptionOptions, default_interval: int) -> list[tuple[str, str]]:
    """(what the button names, its label) for every option with a button, in registry order;
    an option whose values each have a button gets one per value (`style=compact`), the
    chosen one marked."""
    labels: list[tuple[str, str]] = []
    for o in (o for o in OPTIONS if o.button):
        current = options.get(o)
        picks = [
            (f"{o.name}={v}", t("btn_pick", value=o.shown(v, 0), chosen=mark(v == current)))
            for v in o.kind.button_values()
        ]
        labels += picks or [(o.name, t(o.button, value=o.shown(current, default_interval)))]
    return labels


def mark(chosen: bool) -> str:
    return "✅ " if chosen else ""


def option_names() -> Series:
    """Every option's name, for "there is no option …"."""
    return Series("opt_name_listed", tuple(o.name for o in OPTIONS))


def _typed(o: Option) -> str:
    return f"{o.name} {o.example_value()}"


def help_examples() -> str:
    """`/set 2 <name> <example>` for every option, for /help."""
    sep = t("list_separator")
    return sep.join(f"<code>/set 2 {html.escape(_typed(o))}</code>" for o in OPTIONS)


def usage_examples() -> str:
    """The same, the first one whole and the others as what follows `/set 2`, for /set."""
    typed = [html.escape(_typed(o)) for o in OPTIONS]
    shown = [f"<code>/set 2 {typed[0]}</code>", *(f"<code>{x}</code>" for x in typed[1:])]
    return t("list_separator").join(shown)


#: the custom template /help shows
TEMPLATE_EXAMPLE = 'template "<b>{title}</b>\\n{summary}\\n{link}"'


def template_help() -> str:
    """The /help line on templates and hashtags."""
    placeholders = ", ".join(f"<code>{{{name}}}</code>" for name in PLACEHOLDERS)
    example = html.escape(f"/set 2 {TEMPLATE_EXAMPLE}")
    return t("help_templates", example=example, placeholders=placeholders)
