"""The option registry (bot/options.py): one declaration per option is all the bot needs.

A throwaway toggle registered here (and removed afterwards), with its catalogue lines given
here, is parsed by /set, listed on the card, the help and the "no such option" answer, gets a
button, is stored and read back, and reaches the renderer, without any other module knowing it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bot
from bot.config import ConfigError, load
from bot.errors import FeedbotError, OptionError
from bot.handlers.options import describe_options, options_keyboard, parse_option, toggled
from bot.i18n import catalogue, languages, t
from bot.models import Subscription, SubscriptionOptions
from bot.options import OPTIONS, Effect, Option, Toggle, help_examples, usage_examples
from bot.render import RenderOptions
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer

USER = 1001
#: what a developer would write in each catalogue for the new toggle
TRIAL_LINES = {
    "opt_line_trial": "🧪 Trial: {value}",
    "btn_trial": "🧪 Trial button: {value}",
}


def trial_option(affects: Effect) -> Option:
    return Option(
        name="trial", kind=Toggle(), affects=affects, label="opt_line_trial",
        button="btn_trial", example="on", default=False,
    )


def register_trial(monkeypatch: pytest.MonkeyPatch, affects: Effect) -> Option:
    for lang in languages():
        for key, text in TRIAL_LINES.items():
            monkeypatch.setitem(catalogue(lang), key, text)
    return OPTIONS.add(trial_option(affects))


@pytest.fixture(params=[Effect.RENDER, Effect.DELIVERY])
def trial(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Option]:
    added = register_trial(monkeypatch, request.param)
    try:
        yield added
    finally:
        OPTIONS.remove("trial")


@pytest.fixture
def render_trial(monkeypatch: pytest.MonkeyPatch) -> Iterator[Option]:
    added = register_trial(monkeypatch, Effect.RENDER)
    try:
        yield added
    finally:
        OPTIONS.remove("trial")


def test_a_registered_toggle_is_parsed_described_stored_and_rendered(trial: Option) -> None:
    assert parse_option("trial", "on", min_interval=60) == {"trial": True}
    assert parse_option("TRIAL", "off", min_interval=60, for_defaults=True) == {"trial": False}
    with pytest.raises(OptionError) as refused:
        parse_option("trial", "maybe", min_interval=60)
    assert refused.value.key == "set_bad_switch"
    with pytest.raises(OptionError) as unknown:
        parse_option("loud", "on", min_interval=60)
    assert unknown.value.text().endswith("interval, trial.")

    options = SubscriptionOptions()
    assert "🧪 Trial: off" in describe_options(options, 300).splitlines()
    options.update(toggled(options, "trial"))
    assert options.get(trial) is True
    assert "🧪 Trial: on" in describe_options(options, 300)
    keyboard = options_keyboard(options, "tok", default_interval=300).to_dict()["inline_keyboard"]
    assert {"text": "🧪 Trial button: on", "callback_data": "opt:tok:trial"} in keyboard[-1]
    assert help_examples().endswith("<code>/set 2 trial on</code>")
    assert usage_examples().endswith("<code>trial on</code>")

    stored = Subscription(1, "https://e.test/f.xml", options=options).to_dict()
    assert stored["options"]["trial"] is True
    back = Subscription.from_dict(stored).options
    assert back.get(trial) is True and back == options
    assert SubscriptionOptions.from_dict({}).get(trial) is False  # a record from before it

    render = RenderOptions.for_subscription(options, "en")
    if trial.affects is Effect.RENDER:
        assert render.value("trial") is True
    else:
        with pytest.raises(KeyError):
            render.value("trial")
    assert (render.style, render.pictures, render.link_preview) == ("full", True, True)


async def test_set_reads_and_shows_a_registered_toggle_end_to_end(
    render_trial: Option,
    start_bot: Callable[..., Any],
    fake_api: FakeBotApi,
    feed_server: FeedServer,
) -> None:
    feed_server.set_feed("/t.xml", hugo_feed(range(1, 3)))
    async with start_bot() as chat:
        await chat.say(USER, f"/sub {feed_server.url('/t.xml')}")
        (card,) = await chat.say(USER, "/set 1 trial on")
        assert "🧪 Trial: on" in card.plain and "Silent notifications: off" in card.plain
        rows = card.params["reply_markup"]["inline_keyboard"]
        (data,) = [b["callback_data"] for row in rows for b in row if b["text"].startswith("🧪")]
        fake_api.press_button(USER, card.message_id, data)
        await fake_api.await_for(lambda: len(fake_api.calls("editMessageText")) == 1)
        shown = fake_api.message(USER, card.message_id)
        assert shown is not None and "🧪 Trial: off" in shown["text"]
        (helped,) = await chat.say(USER, "/help")
        assert "/set 2 trial on" in helped.plain


def test_declared_options_can_be_neither_removed_nor_registered_twice() -> None:
    assert [o.name for o in OPTIONS] == [
        "silent", "preview", "style", "pictures", "hashtags", "tags", "instantview", "fulltext",
        "quiet", "digest", "title", "header", "auth", "interval",
    ]
    with pytest.raises(ValueError):
        OPTIONS.remove("silent")
    with pytest.raises(ValueError):
        OPTIONS.add(Option("silent", Toggle(), Effect.DELIVERY, label="opt_line_silent"))


def test_the_stored_form_is_what_older_versions_wrote_and_read() -> None:
    options = SubscriptionOptions(silent=True, interval=600)
    assert options.to_dict() == {
        "silent": True, "link_preview": True, "style": "full", "pictures": True,
        "hashtags": True, "tags": "", "instant_view": "auto", "fulltext": False,
        "quiet": "", "digest": "", "custom_title": "", "interval": 600, "filters": "",
    }
    assert list(options.to_dict()) == [
        "silent", "link_preview", "style", "pictures", "hashtags", "tags", "instant_view",
        "fulltext", "quiet", "digest", "custom_title",
        "interval", "filters",
    ]
    # fetch settings are the feed record's (Effect.FETCH): never stored with a subscription
    fetching = SubscriptionOptions(headers=(("Cookie", "a=b"),), auth="u:secret")
    assert "headers" not in fetching.to_dict() and "auth" not in fetching.to_dict()
    assert SubscriptionOptions.from_dict({"auth": "u:p"}).auth == ""
    old = SubscriptionOptions.from_dict({"silent": True, "gone_option": 1})
    assert old == SubscriptionOptions(silent=True)  # missing: defaults; unknown: ignored
    with pytest.raises(ValueError):
        old.update({"gone_option": 2})


def test_every_declared_option_has_its_catalogue_keys_and_render_field() -> None:
    english = catalogue("en")
    for o in OPTIONS:
        keys = [o.label, o.button, o.example_key, o.not_default]
        assert all(k in english for k in keys if k), o.name
        assert "{value}" in english[o.label]
        assert o.example or o.example_key, o.name
        if o.affects is Effect.RENDER:  # a declared render option is a typed RenderOptions field
            assert o.field in RenderOptions.__dataclass_fields__, o.name
    assert t("set_unknown_option", "zh", name="x", options="y").count("y") == 1


def test_option_errors_are_feedbot_errors_with_catalogue_reasons() -> None:
    error = OptionError("set_interval_min", minimum="1m")
    assert isinstance(error, FeedbotError) and error.kind == "option"
    assert error.reason.key == "set_interval_min" and error.text() == t(
        "set_interval_min", "en", minimum="1m"
    )
    english = catalogue("en")
    raised = []
    for path in sorted(Path(bot.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "OptionError":
                first = node.args[0] if node.args else None
                raised.append(first.value if isinstance(first, ast.Constant) else "<expression>")
    assert len(raised) > 8
    assert [k for k in raised if k != "<expression>" and k not in english] == []


def test_configuration_errors_name_a_catalogue_message() -> None:
    english = catalogue("en")
    for env in (
        {"FEEDBOT_POLL_INTERVAL": "0"},
        {"FEEDBOT_POLL_INTERVAL": "often"},
        {"FEEDBOT_CONCURRENCY": "0"},
        {"FEEDBOT_API_URL": "ftp://x"},
        {"FEEDBOT_LARGE_FILES": "1"},
        {"FEEDBOT_CONFIG": "/nonexistent/feedbot.toml"},
    ):
        with pytest.raises(ConfigError) as refused:
            load(environ=env)
        assert refused.value.reason.key in english, env
        assert refused.value.reason.text("zh")
