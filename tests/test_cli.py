"""The `feedbot` command as a user runs it: a real process, real environment variables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import describe
from bot.storage.tinydb.database import Database
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.telegram_rules import api_call_error

REPO = Path(__file__).resolve().parents[1]


def feedbot(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDBOT_", "TELEGRAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=timeout,
        check=False,
    )


def test_run_without_token_explains_in_one_line() -> None:
    result = feedbot("run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0] and "@BotFather" in lines[0]


def test_run_help_lists_every_setting() -> None:
    result = feedbot("run", "--help")
    assert result.returncode == 0
    for env, _, _ in describe():
        assert env in result.stdout


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    result = feedbot("run", env={"FEEDBOT_POLL_INTERVAL": "often", "TELEGRAM_BOT_TOKEN": "1:x"})
    assert result.returncode == 2 and "not a valid int" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["neural-networks.xml", "machine-learning.xml"])
def test_preview_json_on_seed_feeds_prints_valid_bot_api_calls(shared_dir: Path, name: str) -> None:
    result = feedbot("preview", str(shared_dir / "seeds" / name), "--json", "--limit", "40")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == (4 if name.startswith("neural") else 32)
    for line in lines:
        call = json.loads(line)
        assert set(call) == {"method", "params"}
        assert call["method"] in ("sendMessage", "sendPhoto")
        assert "chat_id" not in call["params"]
        assert api_call_error(call["method"], call["params"]) is None
        text = call["params"].get("text") or call["params"].get("caption")
        assert "&rsquo;" not in text and "$" not in text


def test_preview_text_mode_reads_cleanly(shared_dir: Path) -> None:
    result = feedbot("preview", str(shared_dir / "seeds" / "neural-networks.xml"))
    assert result.returncode == 0
    assert "showing 3" in result.stdout
    assert "&mdash;" not in result.stdout and "<p>" not in result.stdout


def test_preview_of_unreachable_source_is_a_clear_error(feed_server: FeedServer) -> None:
    feed_server.set_response("/gone.xml", 404)
    result = feedbot("preview", feed_server.url("/gone.xml"), env={"FEEDBOT_ALLOW_PRIVATE": "1"})
    assert result.returncode == 1
    assert "404" in result.stderr and "Traceback" not in result.stderr


def start_bot_process(api: FakeBotApi, db: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDBOT_", "TELEGRAM_"))}
    env = {
        **clean,
        "PYTHONPATH": str(REPO),
        "TELEGRAM_BOT_TOKEN": api.token,
        "FEEDBOT_API_URL": api.url,
        "FEEDBOT_DB": str(db),
        "FEEDBOT_POLL_INTERVAL": "1",
        "FEEDBOT_ALLOW_PRIVATE": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_real_process_serves_commands_and_survives_sigkill(
    tmp_path: Path, fake_api: FakeBotApi, feed_server: FeedServer
) -> None:
    db = tmp_path / "feedbot.json"
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 31)))
    proc = start_bot_process(fake_api, db)
    try:
        fake_api.send_text(1001, "/start")
        fake_api.wait_delivered(1, 1001, timeout=30)
        fake_api.send_text(1001, f"/sub {feed_server.url('/ml.xml')}")
        (_, subscribed) = fake_api.wait_delivered(2, 1001, timeout=30)
        assert "Subscribed" in subscribed.plain
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 32)))
        posts = fake_api.wait_delivered(3, 1001, timeout=30)
        assert "Topic 31" in posts[2].plain
        time.sleep(1)  # let the completion reach the change log: this kill is not mid-send
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    loaded = Database(db)  # a SIGKILLed bot leaves a database that loads
    assert [s.chat_id for s in loaded.all_subscriptions()] == [1001]
    loaded.close()
    proc = start_bot_process(fake_api, db)
    try:
        time.sleep(3)  # a few poll intervals: the already-delivered post is not sent again
        assert len(fake_api.delivered(1001)) == 3
        feed_server.set_feed("/ml.xml", hugo_feed(range(1, 33)))
        posts = fake_api.wait_delivered(4, 1001, timeout=30)
        assert "Topic 32" in posts[3].plain
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_preview_shows_templates_and_hashtags(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Tagged</title>'
        "<link>https://blog.test/</link><item><title>First &amp; only</title>"
        "<link>https://blog.test/1/</link><guid>https://blog.test/1/</guid>"
        "<category>Machine Learning</category><category>深度学习</category>"
        "<description>&lt;p&gt;The body.&lt;/p&gt;</description></item></channel></rss>",
        encoding="utf-8",
    )
    template = "<i>{feed}</i>: <b>{title}</b>\\n{summary}\\n{tags}"
    result = feedbot("preview", str(feed), "--json", "--template", template, "--tags", "news tech")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    params = json.loads(line)["params"]
    assert params["text"] == (
        "<i>Tagged</i>: <b>First &amp; only</b>\nThe body.\n#news #tech #Machine_Learning #深度学习"
    )
    plain = feedbot("preview", str(feed), "--template", "compact", "--hashtags", "off")
    assert plain.returncode == 0
    assert "First & only (https://blog.test/1/)\nThe body.\n─" in plain.stdout
    assert "#Machine_Learning" not in plain.stdout
    refused = feedbot("preview", str(feed), "--template", "<b>{title}</b>\\n{sumary}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "no placeholder “{sumary}”" in refused.stderr
    assert feedbot("preview", str(feed), "--tags", "2024").returncode == 2
