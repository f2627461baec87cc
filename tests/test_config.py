from pathlib import Path

import pytest

from bot.config import ConfigError, describe, load


def test_defaults() -> None:
    s = load(environ={})
    assert s.api_url == "https://api.telegram.org"
    assert s.db_path == "data/feedbot.json"
    assert s.poll_interval == 300
    assert s.allow_private is False
    assert s.tick_seconds == 5


def test_toml_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text('poll_interval = 120\ndb_path = "x.json"\nowners = [1, 2]\n')
    s = load(cfg, environ={"FEEDBOT_POLL_INTERVAL": "7", "FEEDBOT_ALLOW_PRIVATE": "1"})
    assert (s.poll_interval, s.db_path, s.owners, s.allow_private) == (7, "x.json", (1, 2), True)
    assert s.tick_seconds == 5


def test_config_file_from_environment_and_small_intervals(tmp_path: Path) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text("poll_interval = 2\n")
    s = load(environ={"FEEDBOT_CONFIG": str(cfg), "FEEDBOT_API_URL": "http://127.0.0.1:9/"})
    assert s.poll_interval == 2 and s.tick_seconds == 2
    assert s.api_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("bogus = 1\n", {}, "unknown setting"),
        ("poll_interval = [\n", {}, "not valid TOML"),
        ("", {"FEEDBOT_POLL_INTERVAL": "soon"}, "not a valid int"),
        ("", {"FEEDBOT_POLL_INTERVAL": "0"}, "at least 1"),
    ],
)
def test_bad_settings_say_what_is_wrong(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    cfg = tmp_path / "f.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(cfg, environ=env)


def test_every_contract_variable_is_described() -> None:
    names = {env for env, _, _ in describe()}
    assert {
        "TELEGRAM_BOT_TOKEN",
        "FEEDBOT_API_URL",
        "FEEDBOT_DB",
        "FEEDBOT_POLL_INTERVAL",
        "FEEDBOT_ALLOW_PRIVATE",
    } <= names
