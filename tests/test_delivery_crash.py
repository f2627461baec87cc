"""`python -m bot run` SIGKILLed at random moments while it drains a prefilled outbox."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.storage.tinydb.backend import TinyDBStorage
from tests.fakes.botapi import FakeBotApi
from tests.test_delivery_e2e import assert_complete_with_few_duplicates, delivery

REPO = Path(__file__).resolve().parents[1]
KILLS = 20
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def start_bot(api: FakeBotApi, db: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": api.token,
        "FEEDBOT_API_URL": api.url,
        "FEEDBOT_DB": str(db),
        "PYTHONPATH": str(REPO),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], cwd=REPO, env=env, stdout=out, stderr=out
        )


async def wait_progress(api: FakeBotApi, proc: subprocess.Popen[bytes], before: int) -> None:
    """Until the bot has delivered something new (it is mid-drain), or it died / 20 s passed."""
    deadline = time.monotonic() + 20
    while len(api.delivered()) <= before and proc.poll() is None:
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)


async def wait_quiet(api: FakeBotApi, seconds: float) -> None:
    """Until nothing new was delivered for `seconds` (60 s at most)."""
    deadline = time.monotonic() + 60
    count, since = len(api.delivered()), time.monotonic()
    while time.monotonic() - since < seconds and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if len(api.delivered()) != count:
            count, since = len(api.delivered()), time.monotonic()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkill_during_delivery_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(11)
    db, log = tmp_path / "feedbot.json", tmp_path / "bot.log"
    chats = [1000 + i for i in range(50)]
    expected = {c: [f"{c}:{k}" for k in range(4)] for c in chats}
    store = await TinyDBStorage.open(db)
    await store.enqueue([delivery(c, expected[c][k]) for k in range(4) for c in chats])
    await store.close()
    with FakeBotApi(enforce_limits=True) as api:
        kills = 0
        for _ in range(KILLS):
            proc = start_bot(api, db, log)
            await wait_progress(api, proc, len(api.delivered()))
            await asyncio.sleep(rng.uniform(0.0, 0.1))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            if _done(api, expected):
                break
        started = len(api.calls("setMyCommands"))
        proc = start_bot(api, db, log)
        try:
            await api.await_for(lambda: _done(api, expected), timeout=60)
            # the last process also re-sends what a killed one had sent but not yet marked
            # done (up to one per chat): let it start, then wait until it falls quiet
            await api.await_for(lambda: len(api.calls("setMyCommands")) > started, timeout=30)
            await wait_quiet(api, 1.5)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert_complete_with_few_duplicates(api, expected, kills)
    # every run was `feedbot run` on uvloop (a dependency; the standard loop only without it)
    started_lines = [line for line in log.read_text().splitlines() if "feedbot started" in line]
    assert started_lines and all(line.endswith("event loop uvloop") for line in started_lines)
    store = await TinyDBStorage.open(db)
    try:
        assert await store.pending() == []
    finally:
        await store.close()


def _done(api: FakeBotApi, expected: dict[int, list[str]]) -> bool:
    got: dict[int, list[str]] = {}
    for m in api.delivered():
        got.setdefault(m.chat_id, []).append(m.plain)
    return all(
        [t for i, t in enumerate(got.get(c, [])) if i == 0 or t != got[c][i - 1]] == want
        for c, want in expected.items()
    )
