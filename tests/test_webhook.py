"""`feedbot run --webhook URL --listen HOST:PORT`: updates arrive by webhook (PTB's run_webhook)
instead of long polling, with the secret header checked. The real command as a subprocess against
the fake Bot API, which posts queued updates to the registered loopback URL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import telegram
from telegram.error import BadRequest, Conflict

from bot.config import ConfigError, load
from tests.conftest import Conversation
from tests.fakes.botapi import FakeBotApi
from tests.fakes.feeds import hugo_feed
from tests.fakes.feedserver import FeedServer
from tests.fakes.webhook import NO_ANSWER
from tests.test_cli import REPO, feedbot

USER = 1001
#: never dialled: every refusal below happens before the bot contacts anything
NOWHERE = "http://127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def run_bot(
    tmp_path: Path, fake_api: FakeBotApi
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """run_bot(*args, **env) starts `feedbot run ARGS` on the fake API; stopped by SIGTERM."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDBOT_", "TELEGRAM_"))}
        env = {
            **clean,
            "PYTHONPATH": str(REPO),
            "TELEGRAM_BOT_TOKEN": fake_api.token,
            "FEEDBOT_API_URL": fake_api.url,
            "FEEDBOT_DB": str(tmp_path / "feedbot.json"),
            "FEEDBOT_ALLOW_PRIVATE": "1",
            **extra_env,
        }
        with (tmp_path / "bot.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=log,
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "bot.log").read_text(errors="replace")


async def wait_registered(api: FakeBotApi, proc: subprocess.Popen[bytes], tmp_path: Path) -> Any:
    """The webhook once the bot has set it (and the menu, so the start-up path ran)."""

    def ready() -> bool:
        return proc.poll() is not None or (
            api.webhook() is not None and bool(api.calls("setMyCommands"))
        )

    await api.await_for(ready, timeout=60)
    assert proc.poll() is None, log_of(tmp_path)
    return api.webhook()


async def test_commands_arrive_by_webhook_and_a_wrong_secret_is_refused(
    tmp_path: Path,
    fake_api: FakeBotApi,
    feed_server: FeedServer,
    run_bot: Callable[..., subprocess.Popen[bytes]],
) -> None:
    feed_server.set_feed("/ml.xml", hugo_feed(range(1, 6)))
    feed = feed_server.url("/ml.xml")
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    proc = run_bot("--webhook", url, "--listen", f"127.0.0.1:{port}")
    hook = await wait_registered(fake_api, proc, tmp_path)
    assert hook.url == url
    assert hook.secret  # none given: a random one for this process
    chat = Conversation(fake_api)

    (welcome,) = await chat.say(USER, "/start", timeout=30)
    assert "/sub" in welcome.plain
    (answer,) = await chat.say(USER, f"/sub {feed}", timeout=30)
    assert "Subscribed to Machine Learning on Test Blog" in answer.plain
    # posts made before the listener was up got no answer and were made again, as Telegram does
    assert {push.status for push in fake_api.pushes()} <= {200, NO_ANSWER}

    # not from Telegram: refused before the bot sees it
    assert fake_api.push_text(USER, "/help", secret="not-the-secret") == 403
    assert fake_api.push_text(USER, "/help", secret=None) == 403
    (listing,) = await chat.say(USER, "/list", timeout=30)
    assert feed in listing.plain

    assert fake_api.calls("getUpdates") == []  # no long polling beside the webhook
    log = log_of(tmp_path)
    assert f"updates: webhook {url}, listening on 127.0.0.1:{port}, a random secret" in log
    assert hook.secret not in log

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log_of(tmp_path)
    # other processes may serve the same URL: stopping leaves the webhook registered
    assert fake_api.calls("deleteWebhook") == [] and fake_api.webhook() == hook
    # the refused /help pushes were never answered
    assert [m.plain for m in fake_api.delivered(USER)] == [
        welcome.plain,
        answer.plain,
        listing.plain,
    ]


async def test_the_webhook_settings_from_the_environment(
    tmp_path: Path, fake_api: FakeBotApi, run_bot: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    proc = run_bot(
        FEEDBOT_WEBHOOK_URL=url,
        FEEDBOT_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        FEEDBOT_WEBHOOK_SECRET="shared-by-every-updates-process_1",
    )
    hook = await wait_registered(fake_api, proc, tmp_path)
    assert (hook.url, hook.secret) == (url, "shared-by-every-updates-process_1")
    (welcome,) = await Conversation(fake_api).say(USER, "/start", timeout=30)
    assert "/sub" in welcome.plain
    assert "secret from FEEDBOT_WEBHOOK_SECRET" in log_of(tmp_path)


async def test_polling_says_so_at_start(
    tmp_path: Path, fake_api: FakeBotApi, run_bot: Callable[..., subprocess.Popen[bytes]]
) -> None:
    proc = run_bot()
    await fake_api.await_for(lambda: proc.poll() is not None or bool(fake_api.calls("getUpdates")))
    assert proc.poll() is None, log_of(tmp_path)
    await fake_api.await_for(lambda: "updates: long polling" in log_of(tmp_path), timeout=30)
    assert fake_api.webhook() is None


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--webhook", "http://example.com/hook"], {}, "must be https://"),
        (["--webhook", "ftp://127.0.0.1/hook"], {}, "must be https://"),
        (["--webhook", "https:///hook"], {}, "must be https://"),
        ([], {"FEEDBOT_WEBHOOK_URL": "example.com/hook"}, "must be https://"),
        (["--webhook", "http://127.0.0.1:8443/x", "--listen", "8443"], {}, "HOST:PORT"),
        (["--webhook", "http://127.0.0.1:8443/x", "--listen", "h:99999"], {}, "HOST:PORT"),
        (["--listen", "127.0.0.1:8443"], {}, "--listen is for a webhook"),
        (["--webhook", "http://127.0.0.1:8443/x"], {"FEEDBOT_WEBHOOK_SECRET": "a b"}, "1 to 256"),
    ],
)
def test_a_bad_webhook_setting_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    base = {"TELEGRAM_BOT_TOKEN": "1:x", "FEEDBOT_API_URL": NOWHERE}
    result = feedbot("run", *args, env={**base, "FEEDBOT_DB": str(tmp_path / "db.json"), **env})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("feedbot: ") and says in lines[0], lines
    assert not (tmp_path / "db.json").exists()


def test_the_public_api_takes_only_its_webhook_ports() -> None:
    with pytest.raises(ConfigError, match="only to ports 443, 80, 88, 8443"):
        load(environ={"FEEDBOT_WEBHOOK_URL": "https://bot.example.org:9000/hook"})
    assert load(environ={"FEEDBOT_WEBHOOK_URL": "https://bot.example.org:8443/hook"})
    # a self-hosted Bot API server posts to any port
    settings = load(
        environ={
            "FEEDBOT_API_URL": "https://bots.example.org",
            "FEEDBOT_WEBHOOK_URL": "https://bot.example.org:9000/hook",
        }
    )
    assert settings.webhook_address == ("127.0.0.1", 8443)


async def test_the_in_process_bot_can_use_a_webhook_too(
    start_bot: Callable[..., Any], fake_api: FakeBotApi
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with start_bot(webhook_url=url, webhook_listen=f"127.0.0.1:{port}") as chat:
        (welcome,) = await chat.say(USER, "/start")
        assert "/sub" in welcome.plain
        assert fake_api.calls("getUpdates") == []


async def test_the_fake_refuses_getupdates_while_a_webhook_is_set(fake_api: FakeBotApi) -> None:
    bot = telegram.Bot(fake_api.token, base_url=f"{fake_api.url}/bot")
    async with bot:
        with pytest.raises(BadRequest, match="loopback"):
            await bot.set_webhook("https://bot.example.org/hook")
        assert await bot.set_webhook(f"http://127.0.0.1:{free_port()}/hook", secret_token="s")
        info = await bot.get_webhook_info()
        assert info.url.startswith("http://127.0.0.1:")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
        assert await bot.get_updates(timeout=0) == ()


def test_a_taken_listen_port_is_one_line_and_exit_1(
    tmp_path: Path, fake_api: FakeBotApi, run_bot: Callable[..., subprocess.Popen[bytes]]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_bot(
            "--webhook", f"http://127.0.0.1:{port}/hook", "--listen", f"127.0.0.1:{port}"
        )
        assert proc.wait(timeout=60) == 1
    log = log_of(tmp_path)
    assert "Traceback" not in log
    assert (
        log.strip()
        .splitlines()[-1]
        .startswith(f"feedbot: cannot listen on 127.0.0.1:{port} for the webhook: ")
    ), log


def test_a_webhook_telegram_refuses_is_one_line_and_exit_1(
    tmp_path: Path, fake_api: FakeBotApi, run_bot: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # the fake refuses anything but loopback http:// (nothing dials the address)
    proc = run_bot("--webhook", "https://bot.example.org/hook")
    assert proc.wait(timeout=60) == 1
    last = log_of(tmp_path).strip().splitlines()[-1]
    assert last.startswith("feedbot: Telegram refused the webhook https://bot.example.org/hook: ")
    assert "bad webhook" in last.lower()
