"""`feedbot run` checks its data folder and database before it starts: one line naming the file,
what is wrong and what to do; the file is never changed (nor taken over without --force)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.models import Feed, Subscription
from bot.storage.tinydb.database import Database
from tests.fakes.botapi import FakeBotApi
from tests.fakes.tmpfs import mounted_tmpfs
from tests.test_cli import REPO, feedbot

#: never dialled: every refusal below happens before the bot contacts anything
NOWHERE = "http://127.0.0.1:9"


def refusal(db: Path, *args: str) -> str:
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "FEEDBOT_API_URL": NOWHERE, "FEEDBOT_DB": str(db)}
    result = feedbot("run", *args, env=env, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("feedbot: ") and str(db) in lines[0]
    return lines[0]


def our_snapshot(tmp_path: Path) -> bytes:
    db = Database(tmp_path / "made" / "feedbot.json")
    db.save_feed(Feed(url="https://f.test/", title="F", seen=[f"k{i}" for i in range(50)]))
    db.save_subscription(Subscription(chat_id=1, feed_url="https://f.test/"))
    db.commit()
    db.close()
    return (tmp_path / "made" / "feedbot.json").read_bytes()


DAMAGED = {
    "truncated": lambda ours: ours[: len(ours) // 2],
    "garbage bytes": lambda ours: bytes(random.Random(1).randrange(256) for _ in range(3000)),
    "a JSON list": lambda ours: b"[1, 2, 3]",
    "a JSON string": lambda ours: b'"feeds"',
    "a table of the wrong type": lambda ours: b'{"feeds": [], "chats": {}}',
    "a document missing its key": lambda ours: b'{"feeds": {"1": {"title": "no url"}}}',
    "a document of the wrong type": lambda ours: b'{"chats": {"1": {"id": "me"}}}',
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_database_is_one_line_and_left_untouched(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "feedbot.json"
    db.write_bytes(DAMAGED[damage](our_snapshot(tmp_path)))
    before = db.read_bytes()
    line = refusal(db)
    assert "move it aside and restore a backup" in line
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedbot.json", "made"]


def test_a_directory_in_place_of_the_database(tmp_path: Path) -> None:
    db = tmp_path / "feedbot.json"
    db.mkdir()
    line = refusal(db)
    assert "is a directory" in line and "move it aside" in line


def test_an_empty_file_is_not_taken_over_without_force(
    tmp_path: Path, fake_api: FakeBotApi
) -> None:
    db = tmp_path / "feedbot.json"
    db.touch()
    line = refusal(db)
    assert "empty" in line and "--force" in line
    assert db.read_bytes() == b""
    run_and_stop(fake_api, db, "--force")
    loaded = Database(db)  # with --force it became our database
    assert loaded.all_feeds() == []
    loaded.close()


def test_another_programs_tinydb_file_is_refused_or_kept(
    tmp_path: Path, fake_api: FakeBotApi
) -> None:
    db = tmp_path / "feedbot.json"
    theirs = {
        "_default": {"1": {"name": "setting", "value": 3}},
        "accounts": {"1": {"user": "ann", "balance": 10}, "2": {"user": "bob", "balance": 0}},
    }
    db.write_text(json.dumps(theirs))
    before = db.read_bytes()
    line = refusal(db)
    assert "another program's tables (_default, accounts)" in line and "--force" in line
    assert db.read_bytes() == before
    run_and_stop(fake_api, db, "--force")
    after = json.loads(db.read_bytes())
    assert {name: after[name] for name in theirs} == theirs  # kept, as they were
    assert "feeds" in after
    # from now on it holds feedbot's tables too: no --force needed, and theirs survive again
    run_and_stop(fake_api, db)
    assert {name: json.loads(db.read_bytes())[name] for name in theirs} == theirs


def run_and_stop(api: FakeBotApi, db: Path, *args: str) -> None:
    """Start the real bot, see it answer /start, stop it with SIGINT."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDBOT_", "TELEGRAM_"))}
    env = {
        **clean,
        "PYTHONPATH": str(REPO),
        "TELEGRAM_BOT_TOKEN": api.token,
        "FEEDBOT_API_URL": api.url,
        "FEEDBOT_DB": str(db),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        before = len(api.delivered(1001))
        api.send_text(1001, "/start")
        api.wait_delivered(before + 1, 1001, timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]


# ----------------------------------------------------------------- read-only data folder
@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs remounted read-only (permission bits do not stop root, so a real one)."""
    with mounted_tmpfs(tmp_path / "ro", "1m") as mount:
        yield mount


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def test_a_read_only_data_folder_is_one_line(read_only_folder: Path, tmp_path: Path) -> None:
    with_db = read_only_folder / "with"
    empty = read_only_folder / "empty"
    with_db.mkdir()
    empty.mkdir()
    (with_db / "feedbot.json").write_bytes(our_snapshot(tmp_path))
    remount_read_only(read_only_folder)
    for folder in (with_db, empty):
        line = refusal(folder / "feedbot.json")
        assert f"its data folder {folder} is not writable" in line
        assert "Read-only file system" in line
    assert [p.name for p in empty.iterdir()] == []
